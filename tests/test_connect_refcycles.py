"""No reference cycle from a failed connect (issue 8, A13).

A connect that fails sets its future's exception from the readiness
callback; that exception's traceback holds the callback's frame, and the
frame its ``fut`` argument: exception -> traceback -> frame -> future ->
exception, a cycle only the cyclic GC frees.  stdlib clears the local in a
``finally``; so must we.  anyio checks this (its test_happy_eyeballs_refcycles,
from CPython PR 124859), and its happy-eyeballs connect_tcp to 'localhost'
meets a refused ::1 before the listening 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import gc
import socket
import sys

import pytest
from loop_testutil import is_uvloop_like, run

pytestmark = pytest.mark.skipif(
    sys.implementation.name == "pypy",
    reason="gc.get_referrers and collection counts mean nothing without reference counting")


def _free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _xfail_stdlib_39(loop, request):
    if not is_uvloop_like(loop) and sys.version_info < (3, 10):
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="stdlib 3.9's sock_connect leaves its future in the "
                                "exception's traceback (a cycle); 3.10+ clears it"))


def _returned_it(ref, obj):
    """A finished task or future whose *result* is ``obj``: the test's own
    return path (3.12's wait_for keeps its inner task reachable), not the
    failed operation's future holding it as its exception (the cycle)."""
    return (isinstance(ref, asyncio.Future) and ref.done() and not ref.cancelled()
            and ref.exception() is None and ref.result() is obj)


def _foreign_referrers(obj):
    """What refers to ``obj`` besides frames (the test's own) and the
    futures that returned it."""
    # (A loop, not a comprehension: before 3.12 that would close over ``obj``
    # in a cell, one more referrer.)
    found = []
    for ref in gc.get_referrers(obj):
        if not isinstance(ref, type(sys._getframe())) and not _returned_it(ref, obj):
            found.append(ref)
    return found


def test_refused_sock_connect_leaves_no_cycle(loop, request):
    _xfail_stdlib_39(loop, request)
    port = _free_port()

    async def main():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
        except ConnectionRefusedError as exc:
            return exc
        finally:
            sock.close()

    exc = run(loop, main())
    assert isinstance(exc, ConnectionRefusedError)
    assert _foreign_referrers(exc) == []


def test_anyio_refused_connect_leaves_no_cycle(loop, request):
    _xfail_stdlib_39(loop, request)
    anyio = pytest.importorskip("anyio")
    port = _free_port()

    async def main():
        try:
            async with await anyio.connect_tcp("127.0.0.1", port):
                pass
        except OSError as exc:
            return exc.__cause__

    exc = run(loop, main())
    assert isinstance(exc, OSError)
    assert _foreign_referrers(exc) == []


def test_anyio_happy_eyeballs_leaves_no_garbage(loop):
    """connect_tcp('localhost') where localhost is ::1 then 127.0.0.1 (the
    loop's getaddrinfo answers so, as anyio's own fake_localhost_dns does):
    ::1 refused (nothing listens there), 127.0.0.1 accepted.  Nothing of the
    failed attempt is left for the cyclic GC."""
    anyio = pytest.importorskip("anyio")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        with socket.socket(socket.AF_INET6) as probe:
            try:
                probe.bind(("::1", port))  # so nothing listens on ::1 at this port
            except OSError:
                pytest.skip("::1 is not usable here")
        real_getaddrinfo = loop.getaddrinfo

        async def getaddrinfo(host, port, **kwargs):
            if host == "localhost":
                return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                         ("::1", port, 0, 0)),
                        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                         ("127.0.0.1", port))]
            return await real_getaddrinfo(host, port, **kwargs)

        loop.getaddrinfo = getaddrinfo

        async def main():
            async with await anyio.connect_tcp("localhost", port) as stream:
                return stream.extra(anyio.abc.SocketAttribute.remote_address)[0]

        run(loop, asyncio.sleep(0))
        gc.collect()
        gc.disable()
        try:
            assert run(loop, main()) == "127.0.0.1"
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            kinds = sorted({type(o).__name__ for o in gc.garbage
                            if isinstance(o, (asyncio.Future, BaseException))})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
            del loop.getaddrinfo
    assert kinds == []


def test_failed_sock_recv_leaves_no_cycle(loop):
    """The same for an operation that waited, then failed: sock_recv on a
    connection the peer resets."""
    import struct

    async def main():
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            client = socket.socket()
            client.setblocking(False)
            try:
                await loop.sock_connect(client, server.getsockname())
                peer, _ = server.accept()
                recv = loop.create_task(loop.sock_recv(client, 100))
                await asyncio.sleep(0.01)  # waiting on the selector now
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()  # RST
                try:
                    await recv
                except ConnectionResetError as exc:
                    return exc
                finally:
                    recv = None
            finally:
                client.close()

    exc = run(loop, main())
    assert isinstance(exc, ConnectionResetError)
    referrers = _foreign_referrers(exc)
    if referrers and not is_uvloop_like(loop):
        pytest.xfail("stdlib's _sock_recv callback keeps its future in its frame, which the "
                     "exception's traceback holds (it clears it only in sock_connect's)")
    assert referrers == []
