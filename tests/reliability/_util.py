"""Helpers for the reliability suite (not collected: the name starts with _)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile

import pytest
from stream_testutil import Recorder  # noqa: F401 - re-exported for the tests here

FAMILIES = ("tcp", "unix")


def open_fds():
    """The descriptors this process has open, as a set of numbers."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


async def baseline_fds(loop):
    """open_fds() once the loop has opened what it keeps for its lifetime:
    libuv opens one spare descriptor (/dev/null, its EMFILE reserve) the
    first time it adopts a stream, and closes it with the loop."""
    a, b = socket.socketpair()
    try:
        tr, _ = await loop.create_unix_connection(asyncio.Protocol, sock=a)
        tr.close()
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        b.close()
    return open_fds()


def pattern(size, seed=0):
    """``size`` bytes that are not all alike, so that a lost, duplicated or
    reordered chunk changes a digest (a repeated 251-byte cycle: 251 is prime,
    so no power-of-two chunk boundary lines up with it)."""
    block = bytes((i * 7 + seed) % 251 for i in range(251))
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


@contextlib.contextmanager
def short_tmpdir():
    """A temporary directory with a path short enough for a unix socket
    (sun_path is 108 bytes; pytest's tmp_path can be longer)."""
    path = tempfile.mkdtemp(prefix="uvl-rel-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def connected_pair(loop, family, server_factory, client_factory, path=None, **client_kw):
    """A server with one accepted connection: (server, client transport,
    client protocol, server protocol).  ``path`` is the unix socket's path
    (family "unix")."""
    accepted = loop.create_future()

    def factory():
        proto = server_factory()
        if not accepted.done():
            accepted.set_result(proto)
        return proto

    if family == "tcp":
        server = await loop.create_server(factory, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        transport, proto = await loop.create_connection(client_factory, host, port, **client_kw)
    else:
        server = await loop.create_unix_server(factory, path)
        transport, proto = await loop.create_unix_connection(client_factory, path, **client_kw)
    server_proto = await accepted
    made = getattr(server_proto, "made", None)   # a Recorder: wait for connection_made
    if made is not None:
        await made
    return server, transport, proto, server_proto


def known_uvloop_like_bug(request, loop, reason):
    """Mark this test as an expected failure on uvloop_like (strict: once the
    bug is fixed the test passes and the mark must go).  For a reported,
    unfixed difference from stdlib; stdlib still has to pass the test."""
    if type(loop).__module__.startswith("uvloop_like"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


async def close_server(server):
    server.close()
    await server.wait_closed()
