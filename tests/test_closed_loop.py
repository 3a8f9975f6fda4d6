"""A closed loop never crashes (DESIGN.md rule 10).

Every entry point of a closed loop, table-driven (tests/closed_loop_cases.py),
on both loops: a coroutine of the closed loop driven with ``coro.send(None)``
and awaited from another running loop, and each synchronous method.  Each
must end as stdlib's does (``RuntimeError('Event loop is closed')`` almost
everywhere), leave no descriptor open and call no exception handler.

The table runs in child interpreters (one per loop kind and mode, restarted
after the case that crashed if one does), so a segfault or a libuv
assertion fails that case instead of killing pytest.  The handle-level tests
at the end check the layer below the public API: the Python wrappers refuse
a closed loop, and so does uvl.c when Python's check is bypassed.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import weakref

import pytest
from closed_loop_cases import CASES, CLOSED
from conftest import LOOP_KINDS, new_loop
from loop_testutil import ROOT, describe_crash, run_python

MODES = ("send", "await")
CASES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "closed_loop_cases.py")

# Entry points stdlib has only from 3.11.
_NEW_IN_311 = {"sock_recvfrom", "sock_recvfrom_into", "sock_sendto(would block)",
               "sock_sendto(kernel takes it)"}

# Where stdlib's own behaviour is a bug, the stdlib run is xfailed when (and
# only when) it shows.
_STDLIB_QUIRKS = {
    ("create_server(host)", "send"): (
        "stdlib 3.10+ resolves the hosts with gather(), which binds its tasks to the "
        "policy's loop when none is running: the coroutine waits on another loop forever"),
    ("subprocess_exec", "send"): (
        "stdlib notices the closed loop only after spawning the child, and leaves the "
        "child's pipes open"),
    ("subprocess_exec", "await"): (
        "stdlib notices the closed loop only after spawning the child, and leaves the "
        "child's pipes open"),
    ("subprocess_shell", "send"): (
        "stdlib notices the closed loop only after spawning the child, and leaves the "
        "child's pipes open"),
    ("subprocess_shell", "await"): (
        "stdlib notices the closed loop only after spawning the child, and leaves the "
        "child's pipes open"),
}


def _run_table(kind, mode):
    """{case: outcome} for every case, each outcome the child's report or
    {"crash": description} for the case a child died in."""
    names = [n for n in CASES if sys.version_info >= (3, 11) or n not in _NEW_IN_311]
    outcomes = {}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    while names:
        proc = subprocess.run([sys.executable, CASES_FILE, kind, mode] + names, cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=240)
        current = None
        for line in proc.stdout.splitlines():
            if line.startswith("BEGIN "):
                current = line[len("BEGIN "):]
            elif line.startswith("RESULT "):
                name, report = json.loads(line[len("RESULT "):])
                outcomes[name] = report
                current = None
        if proc.returncode != 0 or current is not None:
            if current is None:  # died outside a case: blame them all
                for name in names:
                    outcomes.setdefault(name, {"crash": describe_crash(proc)})
                break
            outcomes[current] = {"crash": describe_crash(proc)}
        names = [n for n in names if n not in outcomes]
    return outcomes


_tables = {}


def _outcome(kind, mode, name):
    key = (kind, mode)
    if key not in _tables:
        _tables[key] = _run_table(kind, mode)
    return _tables[key][name]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_closed_loop_entry_point(kind, mode, name):
    if name in _NEW_IN_311 and sys.version_info < (3, 11):
        pytest.skip("stdlib's loop has this method from 3.11")
    report = _outcome(kind, mode, name)
    if "crash" in report:
        pytest.fail(f"{name} on a closed loop crashed the interpreter:\n{report['crash']}",
                    pytrace=False)
    expected = CASES[name][3]
    ok = (report["result"] == expected and not report["leaked"]
          and not report["handler_calls"])
    if not ok and kind == "asyncio" and (name, mode) in _STDLIB_QUIRKS:
        pytest.xfail(_STDLIB_QUIRKS[name, mode])
    assert report["result"] == expected
    assert report["leaked"] == [], "descriptors left open"
    assert report["handler_calls"] == [], "unexpected exception handler calls"


def test_table_covers_the_public_api():
    """Every public coroutine method of the loop is in the table (a new
    entry point must get a row)."""
    import asyncio
    import inspect

    import uvloop_like

    covered = {name.split("(")[0] for name in CASES}
    loop = uvloop_like.new_event_loop()
    try:
        coroutines = {name for name, value in inspect.getmembers(type(loop))
                      if not name.startswith("_") and asyncio.iscoroutinefunction(value)}
    finally:
        loop.close()
    assert coroutines - covered == set()
    assert CLOSED == ["raise", "RuntimeError", "Event loop is closed"]


# --- below the public API -----------------------------------------------------------

HANDLES_ON_CLOSED_LOOP = r"""
import faulthandler, os, socket, sys
faulthandler.enable()
import uvloop_like
from uvloop_like._ffi import ffi, lib, UVL_STREAM_P, UDP_P, POLL_P, PROCESS_P, GETADDRINFO_P, \
    GETNAMEINFO_P, REQ_P, LOOP_P, HANDLE_P
