"""The write fast path (issue 9): on the native core, StreamTransport.write and
UDPTransport.sendto run in C (uvloop_like/_core.c, "write fast path"), bound on
each transport; whatever the C path does not do itself goes to the Python
method.  The behaviour tests run on both loops (and, with UVLOOP_LIKE_PURE=1,
on uvloop_like's Python core): every path the C code takes or hands back
(bytes, bytearray, memoryviews, partial writes, errors, writes after
write_eof/close/connection_lost) must look exactly like stdlib's.
"""
from __future__ import annotations

import array
import asyncio
import gc
import logging
import socket
import struct
import sys
import warnings
import weakref

import pytest
from loop_testutil import full_gc, is_uvloop_like, run
from stream_testutil import Recorder

import uvloop_like

NATIVE = uvloop_like.core() == "native"
native_only = pytest.mark.skipif(not NATIVE, reason="the native core's own objects (CPython's default)")


async def _unix_pair(loop, factory=None):
    """(transport, protocol, peer): a transport over one end of a socketpair,
    the other end a plain non-blocking socket."""
    a, b = socket.socketpair()
    b.setblocking(False)
    tr, pr = await loop.create_connection(factory or (lambda: Recorder(loop)), sock=a)
    return tr, pr, b


async def _tcp_pair(loop, factory=None, rcvbuf=None):
    """As _unix_pair over TCP loopback; ``rcvbuf`` shrinks the peer's receive
    buffer (set before the connection, so the window is small from the start)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    peer_side = socket.socket()
    if rcvbuf is not None:
        peer_side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    peer_side.setblocking(False)
    try:
        peer_side.connect(listener.getsockname())
    except BlockingIOError:
        pass
    conn, _ = await loop.sock_accept(listener)
    listener.close()
    tr, pr = await loop.create_connection(factory or (lambda: Recorder(loop)), sock=conn)
    return tr, pr, peer_side


async def _recv_exactly(loop, sock, n):
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, min(n - len(got), 1 << 20))
        if not chunk:
            break
        got += chunk
    return bytes(got)


async def _recv_until_eof(loop, sock):
    got = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            return bytes(got)
        got += chunk


def _bytes_sent(loop):
    return loop.stats()["bytes_sent"] if is_uvloop_like(loop) else None


def test_write_of_every_bytes_like_kind_arrives_in_order(loop):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        sent0 = _bytes_sent(loop)
        ints = array.array("I", [1, 2, 3])                 # a view of wider items
        grid = memoryview(bytearray(b"0123456789ab")).cast("B", (3, 4))  # two dimensions
        pieces = [b"bytes,", bytearray(b"bytearray,"), memoryview(b"view,"),
                  memoryview(bytearray(b"xxslice,"))[2:], memoryview(ints), grid, b"", bytearray(),
                  memoryview(b"")]
        expected = b"bytes,bytearray,view,slice," + ints.tobytes() + b"0123456789ab"
        buf = bytearray(b"mutated-after-write,")
        for data in pieces:
            assert tr.write(data) is None
        tr.write(buf)
        buf[:] = b"X" * len(buf)  # sent (or copied) at write(): the change is not sent
        expected += b"mutated-after-write,"
        assert await _recv_exactly(loop, peer, len(expected)) == expected
        if sent0 is not None:
            assert _bytes_sent(loop) - sent0 == len(expected)
        tr.close()
        assert await pr.lost is None
        assert await _recv_until_eof(loop, peer) == b""
        pr.assert_ok()
        peer.close()
    run(loop, main())


async def _usable_then_closed(loop, tr, pr, peer, data, by_keyword=False):
    """After a refused write, the transport still sends ``data`` (passed as
    write(data=...) when by_keyword); then both ends close."""
    if by_keyword:
        tr.write(data=data)
    else:
        tr.write(data)
    assert await _recv_exactly(loop, peer, len(data)) == data
    tr.close()
    await pr.lost
    peer.close()


@pytest.mark.parametrize("data", ["text", 42, None, [b"a"], object()],
                         ids=["str", "int", "None", "list", "object"])
def test_write_of_non_bytes_raises_type_error(loop, data):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        with pytest.raises(TypeError) as info:
            tr.write(data)
        assert str(info.value) == f"data argument must be a bytes-like object, not {type(data).__name__!r}"
        await _usable_then_closed(loop, tr, pr, peer, b"still usable")
    run(loop, main())


def test_write_with_wrong_arguments_raises_type_error(loop):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        for args, kwargs in [((), {}), ((b"a", b"b"), {}), ((), {"data": b"a", "other": 1})]:
            with pytest.raises(TypeError):
                tr.write(*args, **kwargs)
        await _usable_then_closed(loop, tr, pr, peer, b"keyword", by_keyword=True)  # stdlib's name
    run(loop, main())


def test_write_after_write_eof_raises(loop):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        tr.write(b"before")
        tr.write_eof()
        for data in (b"after", bytearray(b"after"), b""):
            with pytest.raises(RuntimeError, match=r"^Cannot call write\(\) after write_eof\(\)$"):
                tr.write(data)
        assert await _recv_until_eof(loop, peer) == b"before"
        tr.close()
        assert await pr.lost is None
        peer.close()
    run(loop, main())


def test_write_after_close_is_dropped(loop):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        tr.write(b"sent")
        tr.close()
        assert tr.write(b"dropped") is None
        assert tr.write(bytearray(b"dropped")) is None
        assert await pr.lost is None
        assert await _recv_until_eof(loop, peer) == b"sent"
        peer.close()
    run(loop, main())


def test_writes_after_connection_lost_are_counted_and_warned_as_stdlib(loop, caplog):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        tr.abort()
        await pr.lost
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(8):
                assert tr.write(b"lost") is None
        # stdlib: dropped silently, then one warning per write from the
        # LOG_THRESHOLD_FOR_CONNLOST_WRITES-th (5) on; abort() counted 1.
        warned = [r for r in caplog.records if r.getMessage() == "socket.send() raised exception."]
        assert len(warned) == 4
        peer.close()
    run(loop, main())


def test_partial_writes_queue_the_rest_in_order_with_flow_control(loop):
    async def main():
        tr, pr, peer = await _tcp_pair(loop, rcvbuf=4096)
        tr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        sent0 = _bytes_sent(loop)
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB: the kernel takes part of it
        tail = bytearray(b"tail-bytearray")
        expected = big + b"then-bytes" + bytes(tail) + b"view"
        tr.write(big)
        assert tr.get_write_buffer_size() > 0
        assert pr.events[-1] == "pause"  # strictly above the high mark
        tr.write(b"then-bytes")  # behind the queued rest, never before it
        tr.write(tail)  # (not changed afterwards: 3.12+'s stdlib queues the object itself)
        tr.write(memoryview(b"view"))
        got = await _recv_exactly(loop, peer, len(expected))
        assert len(got) == len(expected)
        assert got == expected
        while "resume" not in pr.events:
            await asyncio.sleep(0.001)
        assert pr.events.count("pause") == 1
        assert tr.get_write_buffer_size() == 0
        tr.write(b"fast again")
        assert await _recv_exactly(loop, peer, 10) == b"fast again"
        if sent0 is not None:
            assert _bytes_sent(loop) - sent0 == len(expected) + 10
        tr.close()
        assert await pr.lost is None
        pr.assert_ok()
        peer.close()
    run(loop, main())


def test_write_error_goes_to_connection_lost_as_stdlib(loop, exc_handler):
    async def main():
        tr, pr, peer = await _tcp_pair(loop)
        tr.pause_reading()  # the reset reaches write(), not the read side
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        await asyncio.sleep(0.05)
        for _ in range(3):
            tr.write(b"x" * 1024)
            if pr.events[-1] == "lost" or tr.is_closing():
                break
            await asyncio.sleep(0.02)
        exc = await pr.lost
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
        assert len(exc_handler) == 0  # a reset is not reported (stdlib's _fatal_error)
        pr.assert_ok()
    run(loop, main())


def test_write_error_in_debug_mode_logs_the_exception(loop, caplog):
    async def main():
        loop.set_debug(True)
        try:
            tr, pr, peer = await _tcp_pair(loop)
            tr.pause_reading()
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            await asyncio.sleep(0.05)
            with caplog.at_level(logging.DEBUG, logger="asyncio"):
                for _ in range(3):
                    tr.write(b"x")
                    if tr.is_closing():
                        break
                    await asyncio.sleep(0.02)
                exc = await pr.lost
            # _fatal_error logs with exc_info=True: the write's exception is
            # the one being handled, as in the Python method's except clause.
            logged = [r for r in caplog.records if "Fatal write error" in r.getMessage()]
            assert logged and logged[0].exc_info and logged[0].exc_info[1] is exc
        finally:
            loop.set_debug(False)
    run(loop, main())


def test_abandoned_transport_that_wrote_is_collected_and_warns(loop):
    class Forgetful(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hello")  # through the fast path, on the native core

    async def main():
        tr, pr, peer = await _unix_pair(loop, Forgetful)
        assert await _recv_exactly(loop, peer, 5) == b"hello"
        # Neither reading nor writing now.  (Not from connection_made: 3.9's
        # stdlib starts reading after it even when it paused.)
        tr.pause_reading()
        ref = weakref.ref(tr)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del tr, pr
            full_gc()
        warned = [w for w in caught if issubclass(w.category, ResourceWarning)
                  and "unclosed transport" in str(w.message)]
        assert len(warned) == 1
        # (The warning's source is the transport: recorded, it keeps it.)
        del caught, warned
        full_gc()
        assert ref() is None
        assert await _recv_until_eof(loop, peer) == b""  # its descriptor was closed
        peer.close()
    run(loop, main())


def test_udp_sendto_fast_and_fallback_paths(loop):
    async def main():
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        dest = peer.getsockname()
        tr, pr = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        sent0 = _bytes_sent(loop)
        datagrams = [b"first", b"second", bytearray(b"third"), memoryview(b"fourth")]
        for data in datagrams:
            assert tr.sendto(data, dest) is None
        got = []
        while len(got) < 4:
            got.append(await loop.sock_recv(peer, 100))
        assert got == [bytes(d) for d in datagrams]
        if sent0 is not None:
            assert _bytes_sent(loop) - sent0 == sum(len(d) for d in datagrams)
        tr.close()
        peer.close()
    run(loop, main())


class _Errors(asyncio.DatagramProtocol):
    def __init__(self):
        self.errors = []

    def error_received(self, exc):
        self.errors.append(exc)


def test_udp_connected_sendto_and_refused_error(loop):
    async def main():
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(("127.0.0.1", 0))
        dest = closed.getsockname()
        closed.close()  # nobody listens there: the kernel answers ICMP port unreachable
        tr, pr = await loop.create_datagram_endpoint(_Errors, remote_addr=dest)
        with pytest.raises(ValueError, match="Invalid address"):
            tr.sendto(b"x", ("127.0.0.1", dest[1] + 1 if dest[1] < 65535 else 1))
        for _ in range(20):
            tr.sendto(b"ping")        # the remote address
            tr.sendto(b"ping", dest)  # the same address, given
            if pr.errors:
                break
            await asyncio.sleep(0.01)
        assert pr.errors and all(isinstance(e, ConnectionRefusedError) for e in pr.errors)
        assert not tr.is_closing()  # an OSError from sendto is not fatal
        tr.close()
    run(loop, main())


# --- the native core's own objects ---------------------------------------------


@native_only
def test_native_write_is_bound_per_transport():
    loop = uvloop_like.new_event_loop()
    try:
        async def main():
            tr, pr, peer = await _unix_pair(loop)
            udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            assert type(vars(tr)["write"]).__name__ == "StreamWrite"
            assert type(vars(udp)["sendto"]).__name__ == "DatagramSend"
            assert "StreamWrite of <StreamTransport" in repr(tr.write)
            tr.close()
            udp.close()
            await pr.lost
            peer.close()
        run(loop, main())
    finally:
        loop.close()


@pytest.mark.skipif(not NATIVE, reason="the native core binds nothing on the Python core")
def test_subclass_overriding_write_or_sendto_keeps_its_override(monkeypatch):
    from uvloop_like.transports import datagram as datagram_mod
    from uvloop_like.transports import stream as stream_mod

    calls = []

    class Stream(stream_mod.StreamTransport):
        def write(self, data):
            calls.append(("write", bytes(data)))
            super().write(data)

    class UDP(datagram_mod.UDPTransport):
        def sendto(self, data, addr=None):
            calls.append(("sendto", bytes(data)))
            super().sendto(data, addr)

    monkeypatch.setattr(stream_mod, "StreamTransport", Stream)
    monkeypatch.setattr(datagram_mod, "UDPTransport", UDP)
    loop = uvloop_like.new_event_loop()
    try:
        async def main():
            tr, pr, peer = await _unix_pair(loop)
            assert type(tr) is Stream and "write" not in vars(tr)
            tr.write(b"over")
            assert await _recv_exactly(loop, peer, 4) == b"over"
            recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            recv.bind(("127.0.0.1", 0))
            recv.setblocking(False)
            udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            assert type(udp) is UDP and "sendto" not in vars(udp)
            udp.sendto(b"dgram", recv.getsockname())
            assert await loop.sock_recv(recv, 100) == b"dgram"
            assert calls == [("write", b"over"), ("sendto", b"dgram")]
            tr.close()
            udp.close()
            await pr.lost
            peer.close()
            recv.close()
        run(loop, main())
    finally:
        loop.close()


@native_only
def test_replaced_try_write_bytes_is_honoured():
    """A handle's try_write_bytes replaced (as tests do to simulate a full
    socket): the Python method runs, and calls the replacement."""
    loop = uvloop_like.new_event_loop()
    try:
        async def main():
            tr, pr, peer = await _unix_pair(loop)
            handle = tr._handle
            real = handle.try_write_bytes
            seen = []

            def half(data, size):
                seen.append(size)
                return real(data, size // 2)

            handle.try_write_bytes = half
            tr.write(b"0123456789")
            assert seen == [10]
            assert await _recv_exactly(loop, peer, 10) == b"0123456789"
            handle.try_write_bytes = real
            tr.close()
            await pr.lost
            peer.close()
        run(loop, main())
    finally:
        loop.close()


@native_only
def test_write_through_a_kept_reference_after_the_transport_died():
    """The bound write holds its transport weakly (so an abandoned transport
    is collected, rule 12): kept past the transport's death it refuses,
    rather than write to a closed handle."""
    loop = uvloop_like.new_event_loop()
    try:
        async def main():
            tr, pr, peer = await _unix_pair(loop)
            write = tr.write
            tr.pause_reading()
            ref = weakref.ref(tr)
            pr.transport = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                del tr, pr
                full_gc()
            assert ref() is None
            with pytest.raises(RuntimeError, match="garbage-collected"):
                write(b"x")
            assert "StreamWrite of None" in repr(write)
            peer.close()
        run(loop, main())
    finally:
        loop.close()


@native_only
def test_writer_constructors_refuse_bad_input():
    from uvloop_like import _core

    loop = uvloop_like.new_event_loop()
    try:
        async def main():
            tr, pr, peer = await _unix_pair(loop)
            udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            cases = [
                (_core.StreamWrite, (None, None, None), TypeError),
                (_core.StreamWrite, (1, 2), TypeError),
                (_core.StreamWrite, (tr, tr._handle, None), TypeError),          # not callable
                (_core.StreamWrite, (tr, object(), len), TypeError),            # no such slots
                (_core.StreamWrite, (tr, udp._handle, len), TypeError),         # not a stream
                (_core.StreamWrite, (1, tr._handle, len), TypeError),           # not weakly referable
                (_core.DatagramSend, (object(), udp._handle, len), AttributeError),  # no _send_now
                (_core.DatagramSend, (udp, tr._handle, len), TypeError),        # not a UDP handle
            ]
            for kind, args, error in cases:
                with pytest.raises(error):
                    kind(*args)
            with pytest.raises(TypeError):
                _core.StreamWrite(tr, tr._handle, len, extra=1)
            tr.close()
            udp.close()
            await pr.lost
            peer.close()
        run(loop, main())
    finally:
        loop.close()


def _blocks():
    gc.collect()
    return sys.getallocatedblocks()


_NO_BLOCK_COUNT = pytest.mark.skipif(
    not hasattr(sys, "getallocatedblocks") or sys.getallocatedblocks() == 0,
    reason="sys.getallocatedblocks() is CPython's, and counts nothing under PYTHONMALLOC=malloc")


@_NO_BLOCK_COUNT
@pytest.mark.timeout(120)
def test_no_leak_over_many_writes_and_sends(loop):
    async def main():
        tr, pr, peer = await _unix_pair(loop)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        udp_peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_peer.bind(("127.0.0.1", 0))
        udp_peer.setblocking(False)
        dest = udp_peer.getsockname()
        udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        data, view, ba = b"d" * 64, memoryview(b"v" * 64), bytearray(b"b" * 64)

        def drain():
            for sock in (peer, udp_peer):
                while True:
                    try:
                        sock.recv(1 << 20)
                    except BlockingIOError:
                        break

        async def burst(n):
            for i in range(n):
                tr.write(data)
                tr.write(view)
                tr.write(ba)
                udp.sendto(data, dest)
                if i % 50 == 49:
                    drain()
                    if tr.get_write_buffer_size():
                        await asyncio.sleep(0)  # let queued writes complete
            drain()

        await burst(1000)
        refs = [sys.getrefcount(o) for o in (tr, udp, data, view, ba, dest)]
        before = _blocks()
        await burst(20000)  # 80,000 writes and sends
        after = _blocks()
        assert [sys.getrefcount(o) for o in (tr, udp, data, view, ba, dest)] == refs
        assert after - before < 1000, (before, after)
        tr.close()
        udp.close()
        await pr.lost
        peer.close()
        udp_peer.close()
    run(loop, main(), timeout=100)
