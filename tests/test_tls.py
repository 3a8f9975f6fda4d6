"""TLS (ssl=, start_tls, streams with ssl) on both loops, against our own
loop and against peers that are not: a blocking stdlib ``ssl`` socket in a
thread, a pyOpenSSL ``SSL.Connection`` in a thread (also for renegotiation),
the ``openssl s_server`` / ``s_client`` programs, and aiohttp.  Session
reuse, TLS 1.3 post-handshake tickets, and a peer that stops reading in the
middle of 50 MiB.  Certificates are made at test time with trustme."""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading

import pytest
from loop_testutil import is_uvloop_like, run
from stream_testutil import Recorder

trustme = pytest.importorskip("trustme")

PY311 = sys.version_info >= (3, 11)


def old_stdlib(loop):
    """stdlib's TLS layer before 3.11 (rewritten in 3.11): no eof_received
    for the peer's close_notify, data_received after pause_reading(), no
    start_tls over a TLS transport.  uvloop_like has 3.11's semantics on
    every version."""
    return not PY311 and not is_uvloop_like(loop)


# --- certificates and contexts -----------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca):
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def server_ctx(server_cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    return ctx


def _port(server):
    return server.sockets[0].getsockname()[1]


class EchoServer(asyncio.Protocol):
    """Echoes everything; records what it saw."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class BufferedRecorder(asyncio.BufferedProtocol):
    """A BufferedProtocol client collecting what it is given."""

    def __init__(self, loop, size=4096):
        self.loop = loop
        self.buf = bytearray(size)
        self.data = bytearray()
        self.transport = None
        self.events = []
        self.lost = loop.create_future()
        self._waiters = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def get_buffer(self, sizehint):
        # A memoryview: stdlib 3.11's TLS layer slices a bytearray buffer
        # (a copy) when filling it past one TLS record, losing that data.
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]
        for size, fut in list(self._waiters):
            if len(self.data) >= size and not fut.done():
                fut.set_result(None)

    async def wait_for_bytes(self, size):
        if len(self.data) < size:
            fut = self.loop.create_future()
            self._waiters.append((size, fut))
            await fut

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def _tls_echo_server(loop, server_ctx, protocols=None):
    def factory():
        proto = EchoServer(loop)
        if protocols is not None:
            protocols.append(proto)
        return proto
    return await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx)


# --- echo ----------------------------------------------------------------------------

def test_tls_echo_protocol(loop, server_ctx, client_ctx):
    async def main():
        servers = []
        server = await _tls_echo_server(loop, server_ctx, servers)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        assert isinstance(transport, asyncio.Transport)
        assert not transport.can_write_eof()
        sslobj = transport.get_extra_info("ssl_object")
        assert isinstance(sslobj, ssl.SSLObject)
        assert sslobj.version() in ("TLSv1.2", "TLSv1.3")
        assert transport.get_extra_info("sslcontext") is client_ctx
        assert transport.get_extra_info("peercert")["subjectAltName"]
        assert transport.get_extra_info("cipher")[1] == sslobj.version()
        assert transport.get_extra_info("compression") is None
        assert transport.get_extra_info("peername")[1] == _port(server)
        assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
        sock = transport.get_extra_info("socket")
        assert sock is not None and sock.family == socket.AF_INET
        assert transport.get_extra_info("nonexistent", "dflt") == "dflt"

        payload = os.urandom(100 * 1024)
        transport.write(payload[:1000])
        transport.writelines([payload[1000:5000], b"", memoryview(payload[5000:])])
        await asyncio.wait_for(proto.wait_for_bytes(len(payload)), 10)
        assert bytes(proto.data) == payload
        assert transport.get_write_buffer_size() == 0
        assert not transport.is_closing()
        transport.close()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 10) is None
        # The server saw our close_notify as EOF, then the end.
        assert await asyncio.wait_for(servers[0].lost, 10) is None
        if not old_stdlib(loop):
            assert servers[0].events == ["made", "eof", "lost"]
        proto.assert_ok()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_tls_echo_buffered_protocol(loop, server_ctx, client_ctx):
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: BufferedRecorder(loop, 1000), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        payload = os.urandom(300 * 1024)
        transport.write(payload)
        await asyncio.wait_for(proto.wait_for_bytes(len(payload)), 10)
        assert bytes(proto.data) == payload
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        if not old_stdlib(loop):
            # The server's close_notify answering ours.
            assert proto.events == ["made", "eof", "lost"]
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_tls_server_closes_first(loop, server_ctx, client_ctx):
    """The server's close() sends close_notify: the client gets
    eof_received, then connection_lost(None)."""
    async def main():
        server_protos = []
        server = await _tls_echo_server(loop, server_ctx, server_protos)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"ping")
        await asyncio.wait_for(proto.wait_for_bytes(4), 10)
        server_protos[0].transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        if not old_stdlib(loop):
            assert proto.events == ["made", "data", "eof", "lost"]
        assert await asyncio.wait_for(server_protos[0].lost, 10) is None
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_tls_abort(loop, server_ctx, client_ctx):
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"x" * 100000)
        transport.abort()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 10) is None
        server.close()
        await server.wait_closed()
    run(loop, main())


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_versions_alpn_sni(loop, server_ctx, client_ctx, version):
    async def main():
        tls_version = getattr(ssl.TLSVersion, version)
        server_ctx.minimum_version = server_ctx.maximum_version = tls_version
        server_ctx.set_alpn_protocols(["h2", "http/1.1"])
        client_ctx.set_alpn_protocols(["http/1.1"])
        names = []
        server_ctx.sni_callback = lambda sslobj, name, ctx: names.append(name)
        server = await _tls_echo_server(loop, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        sslobj = transport.get_extra_info("ssl_object")
        assert sslobj.version() == version.replace("_", ".")
        assert sslobj.selected_alpn_protocol() == "http/1.1"
        assert names == ["localhost"]
        transport.write(b"hello")
        await asyncio.wait_for(proto.wait_for_bytes(5), 10)
        transport.close()
        await asyncio.wait_for(proto.lost, 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_tls_unix(loop, server_ctx, client_ctx):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "tls.sock")
            server = await loop.create_unix_server(lambda: EchoServer(loop), path, ssl=server_ctx)
            with pytest.raises(ValueError, match="you have to pass server_hostname when using ssl"):
                await loop.create_unix_connection(asyncio.Protocol, path, ssl=client_ctx)
            transport, proto = await loop.create_unix_connection(
                lambda: Recorder(loop), path, ssl=client_ctx, server_hostname="localhost")
            transport.write(b"over unix")
            await asyncio.wait_for(proto.wait_for_bytes(9), 10)
            assert bytes(proto.data) == b"over unix"
            transport.close()
            await asyncio.wait_for(proto.lost, 10)
            server.close()
            await server.wait_closed()
    run(loop, main())


def test_tls_connect_accepted_socket(loop, server_ctx, client_ctx):
    async def main():
        a, b = socket.socketpair()
        server_side = loop.create_task(loop.connect_accepted_socket(
            lambda: EchoServer(loop), a, ssl=server_ctx))
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), sock=b, ssl=client_ctx, server_hostname="localhost")
        stransport, sproto = await asyncio.wait_for(server_side, 10)
        assert stransport.get_extra_info("ssl_object").server_side
        transport.write(b"abc")
        await asyncio.wait_for(proto.wait_for_bytes(3), 10)
        transport.close()
        await asyncio.wait_for(proto.lost, 10)
        await asyncio.wait_for(sproto.lost, 10)
    run(loop, main())


# --- start_tls -------------------------------------------------------------------------

class Upgradable(asyncio.Protocol):
    """Plain text first; start_tls is driven from outside."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.data = bytearray()
        self.got = asyncio.Queue()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        self.got.put_nowait(bytes(data))

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)

    async def read_exactly(self, n):
        while len(self.data) < n:
            await asyncio.wait_for(self.got.get(), 10)
        out = bytes(self.data[:n])
        del self.data[:n]
        return out