from uvloop_like.handles.stream import StreamHandle
from uvloop_like.handles.udp import UDPHandle, NO_ADDRESS, sockaddr
from uvloop_like.handles.poll import PollHandle, READABLE
from uvloop_like.handles.process import ProcessHandle
from uvloop_like.handles.dns import GetAddrInfoRequest, GetNameInfoRequest

results = []

def expect_closed(what, func, *args):
    try:
        func(*args)
    except RuntimeError as exc:
        if str(exc) != "Event loop is closed":
            results.append(f"{what}: RuntimeError({exc})")
        return
    except BaseException as exc:
        results.append(f"{what}: {type(exc).__name__}({exc})")
        return
    results.append(f"{what}: no exception")

loop = uvloop_like.new_event_loop()
# Handles made while the loop was open: closed with it.
stream = StreamHandle(loop)
server = StreamHandle(loop)
pipe = StreamHandle(loop, tcp=False)
udp = UDPHandle(loop)
a, b = socket.socketpair()
poll = PollHandle(loop, a.fileno(), lambda status, events: None)
# A request that completed before the close.
done = []
req = GetAddrInfoRequest(loop, b"127.0.0.1", b"80", 0, 0, 0, 0, done.append)
while not done:
    loop._core.run_once(-1)
core = loop._core
loop.close()

# New handles and requests: the Python wrappers refuse.
expect_closed("StreamHandle()", StreamHandle, loop)
expect_closed("StreamHandle(pipe)", StreamHandle, loop, False)
expect_closed("UDPHandle()", UDPHandle, loop)
expect_closed("PollHandle()", PollHandle, loop, a.fileno(), lambda s, e: None)
expect_closed("ProcessHandle()", ProcessHandle, loop, lambda rc: None)
expect_closed("GetAddrInfoRequest()", GetAddrInfoRequest, loop, b"localhost", b"80", 0, 0, 0, 0,
              lambda r: None)
expect_closed("GetNameInfoRequest()", GetNameInfoRequest, loop, socket.AF_INET, b"127.0.0.1", 80,
              0, 0, 0, lambda r: None)

