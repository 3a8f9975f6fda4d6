"""After close, nothing of a connection stays alive: transports, protocols,
servers (plain and TLS, TCP and unix, and the streams API on top) are
collected once the test drops its references (weak references dead after a
full collection)."""
from __future__ import annotations

import asyncio
import weakref

import pytest
from loop_testutil import full_gc, run

from ._util import Recorder, close_server


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_transports_and_protocols_collected_after_close(loop, family, sock_path, tls,
                                                          server_ctx, client_ctx):
    refs = []
    server_protos = []

    def factory():
        proto = Recorder(loop)
        server_protos.append(proto)
        return proto

    async def main():
        kw = dict(ssl=server_ctx) if tls else {}
        client_kw = dict(ssl=client_ctx, server_hostname="localhost") if tls else {}
        if family == "tcp":
            server = await loop.create_server(factory, "127.0.0.1", 0, **kw)
            host, port = server.sockets[0].getsockname()[:2]
        else:
            server = await loop.create_unix_server(factory, sock_path, **kw)
        for i in range(10):
            if family == "tcp":
                tr, proto = await loop.create_connection(lambda: Recorder(loop), host, port, **client_kw)
            else:
                tr, proto = await loop.create_unix_connection(lambda: Recorder(loop), sock_path,
                                                              **client_kw)
            tr.write(b"data")
            await asyncio.sleep(0)
            # Half close from our side, half from the server's.
            if i % 2:
                tr.close()
            else:
                while not server_protos or len(server_protos) <= i or \
                        server_protos[i].transport is None:
                    await asyncio.sleep(0.001)
                server_protos[i].transport.close()
            await proto.lost
            refs.extend([weakref.ref(tr), weakref.ref(proto)])
            del tr, proto
        for p in server_protos:
            await p.lost
            refs.extend([weakref.ref(p), weakref.ref(p.transport)])
        del server_protos[:]
        refs.append(weakref.ref(server))
        await close_server(server)
        del server
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    full_gc()
    alive = [r() for r in refs if r() is not None]
    assert not alive, alive[:5]


def test_streams_collected_after_close(loop, family, sock_path):
    refs = []

    async def handler(reader, writer):
        refs.extend([weakref.ref(reader), weakref.ref(writer), weakref.ref(writer.transport)])
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        if family == "tcp":
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            host, port = server.sockets[0].getsockname()[:2]
        else:
            server = await asyncio.start_unix_server(handler, sock_path)
        for _ in range(10):
            if family == "tcp":
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_unix_connection(sock_path)
            writer.write(b"line\n")
            assert await reader.readline() == b"line\n"
            writer.close()
            await writer.wait_closed()
            refs.extend([weakref.ref(reader), weakref.ref(writer), weakref.ref(writer.transport)])
            del reader, writer
        await close_server(server)
        del server
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    full_gc()
    alive = [r() for r in refs if r() is not None]
    assert not alive, alive[:5]