async def _plain_pair(loop):
    accepted = loop.create_future()

    def factory():
        proto = Upgradable(loop)
        if not accepted.done():
            accepted.set_result(proto)
        return proto
    server = await loop.create_server(factory, "127.0.0.1", 0)
    _, client = await loop.create_connection(lambda: Upgradable(loop), "127.0.0.1", _port(server))
    srv = await asyncio.wait_for(accepted, 10)
    await asyncio.sleep(0)
    return server, srv, client


async def _upgrade(loop, srv, client, server_ctx, client_ctx):
    s_task = loop.create_task(loop.start_tls(srv.transport, srv, server_ctx, server_side=True))
    c_transport = await loop.start_tls(client.transport, client, client_ctx,
                                       server_hostname="localhost")
    s_transport = await asyncio.wait_for(s_task, 10)
    srv.transport = s_transport
    client.transport = c_transport
    return s_transport, c_transport


def test_start_tls(loop, server_ctx, client_ctx):
    """Plain text, then TLS, then TLS inside that TLS."""
    run(loop, _start_tls_scenario(loop, server_ctx, client_ctx))


async def _start_tls_scenario(loop, server_ctx, client_ctx):
    server, srv, client = await _plain_pair(loop)
    client.transport.write(b"STARTTLS\n")
    assert await srv.read_exactly(9) == b"STARTTLS\n"
    s_transport, c_transport = await _upgrade(loop, srv, client, server_ctx, client_ctx)
    assert c_transport.get_extra_info("ssl_object") is not None
    assert s_transport.get_extra_info("peername") is not None
    c_transport.write(b"secret")
    assert await srv.read_exactly(6) == b"secret"
    s_transport.write(b"reply")
    assert await client.read_exactly(5) == b"reply"

    if old_stdlib(loop):
        c_transport.close()
        await asyncio.wait_for(client.lost, 10)
        server.close()
        await server.wait_closed()
        return
    # TLS inside TLS.
    s2, c2 = await _upgrade(loop, srv, client, server_ctx, client_ctx)
    assert c2.get_extra_info("ssl_object") is not c_transport.get_extra_info("ssl_object")
    payload = os.urandom(200 * 1024)
    c2.write(payload)
    assert await srv.read_exactly(len(payload)) == payload
    s2.write(b"inner")
    assert await client.read_exactly(5) == b"inner"
    c2.close()
    assert await asyncio.wait_for(client.lost, 10) is None
    await asyncio.wait_for(srv.lost, 10)
    server.close()
    await server.wait_closed()


def test_start_tls_from_buffered_protocol(loop, server_ctx, client_ctx):
    """start_tls on a transport whose protocol is a BufferedProtocol: the
    TLS layer (also buffered) must get the reads, not the old buffer."""
    async def main():
        accepted = loop.create_future()

        def factory():
            proto = Upgradable(loop)
            if not accepted.done():
                accepted.set_result(proto)
            return proto
        server = await loop.create_server(factory, "127.0.0.1", 0)
        _, client = await loop.create_connection(lambda: BufferedRecorder(loop), "127.0.0.1",
                                                 _port(server))
        srv = await asyncio.wait_for(accepted, 10)
        client.transport.write(b"STARTTLS\n")
        assert await srv.read_exactly(9) == b"STARTTLS\n"
        s_task = loop.create_task(loop.start_tls(srv.transport, srv, server_ctx, server_side=True))
        c_transport = await loop.start_tls(client.transport, client, client_ctx,
                                           server_hostname="localhost")
        s_transport = await asyncio.wait_for(s_task, 10)
        payload = os.urandom(64 * 1024)
        s_transport.write(payload)
        await asyncio.wait_for(client.wait_for_bytes(len(payload)), 10)
        assert bytes(client.data) == payload
        c_transport.write(b"back")
        assert await srv.read_exactly(4) == b"back"
        c_transport.close()
        await asyncio.wait_for(client.lost, 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_start_tls_argument_errors(loop, client_ctx):
    async def main():
        server, srv, client = await _plain_pair(loop)
        with pytest.raises(TypeError, match="sslcontext is expected to be an instance of ssl.SSLContext"):
            await loop.start_tls(client.transport, client, None)
        with pytest.raises(TypeError, match="is not supported by start_tls()"):
            await loop.start_tls(object(), client, client_ctx)
        with pytest.raises(ValueError, match="ssl_handshake_timeout should be a positive number, got 0"):
            await loop.start_tls(client.transport, client, client_ctx, ssl_handshake_timeout=0)
        if PY311:
            with pytest.raises(ValueError, match="ssl_shutdown_timeout should be a positive number, got -1"):
                await loop.start_tls(client.transport, client, client_ctx, ssl_shutdown_timeout=-1)
        client.transport.close()
        srv.transport.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_connection_timeout_validation(loop, server_ctx, client_ctx, exc_handler):
    # In debug mode the server reports the failed handshake, as stdlib.
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        with pytest.raises(ValueError, match="ssl_handshake_timeout should be a positive number, got 0"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server), ssl=client_ctx,
                                         server_hostname="localhost", ssl_handshake_timeout=0)
        with socket.socket() as sock:
            with pytest.raises(ValueError, match="You must set server_hostname when using ssl without a host"):
                await loop.create_connection(asyncio.Protocol, sock=sock, ssl=client_ctx)
            with pytest.raises(ValueError, match="Server side SSL needs a valid SSLContext"):
                await loop.connect_accepted_socket(asyncio.Protocol, sock, ssl=True)
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- streams -----------------------------------------------------------------------------

