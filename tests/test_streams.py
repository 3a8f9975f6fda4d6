"""asyncio streams (StreamReader/StreamWriter) over both loops' transports."""
from __future__ import annotations

import asyncio
import sys

import pytest
from loop_testutil import run

PY311 = sys.version_info >= (3, 11)


async def _line_server(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line.upper())
            await writer.drain()
    finally:
        writer.close()


def test_open_connection_start_server(loop):
    async def main():
        server = await asyncio.start_server(_line_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.get_extra_info("peername") == ("127.0.0.1", port)
        writer.write(b"hello\nworld\n")
        assert await reader.readline() == b"HELLO\n"
        assert await reader.readexactly(6) == b"WORLD\n"
        writer.write(b"a;b;c\n")
        assert await reader.readuntil(b";") == b"A;"
        assert await reader.readuntil(b";") == b"B;"
        assert await reader.readuntil(b"\n") == b"C\n"
        assert writer.can_write_eof()
        writer.write_eof()
        assert await reader.read() == b""
        assert reader.at_eof()
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.readexactly(1)
        writer.close()
        await writer.wait_closed()
        assert writer.is_closing()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_streams(loop, tmp_path):
    async def main():
        path = str(tmp_path / "streams.sock")
        server = await asyncio.start_unix_server(_line_server, path)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"unix line\n")
        assert await reader.readline() == b"UNIX LINE\n"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_readuntil_limit_and_incomplete(loop):
    async def main():
        async def handler(reader, writer):
            writer.write(b"x" * 100 + b"\n" + b"partial")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=50)
        with pytest.raises((asyncio.LimitOverrunError, ValueError)):
            await reader.readline()
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        assert await reader2.readline() == b"x" * 100 + b"\n"
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader2.readuntil(b"\n")
        assert info.value.partial == b"partial"
        for w in (writer, writer2):
            w.close()
            await w.wait_closed()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_drain_applies_flow_control(loop):
    async def main():
        release = asyncio.Event()
        got = loop.create_future()

        async def slow_reader(reader, writer):
            await release.wait()
            data = await reader.read()
            got.set_result(len(data))
            writer.close()

        server = await asyncio.start_server(slow_reader, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.set_write_buffer_limits(high=64 * 1024)
        total = 0
        blocked = False
        chunk = b"d" * 65536
        # drain() blocks once the peer stops reading and our buffer is full.
        while not blocked:
            writer.write(chunk)
            total += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.2)
            except asyncio.TimeoutError:
                blocked = True
            assert total < 1 << 30
        assert writer.transport.get_write_buffer_size() > 64 * 1024
        release.set()
        await writer.drain()
        assert writer.transport.get_write_buffer_size() <= 16 * 1024
        writer.write_eof()
        assert await got == total
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_wait_closed_and_peer_close(loop):
    async def main():
        async def closer(reader, writer):
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(closer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_drain_after_peer_reset_raises(loop):
    async def main():
        async def aborter(reader, writer):
            writer.transport.abort()

        server = await asyncio.start_server(aborter, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(1000):
                writer.write(b"z" * 65536)
                await writer.drain()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_many_stream_clients(loop):
    async def main():
        server = await asyncio.start_server(_line_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            lines = [b"client %d line %d\n" % (i, j) for j in range(20)]
            writer.writelines(lines)
            for line in lines:
                assert await reader.readline() == line.upper()
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client(i) for i in range(200)))
        server.close()
        await server.wait_closed()
    run(loop, main(), timeout=60)
