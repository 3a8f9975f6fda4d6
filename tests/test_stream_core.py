"""The stream-transport core shared by TCP, unix sockets and pipes (issue 8,
part C): the one guard around protocol callbacks (A11), the BufferedProtocol
read path (A12), writelines' argument check (A10), and loop.close() draining
write completions (A2).  Every test runs on stdlib asyncio and uvloop_like."""
from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest
from loop_testutil import is_uvloop_like, run
from stream_testutil import Recorder

# --- A12: a BufferedProtocol may resize or replace its buffer ---------------------


class _GrowingBuffer(asyncio.BufferedProtocol):
    """get_buffer() resizes the SAME bytearray on every call (or, with
    ``fresh``, hands out a new, larger one each time); everything received
    is collected in ``data``."""

    def __init__(self, loop, expected, fresh=False):
        self.fresh = fresh
        self.buf = bytearray(16)
        self.data = bytearray()
        self.calls = 0
        self.expected = expected
        self.done = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.calls += 1
        if self.fresh == "view":
            # The same memoryview every time (the reposting fast path).
            if self.calls == 1:
                self.view = memoryview(bytearray(100))
            return self.view
        if self.fresh:
            self.buf = bytearray(len(self.buf) + 7)
        else:
            self.buf.extend(b"\0" * 7)  # BufferError if the last export is still held
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += (self.view if self.fresh == "view" else self.buf)[:nbytes]
        if len(self.data) >= self.expected and not self.done.done():
            self.done.set_result(None)

    def eof_received(self):
        return None

    def connection_lost(self, exc):
        self.lost.set_result(exc)


@pytest.mark.parametrize("fresh", [False, True, "view"], ids=["resized", "new", "same_view"])
def test_buffered_protocol_may_resize_its_buffer(loop, fresh):
    payload = bytes(range(256)) * 2048   # 512 KiB: many reads into small buffers

    async def main():
        a, b = socket.socketpair()
        proto = _GrowingBuffer(loop, len(payload), fresh)
        tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
        sender = Recorder(loop)
        peer, _ = await loop.create_unix_connection(lambda: sender, sock=b)
        peer.write(payload)
        await proto.done
        assert bytes(proto.data) == payload
        assert proto.calls > 10
        peer.close()
        tr.close()
        assert await proto.lost is None
        await sender.lost
    run(loop, main())


class _CompactingBuffer(_GrowingBuffer):
    """buffer_updated() resizes the buffer the read just landed in (a
    protocol that compacts its buffer there); with ``mixed``, get_buffer()
    also alternates between one memoryview and a bytearray."""

    def __init__(self, loop, expected, mixed=False):
        super().__init__(loop, expected)
        self.mixed = mixed
        self.view = memoryview(bytearray(50))
        self.last = None

    def get_buffer(self, sizehint):
        self.calls += 1
        if self.mixed and self.calls % 3:
            self.last = self.view
        else:
            self.last = self.buf
        return self.last

    def buffer_updated(self, nbytes):
        self.data += self.last[:nbytes]
        if self.last is self.buf:
            # BufferError here if the read's export is still held.
            self.buf[:] = bytearray(16 + self.calls % 5)
        if len(self.data) >= self.expected and not self.done.done():
            self.done.set_result(None)


@pytest.mark.parametrize("mixed", [False, True], ids=["bytearray", "mixed"])
def test_buffered_protocol_may_resize_its_buffer_in_buffer_updated(loop, mixed):
    payload = bytes(range(256)) * 512   # 128 KiB

    async def main():
        a, b = socket.socketpair()
        proto = _CompactingBuffer(loop, len(payload), mixed)
        tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
        b.setblocking(False)
        await loop.sock_sendall(b, payload)
        await proto.done
        assert bytes(proto.data) == payload
        tr.close()
        assert await proto.lost is None
        b.close()
    run(loop, main())


class _NoneBuffer(_GrowingBuffer):
    def get_buffer(self, sizehint):
        self.calls += 1
        return None