def test_streams_with_ssl(loop, server_ctx, client_ctx):
    async def main():
        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(server), ssl=client_ctx,
                                                       server_hostname="localhost")
        writer.write(b"hello tls\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"HELLO TLS\n"
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


@pytest.mark.skipif(not PY311, reason="StreamWriter.start_tls is 3.11+")
def test_stream_writer_start_tls(loop, server_ctx, client_ctx):
    async def main():
        async def handle(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            line = await reader.readline()
            writer.write(b"secure " + line)
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
        writer.write(b"STARTTLS\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"OK\n"
        await asyncio.wait_for(writer.start_tls(client_ctx, server_hostname="localhost"), 10)
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(b"data\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"secure data\n"
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- failures -----------------------------------------------------------------------------

def test_certificate_verification_failure(loop, server_ctx, exc_handler):
    # In debug mode the server reports the failed handshake, as stdlib.
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        untrusting = ssl.create_default_context()  # does not trust our CA
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server),
                                         ssl=untrusting, server_hostname="localhost")
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_hostname_mismatch(loop, server_ctx, client_ctx, exc_handler):
    # In debug mode the server reports the failed handshake, as stdlib.
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server),
                                         ssl=client_ctx, server_hostname="not-localhost.example")
        server.close()
        await server.wait_closed()
    run(loop, main())


