"""10,000 concurrent connections under RLIMIT_NOFILE 12,000 (issue 8, A4).

A server that holds two descriptors per connection (a dup() for libuv and
the Python socket) runs out near 6,000; with one per connection, as stdlib
and uvloop hold, 10,000 fit.  The clients live in another process so that
only the server's own descriptors count against this process's limit.

Part of the reliability suite: it runs once per CI (make test-reliability).
"""
from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import textwrap

import pytest
from loop_testutil import run

CONNECTIONS = 10_000
LIMIT = 12_000


_CLIENT = textwrap.dedent("""
    import resource, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, n = int(sys.argv[1]), int(sys.argv[2])
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(s)
    print("connected", flush=True)
    sys.stdin.read()          # until the test closes our stdin
    for s in socks:
        s.close()
""")


def _count_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.timeout(300)
def test_ten_thousand_connections_under_12000_descriptors(loop):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < LIMIT:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {LIMIT}")

    class Counting(asyncio.Protocol):
        made = 0
        lost = 0
        all_made = None
        all_lost = None

        def connection_made(self, transport):
            Counting.made += 1
            if Counting.made == CONNECTIONS:
                Counting.all_made.set_result(None)

        def connection_lost(self, exc):
            Counting.lost += 1
            if Counting.lost == CONNECTIONS:
                Counting.all_lost.set_result(None)

    async def main():
        Counting.all_made = loop.create_future()
        Counting.all_lost = loop.create_future()
        server = await loop.create_server(Counting, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        before = _count_fds()
        client = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, str(port), str(CONNECTIONS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            await asyncio.wait_for(Counting.all_made, 150)
            # Beside the connections: the Popen's two pipes, and a few the
            # loop may open on the way (never one per connection).
            added = _count_fds() - before
            assert added <= CONNECTIONS + 8, f"{added / CONNECTIONS:.4f} descriptors per connection"
            assert Counting.lost == 0, "connections lost while all should be held"
        finally:
            client.stdin.close()
            client.wait(60)
            client.stdout.close()
        await asyncio.wait_for(Counting.all_lost, 120)
        server.close()
        await server.wait_closed()

    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))
    try:
        run(loop, main(), timeout=280)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
