"""The peer resets the connection while we write: over TCP an RST (SO_LINGER
with a zero timeout, then close), over a unix socket a close with unread data.
connection_lost gets ConnectionResetError or BrokenPipeError, as with stdlib,
once; the exception handler is not called (the fixture checks); nothing
hangs; the descriptor is released."""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from loop_testutil import run

from ._util import Recorder, baseline_fds, open_fds, pattern

RESET_ERRORS = (ConnectionResetError, BrokenPipeError)


def _listener(family, path):
    if family == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
    sock.listen(8)
    sock.setblocking(False)
    return sock


def _reset(peer, family):
    if family == "tcp":
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


async def _connect(loop, family, listener, factory):
    if family == "tcp":
        return await loop.create_connection(factory, sock=_connected_client(family, listener))
    return await loop.create_unix_connection(factory, sock=_connected_client(family, listener))


def _connected_client(family, listener):
    client = socket.socket(listener.family, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    return client


@pytest.mark.parametrize("read_some", [False, True], ids=["unread", "read-some"])
def test_peer_reset_mid_write(loop, family, sock_path, read_some):
    async def main():
        before = await baseline_fds(loop)
        listener = _listener(family, sock_path)
        proto = Recorder(loop)
        tr, _ = await _connect(loop, family, listener, lambda: proto)
        peer, _ = await loop.sock_accept(listener)
        chunk = pattern(256 << 10)
        for _ in range(16):      # 4 MiB queued: the write is in progress
            tr.write(chunk)
        if read_some:
            got = await loop.sock_recv(peer, 65536)
            assert got and chunk.startswith(got)
        _reset(peer, family)
        # Keep writing until the transport notices (it must, and must stop).
        for _ in range(2000):
            if proto.lost.done():
                break
            if not tr.is_closing():
                tr.write(chunk[:4096])
            await asyncio.sleep(0.001)
        exc = await proto.lost
        assert isinstance(exc, RESET_ERRORS), repr(exc)
        assert tr.is_closing()
        tr.write(b"after the reset")     # dropped, no exception
        tr.close()
        await asyncio.sleep(0.01)
        proto.assert_ok()
        assert proto.events.count("lost") == 1
        listener.close()
        assert open_fds() == before

    run(loop, main())


def test_peer_reset_while_idle(loop, family, sock_path):
    """Nothing being written: the read side sees the reset (or EOF for a unix
    socket, which has no reset without unread data)."""
    async def main():
        before = await baseline_fds(loop)
        listener = _listener(family, sock_path)
        proto = Recorder(loop)
        tr, _ = await _connect(loop, family, listener, lambda: proto)
        peer, _ = await loop.sock_accept(listener)
        tr.write(b"hello")
        assert await loop.sock_recv(peer, 5) == b"hello"
        _reset(peer, family)
        exc = await proto.lost
        if family == "tcp":
            assert isinstance(exc, ConnectionResetError), repr(exc)
        else:
            assert exc is None or isinstance(exc, RESET_ERRORS), repr(exc)
        proto.assert_ok()
        listener.close()
        assert open_fds() == before

    run(loop, main())


def test_stream_writer_drain_raises_after_reset(loop, family, sock_path):
    """The streams API: drain() raises the reset (never hangs), and a later
    write + drain raises too."""
    async def main():
        before = await baseline_fds(loop)
        listener = _listener(family, sock_path)
        client = _connected_client(family, listener)
        if family == "tcp":
            reader, writer = await asyncio.open_connection(sock=client)
        else:
            reader, writer = await asyncio.open_unix_connection(sock=client)
        peer, _ = await loop.sock_accept(listener)
        _reset(peer, family)
        chunk = pattern(1 << 20)
        with pytest.raises(RESET_ERRORS):
            for _ in range(200):
                writer.write(chunk)
                await writer.drain()
        with pytest.raises(RESET_ERRORS):
            writer.write(b"x")
            await writer.drain()
        writer.close()
        with pytest.raises(RESET_ERRORS):
            await writer.wait_closed()
        listener.close()
        await asyncio.sleep(0.01)
        assert open_fds() == before

    run(loop, main())