class _SilentPeer:
    """A listening socket whose accepted connections never speak; it can
    close them or send garbage on demand."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.conns = []

    async def accept(self, loop):
        self.listener.setblocking(False)
        conn, _ = await asyncio.wait_for(loop.sock_accept(self.listener), 10)
        self.conns.append(conn)
        return conn

    def close(self):
        for c in self.conns:
            c.close()
        self.listener.close()


def test_handshake_timeout(loop, client_ctx):
    async def main():
        peer = _SilentPeer()
        try:
            with pytest.raises(ConnectionAbortedError,
                               match="SSL handshake is taking longer than 0.2 seconds: aborting"):
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", peer.port, ssl=client_ctx,
                                             server_hostname="localhost", ssl_handshake_timeout=0.2)
            # Our side of the connection is closed: the peer reads the
            # ClientHello, then EOF (or a reset).
            conn = await peer.accept(loop)
            data = b""
            while True:
                try:
                    chunk = await asyncio.wait_for(loop.sock_recv(conn, 65536), 10)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
            assert data[:1] == b"\x16"  # a TLS handshake record
        finally:
            peer.close()
    run(loop, main())


def test_server_handshake_timeout(loop, server_ctx, exc_handler):
    async def main():
        made = []
        server = await loop.create_server(lambda: made.append(1) or EchoServer(loop), "127.0.0.1", 0,
                                          ssl=server_ctx, ssl_handshake_timeout=0.2)
        sock = socket.create_connection(("127.0.0.1", _port(server)))
        sock.setblocking(False)
        try:
            # Never speak: the server gives up and closes.
            data = await asyncio.wait_for(loop.sock_recv(sock, 100), 10)
            assert data == b""
        except ConnectionResetError:
            pass
        finally:
            sock.close()
        assert made == [1]
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_peer_closes_during_handshake(loop, client_ctx):
    async def main():
        peer = _SilentPeer()
        try:
            task = loop.create_task(loop.create_connection(
                asyncio.Protocol, "127.0.0.1", peer.port, ssl=client_ctx, server_hostname="localhost"))
            conn = await peer.accept(loop)
            hello = await asyncio.wait_for(loop.sock_recv(conn, 65536), 10)
            assert hello[:1] == b"\x16"
            conn.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(task, 10)
        finally:
            peer.close()
    run(loop, main())


def test_client_closes_during_server_handshake(loop, server_ctx, exc_handler):
    """A client that connects to a TLS server and leaves mid-handshake:
    the server drops that connection and keeps serving."""
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", _port(server)))
            sock.sendall(b"\x16\x03\x01\x00")  # the start of a record, then nothing
            sock.close()
        await asyncio.sleep(0.05)
        # Still serving.
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx)
        transport.write(b"still")
        await asyncio.wait_for(proto.wait_for_bytes(5), 10)
        transport.close()
        await asyncio.wait_for(proto.lost, 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_cancel_create_connection_during_handshake(loop, client_ctx):
    async def main():
        peer = _SilentPeer()
        try:
            task = loop.create_task(loop.create_connection(
                asyncio.Protocol, "127.0.0.1", peer.port, ssl=client_ctx, server_hostname="localhost"))
            conn = await peer.accept(loop)
            hello = await asyncio.wait_for(loop.sock_recv(conn, 65536), 10)
            assert hello[:1] == b"\x16"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The connection was closed (our descriptor with it).
            try:
                assert await asyncio.wait_for(loop.sock_recv(conn, 100), 10) == b""
            except ConnectionResetError:
                pass
        finally:
            peer.close()
    run(loop, main())


@pytest.mark.parametrize("when", ["immediately", "after_connect"])
def test_cancel_create_connection_early(loop, server_ctx, client_ctx, when, exc_handler):
    # In debug mode the server reports the failed handshake, as stdlib.
    """Cancelled right after the TCP connection (before or as the handshake
    starts): nothing leaks, nothing is reported."""
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        task = loop.create_task(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", _port(server), ssl=client_ctx, server_hostname="localhost"))
        for _ in range(0 if when == "immediately" else 3):
            await asyncio.sleep(0)
        task.cancel()
        try:
            transport, _ = await task
        except asyncio.CancelledError:
            pass
        else:
            transport.close()
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_peer_sends_garbage(loop, client_ctx):
    async def main():
        peer = _SilentPeer()
        try:
            task = loop.create_task(loop.create_connection(
                asyncio.Protocol, "127.0.0.1", peer.port, ssl=client_ctx, server_hostname="localhost"))
            conn = await peer.accept(loop)
            await asyncio.wait_for(loop.sock_recv(conn, 65536), 10)
            await loop.sock_sendall(conn, b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10)
            with pytest.raises(ssl.SSLError):
                await asyncio.wait_for(task, 10)
        finally:
            peer.close()
    run(loop, main())


def test_garbage_to_tls_server(loop, server_ctx, exc_handler):
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            # The server answers with an alert (or nothing), then closes.
            await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            pass
        writer.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- flow control: 50 MiB with the reader paused and resumed -------------------------------

class SlowReader(asyncio.Protocol):
    """Pauses reading after every ``chunk`` bytes, resumes a moment later."""

    def __init__(self, loop, expected, chunk=4 * 1024 * 1024):
        self.loop = loop
        self.expected = expected
        self.chunk = chunk
        self.received = 0
        self.next_pause = chunk
        self.digest = hashlib.sha256()
        self.pauses = 0
        self.done = loop.create_future()
        self.lost = loop.create_future()
        self.paused = False
        self.data_while_paused = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.paused:
            self.data_while_paused += 1
        self.received += len(data)
        self.digest.update(data)
        if self.received >= self.expected and not self.done.done():
            self.done.set_result(None)
        elif self.received >= self.next_pause:
            self.next_pause += self.chunk
            self.pauses += 1
            self.paused = True
            self.transport.pause_reading()
            assert not self.transport.is_reading()
            self.loop.call_later(0.01, self._resume)

    def _resume(self):
        self.paused = False
        self.transport.resume_reading()

    def eof_received(self):
        pass

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class BulkWriter(asyncio.Protocol):
    """Writes ``total`` bytes as fast as flow control allows."""

    def __init__(self, loop, total, block=256 * 1024):
        self.loop = loop
        self.total = total
        self.block = block
        self.sent = 0
        self.digest = hashlib.sha256()
        self.paused_count = 0
        self.max_buffer = 0
        self._resume = None
        self.finished = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.task = self.loop.create_task(self._run())

    async def _run(self):
        rnd = os.urandom(self.block)
        while self.sent < self.total:
            if self._resume is not None:
                await self._resume
            n = min(self.block, self.total - self.sent)
            data = rnd[:n]
            self.digest.update(data)
            self.transport.write(data)
            self.sent += n
            self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())
            await asyncio.sleep(0)
        self.finished.set_result(None)

    def pause_writing(self):
        self.paused_count += 1
        self._resume = self.loop.create_future()

    def resume_writing(self):
        fut, self._resume = self._resume, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def connection_lost(self, exc):
        if self._resume is not None and not self._resume.done():
            self._resume.set_exception(ConnectionError("lost"))


def test_50mib_with_paused_reader(loop, server_ctx, client_ctx):
    total = 50 * 1024 * 1024

    async def main():
        writers = []
        server = await loop.create_server(lambda: writers.append(BulkWriter(loop, total)) or writers[-1],
                                          "127.0.0.1", 0, ssl=server_ctx)
        transport, reader = await loop.create_connection(
            lambda: SlowReader(loop, total), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        await asyncio.wait_for(reader.done, 50)
        writer = writers[0]
        await asyncio.wait_for(writer.finished, 10)
        assert reader.received == total
        assert reader.digest.hexdigest() == writer.digest.hexdigest()
        assert reader.pauses >= 10
        if not old_stdlib(loop):
            assert reader.data_while_paused == 0
        # Flow control held the writer back (the reader was slower).
        assert writer.paused_count >= 1
        hi = writer.transport.get_write_buffer_limits()[1]
        assert writer.max_buffer <= hi + 2 * writer.block + 64 * 1024
        transport.close()
        await asyncio.wait_for(reader.lost, 10)
        server.close()
        await server.wait_closed()
    run(loop, main(), timeout=55)


def test_write_buffer_limits(loop, server_ctx, client_ctx):
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        transport.set_write_buffer_limits(high=1000, low=100)
        assert transport.get_write_buffer_limits() == (100, 1000)
        transport.set_write_buffer_limits()
        low, high = transport.get_write_buffer_limits()
        assert high >= low >= 0
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.close()
        await asyncio.wait_for(proto.lost, 10)
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- peers that are not an event loop: a blocking ssl socket in a thread ---------------

class ThreadPeer(threading.Thread):
    """Runs ``target(sock)`` on one accepted (server) or made (client)
    blocking socket, with a timeout on every operation."""

    def __init__(self, target, listen=True):
        super().__init__(daemon=True)
        self.target = target
        self.error = None
        self.result = None
        if listen:
            self.listener = socket.socket()
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen(1)
            self.listener.settimeout(10)
            self.port = self.listener.getsockname()[1]

    def run(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            with conn:
                self.result = self.target(conn)
        except BaseException as exc:  # noqa: B902 - reported by join_checked
            self.error = exc
        finally:
            self.listener.close()

    async def join_checked(self, loop):
        await loop.run_in_executor(None, self.join, 15)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def test_client_against_blocking_ssl_server(loop, server_ctx, client_ctx):
    def serve(conn):
        tls = server_ctx.wrap_socket(conn, server_side=True)
        data = b""
        while not data.endswith(b"\n"):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        tls.sendall(data.upper())
        # Answer the client's close_notify with ours.
        assert tls.recv(10) == b""
        tls.unwrap()
        tls.close()
        return data

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"x" * 100000 + b"\n")
        await asyncio.wait_for(proto.wait_for_bytes(100001), 10)
        assert bytes(proto.data) == b"X" * 100000 + b"\n"
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        assert await peer.join_checked(loop) == b"x" * 100000 + b"\n"
    run(loop, main())


@pytest.mark.parametrize("how", ["close_notify", "no_close_notify"])
def test_blocking_server_closes(loop, server_ctx, client_ctx, how):
    """The peer's close_notify gives eof_received; a peer closing the TCP
    connection without it gives eof_received too (stdlib's rule), then
    connection_lost(None)."""
    def serve(conn):
        tls = server_ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"bye")
        if how == "close_notify":
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
        else:
            tls.shutdown(socket.SHUT_RDWR)  # TCP FIN, no close_notify
        tls.close()

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
            server_hostname="localhost")
        exc = await asyncio.wait_for(proto.lost, 10)
        assert exc is None
        assert bytes(proto.data) == b"bye"
        if not (old_stdlib(loop) and how == "close_notify"):
            assert proto.events == ["made", "data", "eof", "lost"]
        await peer.join_checked(loop)
    run(loop, main())


def test_blocking_client_against_server(loop, server_ctx, client_ctx):
    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        port = _port(server)

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    out = b""
                    for i in range(20):
                        msg = bytes([65 + i]) * (1000 * (i + 1))
                        tls.sendall(msg)
                        got = b""
                        while len(got) < len(msg):
                            got += tls.recv(65536)
                        out += got
                    try:
                        tls.unwrap()  # our close_notify is answered by the server's
                    except ssl.SSLEOFError:
                        if not old_stdlib(loop):
                            raise
                    return out
        out = await asyncio.wait_for(loop.run_in_executor(None, client), 20)
        assert len(out) == sum(1000 * (i + 1) for i in range(20))
        server.close()
        await server.wait_closed()
    run(loop, main())


@pytest.mark.skipif(not PY311, reason="ssl_shutdown_timeout is 3.11+ in stdlib")
def test_shutdown_timeout(loop, server_ctx, client_ctx):
    """A peer that never answers our close_notify: connection_lost gets
    TimeoutError('SSL shutdown timed out') after ssl_shutdown_timeout."""
    release = threading.Event()

    def serve(conn):
        tls = server_ctx.wrap_socket(conn, server_side=True)
        release.wait(15)  # handshake done, then silence
        tls.close()

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        try:
            transport, proto = await loop.create_connection(
                lambda: Recorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
                server_hostname="localhost", ssl_shutdown_timeout=0.3)
            transport.close()
            exc = await asyncio.wait_for(proto.lost, 10)
            assert isinstance(exc, asyncio.TimeoutError)
            assert str(exc) == "SSL shutdown timed out"
        finally:
            release.set()
        await peer.join_checked(loop)
    run(loop, main())


# --- aiohttp ---------------------------------------------------------------------------------

def test_aiohttp_https(loop, server_ctx, client_ctx):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def main():
        async def hello(request):
            body = await request.read()
            return web.Response(body=b"hello " + body)
        app = web.Application()
        app.router.add_post("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            connector = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=connector) as session:
                for size in (10, 300 * 1024):
                    body = b"b" * size
                    async with session.post(f"https://localhost:{port}/", data=body) as resp:
                        assert resp.status == 200
                        assert await resp.read() == b"hello " + body
        finally:
            await runner.cleanup()
    run(loop, main(), timeout=30)


# --- session reuse and post-handshake messages --------------------------------------------

class SessionContext(ssl.SSLContext):
    """A client context that resumes ``self.session`` on its next connection.

    ``create_connection``/``start_tls`` take no session argument; both loops
    build the connection's ``SSLObject`` with ``sslcontext.wrap_bio()`` (the
    documented place a session goes in), so a context that supplies it there
    resumes through either TLS layer without a private hook."""

    session = None

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
        if session is None and not server_side:
            session = self.session
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


class StrictRecorder(Recorder):
    """A Recorder that also flags empty data_received() calls."""

    def data_received(self, data):
        if not data:
            self.errors.append("empty data_received")
        super().data_received(data)


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_reuse(loop, server_ctx, ca, version):
    """The second connection resumes the first one's session: a TLS 1.2
    session id, or a TLS 1.3 ticket that arrived after the handshake."""
    tls_version = getattr(ssl.TLSVersion, version)
    client_ctx = SessionContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    client_ctx.minimum_version = client_ctx.maximum_version = tls_version

    async def connect_once(port, servers):
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        transport.write(b"ping")
        # The echo comes after the server's tickets (TLS 1.3): once it is
        # here, the session is resumable.
        await asyncio.wait_for(proto.wait_for_bytes(4), 10)
        assert bytes(proto.data) == b"ping"
        sslobj = transport.get_extra_info("ssl_object")
        assert sslobj.version() == version.replace("_", ".")
        session, reused = sslobj.session, sslobj.session_reused
        server_reused = servers[-1].transport.get_extra_info("ssl_object").session_reused
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        proto.assert_ok()
        return session, reused, server_reused

    async def main():
        servers = []
        server = await _tls_echo_server(loop, server_ctx, servers)
        port = _port(server)
        first, reused, server_reused = await connect_once(port, servers)
        assert not reused and not server_reused
        assert first is not None
        if version == "TLSv1_3":
            assert first.has_ticket
        client_ctx.session = first
        second, reused, server_reused = await connect_once(port, servers)
        assert reused and server_reused
        if version == "TLSv1_2":
            assert second.id == first.id
        assert len(servers) == 2
        server.close()
        await server.wait_closed()
    run(loop, main())


class Greeter(EchoServer):
    """Echoes, and says hello first (after its TLS 1.3 session tickets)."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"hello")