def test_buffered_protocol_get_buffer_returning_none_is_fatal(loop, exc_handler):
    async def main():
        a, b = socket.socketpair()
        proto = _NoneBuffer(loop, 1)
        b.sendall(b"data")  # (before: uvloop_like asks for a buffer before the first read)
        await loop.create_unix_connection(lambda: proto, sock=a)
        exc = await asyncio.wait_for(proto.lost, 10)
        assert isinstance(exc, TypeError)
        assert [type(e) for e in exc_handler.exceptions()] == [TypeError]
        assert "get_buffer" in exc_handler.calls[0]["message"]
        b.close()
    run(loop, main())


# --- A11: an exception in a read pipe's data_received -----------------------------


class _Raising(asyncio.Protocol):
    def __init__(self, loop):
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        raise ZeroDivisionError("in data_received")

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def test_read_pipe_data_received_error_reaches_the_exception_handler(loop, exc_handler):
    async def main():
        rfd, wfd = os.pipe()
        proto = _Raising(loop)
        with open(rfd, "rb", buffering=0) as pipe:
            tr, _ = await loop.connect_read_pipe(lambda: proto, pipe)
            os.write(wfd, b"boom")
            for _ in range(200):
                if exc_handler.calls:
                    break
                await asyncio.sleep(0.005)
            assert [type(e) for e in exc_handler.exceptions()] == [ZeroDivisionError]
            if is_uvloop_like(loop):
                # The stream core's guard closes the transport (_fatal_error),
                # as uvloop does; stdlib's callback handler leaves it open.
                assert tr.is_closing()
                await proto.lost
            tr.close()
            await proto.lost
        os.close(wfd)
    run(loop, main())


def test_stream_data_received_error_closes_through_fatal_error(loop, exc_handler):
    async def main():
        a, b = socket.socketpair()
        proto = _Raising(loop)
        tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
        b.sendall(b"boom")
        exc = await proto.lost
        assert isinstance(exc, ZeroDivisionError)
        assert [type(e) for e in exc_handler.exceptions()] == [ZeroDivisionError]
        assert "data_received" in exc_handler.calls[0]["message"]
        b.close()
    run(loop, main())


# --- A10: writelines of a non-contiguous memoryview --------------------------------


async def _unix_pair(loop):
    """Two connected unix stream transports over a socketpair: (transport,
    its Recorder, the peer transport, the peer's Recorder)."""
    a, b = socket.socketpair()
    rec = Recorder(loop)
    tr, _ = await loop.create_unix_connection(lambda: rec, sock=a)
    sink = Recorder(loop)
    peer, _ = await loop.create_unix_connection(lambda: sink, sock=b)
    return tr, rec, peer, sink


def test_writelines_non_contiguous_memoryview_raises_at_the_call(loop, request):
    if not is_uvloop_like(loop) and sys.version_info >= (3, 12):
        pytest.skip("stdlib 3.12+ writelines queues memoryviews and fails later (fatal error)")
    if not is_uvloop_like(loop) and sys.implementation.name == "pypy":
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="PyPy 3.9's stdlib writelines copies a non-contiguous "
                                "memoryview and sends its bytes, raising nothing"))

    async def main():
        tr, rec, peer, sink = await _unix_pair(loop)
        bad = memoryview(b"abcdefgh")[::2]
        with pytest.raises(TypeError, match="expected a bytes-like object"):
            tr.writelines([b"x", bad])
        with pytest.raises(TypeError, match="expected a bytes-like object"):
            tr.writelines([bad])
        assert not tr.is_closing()
        tr.writelines([b"still ", memoryview(b"usable")])
        await sink.wait_for_bytes(12)
        assert bytes(sink.data) == b"still usable"
        tr.close()
        peer.close()
        await rec.lost
        await sink.lost
    run(loop, main())


# --- write() of buffers: every kind and size sends its bytes --------------------------


