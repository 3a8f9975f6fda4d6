"""The closed-loop table: every entry point of a loop, called after close().

Used by tests/test_closed_loop.py, which runs this file as a child process
(``python tests/closed_loop_cases.py KIND MODE CASE...``) so that a crash
(a segfault, a libuv assertion) fails the case instead of killing pytest.
The child prints ``BEGIN <case>`` before each case and ``RESULT <case>
<json>`` after it; the parent sees which case a crash happened in.

Each case makes what it needs (sockets, a pipe, a transport made while the
loop was open), closes the loop, then calls the entry point:

* MODE ``send``: a coroutine is driven with ``coro.send(None)`` with no loop
  running (as a foreign scheduler, or a test harness, would);
* MODE ``await``: the coroutine (or the synchronous call) runs inside a task
  of another, running loop of the same kind.

The expected outcome of each case is what stdlib's loop does (3.9-3.13): in
almost every case ``RuntimeError('Event loop is closed')``; an operation
stdlib completes without needing the loop (a datagram the kernel takes at
once, data already received) completes.
"""
from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import warnings

CLOSED = ["raise", "RuntimeError", "Event loop is closed"]


def new_loop(kind):
    if kind == "asyncio":
        return asyncio.new_event_loop()
    import uvloop_like
    return uvloop_like.new_event_loop()