def test_tls13_tickets_after_handshake(loop, server_ctx, client_ctx):
    """TLS 1.3 NewSessionTicket messages reach the client after its
    handshake is over: they are consumed by the TLS layer, not given to
    the app, and nothing goes wrong."""
    async def main():
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        server_ctx.num_tickets = 4
        server = await loop.create_server(lambda: Greeter(loop), "127.0.0.1", 0, ssl=server_ctx)
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        sslobj = transport.get_extra_info("ssl_object")
        assert sslobj.version() == "TLSv1.3"
        await asyncio.wait_for(proto.wait_for_bytes(5), 10)
        assert bytes(proto.data) == b"hello"
        assert sslobj.session.has_ticket
        transport.write(b"ping")
        await asyncio.wait_for(proto.wait_for_bytes(9), 10)
        assert bytes(proto.data) == b"helloping"
        assert transport.get_write_buffer_size() == 0
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        proto.assert_ok()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_tls13_only_tickets_then_close(loop, server_ctx, client_ctx):
    """The server sends its tickets and closes at once: the client gets no
    data at all, then eof_received and connection_lost(None)."""
    class Closer(asyncio.Protocol):
        def connection_made(self, transport):
            transport.close()

    async def main():
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        server = await loop.create_server(Closer, "127.0.0.1", 0, ssl=server_ctx)
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        assert await asyncio.wait_for(proto.lost, 10) is None
        assert proto.data == b""
        if not old_stdlib(loop):
            assert proto.events == ["made", "eof", "lost"]
        assert transport.get_extra_info("ssl_object").session.has_ticket
        proto.assert_ok()
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- pyOpenSSL peers: server and client roles, renegotiation ------------------------------

