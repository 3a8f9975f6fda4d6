"""loop.sendfile(transport, file, ...) on both loops: the native path
(os.sendfile on the transport's descriptor) and the fallback."""
from __future__ import annotations

import asyncio
import io
import os

import pytest
from loop_testutil import run

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