# Handles of the closed loop: every call that would reach libuv raises.
fd = os.dup(b.fileno())
expect_closed("stream.open", stream.open, fd)
os.close(fd)
expect_closed("stream.read_start", stream.read_start)
expect_closed("stream.try_write", stream.try_write, b"x")
expect_closed("stream.try_writev", stream.try_writev, [b"x", b"y"])
expect_closed("stream.write", stream.write, [b"x"])
expect_closed("stream.write(2)", stream.write, [b"x", b"y"])
expect_closed("stream.shutdown", stream.shutdown)
expect_closed("stream.set_nodelay", stream.set_nodelay, True)
expect_closed("server.listen", server.listen, 10)
expect_closed("server.accept", server.accept, stream)
expect_closed("pipe.read_start", pipe.read_start)
expect_closed("udp.read_start", udp.read_start)
expect_closed("udp.send", udp.send, b"x", sockaddr(socket.AF_INET, b"127.0.0.1", 9))
# These two return a status (the transport converts it).
n = udp.try_send(bytearray(b"x"), sockaddr(socket.AF_INET, b"127.0.0.1", 9))
if n != lib.UVL_ECLOSED:
    results.append(f"udp.try_send: {n}")
n = udp.send_now(b"x", 1, NO_ADDRESS)
if n != lib.UVL_ECLOSED:
    results.append(f"udp.send_now: {n}")
expect_closed("poll.start", poll.start, READABLE)
expect_closed("core.run_once", core.run_once, 0)
req.cancel()
for h in (stream, pipe, udp, poll):
    h.close()
stream.read_stop()
udp.read_stop()
if stream.fileno() != -1 or udp.fileno() != -1:
    results.append("fileno of a closed loop's handle")

# The native layer alone (Python's check bypassed): an error code, no crash.
uv = core.uv
s = ffi.new(UVL_STREAM_P)
u = ffi.new(UDP_P)
p = ffi.new(POLL_P)
proc = ffi.new(PROCESS_P)
gai = ffi.new(GETADDRINFO_P)
gni = ffi.new(GETNAMEINFO_P)
linked = ffi.new("int *")
fds = ffi.new("int[]", [-1, -1, -1])
argv = ffi.new("char *[]", [ffi.new("char[]", b"true"), ffi.NULL])
calls = {
    "uvl_run": lambda: lib.uvl_run(core.ptr, 0),
    "uvl_tcp_init": lambda: lib.uvl_tcp_init(uv, s),
    "uvl_pipe_init": lambda: lib.uvl_pipe_init(uv, s, 0),
    "uvl_udp_init": lambda: lib.uvl_udp_init(uv, u),
    "uvl_poll_init": lambda: lib.uvl_poll_init(uv, p, a.fileno()),
    "uvl_getaddrinfo": lambda: lib.uvl_getaddrinfo(uv, gai, b"localhost", b"80", 0, 0, 0, 0),
    "uvl_getnameinfo": lambda: lib.uvl_getnameinfo(uv, gni, socket.AF_INET, b"127.0.0.1", 80, 0, 0, 0),
    "uvl_spawn": lambda: lib.uvl_spawn(uv, proc, b"true", argv, ffi.NULL, ffi.NULL, 0, 0, 0,
                                       fds, 3, linked),
    "uvl_read_start": lambda: lib.uvl_read_start(stream._ptr),
    "uvl_write": lambda: lib.uvl_write(ffi.new("uv_write_t *"), stream._ptr, b"x", 1),
    "uvl_shutdown": lambda: lib.uvl_shutdown(ffi.new("uv_shutdown_t *"), stream._ptr),
    "uvl_listen": lambda: lib.uvl_listen(server._ptr, 1),
    "uvl_accept": lambda: lib.uvl_accept(server._ptr, stream._ptr),
    "uvl_udp_recv_start": lambda: lib.uvl_udp_recv_start(udp._ptr),
    "uvl_poll_start": lambda: lib.uvl_poll_start(poll._ptr, READABLE),
    "uvl_poll_stop": lambda: lib.uvl_poll_stop(poll._ptr),
    "uvl_cancel": lambda: lib.uvl_cancel(ffi.cast(REQ_P, req._ptr)),
}
for name, call in calls.items():
    status = call()
    if status != lib.UVL_ECLOSED:
        results.append(f"{name}: {status}")