def _openssl_module():
    return pytest.importorskip("OpenSSL.SSL", reason="pyOpenSSL is in the test extra: pip install pyopenssl")


def _blocking_with_timeouts(sock, seconds=10):
    """pyOpenSSL needs a blocking descriptor (a Python socket timeout makes
    it non-blocking); SO_RCVTIMEO/SO_SNDTIMEO bound every wait instead."""
    sock.settimeout(None)
    tv = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


_PYOPENSSL_VERSIONS = {"TLSv1_2": "TLS1_2_VERSION", "TLSv1_3": "TLS1_3_VERSION"}


def _pyopenssl_context(version, cert=None, ca=None):
    SSL = _openssl_module()
    ctx = SSL.Context(SSL.TLS_METHOD)
    v = getattr(SSL, _PYOPENSSL_VERSIONS[version])
    ctx.set_min_proto_version(v)
    ctx.set_max_proto_version(v)
    if cert is not None:
        cert.configure_cert(ctx)
    if ca is not None:
        ca.configure_trust(ctx)
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, x509, errno, depth, ok: bool(ok))
    return ctx


def _pyopenssl_recv_until_close(conn):
    """Read until the peer's close_notify; return what came before it."""
    SSL = _openssl_module()
    data = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except SSL.ZeroReturnError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_client_against_pyopenssl_server(loop, server_cert, client_ctx, version):
    SSL = _openssl_module()
    ctx = _pyopenssl_context(version, cert=server_cert)

    def serve(sock):
        _blocking_with_timeouts(sock)
        conn = SSL.Connection(ctx, sock)
        conn.set_accept_state()
        conn.do_handshake()
        data = b""
        while not data.endswith(b"\n"):
            data += conn.recv(65536)
        conn.sendall(data.upper())
        # Our close_notify, then the peer's answer.
        rest = _pyopenssl_recv_until_close(conn)
        conn.shutdown()
        return data, rest, conn.get_protocol_version_name()

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
            server_hostname="localhost")
        payload = b"abc" * 50000 + b"\n"
        transport.write(payload)
        await asyncio.wait_for(proto.wait_for_bytes(len(payload)), 10)
        assert bytes(proto.data) == payload.upper()
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        data, rest, name = await peer.join_checked(loop)
        assert (data, rest) == (payload, b"")
        assert name == version.replace("_", ".")
        proto.assert_ok()
    run(loop, main())


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_pyopenssl_client_against_server(loop, server_ctx, ca, version):
    SSL = _openssl_module()
    ctx = _pyopenssl_context(version, ca=ca)

    async def main():
        servers = []
        server = await _tls_echo_server(loop, server_ctx, servers)
        port = _port(server)

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                _blocking_with_timeouts(sock)
                conn = SSL.Connection(ctx, sock)
                conn.set_tlsext_host_name(b"localhost")
                conn.set_connect_state()
                conn.do_handshake()
                out = b""
                for i in range(10):
                    msg = bytes([97 + i]) * (7000 * (i + 1))
                    conn.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        got += conn.recv(65536)
                    out += got
                conn.shutdown()  # our close_notify; the server answers with its own
                try:
                    rest = _pyopenssl_recv_until_close(conn)
                except SSL.SysCallError:
                    if not old_stdlib(loop):
                        raise
                    rest = b""  # stdlib before 3.11 closes without answering
                return out, rest, conn.get_protocol_version_name()
        out, rest, name = await asyncio.wait_for(loop.run_in_executor(None, client), 20)
        assert len(out) == sum(7000 * (i + 1) for i in range(10))
        assert rest == b""
        assert name == version.replace("_", ".")
        assert await asyncio.wait_for(servers[0].lost, 10) is None
        if not old_stdlib(loop):
            assert servers[0].events == ["made", "eof", "lost"]
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_renegotiation_by_client_is_refused(loop, server_ctx, ca):
    """A TLS 1.2 client asks our server to renegotiate: OpenSSL (3.x, with
    Python's default options) refuses client-initiated renegotiation; the
    peer gives up with a handshake_failure alert, which ends our side's
    connection with that ssl.SSLError, as on stdlib, without a hang."""
    SSL = _openssl_module()
    ctx = _pyopenssl_context("TLSv1_2", ca=ca)

    async def main():
        servers = []
        server = await _tls_echo_server(loop, server_ctx, servers)
        port = _port(server)

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                _blocking_with_timeouts(sock)
                conn = SSL.Connection(ctx, sock)
                conn.set_tlsext_host_name(b"localhost")
                conn.set_connect_state()
                conn.do_handshake()
                conn.sendall(b"one")
                first = conn.recv(100)
                assert conn.renegotiate()
                try:
                    conn.do_handshake()
                    conn.sendall(b"two")
                    conn.recv(100)
                except SSL.Error as exc:
                    return first, exc
                return first, None
        first, error = await asyncio.wait_for(loop.run_in_executor(None, client), 20)
        assert first == b"one"
        assert isinstance(error, SSL.Error)
        assert "no renegotiation" in str(error)
        exc = await asyncio.wait_for(servers[0].lost, 10)
        assert isinstance(exc, ssl.SSLError)
        assert "HANDSHAKE_FAILURE" in str(exc)
        server.close()
        await server.wait_closed()
    run(loop, main())


