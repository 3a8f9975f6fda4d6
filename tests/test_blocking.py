"""Nothing blocks the loop thread (DESIGN.md rule 11), checked with the
``blockbuster`` blocking-call detector that aiohttp's own test suite uses.

What stdlib does, for the record (CPython 3.9-3.13): its loop calls
``os.sendfile`` on the loop thread too (``base_events.sendfile`` ->
``unix_events._sock_sendfile_native_impl``), and ``os.stat``/``os.unlink``
in ``create_unix_server`` and ``_stop_serving``.  blockbuster passes stdlib
only because it allow-lists exactly those stdlib frames (by file name and
function name).  ``create_datagram_endpoint(local_addr=<unix path>)`` calls
``os.stat``/``os.remove`` with no allow-list entry, so blockbuster flags
stdlib there.

So each test below runs twice on each loop: under blockbuster as shipped
(what an aiohttp user meets) and "strict", with blockbuster's stdlib
allow-list removed, which shows whether the call is made on the loop thread
at all.  uvloop_like must pass every variant; for stdlib the test asserts the
documented fact (BlockingError in the strict variant and for the datagram
endpoint) instead of skipping it.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import shutil
import socket
import sys
import tempfile

import pytest
from loop_testutil import is_uvloop_like, run

if platform.python_implementation() == "PyPy":
    # blockbuster patches built-in types through forbiddenfruit (ctypes on
    # CPython's type objects); the Makefile installs it for CPython only.
    pytest.skip("blockbuster (forbiddenfruit) is CPython-only: not installed for PyPy",
                allow_module_level=True)
blockbuster = pytest.importorskip("blockbuster", reason="blockbuster is not installed (make dev installs it)")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

BlockingError = blockbuster.BlockingError
PY313 = sys.version_info >= (3, 13)
DATA = os.urandom(3 << 20) + b"end of file"
DIGEST = hashlib.sha256(DATA).hexdigest()

# The functions whose stdlib allow-list entries the strict variant removes.
_STDLIB_ALLOWED = ("os.sendfile", "os.stat", "os.unlink")


@contextlib.contextmanager
def detector(strict):
    """blockbuster active over the whole process; ``strict``: without its
    allow-list of asyncio's own frames."""
    bb = blockbuster.BlockBuster()
    if strict:
        for name in _STDLIB_ALLOWED:
            func = bb.functions[name]
            func.can_block_functions = [
                entry for entry in func.can_block_functions if not entry[0].startswith("asyncio/")]
    # The fixture's teardown and pytest itself take locks outside the loop;
    # inside it, only our code runs, and no test here relies on lock checks.
    bb.functions["threading.Lock.acquire"].can_block_predicate = lambda *a, **k: True
    bb.functions["threading.Lock.acquire_lock"].can_block_predicate = lambda *a, **k: True
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()


def check(loop, strict, body, stdlib_blocks, symptom=BlockingError):
    """Run ``body()`` (a coroutine function) under the detector.  uvloop_like
    must never block; stdlib blocks exactly when ``stdlib_blocks`` is true,
    and then the test asserts that it does: ``body`` fails with ``symptom``
    (the BlockingError itself, or what a client sees of it)."""
    with detector(strict):
        if is_uvloop_like(loop) or not stdlib_blocks:
            run(loop, body())
        else:
            with pytest.raises(symptom):
                run(loop, body())