if not lib.uvl_loop_is_closed(core.ptr):
    results.append("uvl_loop_is_closed: 0")
if lib.uvl_loop_close(core.ptr) != 0:  # idempotent
    results.append("uvl_loop_close twice")
# A handle whose init never ran has no loop: refused too.
if lib.uvl_read_start(ffi.new(UVL_STREAM_P)) >= 0:
    results.append("uvl_read_start(uninitialised): ok")
a.close(); b.close()
print("RESULTS", results)
"""


def test_handle_wrappers_on_closed_loop():
    """The layer below the public API on a closed loop: new handles and
    requests, and every call on handles the loop closed, raise
    RuntimeError('Event loop is closed'); the C helpers called directly
    return UVL_ECLOSED.  In a child interpreter: a crash fails the test."""
    proc = run_python(HANDLES_ON_CLOSED_LOOP, timeout=60)
    if proc.returncode != 0:
        pytest.fail(describe_crash(proc), pytrace=False)
    assert "RESULTS []" in proc.stdout, proc.stdout + proc.stderr


# --- a closed loop dies by reference counting -----------------------------------------

async def _small(loop):
    await asyncio.sleep(0)


class _Accepted(asyncio.Protocol):
    def __init__(self, loop):
        self.made = loop.create_future()

    def connection_made(self, transport):
        self.made.set_result(None)


async def _until_accepted(accepted, n):
    for _ in range(1000):
        if len(accepted) >= n:
            break
        await asyncio.sleep(0.005)
    await asyncio.wait_for(accepted[n - 1], 10)


async def _busy(loop):
    """A bit of everything: DNS, TCP and unix servers and connections, UDP,
    pipes, a child process, the executor, timers."""
    await loop.getaddrinfo("127.0.0.1", 80)
    await loop.getaddrinfo("localhost", 80)
    await loop.getnameinfo(("127.0.0.1", 80))
    # The servers' side of each connection is made before the server closes:
    # a server closed with an accept still queued makes stdlib log an error
    # whose traceback keeps its loop alive (a race, not what is tested here).
    accepted = []

    def server_protocol():
        proto = _Accepted(loop)
        accepted.append(proto.made)
        return proto

    srv = await loop.create_server(server_protocol, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    tr.write(b"x")
    await _until_accepted(accepted, 1)
    tr.close()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s")
        usrv = await loop.create_unix_server(server_protocol, path)
        utr, _ = await loop.create_unix_connection(asyncio.Protocol, path)
        await _until_accepted(accepted, 2)
        utr.close()
        usrv.close()
        await usrv.wait_closed()
    srv.close()
    await srv.wait_closed()
    dtr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                 local_addr=("127.0.0.1", 0))
    dtr.sendto(b"x", dtr.get_extra_info("sockname"))
    await asyncio.sleep(0.01)
    dtr.close()
    r, w = os.pipe()
    rtr, _ = await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", 0))
    wtr, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(w, "wb", 0))
    wtr.write(b"x")
    wtr.close()
    rtr.close()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    await loop.run_in_executor(None, int)
    loop.call_later(3600, int)
    await asyncio.sleep(0.01)
    await loop.shutdown_default_executor()


@pytest.mark.skipif(sys.implementation.name == "pypy",
                    reason="PyPy has no reference counting: only its GC frees anything")
@pytest.mark.parametrize("scenario", [_small, _busy], ids=["small", "busy"])
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_closed_loop_dies_by_refcount(kind, scenario):
    """Once closed and unreferenced, the loop is freed at once, as stdlib's
    is: no reference cycle leaves it (and whatever it holds) to the cyclic
    garbage collector."""
    loop = new_loop(kind)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(loop), 60))
    finally:
        loop.close()
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(loop)
        del loop
        alive = ref() is not None
    finally:
        gc.enable()
    assert not alive, "the closed loop is kept alive by a reference cycle"
