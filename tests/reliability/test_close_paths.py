"""Close paths of a stream transport, over TCP and unix sockets: write after
close, close twice, abort with a large pending write, close from inside
data_received.  Each checks asyncio's protocol state machine (connection_made
first, connection_lost exactly once and last) on both ends."""
from __future__ import annotations

import asyncio

from loop_testutil import run

from ._util import Recorder, close_server, connected_pair, pattern


async def _settle(loop, rounds=5):
    """Let a few loop iterations pass (callbacks scheduled by close() run)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def _queue_up(loop, tr, payload, chunk=1 << 20, queued=1 << 20):
    """Write ``payload`` in chunks until at least ``queued`` bytes stay in the
    transport's buffer (the peer is not reading, but the kernel's socket
    buffers take the first few MiB); return how much was written."""
    written = 0
    while written < len(payload):
        tr.write(payload[written:written + chunk])
        written += chunk
        await _settle(loop)
        if tr.get_write_buffer_size() >= queued:
            return min(written, len(payload))
    raise AssertionError(f"{len(payload)} bytes written and still under {queued} queued")


def test_write_after_close_is_dropped(loop, family, sock_path):
    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        tr.write(b"before")
        await sp.wait_for_bytes(6)
        tr.close()
        assert tr.is_closing()
        for _ in range(3):   # stdlib logs a warning from the 5th on: stay below
            tr.write(b"after")
        assert await cp.lost is None
        await sp.eof
        await sp.lost
        await _settle(loop)
        assert bytes(sp.data) == b"before"
        assert cp.events == ["made", "lost"]
        assert sp.events == ["made", "data", "eof", "lost"]
        cp.assert_ok()
        sp.assert_ok()
        await close_server(server)

    run(loop, main())


def test_close_twice_loses_the_connection_once(loop, family, sock_path):
    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        tr.close()
        tr.close()
        await _settle(loop)
        tr.close()
        assert await cp.lost is None
        await sp.lost
        await _settle(loop)
        assert cp.events == ["made", "lost"]
        cp.assert_ok()
        sp.assert_ok()
        await close_server(server)

    run(loop, main())


def test_abort_with_a_large_pending_write(loop, family, sock_path):
    size = 32 << 20
    payload = pattern(size)

    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        sp.transport.pause_reading()
        written = await _queue_up(loop, tr, payload)
        tr.abort()
        assert tr.is_closing()
        assert await cp.lost is None
        sp.transport.resume_reading()
        await sp.lost
        await _settle(loop)
        # What arrived is a prefix of what was written (never reordered or
        # mixed); how much depends on the kernel's buffers.
        assert len(sp.data) < written
        assert bytes(sp.data) == payload[:len(sp.data)]
        assert cp.events == ["made", "pause", "lost"]
        cp.assert_ok()
        sp.assert_ok()
        await close_server(server)

    run(loop, main())


def test_abort_drops_the_pending_write_at_once(loop, family, sock_path):
    size = 32 << 20

    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        sp.transport.pause_reading()
        await _queue_up(loop, tr, pattern(size))
        tr.abort()
        sizes = [tr.get_write_buffer_size()]
        await cp.lost
        sizes.append(tr.get_write_buffer_size())
        sp.transport.resume_reading()
        await sp.lost
        await close_server(server)
        assert sizes == [0, 0]

    run(loop, main())


class _CloseOnFirstData(Recorder):
    def data_received(self, data):
        super().data_received(data)
        self.transport.close()


def test_close_from_inside_data_received(loop, family, sock_path):
    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: _CloseOnFirstData(loop), lambda: Recorder(loop), sock_path)
        # Many small writes, so that more data is readable when the first
        # data_received closes: none of it may be delivered after close().
        for i in range(200):
            tr.write(b"%05d" % i)
        assert await sp.lost is None
        await cp.lost
        await _settle(loop)
        assert sp.events == ["made", "data", "lost"]
        assert 5 <= len(sp.data) <= 1000
        assert bytes(sp.data) == b"".join(b"%05d" % i for i in range(200))[:len(sp.data)]
        cp.assert_ok()
        sp.assert_ok()
        await close_server(server)

    run(loop, main())


def test_close_then_abort_loses_the_connection_once(loop, family, sock_path):
    async def main():
        server, tr, cp, sp = await connected_pair(
            loop, family, lambda: Recorder(loop), lambda: Recorder(loop), sock_path)
        sp.transport.pause_reading()
        await _queue_up(loop, tr, pattern(32 << 20))
        tr.close()          # graceful: waits for the queued data
        assert not cp.lost.done()
        tr.abort()          # then gives up on it
        assert await cp.lost is None
        sp.transport.resume_reading()
        await sp.lost
        await _settle(loop)
        assert cp.events == ["made", "pause", "lost"]
        cp.assert_ok()
        sp.assert_ok()
        await close_server(server)

    run(loop, main())
