"""The loop's attributes are the loop's own (issue 8, part C): no other module
adds one to the loop object.  After TLS connections (both read paths), unix
and UDP datagram endpoints, pipes, sock_* calls, sendfile, a unix server and
a resolver call, ``vars(loop)`` has exactly the keys it had when it was made.

(The transports and the TLS layer keep their state themselves; the per-loop
scratch buffers they share live in the loop's I/O core, made in Loop.__init__.)
"""
from __future__ import annotations

import asyncio
import os
import socket
import ssl

import pytest
from loop_testutil import SOON, run

trustme = pytest.importorskip("trustme")


class Collect(asyncio.Protocol):
    def __init__(self, loop, want):
        self.want = want
        self.data = bytearray()
        self.done = loop.create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.want and not self.done.done():
            self.done.set_result(bytes(self.data))


class BufferedCollect(asyncio.BufferedProtocol):
    def __init__(self, loop, want):
        self.want = want
        self.buf = bytearray(4096)
        self.data = bytearray()
        self.done = loop.create_future()

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]
        if len(self.data) >= self.want and not self.done.done():
            self.done.set_result(bytes(self.data))


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.got = loop.create_future()

    def datagram_received(self, data, addr):
        if not self.got.done():
            self.got.set_result(data)


@pytest.fixture(scope="module")
def tls_contexts():
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    return server, client


async def _tls_round_trips(loop, server_ctx, client_ctx):
    server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(100_000)
    for factory in (Collect, BufferedCollect):
        tr, proto = await loop.create_connection(
            lambda factory=factory: factory(loop, len(payload)), "127.0.0.1", port,
            ssl=client_ctx, server_hostname="localhost")
        tr.write(payload)
        assert await asyncio.wait_for(proto.done, SOON) == payload
        tr.close()
    server.close()
    await server.wait_closed()


async def _datagrams(loop):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a:
        tr, proto = await loop.create_datagram_endpoint(lambda: Datagrams(loop), sock=b)
        a.send(b"unix")
        assert await asyncio.wait_for(proto.got, SOON) == b"unix"
        tr.close()
    tr1, p1 = await loop.create_datagram_endpoint(lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
    tr2, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=tr1.get_extra_info("sockname"))
    tr2.sendto(b"udp")
    assert await asyncio.wait_for(p1.got, SOON) == b"udp"
    tr1.close()
    tr2.close()


async def _pipes(loop):
    r, w = os.pipe()
    rtr, rproto = await loop.connect_read_pipe(lambda: Collect(loop, 4), open(r, "rb", 0))
    wtr, _ = await loop.connect_write_pipe(asyncio.Protocol, open(w, "wb", 0))
    wtr.write(b"pipe")
    assert await asyncio.wait_for(rproto.done, SOON) == b"pipe"
    wtr.close()
    rtr.close()


async def _sockets_and_sendfile(loop, tmp_path):
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        await loop.sock_sendall(a, b"sock")
        assert await loop.sock_recv(b, 4) == b"sock"
    path = tmp_path / "data"
    data = os.urandom(300_000)
    path.write_bytes(data)
    server = await loop.create_server(lambda: Collect(loop, len(data)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    with open(path, "rb") as f:
        assert await loop.sendfile(tr, f) == len(data)
    tr.close()
    server.close()
    await server.wait_closed()
    await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)


async def _unix_server(loop, tmp_path):
    path = str(tmp_path / "s.sock")
    server = await loop.create_unix_server(Echo, path)
    tr, proto = await loop.create_unix_connection(lambda: Collect(loop, 4), path)
    tr.write(b"unix")
    assert await asyncio.wait_for(proto.done, SOON) == b"unix"
    tr.close()
    server.close()
    await server.wait_closed()


def test_no_module_adds_attributes_to_the_loop(loop, tls_contexts, tmp_path):
    server_ctx, client_ctx = tls_contexts
    before = set(vars(loop))

    async def main():
        await _tls_round_trips(loop, server_ctx, client_ctx)
        await _datagrams(loop)
        await _pipes(loop)
        await _sockets_and_sendfile(loop, tmp_path)
        await _unix_server(loop, tmp_path)
        await asyncio.sleep(0.01)  # the transports' connection_lost callbacks

    run(loop, main())
    assert set(vars(loop)) - before == set()
    assert before - set(vars(loop)) == set()