@pytest.mark.parametrize("closer", ["peer", "us"])
def test_renegotiation_by_server(loop, server_cert, client_ctx, closer):
    """A TLS 1.2 server renegotiates with our client: with Python's default
    options OpenSSL accepts; data keeps flowing both ways (nothing delivered
    twice or lost).  If the peer then closes, the end is clean; if we close
    first, OpenSSL's unwrap() still counts the connection as in a handshake
    and fails (SHUTDOWN_WHILE_IN_INIT): connection_lost gets that SSLError,
    nothing hangs.  Both as on stdlib."""
    if old_stdlib(loop):
        pytest.skip("stdlib's TLS layer before 3.11 stalls writes after a renegotiation")
    SSL = _openssl_module()
    ctx = _pyopenssl_context("TLSv1_2", cert=server_cert)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def serve(sock):
        _blocking_with_timeouts(sock)
        conn = SSL.Connection(ctx, sock)
        conn.set_accept_state()
        conn.do_handshake()
        got = [conn.recv(100)]
        conn.sendall(b"ONE")
        assert conn.renegotiate()
        conn.do_handshake()
        got.append(conn.recv(100))
        conn.sendall(b"TWO")
        renegotiations = conn.total_renegotiations()
        if closer == "peer":
            got.append(conn.recv(100))
            conn.shutdown()
            return got, _pyopenssl_recv_until_close(conn), renegotiations
        try:
            rest = _pyopenssl_recv_until_close(conn)
        except SSL.SysCallError:
            rest = None  # we closed the TCP connection without close_notify
        return got, rest, renegotiations

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"one")
        await asyncio.wait_for(proto.wait_for_bytes(3), 10)
        transport.write(b"two")
        await asyncio.wait_for(proto.wait_for_bytes(6), 10)
        transport.write(b"three")
        if closer == "us":
            transport.close()
        exc = await asyncio.wait_for(proto.lost, 10)
        assert bytes(proto.data) == b"ONETWO"
        got, rest, renegotiations = await peer.join_checked(loop)
        assert renegotiations == 1
        if closer == "peer":
            assert got == [b"one", b"two", b"three"]
            assert exc is None and rest == b""
            if not old_stdlib(loop):
                assert proto.events == ["made", "data", "data", "eof", "lost"]
        else:
            assert isinstance(exc, ssl.SSLError)
            assert "SHUTDOWN_WHILE_IN_INIT" in str(exc)
            # "three" stayed queued behind the handshake OpenSSL thinks is on.
            assert got == [b"one", b"two"] and rest is None
        proto.assert_ok()
    run(loop, main())


def test_renegotiation_refused_by_client(loop, server_cert, client_ctx):
    """With OP_NO_RENEGOTIATION our client refuses the server's
    HelloRequest (a no_renegotiation alert); the peer gives up on the
    connection, and ours ends without a hang, as on stdlib."""
    SSL = _openssl_module()
    ctx = _pyopenssl_context("TLSv1_2", cert=server_cert)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    # PyPy's ssl lacks the name; the bit is OpenSSL's SSL_OP_NO_RENEGOTIATION.
    client_ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0x40000000)

    def serve(sock):
        _blocking_with_timeouts(sock)
        conn = SSL.Connection(ctx, sock)
        conn.set_accept_state()
        conn.do_handshake()
        got = conn.recv(100)
        conn.sendall(b"ONE")
        assert conn.renegotiate()
        conn.do_handshake()
        try:
            conn.recv(100)
        except SSL.Error as exc:
            return got, exc
        return got, None

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        transport, proto = await loop.create_connection(
            lambda: StrictRecorder(loop), "127.0.0.1", peer.port, ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"one")
        await asyncio.wait_for(proto.wait_for_bytes(3), 10)
        # The peer answers our refusal with a fatal handshake_failure alert.
        exc = await asyncio.wait_for(proto.lost, 10)
        assert isinstance(exc, ssl.SSLError)
        assert "HANDSHAKE_FAILURE" in str(exc)
        assert bytes(proto.data) == b"ONE"
        got, error = await peer.join_checked(loop)
        assert got == b"one"
        assert isinstance(error, SSL.Error) and "no renegotiation" in str(error)
        proto.assert_ok()
    run(loop, main())


# --- the openssl command-line programs as peers ---------------------------------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl program is not installed")
_OPENSSL_FLAGS = {"TLSv1_2": "-tls1_2", "TLSv1_3": "-tls1_3"}


@pytest.fixture(scope="module")
def cert_files(ca, server_cert, tmp_path_factory):
    """(CA certificate, server key + chain) as PEM files for openssl."""
    where = tmp_path_factory.mktemp("certs")
    ca_path, server_path = str(where / "ca.pem"), str(where / "server.pem")
    ca.cert_pem.write_to_path(ca_path)
    server_cert.private_key_and_cert_chain_pem.write_to_path(server_path)
    return ca_path, server_path


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@needs_openssl
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_client_against_openssl_s_server(loop, client_ctx, cert_files, version):
    """``openssl s_server -rev`` sends every line back reversed and, for a
    line "CLOSE", sends close_notify; it quits after one connection."""
    _, server_pem = cert_files

    async def main():
        proc = subprocess.Popen(
            [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", server_pem, "-key", server_pem,
             "-rev", "-naccept", "1", _OPENSSL_FLAGS[version]],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            port = None
            while port is None:
                line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 10)
                assert line, "s_server quit before listening"
                match = re.match(rb"ACCEPT .*:(\d+)\s*$", line)
                if match:
                    port = int(match.group(1))
            transport, proto = await loop.create_connection(
                lambda: StrictRecorder(loop), "127.0.0.1", port, ssl=client_ctx,
                server_hostname="localhost")
            assert transport.get_extra_info("ssl_object").version() == version.replace("_", ".")
            lines = [b"hello world\n"] + [os.urandom(300).hex().encode() + b"\n" for _ in range(20)]
            transport.writelines(lines)
            expected = b"".join(line[:-1][::-1] + b"\n" for line in lines)
            await asyncio.wait_for(proto.wait_for_bytes(len(expected)), 10)
            assert bytes(proto.data) == expected
            transport.write(b"CLOSE\n")
            assert await asyncio.wait_for(proto.lost, 10) is None
            assert proto.events[-2:] == ["eof", "lost"] or old_stdlib(loop)
            assert await asyncio.wait_for(loop.run_in_executor(None, proc.wait, 10), 15) == 0
            proto.assert_ok()
        finally:
            _kill(proc)
    run(loop, main(), timeout=30)


