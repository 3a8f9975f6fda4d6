"""Bad input raises what stdlib raises.

Table-driven: each case makes the same call on a fresh stdlib loop and on a
fresh uvloop_like loop and compares what happens: both succeed, or both raise
the same exception type (and, where stdlib's message is specific, the same
message).  Each case sets debug mode explicitly, so the table gives the same
answer with and without PYTHONASYNCIODEBUG.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading

import pytest
from conftest import new_loop, open_uv_handles
from loop_testutil import SOON

PY311 = sys.version_info >= (3, 11)


async def _noop_coro():
    return None


def _noop():
    return None


class _FilenoObject:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


class Resources:
    """Things a case needs (sockets, files, coroutine objects), all released
    after both loops ran the case."""

    def __init__(self):
        self.stack = contextlib.ExitStack()

    def close(self):
        self.stack.close()

    def coro(self):
        c = _noop_coro()
        self.stack.callback(c.close)
        return c

    def _keep(self, s):
        self.stack.callback(s.close)
        return s

    def tcp_pair(self, blocking=False):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        a = self._keep(socket.create_connection(srv.getsockname()))
        b = self._keep(srv.accept()[0])
        srv.close()
        a.setblocking(blocking)
        b.setblocking(blocking)
        return a, b

    def tcp(self, blocking=False):
        s = self._keep(socket.socket())
        s.setblocking(blocking)
        return s

    def udp(self, blocking=False):
        s = self._keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        s.bind(("127.0.0.1", 0))
        s.setblocking(blocking)
        return s

    def unix(self):
        s = self._keep(socket.socket(socket.AF_UNIX))
        s.setblocking(False)
        return s

    def ssl_socket(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        s = self._keep(ctx.wrap_socket(socket.socket(), server_hostname="localhost",
                                       do_handshake_on_connect=False))
        s.setblocking(False)
        return s

    def file(self, mode="rb", data=b"0123456789"):
        f = self.stack.enter_context(tempfile.TemporaryFile("w+b"))
        f.write(data)
        f.flush()
        f.seek(0)
        if "b" in mode:
            return f
        t = self.stack.enter_context(open(f.fileno(), mode, closefd=False))
        return t

    def regular_file_fd(self):
        return self.file().fileno()

    def unused_fd(self):
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        return r  # closed: nothing uses this number now

    def same_kind_loop(self, loop):
        kind = "uvloop_like" if type(loop).__module__.startswith("uvloop_like") else "asyncio"
        other = new_loop(kind)
        self.stack.callback(other.close)
        return other

    def stdlib_loop(self):
        other = asyncio.new_event_loop()
        self.stack.callback(other.close)
        return other

    def process_pool(self):
        ex = concurrent.futures.ProcessPoolExecutor(1)
        self.stack.callback(ex.shutdown, wait=True)
        return ex


class Case:
    def __init__(self, name, func, debug=False, message=True, skip=None):
        self.name = name
        self.func = func          # func(loop, resources) -> value or awaitable
        self.debug = debug
        self.message = message    # compare messages too
        self.skip = skip          # reason to skip, or None

    def __repr__(self):
        return self.name


def _in_loop(func):
    """Run func(loop, r) from a coroutine on the running loop."""
    def case(loop, r):
        async def main():
            return func(loop, r)
        return main()
    return case


def _nested_run_forever(loop, r):
    async def main():
        loop.run_forever()
    return main()


def _nested_run_until_complete(loop, r):
    async def main():
        c = r.coro()
        loop.run_until_complete(c)
    return main()


def _run_other_loop_inside(loop, r):
    other = r.same_kind_loop(loop)

    async def main():
        other.run_forever()
    return main()


def _future_of_other_loop(loop, r):
    other = r.stdlib_loop()
    return loop.run_until_complete(other.create_future())


def _closed_run_until_complete(loop, r):
    loop.close()
    return loop.run_until_complete(r.coro())


def _signal_from_thread(loop, r):
    errors = []

    def target():
        try:
            loop.add_signal_handler(signal.SIGUSR1, _noop)
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=target)
    th.start()
    th.join()
    if errors:
        raise errors[0]


def _on_transport_fd(action):
    """A case calling action(loop, fd) on the descriptor a connected TCP
    transport owns (stdlib raises RuntimeError: it is used by a transport)."""
    def case(loop, r):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            addr = server.sockets[0].getsockname()
            transport, _ = await loop.create_connection(asyncio.Protocol, *addr)
            try:
                return action(loop, transport.get_extra_info("socket").fileno())
            finally:
                transport.close()
                server.close()
                await server.wait_closed()
        return main()
    return case


def _sock_recv_after_close(loop, r):
    a, _ = r.tcp_pair()
    a.close()
    return loop.sock_recv(a, 10)


CASES = [
    # --- call_soon / call_later / call_at / call_soon_threadsafe ---
    Case("call_soon(coroutine) debug", lambda lp, r: lp.call_soon(r.coro()), debug=True),
    Case("call_soon(coroutine function) debug", lambda lp, r: lp.call_soon(_noop_coro), debug=True),
    Case("call_soon(1) debug", lambda lp, r: lp.call_soon(1), debug=True),
    Case("call_soon(None) debug", lambda lp, r: lp.call_soon(None), debug=True),
    Case("call_soon(1) no debug", lambda lp, r: lp.call_soon(1)),
    Case("call_soon() no callback", lambda lp, r: lp.call_soon(), message=False),
    Case("call_soon(cb, bad kwarg)", lambda lp, r: lp.call_soon(_noop, foo=1), message=False),
    Case("call_soon_threadsafe(coroutine) debug",
         lambda lp, r: lp.call_soon_threadsafe(r.coro()), debug=True),
    Case("call_soon_threadsafe(1) debug", lambda lp, r: lp.call_soon_threadsafe(1), debug=True),
    Case("call_later(None, cb)", lambda lp, r: lp.call_later(None, _noop)),
    Case("call_later('1', cb)", lambda lp, r: lp.call_later("1", _noop)),
    Case("call_later([], cb)", lambda lp, r: lp.call_later([], _noop)),
    Case("call_later(1, coroutine function) debug",
         lambda lp, r: lp.call_later(1, _noop_coro), debug=True),
    Case("call_later(1, 1) debug", lambda lp, r: lp.call_later(1, 1), debug=True),
    Case("call_later(nan, cb)", lambda lp, r: lp.call_later(float("nan"), _noop)),
    Case("call_later(inf, cb)", lambda lp, r: lp.call_later(float("inf"), _noop)),
    Case("call_later(1e300, cb)", lambda lp, r: lp.call_later(1e300, _noop)),
    Case("call_at(None, cb)", lambda lp, r: lp.call_at(None, _noop)),
    Case("call_at(t, coroutine) debug", lambda lp, r: lp.call_at(1.0, r.coro()), debug=True),
    Case("call_at(t, 'x') debug", lambda lp, r: lp.call_at(1.0, "x"), debug=True),
    Case("call_at(nan, cb)", lambda lp, r: lp.call_at(float("nan"), _noop)),

    # --- run / tasks / futures ---
    Case("run_until_complete(1)", lambda lp, r: lp.run_until_complete(1)),
    Case("run_until_complete(None)", lambda lp, r: lp.run_until_complete(None)),
    Case("run_until_complete(future of other loop)", _future_of_other_loop),
    Case("run_until_complete on closed loop", _closed_run_until_complete),
    Case("nested run_forever", _nested_run_forever),
    Case("nested run_until_complete", _nested_run_until_complete),
    Case("run another loop inside a running loop", _run_other_loop_inside),
    Case("create_task(1)", lambda lp, r: lp.create_task(1)),
    Case("create_task(coroutine function)", lambda lp, r: lp.create_task(_noop_coro)),
    Case("set_task_factory(1)", lambda lp, r: lp.set_task_factory(1)),
    Case("set_task_factory('f')", lambda lp, r: lp.set_task_factory("f")),

    # --- exception handler / executors ---
    Case("set_exception_handler(1)", lambda lp, r: lp.set_exception_handler(1)),
    Case("set_exception_handler('x')", lambda lp, r: lp.set_exception_handler("x")),
    Case("call_exception_handler('not a dict')",
         lambda lp, r: lp.call_exception_handler("not a dict")),
    Case("set_default_executor(object())", lambda lp, r: lp.set_default_executor(object()),
         skip=None if PY311 else "deprecated, not an error, before 3.11"),
    Case("set_default_executor(ProcessPoolExecutor)",
         lambda lp, r: lp.set_default_executor(r.process_pool()),
         skip=None if PY311 else "deprecated, not an error, before 3.11"),
    Case("run_in_executor(None, coroutine function) debug",
         lambda lp, r: lp.run_in_executor(None, _noop_coro), debug=True),
    Case("run_in_executor(None, 1) debug", lambda lp, r: lp.run_in_executor(None, 1), debug=True),
    Case("run_in_executor(None, 1) no debug", lambda lp, r: lp.run_in_executor(None, 1)),
    Case("run_in_executor('x', f)", lambda lp, r: lp.run_in_executor("x", _noop)),

    # --- add_reader / add_writer ---
    Case("add_reader(-1)", lambda lp, r: lp.add_reader(-1, _noop)),
    Case("add_reader('abc')", lambda lp, r: lp.add_reader("abc", _noop)),
    Case("add_reader(1.5)", lambda lp, r: lp.add_reader(1.5, _noop)),
    Case("add_reader(None)", lambda lp, r: lp.add_reader(None, _noop)),
    Case("add_reader(object())", lambda lp, r: lp.add_reader(object(), _noop), message=False),
    Case("add_reader(fileno() -> 'x')", lambda lp, r: lp.add_reader(_FilenoObject("x"), _noop),
         message=False),
    Case("add_reader(fileno() -> -1)", lambda lp, r: lp.add_reader(_FilenoObject(-1), _noop)),
    Case("add_reader(closed fd)", lambda lp, r: lp.add_reader(r.unused_fd(), _noop)),
    Case("add_reader(2**40)", lambda lp, r: lp.add_reader(2 ** 40, _noop)),
    Case("add_reader(regular file)", lambda lp, r: lp.add_reader(r.regular_file_fd(), _noop)),
    Case("add_reader(sock, 1)", lambda lp, r: lp.add_reader(r.tcp(), 1)),
    Case("add_writer(-1)", lambda lp, r: lp.add_writer(-1, _noop)),
    Case("add_writer('abc')", lambda lp, r: lp.add_writer("abc", _noop)),
    Case("add_writer(closed fd)", lambda lp, r: lp.add_writer(r.unused_fd(), _noop)),
    Case("add_writer(fileno() -> -1)", lambda lp, r: lp.add_writer(_FilenoObject(-1), _noop)),
    Case("remove_reader(-1)", lambda lp, r: lp.remove_reader(-1)),
    Case("remove_reader('abc')", lambda lp, r: lp.remove_reader("abc")),
    Case("remove_reader(closed fd)", lambda lp, r: lp.remove_reader(r.unused_fd())),
    Case("remove_writer(None)", lambda lp, r: lp.remove_writer(None)),
    # The messages name the transport (its repr differs between loops).
    Case("add_reader(fd of a transport)",
         _on_transport_fd(lambda lp, fd: lp.add_reader(fd, _noop)), message=False),
    Case("add_writer(fd of a transport)",
         _on_transport_fd(lambda lp, fd: lp.add_writer(fd, _noop)), message=False),
    Case("remove_reader(fd of a transport)",
         _on_transport_fd(lambda lp, fd: lp.remove_reader(fd)), message=False),
    Case("remove_writer(fd of a transport)",
         _on_transport_fd(lambda lp, fd: lp.remove_writer(fd)), message=False),

    # --- signals ---
    Case("add_signal_handler('SIGUSR1')", lambda lp, r: lp.add_signal_handler("SIGUSR1", _noop)),
    Case("add_signal_handler(10.0)", lambda lp, r: lp.add_signal_handler(10.0, _noop)),
    Case("add_signal_handler(None)", lambda lp, r: lp.add_signal_handler(None, _noop)),
    Case("add_signal_handler(0)", lambda lp, r: lp.add_signal_handler(0, _noop)),
    Case("add_signal_handler(-1)", lambda lp, r: lp.add_signal_handler(-1, _noop)),
    Case("add_signal_handler(1000)", lambda lp, r: lp.add_signal_handler(1000, _noop)),
    Case("add_signal_handler(SIGKILL)", lambda lp, r: lp.add_signal_handler(signal.SIGKILL, _noop)),
    Case("add_signal_handler(SIGSTOP)", lambda lp, r: lp.add_signal_handler(signal.SIGSTOP, _noop)),
    Case("add_signal_handler(sig, coroutine function)",
         lambda lp, r: lp.add_signal_handler(signal.SIGUSR1, _noop_coro)),
    Case("add_signal_handler(sig, coroutine)",
         lambda lp, r: lp.add_signal_handler(signal.SIGUSR1, r.coro())),
    Case("add_signal_handler from a thread", _signal_from_thread),
    Case("remove_signal_handler('x')", lambda lp, r: lp.remove_signal_handler("x")),
    Case("remove_signal_handler(0)", lambda lp, r: lp.remove_signal_handler(0)),
    Case("remove_signal_handler(SIGKILL)", lambda lp, r: lp.remove_signal_handler(signal.SIGKILL)),

    # --- sock_* ---
    Case("sock_recv(blocking) debug", lambda lp, r: lp.sock_recv(r.tcp_pair(True)[0], 10), debug=True),
    Case("sock_recv_into(blocking) debug",
         lambda lp, r: lp.sock_recv_into(r.tcp_pair(True)[0], bytearray(10)), debug=True),
    Case("sock_sendall(blocking) debug",
         lambda lp, r: lp.sock_sendall(r.tcp_pair(True)[0], b"x"), debug=True),
    Case("sock_connect(blocking) debug",
         lambda lp, r: lp.sock_connect(r.tcp(True), ("127.0.0.1", 1)), debug=True),
    Case("sock_accept(blocking) debug", lambda lp, r: lp.sock_accept(r.tcp(True)), debug=True),
    Case("sock_recvfrom(blocking) debug", lambda lp, r: lp.sock_recvfrom(r.udp(True), 10),
         debug=True, skip=None if PY311 else "3.11+"),
    Case("sock_recvfrom_into(blocking) debug",
         lambda lp, r: lp.sock_recvfrom_into(r.udp(True), bytearray(10)),
         debug=True, skip=None if PY311 else "3.11+"),
    Case("sock_sendto(blocking) debug",
         lambda lp, r: lp.sock_sendto(r.udp(True), b"x", ("127.0.0.1", 9)),
         debug=True, skip=None if PY311 else "3.11+"),
    Case("sock_sendfile(blocking) debug",
         lambda lp, r: lp.sock_sendfile(r.tcp_pair(True)[0], r.file()), debug=True),
    Case("sock_recv(SSLSocket)", lambda lp, r: lp.sock_recv(r.ssl_socket(), 10)),
    Case("sock_recv_into(SSLSocket)", lambda lp, r: lp.sock_recv_into(r.ssl_socket(), bytearray(1))),
    Case("sock_sendall(SSLSocket)", lambda lp, r: lp.sock_sendall(r.ssl_socket(), b"x")),
    Case("sock_connect(SSLSocket)",
         lambda lp, r: lp.sock_connect(r.ssl_socket(), ("127.0.0.1", 1))),
    Case("sock_accept(SSLSocket)", lambda lp, r: lp.sock_accept(r.ssl_socket())),
    Case("sock_sendfile(SSLSocket)", lambda lp, r: lp.sock_sendfile(r.ssl_socket(), r.file())),
    Case("sock_recvfrom(SSLSocket)", lambda lp, r: lp.sock_recvfrom(r.ssl_socket(), 10),
         skip=None if PY311 else "3.11+"),
    Case("sock_sendto(SSLSocket)",
         lambda lp, r: lp.sock_sendto(r.ssl_socket(), b"x", ("127.0.0.1", 9)),
         skip=None if PY311 else "3.11+"),
    Case("sock_recv(sock, -1)", lambda lp, r: lp.sock_recv(r.tcp_pair()[0], -1)),
    Case("sock_recv(sock, 'x')", lambda lp, r: lp.sock_recv(r.tcp_pair()[0], "x")),
    Case("sock_recv(None, 10)", lambda lp, r: lp.sock_recv(None, 10), message=False),
    Case("sock_recv(closed socket)", _sock_recv_after_close),
    Case("sock_recv_into(sock, bytes)", lambda lp, r: lp.sock_recv_into(r.tcp_pair()[0], b"immutable")),
    Case("sock_sendall(sock, str)", lambda lp, r: lp.sock_sendall(r.tcp_pair()[0], "text")),
    Case("sock_sendall(sock, 123)", lambda lp, r: lp.sock_sendall(r.tcp_pair()[0], 123)),
    Case("sock_connect(sock, ('127.0.0.1',))", lambda lp, r: lp.sock_connect(r.tcp(), ("127.0.0.1",))),
    Case("sock_connect(sock, (host, 'no-such-service'))",
         lambda lp, r: lp.sock_connect(r.tcp(), ("127.0.0.1", "no-such-service"))),
    Case("sock_connect(sock, (host, 70000))",
         lambda lp, r: lp.sock_connect(r.tcp(), ("127.0.0.1", 70000))),
    Case("sock_connect(sock, (host, -1))", lambda lp, r: lp.sock_connect(r.tcp(), ("127.0.0.1", -1))),
    Case("sock_connect(unix, missing path)",
         lambda lp, r: lp.sock_connect(r.unix(), "/nonexistent/uvloop_like/socket")),
    Case("sock_connect(tcp, ::1 address)",
         lambda lp, r: lp.sock_connect(r.tcp(), ("::1", 1, 0, 0)), message=False),
    Case("sock_accept(not listening)", lambda lp, r: lp.sock_accept(r.tcp())),
    Case("sock_recvfrom(udp, -1)", lambda lp, r: lp.sock_recvfrom(r.udp(), -1),
         skip=None if PY311 else "3.11+"),
    Case("sock_recvfrom_into(udp, bytes)", lambda lp, r: lp.sock_recvfrom_into(r.udp(), b"x"),
         skip=None if PY311 else "3.11+"),
    Case("sock_sendto(udp, b'x', 'bad')", lambda lp, r: lp.sock_sendto(r.udp(), b"x", "bad"),
         skip=None if PY311 else "3.11+"),
    Case("sock_sendto(udp, 'str', addr)",
         lambda lp, r: lp.sock_sendto(r.udp(), "str", ("127.0.0.1", 9)),
         skip=None if PY311 else "3.11+"),
    Case("sock_sendfile(text file)", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file("r"))),
    Case("sock_sendfile(udp socket)", lambda lp, r: lp.sock_sendfile(r.udp(), r.file())),
    Case("sock_sendfile(count=0)", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file(), 0, 0)),
    Case("sock_sendfile(count=-1)", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file(), 0, -1)),
    Case("sock_sendfile(count='x')", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file(), 0, "x")),
    Case("sock_sendfile(offset=-1)", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file(), -1)),
    Case("sock_sendfile(offset='x')", lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], r.file(), "x")),
    Case("sock_sendfile(file=None, fallback=False)",
         lambda lp, r: lp.sock_sendfile(r.tcp_pair()[0], None, fallback=False)),

    # --- getaddrinfo / getnameinfo ---
    Case("getaddrinfo(123, 80)", lambda lp, r: lp.getaddrinfo(123, 80)),
    Case("getaddrinfo(host, 1.5)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 1.5)),
    Case("getaddrinfo(host, [])", lambda lp, r: lp.getaddrinfo("127.0.0.1", [])),
    Case("getaddrinfo(family='x')", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, family="x")),
    Case("getaddrinfo(type=None)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, type=None)),
    Case("getaddrinfo(proto='x')", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, proto="x")),
    Case("getaddrinfo(flags=None)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, flags=None)),
    Case("getaddrinfo(flags=1.5)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, flags=1.5)),
    Case("getaddrinfo(family=2**40)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 80, family=2 ** 40),
         message=False),
    Case("getaddrinfo(host, bytearray port)",
         lambda lp, r: lp.getaddrinfo("127.0.0.1", bytearray(b"80"))),
    Case("getaddrinfo(host, 2**70)", lambda lp, r: lp.getaddrinfo("127.0.0.1", 2 ** 70),
         message=False),
    Case("getaddrinfo(host, True)", lambda lp, r: lp.getaddrinfo("127.0.0.1", True)),
    Case("getaddrinfo(lone surrogate host)", lambda lp, r: lp.getaddrinfo("\udcff", 80),
         message=False),
    Case("getaddrinfo(label too long)", lambda lp, r: lp.getaddrinfo("a" * 300, 80)),
    Case("getaddrinfo(None, None)", lambda lp, r: lp.getaddrinfo(None, None)),
    Case("getaddrinfo(host with NUL)", lambda lp, r: lp.getaddrinfo("127.0.0.1\0x", 80)),
    Case("getaddrinfo(bytearray host)", lambda lp, r: lp.getaddrinfo(bytearray(b"127.0.0.1"), 80)),
    Case("getnameinfo('127.0.0.1')", lambda lp, r: lp.getnameinfo("127.0.0.1")),
    Case("getnameinfo((1, 2))", lambda lp, r: lp.getnameinfo((1, 2))),
    Case("getnameinfo(('127.0.0.1', 70000))", lambda lp, r: lp.getnameinfo(("127.0.0.1", 70000))),
    Case("getnameinfo(addr, flags='x')", lambda lp, r: lp.getnameinfo(("127.0.0.1", 80), "x")),
    Case("getnameinfo(None)", lambda lp, r: lp.getnameinfo(None)),

    # --- lifecycle ---
    Case("close twice", lambda lp, r: (lp.close(), lp.close())),
    Case("close while running", _in_loop(lambda lp, r: lp.close())),
    Case("stop on closed loop", lambda lp, r: (lp.close(), lp.stop())),
    Case("shutdown_default_executor twice",
         lambda lp, r: lp.run_until_complete(lp.shutdown_default_executor())
         or lp.run_until_complete(lp.shutdown_default_executor())),
    Case("run_in_executor after shutdown_default_executor",
         lambda lp, r: (lp.run_until_complete(lp.shutdown_default_executor()),
                        lp.run_in_executor(None, _noop))),
]


def _invoke(loop, case, resources):
    try:
        loop.set_debug(case.debug)
        result = case.func(loop, resources)
        if asyncio.iscoroutine(result) or asyncio.isfuture(result):
            loop.run_until_complete(asyncio.wait_for(result, SOON))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return ("raise", type(exc), str(exc))
    return ("ok",)


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_exception_as_stdlib(case, restore_signals):
    if case.skip:
        pytest.skip(case.skip)
    outcomes = {}
    for kind in ("asyncio", "uvloop_like"):
        resources = Resources()
        loop = new_loop(kind)
        handler_calls = []
        loop.set_exception_handler(lambda lp, ctx, calls=handler_calls: calls.append(ctx))
        try:
            outcomes[kind] = _invoke(loop, case, resources)
        finally:
            try:
                if not loop.is_closed():
                    loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                resources.close()
        if kind == "uvloop_like":
            assert open_uv_handles(loop) == []
        outcomes[kind + " handler calls"] = len(handler_calls)
    std, ours = outcomes["asyncio"], outcomes["uvloop_like"]
    assert ours[0] == std[0], f"stdlib: {std!r}\nuvloop_like: {ours!r}"
    if std[0] == "raise":
        assert ours[1] is std[1], f"stdlib: {std!r}\nuvloop_like: {ours!r}"
        if case.message:
            assert ours[2] == std[2], f"stdlib: {std!r}\nuvloop_like: {ours!r}"
    assert outcomes["uvloop_like handler calls"] == outcomes["asyncio handler calls"]


def test_table_covers_errors():
    """The table is not vacuous: stdlib raises for most of its cases."""
    raising = 0
    for case in CASES:
        if case.skip:
            continue
        r = Resources()
        loop = asyncio.new_event_loop()
        try:
            if _invoke(loop, case, r)[0] == "raise":
                raising += 1
        finally:
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            r.close()
    assert raising >= len(CASES) * 3 // 4


def test_cross_kind_nested_run():
    """A loop of one kind cannot run inside a running loop of the other.
    (Each check in its own outer run: 3.13.0's stdlib clears the running
    loop when a nested run_forever fails.)"""
    import uvloop_like

    async def nested_run_forever(inner):
        with pytest.raises(RuntimeError,
                           match="Cannot run the event loop while another loop is running"):
            inner.run_forever()

    async def nested_run_until_complete(inner):
        coro = _noop_coro()
        try:
            with pytest.raises(RuntimeError,
                               match="Cannot run the event loop while another loop is running"):
                inner.run_until_complete(coro)
        finally:
            coro.close()

    for outer_factory, inner_factory in ((asyncio.new_event_loop, uvloop_like.new_event_loop),
                                         (uvloop_like.new_event_loop, asyncio.new_event_loop)):
        for check in (nested_run_forever, nested_run_until_complete):
            outer, inner = outer_factory(), inner_factory()
            try:
                outer.run_until_complete(check(inner))
            finally:
                outer.close()
                inner.close()