async def _writes_arrive_in_order(loop, pieces):
    """write() each piece on a unix socketpair transport: the peer gets all
    their bytes, in order, and the transport stays open; then both close."""
    tr, rec, peer, sink = await _unix_pair(loop)
    expected = bytearray()
    for data in pieces:
        tr.write(data)
        expected += memoryview(data).cast("B")
    await sink.wait_for_bytes(len(expected))
    assert bytes(sink.data) == bytes(expected)
    assert not tr.is_closing()
    tr.close()
    peer.close()
    await rec.lost
    await sink.lost


def test_write_of_buffers_sends_their_bytes_in_order(loop):
    """bytes, bytearray, a view of a bytearray and a view of bytes
    (uvloop_like hands bytes to C as they are and the others as an export of
    their memory), of sizes around a page and beyond, arrive intact and in
    order.  (A view of wider items: the next test.)"""
    sizes = (1, 4095, 4096, 4097, 30000)

    def pieces():
        out = []
        for size in sizes:
            raw = os.urandom(size)
            out += [raw, bytearray(raw), memoryview(bytearray(raw)), memoryview(raw)[:size],
                    memoryview(bytearray(b"\x00" + raw))[1:]]
        return out

    async def main():
        await _writes_arrive_in_order(loop, pieces())
    run(loop, main())


def test_write_of_a_view_of_wider_items_queued_sends_its_bytes(loop, request):
    """A memoryview of 4-byte items written while earlier data is still
    queued (4 MiB first, more than a unix socket buffers) sends all its
    bytes, in order."""
    if not is_uvloop_like(loop) and sys.version_info >= (3, 12):
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="stdlib 3.12+ queues the view and counts its sendmsg() "
                                "progress in items, not bytes: IndexError (a fatal write error)"))

    async def main():
        await _writes_arrive_in_order(
            loop, [os.urandom(4 * 1024 * 1024), memoryview(bytearray(os.urandom(4096))).cast("I")])
    run(loop, main())


def test_write_non_contiguous_memoryview_is_a_fatal_write_error(loop, exc_handler):
    """As stdlib's send(): write() returns, the exception handler gets the
    BufferError, the transport closes, nothing is sent.  On PyPy, whose
    socket.send (and cffi's from_buffer) copy a non-contiguous view, both
    loops send its bytes instead and the transport stays open."""
    async def main():
        tr, rec, peer, sink = await _unix_pair(loop)
        assert tr.write(memoryview(b"abcdefgh")[::2]) is None
        if sys.implementation.name == "pypy":
            await sink.wait_for_bytes(4)
            assert bytes(sink.data) == b"aceg"
            assert not tr.is_closing()
            assert exc_handler.calls == []
            tr.close()
            assert await rec.lost is None
        else:
            assert isinstance(await rec.lost, BufferError)
            await sink.eof
            assert bytes(sink.data) == b""
            assert [type(c.get("exception")) for c in exc_handler.calls] == [BufferError]
            assert exc_handler.calls[0]["message"] == "Fatal write error on socket transport"
        peer.close()
        await sink.lost
    run(loop, main())


# --- A2: loop.close() drains write completions without raising -----------------------


@pytest.mark.parametrize("variant", ["queued", "peer_gone", "after_abort"])
def test_loop_close_with_queued_writes_does_not_raise(loop, variant):
    a, b = socket.socketpair()
    holder = []

    async def main():
        rec = Recorder(loop)
        tr, _ = await loop.create_unix_connection(lambda: rec, sock=a)
        holder.append(tr)
        tr.write(b"x" * (8 << 20))       # far more than the socket buffers hold
        tr.write(b"y" * (1 << 20))
        assert tr.get_write_buffer_size() > 0
        if variant == "peer_gone":
            b.close()
            await asyncio.sleep(0.01)
            tr.write(b"z" * 65536)
        if variant == "after_abort":
            tr.abort()
            assert tr.get_write_buffer_size() == 0
        tr.close()

    run(loop, main())
    loop.close()            # drains what libuv completes while closing: never raises
    b.close()