class Env:
    """Resources of one case, closed after it."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="uvl-closed-")
        self._closers = []

    def keep(self, obj):
        self._closers.append(obj)
        return obj

    def path(self, name):
        return os.path.join(self.tmp, name)

    def pair(self, type=socket.SOCK_STREAM):
        a, b = socket.socketpair(socket.AF_UNIX, type)
        for s in (a, b):
            s.setblocking(False)
            self.keep(s)
        return a, b

    def tcp_listener(self):
        srv = self.keep(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.setblocking(False)
        return srv

    def unix_listener(self):
        srv = self.keep(socket.socket(socket.AF_UNIX))
        srv.bind(self.path("listen.sock"))
        srv.listen(8)
        srv.setblocking(False)
        return srv

    def udp(self):
        s = self.keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        return s

    def file(self, size):
        path = self.path("data.bin")
        with open(path, "wb") as f:
            f.write(b"x" * size)
        return self.keep(open(path, "rb"))

    def full_unix_dgram(self):
        """A unix datagram socket whose peer's queue is full, and the peer's path."""
        rx = self.keep(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        rx.bind(self.path("rx.sock"))
        tx = self.keep(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        tx.setblocking(False)
        for _ in range(100000):
            try:
                tx.sendto(b"x" * 1024, self.path("rx.sock"))
            except BlockingIOError:
                break
        return tx, self.path("rx.sock")

    def close(self):
        for obj in reversed(self._closers):
            try:
                obj.close()
            except Exception:
                pass
        for name in os.listdir(self.tmp):
            try:
                os.unlink(os.path.join(self.tmp, name))
            except OSError:
                pass
        os.rmdir(self.tmp)


def _transport(loop, env):
    """A stream transport made while the loop is open (for sendfile and
    start_tls after close)."""
    a, b = env.pair()
    env.peer = b
    transport, _ = loop.run_until_complete(
        loop.connect_accepted_socket(asyncio.Protocol, a))
    env.keep(transport)
    return transport


async def _no_asyncgen():
    return None


def _ssl_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# name -> (setup before close or None, call(loop, env, setup_result), is_coroutine, expected)
CASES = {}


def case(name, call, coro=True, expect=CLOSED, setup=None):
    CASES[name] = (setup, call, coro, expect)


P = asyncio.Protocol
DP = asyncio.DatagramProtocol
SP = asyncio.SubprocessProtocol

# --- coroutines ---------------------------------------------------------------------
case("create_connection(host)",
     lambda lp, e, s: lp.create_connection(P, "127.0.0.1", e.tcp_listener().getsockname()[1]))
case("create_connection(sock)", lambda lp, e, s: lp.create_connection(P, sock=e.pair()[0]))
case("create_connection(sock, ssl)",
     lambda lp, e, s: lp.create_connection(P, sock=e.pair()[0], ssl=_ssl_context(),
                                           server_hostname="x"))
case("create_server(host)", lambda lp, e, s: lp.create_server(P, "127.0.0.1", 0))
case("create_server(sock)", lambda lp, e, s: lp.create_server(P, sock=e.tcp_listener()))
case("create_unix_connection(path)",
     lambda lp, e, s: lp.create_unix_connection(P, e.unix_listener().getsockname()))
case("create_unix_connection(sock)", lambda lp, e, s: lp.create_unix_connection(P, sock=e.pair()[0]))
case("create_unix_server(path)", lambda lp, e, s: lp.create_unix_server(P, e.path("srv.sock")))
case("create_unix_server(sock)", lambda lp, e, s: lp.create_unix_server(P, sock=e.unix_listener()))
case("connect_accepted_socket", lambda lp, e, s: lp.connect_accepted_socket(P, e.pair()[0]))


def _pipe_with_data(env):
    """A file object os.sendfile cannot send from (a pipe), with data."""
    r, w = os.pipe()
    os.write(w, b"data")
    os.close(w)
    return env.keep(os.fdopen(r, "rb", buffering=0))


def _pipe_end(env, which):
    r, w = os.pipe()
    rf = env.keep(os.fdopen(r, "rb", buffering=0))
    wf = env.keep(os.fdopen(w, "wb", buffering=0))
    return rf if which == "r" else wf


case("connect_read_pipe", lambda lp, e, s: lp.connect_read_pipe(P, _pipe_end(e, "r")))
case("connect_write_pipe", lambda lp, e, s: lp.connect_write_pipe(P, _pipe_end(e, "w")))
case("subprocess_exec", lambda lp, e, s: lp.subprocess_exec(SP, sys.executable, "-c", "pass"))
case("subprocess_shell", lambda lp, e, s: lp.subprocess_shell(SP, "exit 0"))
case("sock_recv", lambda lp, e, s: lp.sock_recv(e.pair()[0], 10))
case("sock_recv_into", lambda lp, e, s: lp.sock_recv_into(e.pair()[0], bytearray(10)))
case("sock_recvfrom", lambda lp, e, s: lp.sock_recvfrom(e.udp(), 10))
case("sock_recvfrom_into", lambda lp, e, s: lp.sock_recvfrom_into(e.udp(), bytearray(10)))
case("sock_sendall", lambda lp, e, s: lp.sock_sendall(e.pair()[0], b"x" * (16 << 20)))
case("sock_sendto(would block)",
     lambda lp, e, s: lp.sock_sendto(*e.full_unix_dgram()[:1], b"x" * 1024, e.path("rx.sock")))
case("sock_connect", lambda lp, e, s: lp.sock_connect(
    e.keep(_nonblocking(socket.socket())), e.tcp_listener().getsockname()))
case("sock_accept", lambda lp, e, s: lp.sock_accept(e.tcp_listener()))
case("sock_sendfile", lambda lp, e, s: lp.sock_sendfile(e.pair()[0], e.file(16 << 20)))
case("sock_sendfile(small file)", lambda lp, e, s: lp.sock_sendfile(e.pair()[0], e.file(100)))
case("sock_sendfile(fallback)",
     lambda lp, e, s: lp.sock_sendfile(e.pair()[0], _pipe_with_data(e), count=4))
case("sendfile", lambda lp, e, s: lp.sendfile(s, e.file(16 << 20)), setup=_transport)
case("sendfile(small file)", lambda lp, e, s: lp.sendfile(s, e.file(100)), setup=_transport)
case("sendfile(fallback)", lambda lp, e, s: lp.sendfile(s, _pipe_with_data(e), count=4),
     setup=_transport)
case("start_tls", lambda lp, e, s: lp.start_tls(s, P(), _ssl_context(), server_hostname="x"),
     setup=_transport)
case("getaddrinfo(name)", lambda lp, e, s: lp.getaddrinfo("localhost", 80))
case("getaddrinfo(numeric)", lambda lp, e, s: lp.getaddrinfo("127.0.0.1", 80))
case("getnameinfo", lambda lp, e, s: lp.getnameinfo(("127.0.0.1", 80)))
case("create_datagram_endpoint(addr)",
     lambda lp, e, s: lp.create_datagram_endpoint(DP, local_addr=("127.0.0.1", 0)))
case("create_datagram_endpoint(remote_addr)",
     lambda lp, e, s: lp.create_datagram_endpoint(DP, remote_addr=e.udp().getsockname()))
case("create_datagram_endpoint(sock)", lambda lp, e, s: lp.create_datagram_endpoint(DP, sock=e.udp()))
case("create_datagram_endpoint(unix sock)",
     lambda lp, e, s: lp.create_datagram_endpoint(DP, sock=e.pair(socket.SOCK_DGRAM)[0]))
case("create_datagram_endpoint(unix path)",
     lambda lp, e, s: lp.create_datagram_endpoint(DP, local_addr=e.path("dg.sock"),
                                                  family=socket.AF_UNIX))
# What stdlib completes without the loop, and so must we.
case("sock_sendall(kernel takes it)", lambda lp, e, s: lp.sock_sendall(e.pair()[0], b"abc"),
     expect=["ok", "None"])
case("sock_connect(unix, at once)",
     lambda lp, e, s: lp.sock_connect(e.keep(_nonblocking(socket.socket(socket.AF_UNIX))),
                                      e.unix_listener().getsockname()), expect=["ok", "None"])
case("sock_sendfile(empty file)", lambda lp, e, s: lp.sock_sendfile(e.pair()[0], e.file(0)),
     expect=["ok", "0"])
case("sock_recv(data ready)", lambda lp, e, s: lp.sock_recv(_with_data(e), 10), expect=["ok", "b'data'"])
case("sock_sendto(kernel takes it)",
     lambda lp, e, s: lp.sock_sendto(e.udp(), b"abc", e.udp().getsockname()), expect=["ok", "3"])
case("shutdown_asyncgens", lambda lp, e, s: lp.shutdown_asyncgens(), expect=["ok", "None"])
case("shutdown_default_executor", lambda lp, e, s: lp.shutdown_default_executor(),
     expect=["ok", "None"])


def _nonblocking(sock):
    sock.setblocking(False)
    return sock


def _with_data(env):
    a, b = env.pair()
    b.send(b"data")
    return a


# --- synchronous methods ------------------------------------------------------------
def _noop(*args):
    pass


case("call_soon", lambda lp, e, s: lp.call_soon(_noop), coro=False)
case("call_later", lambda lp, e, s: lp.call_later(1, _noop), coro=False)
case("call_at", lambda lp, e, s: lp.call_at(lp.time() + 1, _noop), coro=False)
case("call_soon_threadsafe", lambda lp, e, s: lp.call_soon_threadsafe(_noop), coro=False)
case("create_task", lambda lp, e, s: _closing_coro(lp.create_task, _no_asyncgen()), coro=False)
case("run_in_executor", lambda lp, e, s: lp.run_in_executor(None, _noop), coro=False)
case("add_reader", lambda lp, e, s: lp.add_reader(e.pair()[0], _noop), coro=False)
case("add_writer", lambda lp, e, s: lp.add_writer(e.pair()[0], _noop), coro=False)
case("add_signal_handler", lambda lp, e, s: lp.add_signal_handler(signal.SIGUSR1, _noop), coro=False)
case("run_forever", lambda lp, e, s: lp.run_forever(), coro=False)
case("run_until_complete", lambda lp, e, s: _closing_coro(lp.run_until_complete, _no_asyncgen()),
     coro=False)
case("set_default_executor", lambda lp, e, s: _set_default_executor(lp), coro=False,
     expect=["ok", "None"])
case("remove_reader", lambda lp, e, s: lp.remove_reader(e.pair()[0]), coro=False,
     expect=["ok", "False"])
case("remove_writer", lambda lp, e, s: lp.remove_writer(e.pair()[0]), coro=False,
     expect=["ok", "False"])
case("remove_signal_handler", lambda lp, e, s: lp.remove_signal_handler(signal.SIGUSR1), coro=False,
     expect=["ok", "False"])
case("stop", lambda lp, e, s: lp.stop(), coro=False, expect=["ok", "None"])
case("close", lambda lp, e, s: lp.close(), coro=False, expect=["ok", "None"])
case("is_closed", lambda lp, e, s: lp.is_closed(), coro=False, expect=["ok", "True"])
case("create_future", lambda lp, e, s: type(lp.create_future()).__name__, coro=False,
     expect=["ok", "'Future'"])


def _closing_coro(method, coro):
    try:
        return method(coro)
    finally:
        coro.close()


def _set_default_executor(loop):
    import concurrent.futures
    executor = concurrent.futures.ThreadPoolExecutor()
    try:
        return loop.set_default_executor(executor)
    finally:
        executor.shutdown()


# --- running one case ---------------------------------------------------------------

def _outcome(exc=None, value=None):
    if exc is not None:
        return ["raise", type(exc).__name__, str(exc)]
    return ["ok", repr(value)]


def _drive_send(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return _outcome(value=stop.value)
    except BaseException as exc:
        return _outcome(exc)
    coro.close()
    return ["suspended"]


def _open_fds():
    return set(os.listdir("/proc/self/fd"))


def run_case(kind, mode, name):
    """The outcome of one case, the descriptors it left open and the
    exception-handler calls it caused."""
    before = _open_fds()
    handler_calls = []
    result = _run_case(kind, mode, name, handler_calls)
    leaked = []
    for fd in sorted(_open_fds() - before, key=int):
        try:
            leaked.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # listdir's own descriptor
    return {"result": result, "leaked": leaked, "handler_calls": handler_calls}


def _run_case(kind, mode, name, handler_calls):
    setup, call, is_coro, _ = CASES[name]
    env = Env()
    loop = new_loop(kind)

    def record(loop, context):
        handler_calls.append(f"{context.get('message')}: {context.get('exception')!r}")

    loop.set_exception_handler(record)
    try:
        made = setup(loop, env) if setup is not None else None
        loop.close()
        if mode == "send":
            try:
                result = call(loop, env, made)
            except BaseException as exc:
                return _outcome(exc)
            if is_coro:
                return _drive_send(result)
            return _outcome(value=result)
        other = new_loop(kind)
        other.set_exception_handler(record)
        try:
            async def inside():
                result = call(loop, env, made)
                if is_coro:
                    result = await asyncio.wait_for(result, 10)
                return result
            try:
                return _outcome(value=other.run_until_complete(inside()))
            except BaseException as exc:
                return _outcome(exc)
        finally:
            other.close()
    finally:
        loop = made = None
        _full_gc()  # finalizers of what the case left run now, in this case
        env.close()
        _full_gc()


def _full_gc():
    # PyPy runs finalizers in one collection and frees in a later one.
    for _ in range(4):
        gc.collect()


def main(argv):
    faulthandler.enable()
    warnings.simplefilter("ignore")
    kind, mode = argv[:2]
    # Process-wide state that a first loop creates (libuv's signal pipe, for
    # one) is not a case's leak.
    warm = new_loop(kind)
    warm.run_until_complete(asyncio.sleep(0))
    warm.close()
    for name in argv[2:]:
        print("BEGIN", name, flush=True)
        result = run_case(kind, mode, name)
        print("RESULT", json.dumps([name, result]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
