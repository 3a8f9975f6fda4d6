"""loop.sendfile(transport, file, ...) on both loops: the native path
(os.sendfile on the transport's descriptor) and the fallback."""
from __future__ import annotations

import asyncio
import io
import os
import socket

import pytest
from loop_testutil import is_uvloop_like, run

DATA = os.urandom(3 << 20) + b"tail"


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        yield f


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.buf = bytearray()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data

    def eof_received(self):
        self.done.set_result(bytes(self.buf))


class Client(asyncio.Protocol):
    def __init__(self, loop):
        self.events = []
        self.lost = loop.create_future()
        self.paused = False

    def connection_made(self, transport):
        self.events.append("made")

    def data_received(self, data):
        self.events.append("data")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


async def _pair(loop):
    collector = Collect(loop)
    server = await loop.create_server(lambda: collector, "127.0.0.1", 0)
    client = Client(loop)
    tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", server.sockets[0].getsockname()[1])
    return server, collector, tr, client


@pytest.mark.parametrize("fallback", [True, False])
def test_sendfile_whole_file(loop, data_file, fallback):
    async def main():
        server, collector, tr, client = await _pair(loop)
        tr.write(b"header:")
        sent = await loop.sendfile(tr, data_file, fallback=fallback)
        assert sent == len(DATA)
        assert data_file.tell() == len(DATA)
        tr.write(b":trailer")
        tr.write_eof()
        assert await collector.done == b"header:" + DATA + b":trailer"
        tr.close()
        await client.lost
        assert client.events[0] == "made" and client.events[-1] == "lost"
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_offset_count(loop, data_file):
    async def main():
        server, collector, tr, client = await _pair(loop)
        sent = await loop.sendfile(tr, data_file, 1000, 50000)
        assert sent == 50000
        assert data_file.tell() == 51000
        tr.write_eof()
        assert await collector.done == DATA[1000:51000]
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_after_buffered_writes(loop, data_file):
    async def main():
        server, collector, tr, client = await _pair(loop)
        big = b"b" * (4 << 20)
        tr.write(big)          # mostly queued: sendfile must wait for it
        sent = await loop.sendfile(tr, data_file)
        assert sent == len(DATA)
        tr.write_eof()
        assert await collector.done == big + DATA
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_fallback_for_non_regular_file(loop):
    async def main():
        server, collector, tr, client = await _pair(loop)
        f = io.BytesIO(DATA)
        sent = await loop.sendfile(tr, f)
        assert sent == len(DATA)
        assert f.tell() == len(DATA)
        tr.write_eof()
        assert await collector.done == DATA
        # Reading is restored after the fallback.
        assert tr.is_reading()
        assert tr.get_protocol() is client
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(tr, io.BytesIO(b"x"), fallback=False)
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_fallback_paused_protocol_resumed(loop):
    async def main():
        server, collector, tr, client = await _pair(loop)
        tr.set_write_buffer_limits(high=1024)
        tr.write(b"q" * (8 << 20))   # paused now
        assert client.events[-1] == "pause"
        sent = await loop.sendfile(tr, io.BytesIO(DATA))
        assert sent == len(DATA)
        assert client.events.count("resume") >= 1
        tr.write_eof()
        assert await collector.done == b"q" * (8 << 20) + DATA
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_errors(loop, data_file, tmp_path):
    async def main():
        server, collector, tr, client = await _pair(loop)
        with open(tmp_path / "text.txt", "w") as text:
            text.write("x")
        with open(tmp_path / "text.txt", "r") as text:
            with pytest.raises(ValueError, match="binary mode"):
                await loop.sendfile(tr, text)
        with pytest.raises(ValueError, match="count must be a positive integer"):
            await loop.sendfile(tr, data_file, 0, 0)
        with pytest.raises(ValueError, match="offset must be a non-negative integer"):
            await loop.sendfile(tr, data_file, -1)
        tr.close()
        with pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, data_file)
        await client.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_write_during_sendfile_raises(loop, tmp_path):
    async def main():
        path = tmp_path / "big.bin"
        big = DATA * 16     # more than one os.sendfile() call takes
        path.write_bytes(big)
        server, collector, tr, client = await _pair(loop)
        with open(path, "rb") as f:
            task = loop.create_task(loop.sendfile(tr, f))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                tr.write(b"x")
            assert await task == len(big)
        tr.write(b"!")   # fine again
        tr.write_eof()
        assert await collector.done == big + b"!"
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sendfile_peer_closes(loop, tmp_path):
    async def main():
        path = tmp_path / "big.bin"
        path.write_bytes(b"\0" * (64 << 20))

        class Abort(asyncio.Protocol):
            def connection_made(self, transport):
                # Not reading: the socket buffers fill and the sendfile waits
                # for the peer, which then resets (without the pause, an idle
                # machine sent all 64 MiB before the abort).
                transport.pause_reading()
                loop.call_later(0.01, transport.abort)

        server = await loop.create_server(Abort, "127.0.0.1", 0)
        client = Client(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1",
                                             server.sockets[0].getsockname()[1])
        with open(path, "rb") as f:
            with pytest.raises(OSError):
                await loop.sendfile(tr, f)
        tr.close()
        await client.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- one native implementation for sendfile and sock_sendfile (stdlib's rules),
# its sendfile(2) calls on libuv's thread pool in uvloop_like -----------------

SMALL = bytes(range(256)) * 40 + b"end"   # 10243 bytes


def _fds_of(sock):
    """This process's descriptors open on ``sock``'s socket (Linux)."""
    target = f"socket:[{os.fstat(sock.fileno()).st_ino}]"
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                fds.append(int(name))
        except OSError:
            pass
    return sorted(fds)


def _no_requests_in_flight(loop):
    # uvloop_like keeps every in-flight libuv request in _uv_requests.
    return not getattr(loop, "_uv_requests", ())


async def _send_range(loop, api, f, offset, count):
    """Send f[offset:offset+count] with ``api`` ("sendfile": a transport;
    "sock_sendfile": a socket) over a connected pair; return (sent, received)."""
    kwargs = {} if count is None else {"count": count}
    if api == "sendfile":
        server, collector, tr, client = await _pair(loop)
        try:
            sent = await loop.sendfile(tr, f, offset, fallback=False, **kwargs)
            tr.write_eof()
            received = await collector.done
        finally:
            tr.close()
            server.close()
            await server.wait_closed()
        return sent, received
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        sent = await loop.sock_sendfile(a, f, offset, fallback=False, **kwargs)
        a.shutdown(socket.SHUT_WR)
        received = bytearray()
        while True:
            chunk = await loop.sock_recv(b, 1 << 16)
            if not chunk:
                break
            received += chunk
    return sent, bytes(received)


APIS = pytest.mark.parametrize("api", ["sendfile", "sock_sendfile"])


@APIS
@pytest.mark.parametrize("offset,count", [
    (0, None), (7, None), (0, 100), (100, 1), (len(SMALL) - 3, None),
    (10, len(SMALL)),            # count beyond EOF: up to EOF
    (len(SMALL), None),          # offset at EOF
    (len(SMALL) + 10, 5),        # offset beyond EOF
])
def test_sendfile_ranges_and_file_position(loop, tmp_path, api, offset, count):
    path = tmp_path / "small.bin"
    path.write_bytes(SMALL)

    async def main():
        with open(path, "rb") as f:
            f.seek(3)   # stdlib leaves the position alone when nothing is sent
            sent, received = await _send_range(loop, api, f, offset, count)
            end = len(SMALL) if count is None else offset + count
            expected = SMALL[offset:end]
            assert sent == len(expected)
            assert received == expected
            assert f.tell() == (offset + sent if sent else 3)
        assert _no_requests_in_flight(loop)
    run(loop, main())


@APIS
def test_sendfile_empty_file(loop, tmp_path, api):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")

    async def main():
        with open(path, "rb") as f:
            assert await _send_range(loop, api, f, 0, None) == (0, b"")
            assert await _send_range(loop, api, f, 0, 10) == (0, b"")
            assert f.tell() == 0
    run(loop, main())


def test_sock_sendfile_fallback_rules(loop, tmp_path):
    """stdlib's rule for both APIs: any sendfile(2) error before a byte was
    sent means "not available" (the fallback may then try read + send)."""
    path = tmp_path / "small.bin"
    path.write_bytes(SMALL)

    async def main():
        # The peer is gone: sendfile(2) fails with EPIPE at once.
        a, b = socket.socketpair()
        a.setblocking(False)
        b.close()
        with a, open(path, "rb") as f:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(a, f, fallback=False)
            # With the fallback, sock_sendall meets the same broken pipe.
            with pytest.raises(BrokenPipeError):
                await loop.sock_sendfile(a, f)
        # A pipe is not a file sendfile(2) can read from.
        r, w = os.pipe()
        os.write(w, b"piped")
        os.close(w)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b, open(r, "rb") as f:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(a, f, count=5, fallback=False)
        assert _no_requests_in_flight(loop)
    run(loop, main())


class _Stalled(asyncio.Protocol):
    """A peer that reads nothing until told to, then collects everything."""

    def __init__(self, loop):
        self.buf = bytearray()
        self.done = loop.create_future()
        self.made = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        # Not at once: stdlib 3.9 starts reading after connection_made
        # returns even if it paused reading.
        asyncio.get_running_loop().call_soon(transport.pause_reading)
        self.made.set_result(transport)

    def data_received(self, data):
        self.buf += data

    def eof_received(self):
        self.done.set_result(bytes(self.buf))


@APIS
@pytest.mark.parametrize("when", ["waiting", "in_flight"])
def test_sendfile_cancelled(loop, tmp_path, api, when):
    """Cancelled while waiting for a full socket to drain, or right after a
    step was queued: nothing is written after the cancellation returns, the
    file position counts exactly what was sent, and the connection stays
    usable."""
    path = tmp_path / "big.bin"
    big = os.urandom(1 << 20) * 32
    path.write_bytes(big)

    async def main():
        peer = _Stalled(loop)
        server = await loop.create_server(lambda: peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        if api == "sendfile":
            tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        else:
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
        peer_tr = await peer.made
        with open(path, "rb") as f:
            f.seek(5)
            coro = (loop.sendfile(tr, f, 100) if api == "sendfile"
                    else loop.sock_sendfile(sock, f, 100))
            task = loop.create_task(coro)
            if when == "waiting":
                for _ in range(50):     # until the socket is full
                    await asyncio.sleep(0.01)
            else:
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _no_requests_in_flight(loop)
            pos = f.tell()
        peer_tr.resume_reading()
        if api == "sendfile":
            assert not tr.is_closing()
            tr.write(b"MARK")
            tr.write_eof()
        else:
            await loop.sock_sendall(sock, b"MARK")
            sock.shutdown(socket.SHUT_WR)
        received = await peer.done
        assert received.endswith(b"MARK")
        sent = len(received) - 4
        assert received[:sent] == big[100:100 + sent]
        if is_uvloop_like(loop):
            # The position counts every byte sent, as stdlib's own code
            # intends on cancellation; stdlib never gets there (its
            # cancellation callback removes the writer that would lseek), so
            # it leaves the position where the call found it.
            assert pos == (100 + sent if sent else 5)
        else:
            assert pos == 5
        if api == "sendfile":
            tr.close()
        else:
            sock.close()
        peer_tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_sock_sendfile_peer_closes(loop, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (32 << 20))

    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, open(path, "rb") as f:
            loop.call_later(0.05, b.close)
            with pytest.raises(OSError) as info:
                await loop.sock_sendfile(a, f)
            # Some bytes went out first: a real error, not "not available".
            assert not isinstance(info.value, asyncio.SendfileNotAvailableError)
            assert f.tell() > 0
        assert _no_requests_in_flight(loop)
    run(loop, main())


@pytest.mark.parametrize("when", ["waiting", "in_flight"])
def test_loop_close_with_sendfile_in_flight(loop, tmp_path, exc_handler, when):
    """loop.close() while a sendfile waits or has a step in the pool: no
    crash, no hang, no request or descriptor left behind."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (32 << 20))
    a, b = socket.socketpair()
    a.setblocking(False)
    f = open(path, "rb")
    state = {}

    async def start():
        state["task"] = loop.create_task(loop.sock_sendfile(a, f))
        if when == "waiting":
            await asyncio.sleep(0.1)
        else:
            await asyncio.sleep(0)

    try:
        run(loop, start())
        loop.close()     # the task is still pending
        assert loop.is_closed()
        assert _no_requests_in_flight(loop)
        assert not state["task"].done()
        # Only `a` itself still refers to its socket (uvloop_like's dup of
        # it for the thread pool is closed).
        assert _fds_of(a) == [a.fileno()]
    finally:
        state.clear()
        a.close()
        b.close()
        f.close()
    # What may reach the handler: "Task was destroyed but it is pending!".
    for ctx in exc_handler.calls:
        assert "destroyed but it is pending" in ctx["message"], ctx
