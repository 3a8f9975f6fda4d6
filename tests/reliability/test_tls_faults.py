"""TLS peers that misbehave: garbage instead of a handshake (either side),
garbage after the handshake, a close without close_notify, a handshake that
stalls (ssl_handshake_timeout).  Each ends with the exception stdlib raises
(or passes to connection_lost), the descriptors released, no exception-handler
call (the fixture checks) and a server that still serves the next client."""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading

import pytest
from loop_testutil import run

from ._util import Recorder, baseline_fds, close_server, open_fds

GARBAGE = b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(range(256)) * 8


def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


async def _quiet(loop):
    for _ in range(5):
        await asyncio.sleep(0)


async def _check_server_still_serves(loop, server, client_ctx):
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
    writer.write(b"ping\n")
    assert await reader.readline() == b"ping\n"
    writer.close()
    await writer.wait_closed()


async def _echo_line(reader, writer):
    try:
        line = await reader.readline()
        writer.write(line)
        await writer.drain()
    finally:
        writer.close()


def test_client_handshake_gets_garbage(loop, client_ctx):
    async def main():
        before = await baseline_fds(loop)
        listener = _listener()
        port = listener.getsockname()[1]
        connect = asyncio.ensure_future(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"))
        peer, _ = await loop.sock_accept(listener)
        hello = await loop.sock_recv(peer, 65536)
        assert hello[:1] == b"\x16"          # a TLS handshake record
        await loop.sock_sendall(peer, GARBAGE)
        with pytest.raises(ssl.SSLError):
            await connect
        peer.close()
        listener.close()
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())


def test_server_handshake_gets_garbage(loop, server_ctx, client_ctx):
    served = []

    async def handler(reader, writer):
        served.append(1)
        await _echo_line(reader, writer)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        before = await baseline_fds(loop)
        for _ in range(5):
            raw = socket.socket()
            raw.setblocking(False)
            await loop.sock_connect(raw, ("127.0.0.1", port))
            await loop.sock_sendall(raw, GARBAGE)
            # The server gives up on this connection: EOF or a reset.
            try:
                while await loop.sock_recv(raw, 65536):
                    pass
            except ConnectionResetError:
                pass
            raw.close()
        await _check_server_still_serves(loop, server, client_ctx)
        await _quiet(loop)
        assert open_fds() == before
        await close_server(server)

    run(loop, main())
    assert served == [1]     # only the good client reached the application


class _PeerThread(threading.Thread):
    """A blocking TLS server for one connection, in a thread: handshake,
    send b"hello", wait for b"ack", then ``ending`` ("garbage": raw bytes on
    the socket under TLS; "no-close-notify": close without TLS shutdown)."""

    def __init__(self, ctx, listener, ending):
        super().__init__(daemon=True)
        self.ctx, self.listener, self.ending = ctx, listener, ending
        self.error = None

    def run(self):
        try:
            self.listener.settimeout(20)
            conn, _ = self.listener.accept()
            conn.settimeout(20)
            tls = self.ctx.wrap_socket(conn, server_side=True)
            tls.sendall(b"hello")
            got = b""
            while len(got) < 3:
                chunk = tls.recv(3 - len(got))
                if not chunk:
                    break
                got += chunk
            assert got == b"ack", got
            if self.ending == "garbage":
                os.write(tls.fileno(), GARBAGE)   # under TLS: not a record
                # Wait for the client to give up on us before closing.
                try:
                    conn_raw = socket.socket(fileno=os.dup(tls.fileno()))
                    conn_raw.settimeout(20)
                    while conn_raw.recv(65536):
                        pass
                except OSError:
                    pass
                finally:
                    conn_raw.close()
            tls.close()        # no unwrap(): no close_notify either way
        except BaseException as exc:  # reported by the test
            self.error = exc


class _AckHello(Recorder):
    def data_received(self, data):
        super().data_received(data)
        if bytes(self.data) == b"hello":
            self.transport.write(b"ack")


@pytest.mark.parametrize("ending", ["garbage", "no-close-notify"])
def test_peer_misbehaves_after_the_handshake(loop, server_ctx, client_ctx, ending):
    async def main():
        before = await baseline_fds(loop)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        peer = _PeerThread(server_ctx, listener, ending)
        peer.start()
        proto = _AckHello(loop)
        tr, _ = await loop.create_connection(
            lambda: proto, "127.0.0.1", listener.getsockname()[1], ssl=client_ctx,
            server_hostname="localhost")
        exc = await proto.lost
        await loop.run_in_executor(None, peer.join, 20)
        assert peer.error is None, repr(peer.error)
        listener.close()
        assert bytes(proto.data) == b"hello"
        if ending == "garbage":
            assert isinstance(exc, ssl.SSLError), repr(exc)
            assert "eof" not in proto.events
        else:
            # A TCP EOF without close_notify: stdlib (3.11+) treats it as an
            # EOF; the connection ends without error.
            assert exc is None or isinstance(exc, OSError), repr(exc)
        proto.assert_ok()
        tr.close()
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())


def test_client_handshake_stalls(loop, client_ctx):
    """The server accepts and never answers: ssl_handshake_timeout ends it
    with ConnectionAbortedError (as stdlib), and nothing is left open."""
    async def main():
        before = await baseline_fds(loop)
        listener = _listener()
        port = listener.getsockname()[1]
        connect = asyncio.ensure_future(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost",
            ssl_handshake_timeout=0.3))
        peer, _ = await loop.sock_accept(listener)
        with pytest.raises(ConnectionAbortedError):
            await connect
        # The client's socket is closed: the peer sees EOF.
        peer.setblocking(False)
        while await loop.sock_recv(peer, 65536):
            pass
        peer.close()
        listener.close()
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())


def test_server_handshake_stalls(loop, server_ctx, client_ctx):
    """Clients that connect and never send a ClientHello are dropped after
    ssl_handshake_timeout; the server keeps serving."""
    async def main():
        server = await asyncio.start_server(_echo_line, "127.0.0.1", 0, ssl=server_ctx,
                                            ssl_handshake_timeout=0.3)
        port = server.sockets[0].getsockname()[1]
        before = await baseline_fds(loop)
        raws = []
        for _ in range(5):
            raw = socket.socket()
            raw.setblocking(False)
            await loop.sock_connect(raw, ("127.0.0.1", port))
            raws.append(raw)
        for raw in raws:
            # Dropped: EOF (or a reset), within a bound far above the timeout.
            try:
                data = await asyncio.wait_for(loop.sock_recv(raw, 65536), 10)
            except ConnectionResetError:
                data = b""
            assert data == b""
            raw.close()
        await _check_server_still_serves(loop, server, client_ctx)
        await _quiet(loop)
        assert open_fds() == before
        await close_server(server)

    run(loop, main())
