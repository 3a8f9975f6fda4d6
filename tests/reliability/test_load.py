"""Counts that find leaks: 2,000 concurrent connections, 1,000 short
subprocesses, 200,000 timers created and cancelled.  Each must leave the
process as it found it: no descriptor, no zombie, the memory back."""
from __future__ import annotations

import asyncio
import os
import resource
import sys
import weakref

import pytest
from loop_testutil import full_gc, run

from ._util import baseline_fds, close_server, open_fds

CONNECTIONS = 2000
SUBPROCESSES = 1000
TIMERS = 200_000


@pytest.fixture
def nofile_limit():
    """Raise the soft RLIMIT_NOFILE to what the test needs (up to the hard
    limit), and put it back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * CONNECTIONS + 200   # client + server ends, room for a dup() each
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class _Client(asyncio.Protocol):
    def __init__(self, loop, index):
        self.index = index
        self.data = b""
        self.echoed = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"%06d" % self.index)

    def data_received(self, data):
        self.data += data
        if len(self.data) >= 6 and not self.echoed.done():
            self.echoed.set_result(self.data)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_2000_concurrent_connections(loop, family, sock_path, nofile_limit):
    async def main():
        before = await baseline_fds(loop)
        if family == "tcp":
            server = await loop.create_server(_Echo, "127.0.0.1", 0, backlog=1024)
            host, port = server.sockets[0].getsockname()[:2]
        else:
            server = await loop.create_unix_server(_Echo, sock_path, backlog=1024)
        sem = asyncio.Semaphore(200)    # connects in flight (the backlog's bound)

        async def connect(i):
            async with sem:
                if family == "tcp":
                    return await loop.create_connection(lambda: _Client(loop, i), host, port)
                return await loop.create_unix_connection(lambda: _Client(loop, i), sock_path)

        pairs = await asyncio.gather(*(connect(i) for i in range(CONNECTIONS)))
        # All open at once, each echoed its own bytes.
        echoed = await asyncio.gather(*(p.echoed for _, p in pairs))
        assert echoed == [b"%06d" % i for i in range(CONNECTIONS)]
        held = len(open_fds()) - len(before)
        assert held >= CONNECTIONS * 2 - 10, held     # both ends are in this process
        for tr, _ in pairs:
            tr.close()
        results = await asyncio.gather(*(p.lost for _, p in pairs))
        assert results == [None] * CONNECTIONS
        await close_server(server)
        del pairs
        for _ in range(20):
            await asyncio.sleep(0.01)
            if open_fds() == before:
                break
        assert open_fds() == before
        return held

    held = run(loop, main(), timeout=120)
    print(f"{family}: {held} descriptors held for {CONNECTIONS} connections (both ends)")


def _children(pid):
    """PIDs of the live or zombie children of ``pid`` (every thread's list)."""
    found = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return found


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_1000_short_subprocesses(loop):
    async def main():
        before = await baseline_fds(loop)
        children_before = _children(os.getpid())
        sem = asyncio.Semaphore(8)
        argv = ["/bin/true"] if os.path.exists("/bin/true") else [sys.executable, "-c", "pass"]

        async def one(i):
            async with sem:
                proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                            stdout=asyncio.subprocess.PIPE)
                out = await proc.stdout.read()
                return await proc.wait(), out

        results = await asyncio.gather(*(one(i) for i in range(SUBPROCESSES)))
        assert results == [(0, b"")] * SUBPROCESSES
        # Reapers finish in the background: give them a bounded while.
        for _ in range(200):
            await asyncio.sleep(0.01)
            left = _children(os.getpid()) - children_before
            if not left and open_fds() == before:
                break
        zombies = [p for p in left if _state(p) == "Z"]
        assert not zombies, zombies
        assert not left, {p: _state(p) for p in left}
        assert open_fds() == before

    run(loop, main(), timeout=120)


def test_200k_timers_created_and_cancelled(loop):
    """Memory comes back once the timers are cancelled and the loop has run
    (stdlib purges its heap when more than half of it is cancelled): every
    sampled handle and callback argument is collected, and (CPython) the
    interpreter's count of allocated blocks is back near where it was."""
    blocks = getattr(sys, "getallocatedblocks", None)   # CPython only
    if blocks is not None and blocks() == 0:
        blocks = None          # PYTHONMALLOC=malloc (make sanitize): pymalloc counts nothing

    class Token:
        pass

    async def main():
        await asyncio.sleep(0)
        full_gc()
        base = blocks() if blocks else 0
        handles = []
        probes = []
        for i in range(TIMERS):
            token = Token()
            handles.append(loop.call_later(3600 + (i % 1000), lambda t: None, token))
            if i % 1000 == 0:
                probes.append(weakref.ref(token))
        peak = blocks() - base if blocks else 0
        handle_probes = [weakref.ref(h) for h in handles[::1000]]
        for h in handles:
            h.cancel()
        del handles, token
        for _ in range(3):       # the loop runs: cancelled timers leave its heap
            await asyncio.sleep(0)
        full_gc()
        left = blocks() - base if blocks else 0
        alive = sum(p() is not None for p in probes)
        alive_handles = sum(p() is not None for p in handle_probes)
        return peak, left, alive, alive_handles

    peak, left, alive, alive_handles = run(loop, main(), timeout=120)
    print(f"200k timers: {peak} blocks allocated while scheduled, {left} after")
    assert alive == 0, f"{alive} of the sampled callback arguments are still alive"
    assert alive_handles == 0, f"{alive_handles} of the sampled timer handles are still alive"
    if blocks:
        assert peak > TIMERS        # the measurement saw the timers at all
        assert left < peak / 50, (peak, left)
