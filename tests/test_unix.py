"""Unix socket connections and servers, on both loops."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from asyncio import trsock

import pytest
from loop_testutil import run
from stream_testutil import Echo, Recorder

PY311 = sys.version_info >= (3, 11)
PY313 = sys.version_info >= (3, 13)


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "s.sock")


def test_unix_echo(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        assert isinstance(server.sockets[0], trsock.TransportSocket)
        assert server.sockets[0].getsockname() == sock_path
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, sock_path)
        assert tr.get_extra_info("peername") == sock_path
        sock = tr.get_extra_info("socket")
        assert isinstance(sock, trsock.TransportSocket) and sock.family == socket.AF_UNIX
        tr.write(b"unix!")
        await rec.wait_for_bytes(5)
        assert bytes(rec.data) == b"unix!"
        tr.write_eof()
        await rec.eof
        assert await rec.lost is None
        rec.assert_ok()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_pathlike(loop, tmp_path):
    async def main():
        path = tmp_path / "p.sock"
        server = await loop.create_unix_server(Echo, path)
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, path)
        tr.write(b"x")
        await rec.wait_for_bytes(1)   # accepted before the server closes
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_abstract(loop):
    async def main():
        name = "\0uvloop_like-" + uuid.uuid4().hex
        server = await loop.create_unix_server(Echo, name)
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, name)
        tr.write(b"abstract")
        await rec.wait_for_bytes(8)
        tr.close()
        await rec.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_stale_socket_file_is_replaced(loop, sock_path):
    async def main():
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(sock_path)
        stale.close()     # the file stays: a stale socket
        assert os.path.exists(sock_path)
        server = await loop.create_unix_server(Echo, sock_path)
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, sock_path)
        tr.write(b"x")
        await rec.wait_for_bytes(1)
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_server_path_is_regular_file(loop, sock_path):
    async def main():
        with open(sock_path, "w") as f:
            f.write("not a socket")
        with pytest.raises(OSError, match="already in use"):
            await loop.create_unix_server(Echo, sock_path)
        assert open(sock_path).read() == "not a socket"
    run(loop, main())


def test_unix_socket_file_cleanup(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        server.close()
        await server.wait_closed()
        # 3.13 removes the socket file (cleanup_socket=True); older versions keep it.
        assert os.path.exists(sock_path) == (not PY313)
        if PY313:
            server = await loop.create_unix_server(Echo, sock_path, cleanup_socket=False)
            server.close()
            await server.wait_closed()
            assert os.path.exists(sock_path)
        else:
            with pytest.raises(TypeError):
                await loop.create_unix_server(Echo, sock_path, cleanup_socket=False)
    run(loop, main())


@pytest.mark.skipif(not PY313, reason="cleanup_socket is 3.13's")
def test_unix_socket_file_removed_inside_close(loop, sock_path):
    # As stdlib (and CPython's test_server.UnixServerCleanupTests): the file
    # is gone when close() returns, before any wait_closed(); a file that
    # replaced it since the bind is left alone.
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        server.close()
        assert not os.path.exists(sock_path)
        await server.wait_closed()
        server = await loop.create_unix_server(Echo, sock_path)
        os.unlink(sock_path)
        with open(sock_path, "w") as f:
            f.write("replaced")
        server.close()
        assert open(sock_path).read() == "replaced"
        await server.wait_closed()
    run(loop, main())


def test_unix_sock_arguments(loop, sock_path):
    async def main():
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind(sock_path)
        server = await loop.create_unix_server(Echo, sock=lsock)
        csock = socket.socket(socket.AF_UNIX)
        csock.setblocking(False)
        await loop.sock_connect(csock, sock_path)
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, sock=csock)
        tr.write(b"via sock")
        await rec.wait_for_bytes(8)
        tr.close()
        await rec.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_unix_argument_errors(loop, sock_path):
    async def main():
        tcp = socket.socket()
        unix = socket.socket(socket.AF_UNIX)
        try:
            with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
                await loop.create_unix_connection(asyncio.Protocol, sock_path, sock=unix)
            with pytest.raises(ValueError, match="no path and sock were specified"):
                await loop.create_unix_connection(asyncio.Protocol)
            with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_connection(asyncio.Protocol, sock=tcp)
            with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
                await loop.create_unix_connection(asyncio.Protocol, sock_path, server_hostname="x")
            with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
                await loop.create_unix_connection(asyncio.Protocol, sock_path, ssl_handshake_timeout=1)
            with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
                await loop.create_unix_server(asyncio.Protocol, sock_path, sock=unix)
            with pytest.raises(ValueError, match="path was not specified, and no sock specified"):
                await loop.create_unix_server(asyncio.Protocol)
            with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_server(asyncio.Protocol, sock=tcp)
            with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
                await loop.create_unix_server(asyncio.Protocol, sock_path, ssl=True)
            with pytest.raises(FileNotFoundError):
                await loop.create_unix_connection(asyncio.Protocol, sock_path)
        finally:
            tcp.close()
            unix.close()
    run(loop, main())


def test_unix_address_in_use(loop, sock_path):
    async def main():
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind("\0uvloop_like-busy-" + uuid.uuid4().hex)
        name = lsock.getsockname()
        try:
            with pytest.raises(OSError, match="is already in use"):
                await loop.create_unix_server(Echo, name)
        finally:
            lsock.close()
    run(loop, main())


def test_unix_connection_refused(loop, sock_path):
    async def main():
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind(sock_path)   # bound, never listening
        try:
            with pytest.raises(ConnectionRefusedError):
                await loop.create_unix_connection(asyncio.Protocol, sock_path)
        finally:
            lsock.close()
    run(loop, main())


def test_unix_large_transfer_and_close_flush(loop, sock_path):
    async def main():
        received = loop.create_future()

        class Collect(asyncio.Protocol):
            def connection_made(self, transport):
                self.buf = bytearray()

            def data_received(self, data):
                self.buf += data

            def eof_received(self):
                received.set_result(bytes(self.buf))

        server = await loop.create_unix_server(Collect, sock_path)
        tr, _ = await loop.create_unix_connection(asyncio.Protocol, sock_path)
        payload = os.urandom(4 << 20)
        tr.write(payload)
        tr.write_eof()
        assert await received == payload
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())
