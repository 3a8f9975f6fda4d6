"""Cancelling a connection attempt: mid-connect (a SYN nobody answers: the
listener's accept queue is full), mid-TLS-handshake (a peer that never
answers), and at every early step of a connect that would succeed.  Nothing
may leak: no descriptor, no libuv handle (the fixture checks), no
exception-handler call (the fixture checks)."""
from __future__ import annotations

import asyncio
import socket

import pytest
from loop_testutil import run

from ._util import Recorder, baseline_fds, close_server, open_fds


async def _quiet(loop):
    for _ in range(5):
        await asyncio.sleep(0)


def _full_listener():
    """A listener whose accept queue is full (listen(0) takes one), so a
    further connect() stays in SYN_SENT: a connect in progress to cancel.
    Returns (listener, the sockets that fill it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(listener.getsockname())
        fillers.append(c)
    return listener, fillers


def test_cancel_mid_connect(loop):
    async def main():
        before = await baseline_fds(loop)
        listener, fillers = _full_listener()
        host, port = listener.getsockname()
        for delay in (0, 0.01, 0.05):
            task = asyncio.ensure_future(loop.create_connection(asyncio.Protocol, host, port))
            await asyncio.sleep(delay)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # The same with a socket given as sock= is not possible (it must be
        # connected); sock_connect on our own socket instead: cancelling
        # leaves the socket to us, open.
        sock = socket.socket()
        sock.setblocking(False)
        task = asyncio.ensure_future(loop.sock_connect(sock, (host, port)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sock.fileno() >= 0
        sock.close()
        for c in fillers:
            c.close()
        listener.close()
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())


def test_cancel_mid_tls_handshake(loop, client_ctx):
    async def main():
        before = await baseline_fds(loop)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for delay in (0, 0.01, 0.05):
            task = asyncio.ensure_future(loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"))
            peer, _ = await loop.sock_accept(listener)
            assert (await loop.sock_recv(peer, 65536))[:1] == b"\x16"   # ClientHello sent
            await asyncio.sleep(delay)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Our side is closed: the peer reads EOF.
            while await loop.sock_recv(peer, 65536):
                pass
            peer.close()
        listener.close()
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_cancel_at_every_step(loop, family, sock_path, tls, server_ctx, client_ctx):
    """Cancel a connect that would succeed after 0, 1, 2, ... loop iterations:
    either it raises CancelledError and leaves nothing open, or it completed
    and its transport works and closes normally."""
    async def main():
        before = await baseline_fds(loop)
        accepted = []

        def factory():
            proto = Recorder(loop)
            accepted.append(proto)
            return proto

        kw = dict(ssl=server_ctx) if tls else {}
        if family == "tcp":
            server = await loop.create_server(factory, "127.0.0.1", 0, **kw)
            host, port = server.sockets[0].getsockname()[:2]
        else:
            server = await loop.create_unix_server(factory, sock_path, **kw)
        client_kw = dict(ssl=client_ctx, server_hostname="localhost") if tls else {}
        outcomes = []
        for steps in range(12):
            if family == "tcp":
                coro = loop.create_connection(lambda: Recorder(loop), host, port, **client_kw)
            else:
                coro = loop.create_unix_connection(lambda: Recorder(loop), sock_path, **client_kw)
            task = asyncio.ensure_future(coro)
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                tr, proto = await task
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                continue
            outcomes.append("connected")
            tr.write(b"x")
            tr.close()
            await proto.lost
            proto.assert_ok()
        assert "cancelled" in outcomes
        # Let the server side notice every closed client, then stop.
        for _ in range(200):
            if all(p.lost.done() for p in accepted if p.transport is not None):
                break
            await asyncio.sleep(0.01)
        for proto in accepted:
            if proto.events:      # (a TLS handshake that failed never makes it)
                proto.assert_ok()
        await close_server(server)
        await asyncio.sleep(0.05)
        await _quiet(loop)
        assert open_fds() == before

    run(loop, main())
