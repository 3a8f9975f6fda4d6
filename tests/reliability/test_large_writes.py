"""Writes larger than 4 GiB arrive whole (issue 8, A3).

libuv's uv_buf_init() takes an unsigned int: a write of 4 GiB + 16 bytes
used to send 16 bytes and report everything sent.  The payload is one
zero-filled bytes object (calloc'ed: its pages are the kernel's shared
zero page, so it costs little memory until someone copies it); a thread
reads the other end of a unix socketpair into one reusable buffer and
counts.  Bounded: a few seconds per GiB at worst.
"""
from __future__ import annotations

import asyncio
import errno
import socket
import sys
import threading

import pytest
from loop_testutil import is_uvloop_like, run

from ._util import Recorder

SIZE = 2 ** 32 + 16
TAIL = b"0123456789abcdef"


class _Counter(threading.Thread):
    """Reads ``sock`` to EOF into one buffer; keeps the count and the last bytes."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.count = 0
        self.last = b""
        self.error = None

    def run(self):
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        try:
            while True:
                n = self.sock.recv_into(view)
                if not n:
                    return
                self.count += n
                self.last = (self.last + bytes(view[max(0, n - 16):n]))[-16:]
        except OSError as exc:  # pragma: no cover - reported by the test
            self.error = exc
        finally:
            self.sock.close()


async def _send(loop, write):
    a, b = socket.socketpair()
    counter = _Counter(b)
    counter.start()
    rec = Recorder(loop)
    tr, _ = await loop.create_unix_connection(lambda: rec, sock=a)
    write(tr)
    tr.close()                       # after the queued data has gone
    await rec.lost
    await loop.run_in_executor(None, counter.join, 240)
    assert not counter.is_alive()
    assert counter.error is None
    return counter


@pytest.mark.timeout(300)
def test_write_larger_than_4_gib(loop):
    payload = bytes(SIZE)

    async def main():
        counter = await _send(loop, lambda tr: tr.write(payload))
        assert counter.count == SIZE

    run(loop, main(), timeout=280)


@pytest.mark.timeout(300)
def test_writelines_larger_than_4_gib(loop):
    if not is_uvloop_like(loop) and sys.version_info < (3, 12):
        pytest.skip("stdlib < 3.12 joins the pieces and copies them into its buffer: 8 GiB of memory")
    big = bytes(2 ** 32)

    async def main():
        counter = await _send(loop, lambda tr: tr.writelines([big, TAIL]))
        assert counter.count == len(big) + len(TAIL)
        assert counter.last == TAIL

    run(loop, main(), timeout=280)


def test_pipe_write_chunking_is_the_stream_one(loop):
    """connect_write_pipe goes through the same handle write path (a quick
    check with a few MiB; the > 4 GiB case is the socket test above)."""
    import os

    async def main():
        rfd, wfd = os.pipe()
        payload = bytes(range(256)) * 16384   # 4 MiB
        got = bytearray()

        def reader():
            while True:
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    return
                got.extend(chunk)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        with open(wfd, "wb", buffering=0) as pipe:
            tr, _ = await loop.connect_write_pipe(P, pipe)
            tr.write(payload)
            tr.close()
            assert await lost is None
        await loop.run_in_executor(None, thread.join, 30)
        os.close(rfd)
        assert bytes(got) == payload

    run(loop, main())


class _DatagramErrors(asyncio.DatagramProtocol):
    def __init__(self):
        self.errors = []
        self.received = []

    def error_received(self, exc):
        self.errors.append(exc)

    def datagram_received(self, data, addr):
        self.received.append(data)


def test_datagram_larger_than_4_gib_is_refused_not_truncated(loop):
    """sendto() of 4 GiB + 16 bytes: the kernel refuses it (EMSGSIZE, to
    error_received, as stdlib), where a length cut to 32 bits used to send
    a 16-byte datagram."""
    async def main():
        receiver, _ = await loop.create_datagram_endpoint(
            _DatagramErrors, local_addr=("127.0.0.1", 0))
        sender, proto = await loop.create_datagram_endpoint(
            _DatagramErrors, local_addr=("127.0.0.1", 0))
        payload = bytes(SIZE)
        sender.sendto(payload, receiver.get_extra_info("sockname"))
        del payload
        sender.sendto(b"after", receiver.get_extra_info("sockname"))
        rproto = receiver.get_protocol()
        for _ in range(200):
            if rproto.received:
                break
            await asyncio.sleep(0.01)
        assert [type(e) for e in proto.errors] == [OSError]
        assert proto.errors[0].errno == errno.EMSGSIZE
        assert rproto.received == [b"after"]
        sender.close()
        receiver.close()
    run(loop, main())
