"""Loop-core workloads: callbacks, timers, futures, tasks, thread wake-ups.

Each measures only the loop's own machinery (no I/O); ``n`` is sized so that one
stdlib run takes a few tenths of a second on the project's 2-core machine.
"""
from __future__ import annotations

import asyncio
import gc
import random
import threading
import time

from bench.registry import Context, Measurement, run_in_loop, workload

perf_counter = time.perf_counter


@workload("call_soon_chain", n=200_000, unit="callback")
def call_soon_chain(ctx: Context) -> Measurement:
    """One callback re-schedules itself with ``call_soon`` n times: one callback per
    loop iteration, so this is the cost of a whole loop iteration plus one callback.
    """

    async def body(loop, n):
        done = loop.create_future()
        call_soon = loop.call_soon
        remaining = n

        def step():
            nonlocal remaining
            remaining -= 1
            if remaining:
                call_soon(step)
            else:
                done.set_result(None)

        t0 = perf_counter()
        call_soon(step)
        await done
        return perf_counter() - t0

    return run_in_loop(ctx, body)


@workload("call_soon_batch", n=500_000, unit="callback")
def call_soon_batch(ctx: Context) -> Measurement:
    """Rounds of 1000 ``call_soon(noop)`` scheduled from one callback, which then
    schedules the next round: many callbacks per iteration, so this is the cost of
    one ``call_soon`` plus running one ready callback.
    """
    batch = 1000

    async def body(loop, n):
        done = loop.create_future()
        call_soon = loop.call_soon
        rounds = max(1, n // batch)

        def noop():
            pass

        def round_():
            nonlocal rounds
            for _ in range(batch):
                call_soon(noop)
            rounds -= 1
            if rounds:
                call_soon(round_)
            else:
                call_soon(done.set_result, None)

        t0 = perf_counter()
        call_soon(round_)
        await done
        return perf_counter() - t0

    m = run_in_loop(ctx, body)
    return Measurement(ops=max(1, ctx.n // batch) * batch, seconds=m.seconds)


@workload("call_later_timers", n=100_000, unit="timer")
def call_later_timers(ctx: Context) -> Measurement:
    """Schedule n ``call_later`` timers with seeded random delays in [0, 10 ms), then
    run until all have fired; the time covers scheduling and firing.
    """

    async def body(loop, n):
        rng = random.Random(1234)
        delays = [rng.random() * 0.01 for _ in range(n)]
        done = loop.create_future()
        call_later = loop.call_later
        remaining = n

        def fire():
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set_result(None)

        t0 = perf_counter()
        for delay in delays:
            call_later(delay, fire)
        await done
        return perf_counter() - t0

    return run_in_loop(ctx, body)


@workload("future_await", n=100_000, unit="future")
def future_await(ctx: Context) -> Measurement:
    """A task does n times: ``f = loop.create_future()``, ``loop.call_soon(f.set_result,
    None)``, ``await f`` (the task suspends and is woken through the future).
    """

    async def body(loop, n):
        create_future = loop.create_future
        call_soon = loop.call_soon
        t0 = perf_counter()
        for _ in range(n):
            f = create_future()
            call_soon(f.set_result, None)
            await f
        return perf_counter() - t0

    return run_in_loop(ctx, body)


@workload("task_await", n=50_000, unit="task")
def task_await(ctx: Context) -> Measurement:
    """A task does n times ``await loop.create_task(noop())`` where ``noop`` is an
    ``async def`` that returns at once: task creation, its first step, completion and
    the parent's wake-up.
    """

    async def noop():
        pass

    async def body(loop, n):
        create_task = loop.create_task
        t0 = perf_counter()
        for _ in range(n):
            await create_task(noop())
        return perf_counter() - t0

    return run_in_loop(ctx, body)


@workload("sleep0_pingpong", n=200_000, unit="sleep(0)")
def sleep0_pingpong(ctx: Context) -> Measurement:
    """Two tasks each do ``await asyncio.sleep(0)`` n/2 times; FIFO scheduling makes
    them alternate strictly (A, B, A, B, ...).  One op is one ``sleep(0)``: a bare
    yield that re-schedules the task with ``call_soon``.
    """

    async def body(loop, n):
        half = n // 2
        sleep = asyncio.sleep

        async def player():
            for _ in range(half):
                await sleep(0)

        t0 = perf_counter()
        await asyncio.gather(loop.create_task(player()), loop.create_task(player()))
        return perf_counter() - t0

    m = run_in_loop(ctx, body)
    return Measurement(ops=(ctx.n // 2) * 2, seconds=m.seconds)


@workload("future_pingpong", n=100_000, unit="hand-off")
def future_pingpong(ctx: Context) -> Measurement:
    """Two tasks pass a token back and forth n times through futures: each sets a new
    future the other task awaits, then awaits its own (a task-to-task hand-off, as
    with ``asyncio.Event`` or a one-slot queue).  One op is one hand-off.
    """

    async def body(loop, n):
        create_future = loop.create_future
        slots = [create_future(), create_future()]  # slots[i]: what player i awaits next

        async def player(me, other, turns):
            for _ in range(turns):
                await slots[me]
                slots[me] = create_future()
                slots[other].set_result(None)

        turns = n // 2
        t0 = perf_counter()
        tasks = [loop.create_task(player(0, 1, turns)), loop.create_task(player(1, 0, turns))]
        slots[0].set_result(None)
        await asyncio.gather(*tasks)
        return perf_counter() - t0

    m = run_in_loop(ctx, body)
    return Measurement(ops=(ctx.n // 2) * 2, seconds=m.seconds)


@workload("call_soon_threadsafe", n=100_000, unit="callback")
def call_soon_threadsafe(ctx: Context) -> Measurement:
    """Another thread posts n callbacks with ``call_soon_threadsafe`` as fast as it can
    while the loop waits; the time runs from the thread's start until the loop has
    run the n-th callback.  Both threads share the process's one pinned core.
    """

    async def body(loop, n):
        done = loop.create_future()
        remaining = n

        def tick():
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set_result(None)

        def producer():
            post = loop.call_soon_threadsafe
            for _ in range(n):
                post(tick)

        thread = threading.Thread(target=producer)
        t0 = perf_counter()
        thread.start()
        await done
        seconds = perf_counter() - t0
        thread.join()
        return seconds

    return run_in_loop(ctx, body)


@workload("loop_lifecycle", n=3_000, unit="loop")
def loop_lifecycle(ctx: Context) -> Measurement:
    """n times: ``new_event_loop()``, ``run_until_complete`` of a coroutine that
    returns at once, ``close()`` (what every test and ``asyncio.run`` pays).
    """

    async def trivial():
        pass

    def once():
        loop = ctx.new_event_loop()
        try:
            loop.run_until_complete(trivial())
        finally:
            loop.close()

    for _ in range(max(1, ctx.n // 10)):
        once()
    gc.collect()
    t0 = perf_counter()
    for _ in range(ctx.n):
        once()
    return Measurement(ops=ctx.n, seconds=perf_counter() - t0)