@needs_openssl
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_openssl_s_client_against_server(loop, server_ctx, cert_files, version):
    """``openssl s_client`` verifies our certificate, sends its stdin and
    prints what comes back; our server echoes and closes once it has it all."""
    ca_pem, _ = cert_files
    lines = b"".join(b"line %d %s\n" % (i, os.urandom(200).hex().encode()) for i in range(50))

    class EchoThenClose(EchoServer):
        received = 0

        def data_received(self, data):
            super().data_received(data)
            self.received += len(data)
            if self.received >= len(lines):
                self.transport.close()

    async def main():
        servers = []
        server = await loop.create_server(lambda: servers.append(EchoThenClose(loop)) or servers[-1],
                                          "127.0.0.1", 0, ssl=server_ctx)
        argv = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{_port(server)}", "-CAfile", ca_pem,
                "-servername", "localhost", "-verify_hostname", "localhost", "-verify_return_error",
                "-quiet", _OPENSSL_FLAGS[version]]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(
                loop.run_in_executor(None, lambda: proc.communicate(lines, timeout=15)), 20)
            assert proc.returncode == 0, err
            assert out == lines
            assert await asyncio.wait_for(servers[0].lost, 10) is None
            sslobj = servers[0].transport.get_extra_info("ssl_object")
            assert sslobj.version() == version.replace("_", ".")
        finally:
            _kill(proc)
        server.close()
        await server.wait_closed()
    run(loop, main(), timeout=30)


# --- a peer that stops reading in the middle of 50 MiB ------------------------------------------

class FlowWriter(asyncio.Protocol):
    """Writes ``total`` bytes (64 KiB at a time) while not paused; records
    pause_writing, the largest write buffer seen, and connection_lost."""

    BLOCK = 64 * 1024

    def __init__(self, loop, total):
        self.loop = loop
        self.total = total
        self.sent = 0
        self.digest = hashlib.sha256()
        self.max_buffer = 0
        self.pauses = 0
        self.paused = loop.create_future()     # the first pause_writing()
        self.finished = loop.create_future()   # all written (or the connection lost)
        self.lost_calls = []
        self.lost = loop.create_future()
        self._resume = None

    def connection_made(self, transport):
        self.transport = transport
        self.task = self.loop.create_task(self._run())

    async def _run(self):
        block = os.urandom(self.BLOCK)
        try:
            while self.sent < self.total:
                if self._resume is not None:
                    await self._resume
                if self.transport.is_closing():
                    raise ConnectionError("closed")
                data = block[:min(self.BLOCK, self.total - self.sent)]
                self.digest.update(data)
                self.transport.write(data)
                self.sent += len(data)
                self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())
                await asyncio.sleep(0)
        except ConnectionError as exc:
            self.finished.set_result(exc)
        else:
            self.finished.set_result(None)

    def pause_writing(self):
        self.pauses += 1
        self._resume = self.loop.create_future()
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self):
        fut, self._resume = self._resume, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def data_received(self, data):
        pass

    def eof_received(self):
        pass

    def connection_lost(self, exc):
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)
        fut, self._resume = self._resume, None
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError("lost"))


@pytest.mark.parametrize("then", ["resume", "close"])
def test_peer_stops_reading_during_50mib(loop, server_ctx, client_ctx, then):
    """We write 50 MiB to a peer that reads 1 MiB and stops: pause_writing
    comes, the data held (TLS layer + transport) stays within a few times
    the high-water mark; then the peer either reads the rest (all bytes
    arrive intact, then a clean close) or closes its socket while we are
    paused (connection_lost once, with an error; nothing hangs)."""
    total = 50 * 1024 * 1024
    stopped = threading.Event()   # the peer stopped reading
    go = threading.Event()        # the loop saw pause_writing: peer, carry on

    def serve(sock):
        tls = server_ctx.wrap_socket(sock, server_side=True)
        digest = hashlib.sha256()
        received = 0
        while received < 1024 * 1024:
            chunk = tls.recv(65536)
            assert chunk
            received += len(chunk)
            digest.update(chunk)
        stopped.set()
        assert go.wait(20)
        if then == "close":
            tls.close()   # unread data in the kernel: the TCP connection is reset
            return received, None
        while True:
            chunk = tls.recv(256 * 1024)
            if not chunk:
                break  # our close_notify
            received += len(chunk)
            digest.update(chunk)
        tls.unwrap()
        return received, digest.hexdigest()

    async def main():
        peer = ThreadPeer(serve)
        peer.start()
        try:
            transport, writer = await loop.create_connection(
                lambda: FlowWriter(loop, total), "127.0.0.1", peer.port, ssl=client_ctx,
                server_hostname="localhost")
            await asyncio.wait_for(writer.paused, 20)
            await asyncio.wait_for(loop.run_in_executor(None, stopped.wait, 20), 25)
            low, high = transport.get_write_buffer_limits()
            assert transport.get_write_buffer_size() <= 2 * high + FlowWriter.BLOCK
            # Bounded: a block past the mark at most, plus TLS record overhead.
            assert writer.max_buffer <= 2 * high + FlowWriter.BLOCK
            assert writer.sent < total
        finally:
            go.set()
        if then == "resume":
            assert await asyncio.wait_for(writer.finished, 40) is None
            assert writer.max_buffer <= 2 * high + FlowWriter.BLOCK
            transport.close()
            assert await asyncio.wait_for(writer.lost, 20) is None
            received, digest = await peer.join_checked(loop)
            assert received == total
            assert digest == writer.digest.hexdigest()
        else:
            exc = await asyncio.wait_for(writer.lost, 20)
            assert isinstance(exc, ConnectionError), exc
            assert isinstance(await asyncio.wait_for(writer.finished, 10), ConnectionError)
            await peer.join_checked(loop)
            assert transport.is_closing() or old_stdlib(loop)
        await asyncio.sleep(0)
        assert len(writer.lost_calls) == 1
    run(loop, main(), timeout=55)


def test_tls_write_memoryview_of_wide_items(loop, server_ctx, client_ctx):
    """A memoryview of 4-byte items goes out as its bytes, all of them."""
    import array

    if old_stdlib(loop):
        # Not a failure to hide: it cannot run.  The pre-3.11 asyncio/sslproto.py
        # compares the bytes SSLObject.write() took with len() in items and spins
        # in feed_appdata() forever (pytest-timeout's exception is swallowed by
        # the loop's Handle._run, so not even a timeout ends it).
        pytest.skip("stdlib < 3.11 loops forever on this (asyncio/sslproto.py bug)")

    async def main():
        server = await _tls_echo_server(loop, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", _port(server), ssl=client_ctx,
            server_hostname="localhost")
        items = array.array("i", range(100_000))
        transport.write(memoryview(items))
        await asyncio.wait_for(proto.wait_for_bytes(len(items) * items.itemsize), 10)
        assert bytes(proto.data) == items.tobytes()
        transport.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        server.close()
        await server.wait_closed()
    run(loop, main())
