"""Wake-ups from outside the loop while it streams data: call_soon_threadsafe
from 8 threads (every callback runs exactly once, in FIFO order per thread)
and signals delivered through add_signal_handler."""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import threading

from loop_testutil import run
from stream_testutil import Echo

from ._util import Recorder, close_server, connected_pair, pattern

THREADS = 8
PER_THREAD = 2000
STREAM = 4 << 20


async def _echo_round_trip(loop, family, sock_path, size, chunk=65536):
    """Stream ``size`` bytes through an echo server and back; return the
    sha256 of what came back."""
    server, tr, cp, _ = await connected_pair(loop, family, Echo, lambda: Recorder(loop), sock_path)
    data = pattern(size)
    for i in range(0, size, chunk):
        tr.write(data[i:i + chunk])
        if tr.get_write_buffer_size() > (1 << 20):
            await asyncio.sleep(0.001)
    await cp.wait_for_bytes(size)
    tr.close()
    await cp.lost
    cp.assert_ok()
    await close_server(server)
    assert len(cp.data) == size
    return hashlib.sha256(cp.data).hexdigest(), hashlib.sha256(data).hexdigest()


def test_call_soon_threadsafe_from_8_threads_during_io(loop, family, sock_path):
    seen = [[] for _ in range(THREADS)]
    done = loop.create_future()
    count = [0]
    total = THREADS * PER_THREAD

    def callback(tid, i):
        seen[tid].append(i)
        count[0] += 1
        if count[0] == total:
            done.set_result(None)

    start = threading.Barrier(THREADS + 1)

    def producer(tid):
        start.wait(timeout=30)
        for i in range(PER_THREAD):
            loop.call_soon_threadsafe(callback, tid, i)

    async def main():
        threads = [threading.Thread(target=producer, args=(tid,), daemon=True) for tid in range(THREADS)]
        for t in threads:
            t.start()
        # The threads start together while the loop is busy with a stream.
        io = asyncio.ensure_future(_echo_round_trip(loop, family, sock_path, STREAM))
        await loop.run_in_executor(None, start.wait, 30)
        got, want = await io
        await done
        for t in threads:
            await loop.run_in_executor(None, t.join)
        return got, want

    got, want = run(loop, main(), timeout=60)
    assert got == want
    for tid in range(THREADS):
        assert seen[tid] == list(range(PER_THREAD)), tid
    assert count[0] == total


def test_signals_during_io(loop, family, sock_path):
    """SIGUSR1 sent repeatedly (from another thread, with os.kill) while a
    stream runs: the handler runs (Python coalesces pending signals, so at
    least once and at most as often as sent) and the stream is intact."""
    received = []
    stop = threading.Event()
    sent = [0]

    def killer():
        while not stop.is_set() and sent[0] < 200:
            os.kill(os.getpid(), signal.SIGUSR1)
            sent[0] += 1
            stop.wait(0.002)

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, lambda: received.append(1))
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            result = await _echo_round_trip(loop, family, sock_path, STREAM)
            # At least one signal lands while the loop runs, even if the
            # stream was quick.
            for _ in range(1000):
                if received:
                    break
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            await loop.run_in_executor(None, thread.join)
        await asyncio.sleep(0.05)  # the last signals' handlers
        loop.remove_signal_handler(signal.SIGUSR1)
        return result

    got, want = run(loop, main(), timeout=60)
    assert got == want
    assert 1 <= len(received) <= sent[0]