@pytest.fixture
def short_dir():
    # A unix socket path must fit in sun_path (108 bytes): pytest's tmp_path
    # can be longer.
    path = tempfile.mkdtemp(prefix="uvl-bb-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_path(short_dir):
    path = os.path.join(short_dir, "data.bin")
    with open(path, "wb") as f:
        f.write(DATA)
    return path


STRICT = pytest.mark.parametrize("strict", [False, True], ids=["allowlist", "strict"])


def _app(data_path):
    app = web.Application()

    async def static(request):
        return web.FileResponse(data_path)

    app.router.add_get("/file", static)
    return app


async def _fetch(session, url):
    async with session.get(url) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert len(body) == len(DATA)
    assert hashlib.sha256(body).hexdigest() == DIGEST
    return body


@STRICT
def test_aiohttp_file_response_tcp(loop, data_path, strict):
    async def main():
        runner = web.AppRunner(_app(data_path))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    await _fetch(session, f"http://127.0.0.1:{port}/file")
        finally:
            await runner.cleanup()
    # aiohttp's handler meets the BlockingError after sending the headers:
    # the client gets "received 0 of N bytes", as in aiohttp's own suite.
    check(loop, strict, main, stdlib_blocks=strict, symptom=aiohttp.ClientPayloadError)


@STRICT
def test_aiohttp_file_response_unix(loop, data_path, short_dir, strict):
    path = os.path.join(short_dir, "web.sock")

    async def main():
        runner = web.AppRunner(_app(data_path))
        await runner.setup()
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            conn = aiohttp.UnixConnector(path=path)
            async with aiohttp.ClientSession(connector=conn) as session:
                for _ in range(3):
                    await _fetch(session, "http://localhost/file")
        finally:
            await runner.cleanup()
    # Strict, stdlib's os.stat in create_unix_server (site.start()) is the
    # first blocking call.
    check(loop, strict, main, stdlib_blocks=strict, symptom=BlockingError)


class _Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.buf = bytearray()
        self.done = loop.create_future()

    def data_received(self, data):
        self.buf += data

    def eof_received(self):
        self.done.set_result(bytes(self.buf))


@STRICT
def test_loop_sendfile(loop, data_path, strict):
    async def main():
        collector = _Collect(loop)
        server = await loop.create_server(lambda: collector, "127.0.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                             server.sockets[0].getsockname()[1])
        with open(data_path, "rb") as f:
            assert await loop.sendfile(tr, f, 10, len(DATA) - 20) == len(DATA) - 20
            assert f.tell() == len(DATA) - 10
        tr.write_eof()
        assert await collector.done == DATA[10:-10]
        tr.close()
        server.close()
        await server.wait_closed()
    check(loop, strict, main, stdlib_blocks=strict)


@STRICT
def test_sock_sendfile(loop, data_path, strict):
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            reader = loop.create_task(_drain(loop, b, len(DATA)))
            try:
                with open(data_path, "rb") as f:
                    assert await loop.sock_sendfile(a, f) == len(DATA)
                    assert f.tell() == len(DATA)
                assert await reader == DATA
            finally:
                reader.cancel()
    check(loop, strict, main, stdlib_blocks=strict)


async def _drain(loop, sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _stale_socket_file(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()          # leaves the file behind
    assert os.path.exists(path)


def test_create_unix_server_stale_file(loop, short_dir):
    path = os.path.join(short_dir, "srv.sock")
    _stale_socket_file(path)

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, path)
        _, w = await asyncio.open_unix_connection(path)
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    # stdlib removes the stale file with os.remove on the loop thread, which
    # blockbuster does not allow-list (only os.stat and os.unlink there).
    check(loop, False, main, stdlib_blocks=True)


@STRICT
def test_unix_server_close_cleanup(loop, short_dir, strict):
    path = os.path.join(short_dir, "srv.sock")

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, path)
        server.close()
        await server.wait_closed()
    check(loop, strict, main, stdlib_blocks=strict)
    if is_uvloop_like(loop) or not strict:
        # 3.13 removes the file it bound at close (cleanup_socket); before,
        # it stays.
        assert os.path.exists(path) == (not PY313)


def test_create_unix_datagram_endpoint_stale_file(loop, short_dir):
    path = os.path.join(short_dir, "dgram.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.close()

    async def main():
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=path, family=socket.AF_UNIX)
        assert tr.get_extra_info("sockname") == path
        tr.close()
        await asyncio.sleep(0)
    # stdlib's create_datagram_endpoint stats and removes a stale file on the
    # loop thread, and blockbuster has no allow-list entry for it.
    check(loop, False, main, stdlib_blocks=True)


def test_unix_server_cleanup_keeps_replaced_file(loop, short_dir):
    """3.13's cleanup_socket unlinks the socket file only if it is still the
    one bound (same inode): a file put in its place survives close()."""
    path = os.path.join(short_dir, "srv.sock")

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, path)
        os.unlink(path)
        with open(path, "w") as f:
            f.write("not a socket")
        server.close()
        await server.wait_closed()
    run(loop, main())
    with open(path) as f:
        assert f.read() == "not a socket"


def test_unix_server_cleanup_at_loop_close(loop, short_dir):
    """Server.close() then loop.close() at once, without wait_closed(): the
    socket file is gone (3.13) as with stdlib's synchronous unlink."""
    path = os.path.join(short_dir, "srv.sock")
    server = run(loop, loop.create_unix_server(asyncio.Protocol, path))
    server.close()
    loop.close()
    assert os.path.exists(path) == (not PY313)
