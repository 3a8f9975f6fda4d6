"""Subprocess workloads: starting and reaping children, and piping data through one.

Both go through ``asyncio.create_subprocess_exec`` (so through the loop's
``subprocess_exec``), as applications do.  The children inherit the benchmark
process's pinning, so they share its core with the loop.
"""
from __future__ import annotations

import asyncio
import subprocess
import time

from bench.registry import Context, Measurement, run_in_loop, workload

perf_counter = time.perf_counter

TRUE = "/bin/true"
CAT = "/bin/cat"


@workload("spawn_wait", n=400, quick_n=40, group="subprocess", unit="child")
def spawn_wait(ctx: Context) -> Measurement:
    """``await (await asyncio.create_subprocess_exec("/bin/true")).wait()``, one child
    at a time, no pipes: the cost of starting, reaping and reporting one child.
    """

    async def body(loop, n):
        create = asyncio.create_subprocess_exec
        t0 = perf_counter()
        for _ in range(n):
            proc = await create(TRUE)
            await proc.wait()
        return perf_counter() - t0

    return run_in_loop(ctx, body, warmup=20)


@workload("pipe_cat", n=50, quick_n=5, group="subprocess", unit="MiB")
def pipe_cat(ctx: Context) -> Measurement:
    """n MiB through ``cat``: written to its stdin in 256 KiB chunks with
    ``drain()`` while another task reads its stdout until EOF; one op is one MiB
    that came back.
    """
    chunk = b"x" * (256 * 1024)
    mib = 1024 * 1024

    async def body(loop, n):
        total = n * mib
        t0 = perf_counter()
        proc = await asyncio.create_subprocess_exec(CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

        async def writer():
            for _ in range(total // len(chunk)):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            proc.stdin.close()

        async def reader():
            got = 0
            read = proc.stdout.read
            while True:
                data = await read(mib)
                if not data:
                    return got
                got += len(data)

        _, got = await asyncio.gather(writer(), reader())
        await proc.wait()
        seconds = perf_counter() - t0
        assert got == total, (got, total)
        return seconds

    return run_in_loop(ctx, body, warmup=2)
