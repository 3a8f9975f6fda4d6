"""Datagram endpoints on the two ends of socket.socketpair(AF_UNIX, SOCK_DGRAM)
given as ``sock=`` (issue 8, A8).

Such a socket is connected to an unnamed peer: getpeername() is ''.  A
datagram from the peer reaches datagram_received with addr None, on both
loops.  ``transport.sendto(data)`` (no address) sends to the peer on
uvloop_like; stdlib's loop (3.9-3.13) decides "connected" by the peer name's
truth value, calls ``socket.sendto(data, None)`` and closes the transport
with a TypeError: that run is an expected failure (docs/limits.md).
"""
from __future__ import annotations

import asyncio
import socket

import pytest
from loop_testutil import SOON, is_uvloop_like, run


class Recorder(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.datagrams = []
        self.errors = []
        self.lost = loop.create_future()
        self.arrived = asyncio.Event()

    def datagram_received(self, data, addr):
        self.datagrams.append((data, addr))
        self.arrived.set()

    def error_received(self, exc):
        self.errors.append(exc)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def _wait_for(proto, count):
    async def until():
        while len(proto.datagrams) < count:
            proto.arrived.clear()
            await proto.arrived.wait()
    await asyncio.wait_for(until(), SOON)


def test_peer_datagram_arrives_with_addr_none(loop):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=b)
        try:
            assert transport.get_extra_info("peername") == ""
            a.send(b"first")
            a.send(b"")
            a.send(b"x" * 60000)
            await _wait_for(proto, 3)
            assert proto.datagrams == [(b"first", None), (b"", None), (b"x" * 60000, None)]
            assert proto.errors == []
        finally:
            transport.close()
            await proto.lost
        a.close()

    run(loop, main())


def test_sendto_without_address_reaches_the_peer(loop, exc_handler):
    """Both directions, each end a transport, sendto(data) with no address."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    async def main():
        ta, pa = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=a)
        tb, pb = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=b)
        try:
            ta.sendto(b"from a")
            tb.sendto(b"from b")
            tb.sendto(b"again from b", None)
            if not is_uvloop_like(loop) and exc_handler.calls:
                exc = exc_handler.calls[0].get("exception")
                if isinstance(exc, TypeError):
                    pytest.xfail("stdlib sends to address None on a socketpair end (its peer "
                                 "name '' counts as not connected) and fails with TypeError")
            await _wait_for(pa, 2)
            await _wait_for(pb, 1)
            assert pa.datagrams == [(b"from b", None), (b"again from b", None)]
            assert pb.datagrams == [(b"from a", None)]
            assert pa.errors == pb.errors == []
            assert exc_handler.calls == []
        finally:
            ta.close()
            tb.close()
            await pa.lost
            await pb.lost

    run(loop, main())


def test_sendto_without_address_to_a_raw_peer(loop, exc_handler):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=a)
        try:
            transport.sendto(b"hello")
            if not is_uvloop_like(loop) and exc_handler.calls:
                pytest.xfail("stdlib sends to address None on a socketpair end and fails "
                             "with TypeError")
            data = await asyncio.wait_for(loop.sock_recv(b, 100), SOON)
            assert data == b"hello"
            assert exc_handler.calls == []
        finally:
            transport.close()
            await proto.lost
            b.close()

    run(loop, main())


def test_sendto_with_an_address_on_a_socketpair_end_is_stdlibs(loop):
    """An explicit address keeps stdlib's behaviour: socket.sendto(data,
    addr) on the socketpair end, whose error goes to error_received and
    leaves the transport open."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=a)
        try:
            transport.sendto(b"hello", "/nonexistent/uvloop_like-test.sock")
            assert [type(e) for e in proto.errors] == [FileNotFoundError]
            assert not transport.is_closing()
        finally:
            transport.close()
            await proto.lost
            b.close()

    run(loop, main())
