"""A reader that stops reading while the writer has a lot to send: the writer
is told to pause once (strictly above the high-water mark), a writer that
obeys keeps the buffer bounded, and after the reader drains everything every
byte arrives intact (sha256) and resume_writing is called."""
from __future__ import annotations

import asyncio
import hashlib

import pytest
from loop_testutil import run

from ._util import Recorder, close_server, connected_pair, pattern

TOTAL = 16 << 20
CHUNK = 64 << 10


class FlowWriter(Recorder):
    """Writes ``payload`` in chunks, only while not paused (as a well-behaved
    producer does); records every buffer size it sees after a write."""

    def __init__(self, loop, payload):
        super().__init__(loop)
        self.payload = payload
        self.offset = 0
        self.paused = False
        self.max_buffer = 0
        self.pause_count = 0
        self.resume_count = 0
        self.done_writing = loop.create_future()
        self.resumed = None

    def pump(self):
        tr = self.transport
        while not self.paused and self.offset < len(self.payload):
            tr.write(self.payload[self.offset:self.offset + CHUNK])
            self.offset += CHUNK
            self.max_buffer = max(self.max_buffer, tr.get_write_buffer_size())
        if self.offset >= len(self.payload) and not self.done_writing.done():
            self.done_writing.set_result(None)

    def pause_writing(self):
        super().pause_writing()
        assert not self.paused, "pause_writing twice without resume_writing"
        self.paused = True
        self.pause_count += 1

    def resume_writing(self):
        super().resume_writing()
        assert self.paused, "resume_writing without pause_writing"
        self.paused = False
        self.resume_count += 1
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.loop.call_soon(self.pump)


@pytest.mark.parametrize("limits", [None, (256 << 10, 64 << 10)], ids=["default-limits", "256k-64k"])
def test_stalled_reader(loop, family, sock_path, limits):
    payload = pattern(TOTAL)

    async def main():
        server, tr, writer, reader = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: FlowWriter(loop, payload), sock_path)
        reader.transport.pause_reading()
        if limits is not None:
            tr.set_write_buffer_limits(high=limits[0], low=limits[1])
        high = tr.get_write_buffer_limits()[1]
        writer.resumed = loop.create_future()
        writer.pump()
        # The reader stalls: the kernel's buffers fill, then ours.
        assert writer.paused, "a 16 MiB write into a stalled reader never paused the writer"
        assert writer.pause_count == 1
        for _ in range(20):      # the stall goes on: nothing changes
            await asyncio.sleep(0.005)
        assert writer.pause_count == 1 and writer.resume_count == 0
        assert tr.get_write_buffer_size() > high
        # Bounded: the obeying writer stopped within one chunk of the mark.
        assert writer.max_buffer <= high + CHUNK
        stalled_at = writer.offset
        reader.transport.resume_reading()
        await writer.resumed
        assert writer.resume_count == 1
        await writer.done_writing
        await reader.wait_for_bytes(TOTAL)
        assert writer.offset > stalled_at
        assert len(reader.data) == TOTAL
        assert hashlib.sha256(reader.data).digest() == hashlib.sha256(payload).digest()
        assert writer.max_buffer <= high + CHUNK
        assert writer.pause_count == writer.resume_count or writer.pause_count == writer.resume_count + 1
        tr.close()
        await writer.lost
        await reader.lost
        writer.assert_ok()
        reader.assert_ok()
        await close_server(server)

    run(loop, main(), timeout=60)


def test_pause_writing_strictly_above_the_mark(loop, family, sock_path):
    """Exactly at the high-water mark: no pause; one byte more: pause."""
    async def main():
        server, tr, writer, reader = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        reader.transport.pause_reading()
        # Fill the kernel's buffers with the mark at its largest, then lower it.
        tr.set_write_buffer_limits(high=1 << 30)
        filler = pattern(1 << 20)
        while tr.get_write_buffer_size() == 0:
            tr.write(filler)
            await asyncio.sleep(0.01)
        queued = tr.get_write_buffer_size()
        tr.set_write_buffer_limits(high=queued + 1000, low=0)
        tr.write(b"x" * 1000)           # at the mark exactly
        assert tr.get_write_buffer_size() == queued + 1000
        assert "pause" not in writer.events
        tr.write(b"y")                  # above
        assert writer.events.count("pause") == 1
        reader.transport.resume_reading()
        tr.close()
        await writer.lost
        await reader.lost
        writer.assert_ok()
        await close_server(server)

    run(loop, main())
