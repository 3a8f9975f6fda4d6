"""Loop core: running and stopping, call_soon, timers, threads, futures and
tasks, the exception handler API, debug mode, executors, async generators."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import math
import random
import sys
import threading
import time
import warnings

import pytest
from loop_testutil import SOON, full_gc, run

PY312 = sys.version_info >= (3, 12)

# A timer may fire at most one clock tick before its deadline (stdlib's rule:
# it is due when ``when < time() + clock_resolution``); allow a microsecond.
EARLY_EPSILON = 1e-6


# --- run / stop / close ------------------------------------------------------

def test_run_until_complete_returns_result(loop):
    async def main():
        await asyncio.sleep(0)
        return 42

    assert loop.run_until_complete(main()) == 42
    assert not loop.is_running()


def test_run_until_complete_raises_exception(loop):
    async def main():
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(main())
    # The loop is still usable.
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_run_until_complete_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_cancelled_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    fut.cancel()


def test_run_forever_and_stop(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1]
    assert not loop.is_running()
    # Reusable after stop.
    loop.call_soon(calls.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1, 2]


def test_stop_before_run_forever_runs_one_iteration(loop):
    calls = []
    loop.call_soon(calls.append, "ready")
    loop.stop()
    loop.run_forever()
    assert calls == ["ready"]
    # stop() was consumed: the next run_forever runs until the next stop().
    loop.call_later(0.01, loop.stop)
    loop.run_forever()


def test_stop_runs_current_batch_only(loop):
    """stop() from a callback: the rest of the current batch still runs,
    callbacks scheduled by the batch wait for the next run."""
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "scheduled-by-first")

    def second():
        calls.append("second")
        loop.stop()

    loop.call_soon(first)
    loop.call_soon(second)
    loop.call_soon(calls.append, "third")
    loop.run_forever()
    assert calls == ["first", "second", "third"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["first", "second", "third", "scheduled-by-first"]


def test_is_running_and_is_closed(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    assert not loop.is_running()
    loop.run_forever()
    assert seen == [True]
    assert not loop.is_running()
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    assert not loop.is_running()


def test_running_loop_is_set_while_running(loop):
    async def main():
        return asyncio.get_running_loop()

    assert loop.run_until_complete(main()) is loop
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_close_is_idempotent(loop):
    loop.close()
    loop.close()
    assert loop.is_closed()


def test_close_while_running_raises(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(try_close)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_time_is_monotonic_and_advances(loop):
    t0 = loop.time()
    values = [loop.time() for _ in range(1000)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[0] >= t0

    async def main():
        start = loop.time()
        await asyncio.sleep(0.05)
        return loop.time() - start

    assert run(loop, main()) >= 0.05 - EARLY_EPSILON


def test_time_is_a_float_clock_in_seconds(loop):
    # loop.time() is comparable with time.monotonic() scale (seconds).
    t = loop.time()
    assert isinstance(t, float)
    time.sleep(0.02)
    assert 0.02 - EARLY_EPSILON <= loop.time() - t < SOON


# --- call_soon ---------------------------------------------------------------

def test_call_soon_fifo_with_args(loop):
    calls = []
    for i in range(200):
        loop.call_soon(calls.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == list(range(200))


def test_call_soon_multiple_args(loop):
    calls = []
    loop.call_soon(lambda *a: calls.append(a), 1, "two", None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [(1, "two", None)]


def test_call_soon_from_callback_runs_next_iteration(loop):
    order = []

    def a():
        order.append("a")
        loop.call_soon(c)

    def b():
        order.append("b")

    def c():
        order.append("c")
        loop.stop()

    loop.call_soon(a)
    loop.call_soon(b)
    loop.run_forever()
    assert order == ["a", "b", "c"]


def test_call_soon_returns_handle_and_cancel(loop):
    calls = []
    h1 = loop.call_soon(calls.append, 1)
    h2 = loop.call_soon(calls.append, 2)
    h3 = loop.call_soon(calls.append, 3)
    assert isinstance(h2, asyncio.Handle)
    assert not h2.cancelled()
    h2.cancel()
    assert h2.cancelled()
    h2.cancel()  # idempotent
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1, 3]
    assert not h1.cancelled() and not h3.cancelled()


def test_cancel_handle_from_earlier_callback(loop):
    calls = []
    later = []
    loop.call_soon(lambda: later[0].cancel())
    later.append(loop.call_soon(calls.append, "cancelled"))
    loop.call_soon(calls.append, "runs")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["runs"]


def test_call_soon_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in-ctx")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["in-ctx", "default"]


def test_call_soon_copies_current_context(loop):
    var = contextvars.ContextVar("var2", default="default")
    seen = []

    def schedule():
        var.set("set-before-scheduling")
        loop.call_soon(lambda: seen.append(var.get()))

    contextvars.copy_context().run(schedule)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["set-before-scheduling"]


# --- timers ------------------------------------------------------------------

def _record_at(loop, calls, tag):
    def cb():
        calls.append((tag, loop.time()))
    return cb


def test_call_later_order_and_never_early(loop):
    calls = []
    delays = [0.03, 0.01, 0.02, 0.0, 0.005, 0.025]
    whens = {}
    for d in delays:
        t = loop.call_later(d, _record_at(loop, calls, d))
        whens[d] = t.when()
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert [tag for tag, _ in calls] == sorted(delays)
    for tag, fired_at in calls:
        assert fired_at >= whens[tag] - EARLY_EPSILON, (tag, fired_at, whens[tag])


def test_call_at_order_and_never_early(loop):
    calls = []
    base = loop.time()
    offsets = [0.04, 0.0, 0.02, 0.01, 0.03]
    for off in offsets:
        t = loop.call_at(base + off, _record_at(loop, calls, off))
        assert t.when() == base + off
    loop.call_at(base + 0.07, loop.stop)
    loop.run_forever()
    assert [tag for tag, _ in calls] == sorted(offsets)
    for off, fired_at in calls:
        assert fired_at >= base + off - EARLY_EPSILON


def test_call_later_returns_timer_handle(loop):
    t0 = loop.time()
    timer = loop.call_later(10, lambda: None)
    t1 = loop.time()
    assert isinstance(timer, asyncio.TimerHandle)
    assert t0 + 10 <= timer.when() <= t1 + 10
    timer.cancel()
    assert timer.cancelled()


def test_call_later_zero_and_negative_run_soon(loop):
    calls = []
    loop.call_later(-5, calls.append, "negative")
    loop.call_later(0, calls.append, "zero")
    loop.call_at(loop.time() - 100, calls.append, "past")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert sorted(calls) == ["negative", "past", "zero"]


def test_cancelled_timers_do_not_run(loop):
    calls = []
    t1 = loop.call_later(0.01, calls.append, "cancelled")
    loop.call_later(0.02, calls.append, "kept")
    t1.cancel()
    t3 = loop.call_later(0.03, calls.append, "cancelled-by-callback")
    loop.call_later(0.015, t3.cancel)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert calls == ["kept"]
    assert t1.cancelled() and t3.cancelled()


def test_timer_cancelled_after_firing_is_harmless(loop):
    calls = []
    timer = loop.call_later(0, calls.append, 1)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    timer.cancel()
    assert calls == [1]
    loop.call_later(0.01, loop.stop)
    loop.run_forever()


def test_timers_and_call_soon_interleave(loop):
    """A due timer and a ready callback both run; the loop keeps serving
    call_soon while a long timer is pending."""
    calls = []
    long_timer = loop.call_later(3600, calls.append, "never")

    async def main():
        for i in range(5):
            await asyncio.sleep(0)
            calls.append(i)
        await asyncio.sleep(0.01)
        calls.append("slept")

    run(loop, main())
    long_timer.cancel()
    assert calls == [0, 1, 2, 3, 4, "slept"]


def test_patched_time_moves_the_scheduler(loop):
    """The scheduler asks loop.time(): a clock patched forward makes a far
    timer due at once (stdlib behaves so)."""
    fired = loop.create_future()
    timer = loop.call_later(3600, fired.set_result, "fired")
    # Fail instead of hanging, by the real clock (a loop timer would be due
    # at once under the patched clock too).
    safety = threading.Timer(SOON, loop.call_soon_threadsafe, args=(fired.cancel,))
    safety.start()
    real_time = type(loop).time
    loop.time = lambda: real_time(loop) + 7200
    try:
        assert loop.run_until_complete(fired) == "fired"
    finally:
        del loop.time
        safety.cancel()
        safety.join()
    assert not timer.cancelled()


def test_patched_time_backwards_delays_timer(loop):
    """A clock patched backwards keeps a nearly due timer waiting."""
    calls = []
    loop.call_later(0.01, calls.append, "fired")
    real_time = type(loop).time
    loop.time = lambda: real_time(loop) - 3600
    try:
        loop.call_soon(lambda: None)
        # Ends the run by the real clock, whatever loop.time() says.
        stopper = threading.Timer(0.1, loop.call_soon_threadsafe, args=(loop.stop,))
        stopper.start()
        loop.run_forever()
        stopper.join()
    finally:
        del loop.time
    assert calls == []
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert calls == ["fired"]


def test_many_timers(loop):
    rnd = random.Random(1234)
    calls = []
    timers = []
    for i in range(10000):
        t = loop.call_later(rnd.random() * 0.05, _record_at(loop, calls, i))
        timers.append(t)
    cancelled = set()
    for i in range(0, 10000, 3):
        timers[i].cancel()
        cancelled.add(i)
    done = loop.create_future()
    loop.call_later(0.1, done.set_result, None)
    loop.run_until_complete(done)
    fired = [tag for tag, _ in calls]
    assert len(fired) == 10000 - len(cancelled)
    assert set(fired).isdisjoint(cancelled)
    # Fired in deadline order, never early.
    whens = [timers[tag].when() for tag in fired]
    assert whens == sorted(whens)
    for tag, fired_at in calls:
        assert fired_at >= timers[tag].when() - EARLY_EPSILON


def test_many_cancelled_timers_then_one_live(loop):
    """Cancelling most of a large heap (which triggers a heap rebuild in
    stdlib) leaves the live timers intact."""
    calls = []
    timers = [loop.call_later(3600 + i, calls.append, i) for i in range(1000)]
    live = loop.call_later(0.01, calls.append, "live")
    for t in timers:
        t.cancel()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert calls == ["live"]
    assert not live.cancelled()


def test_infinite_delays(loop):
    """Not errors in stdlib: -inf is due at once, inf never."""
    calls = []
    loop.call_later(float("-inf"), calls.append, "-inf")
    inf_timer = loop.call_later(float("inf"), calls.append, "inf")
    loop.call_at(float("inf"), calls.append, "at-inf")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert calls == ["-inf"]
    assert math.isinf(inf_timer.when())
    inf_timer.cancel()


@pytest.mark.skipif(sys.version_info >= (3, 13),
                    reason="3.13's selectors raise ValueError on a NaN timeout")
def test_nan_delays(loop):
    """Not errors in stdlib (before 3.13): a NaN deadline is due at once."""
    calls = []
    loop.call_later(float("nan"), calls.append, "nan")
    loop.call_at(float("nan"), calls.append, "at-nan")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert sorted(calls) == ["at-nan", "nan"]


def test_asyncio_sleep_and_wait_for_timeouts(loop):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 0.01)
        return await asyncio.wait_for(asyncio.sleep(0.001, "ok"), SOON)

    assert run(loop, main()) == "ok"


# --- threads -----------------------------------------------------------------

def test_call_soon_threadsafe_wakes_sleeping_loop(loop):
    fut = loop.create_future()
    started = threading.Event()

    def worker():
        started.wait(SOON)
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, "woken")

    loop.call_soon(started.set)
    safety = loop.call_later(SOON, loop.stop)  # fail rather than hang
    th = threading.Thread(target=worker)
    th.start()
    try:
        assert loop.run_until_complete(fut) == "woken"
    finally:
        th.join()
        safety.cancel()


def test_call_soon_threadsafe_stress(loop):
    nthreads, ncalls = 4, 10000
    results = {i: [] for i in range(nthreads)}
    done = loop.create_future()
    remaining = [nthreads * ncalls]
    barrier = threading.Barrier(nthreads)

    def record(tid, i):
        results[tid].append(i)
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set_result(None)

    def worker(tid):
        barrier.wait(SOON)
        for i in range(ncalls):
            loop.call_soon_threadsafe(record, tid, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    try:
        run(loop, asyncio.shield(done), timeout=50)
    finally:
        for th in threads:
            th.join()
    for tid in range(nthreads):
        assert results[tid] == list(range(ncalls))  # FIFO per thread


def test_call_soon_threadsafe_returns_cancellable_handle(loop):
    calls = []
    h = loop.call_soon_threadsafe(calls.append, 1)
    assert isinstance(h, asyncio.Handle)
    h.cancel()
    loop.call_soon_threadsafe(loop.stop)
    loop.run_forever()
    assert calls == []


def test_call_soon_threadsafe_while_not_running(loop):
    calls = []
    th = threading.Thread(target=loop.call_soon_threadsafe, args=(calls.append, "x"))
    th.start()
    th.join()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["x"]


def test_loop_runs_in_non_main_thread(loop):
    result = []

    def target():
        async def main():
            await asyncio.sleep(0.01)
            return threading.current_thread().name

        result.append(loop.run_until_complete(main()))

    th = threading.Thread(target=target, name="loop-thread")
    th.start()
    th.join(SOON)
    assert result == ["loop-thread"]


def test_call_soon_from_other_thread_raises_in_debug_mode(loop):
    loop.set_debug(True)
    errors = []
    done = loop.create_future()

    def worker():
        try:
            loop.call_soon(lambda: None)
        except RuntimeError as exc:
            errors.append(str(exc))
        try:
            loop.call_later(1, lambda: None)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.call_soon_threadsafe(done.set_result, None)

    def start():
        threading.Thread(target=worker).start()

    loop.call_soon(start)
    run(loop, asyncio.shield(done))
    assert len(errors) == 2
    for msg in errors:
        assert msg == ("Non-thread-safe operation invoked on an event loop other "
                       "than the current one")


# --- futures and tasks -------------------------------------------------------

def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    loop.call_soon(fut.set_result, 3)
    assert loop.run_until_complete(fut) == 3


def test_create_task_and_name(loop):
    async def coro():
        await asyncio.sleep(0)
        return asyncio.current_task().get_name()

    task = loop.create_task(coro(), name="my-task")
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert task.get_name() == "my-task"
    assert loop.run_until_complete(task) == "my-task"

    unnamed = loop.create_task(coro())
    assert unnamed.get_name().startswith("Task-")
    loop.run_until_complete(unnamed)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
def test_create_task_context(loop):
    var = contextvars.ContextVar("task_var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "from-ctx")

    async def coro():
        var.set(var.get() + "+task")
        return var.get()

    task = loop.create_task(coro(), context=ctx)
    assert loop.run_until_complete(task) == "from-ctx+task"
    # The task ran in ctx itself, not a copy.
    assert ctx[var] == "from-ctx+task"
    assert var.get() == "default"


def test_task_factory(loop):
    created = []

    def factory(lp, coro, **kwargs):
        assert lp is loop
        created.append(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def coro():
        return "from-factory"

    task = loop.create_task(coro(), name="named")
    assert task.get_name() == "named"
    assert loop.run_until_complete(task) == "from-factory"
    assert len(created) == 1
    # Tasks created by asyncio helpers go through the factory too.
    async def main():
        return await asyncio.gather(coro())

    # main() itself is wrapped into a task by the factory, then gather's.
    assert loop.run_until_complete(main()) == ["from-factory"]
    assert len(created) == 3

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    loop.run_until_complete(loop.create_task(coro()))
    assert len(created) == 3


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
def test_task_factory_gets_context(loop):
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(kwargs.get("context"))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()

    async def coro():
        return 1

    loop.run_until_complete(loop.create_task(coro(), context=ctx))
    assert seen == [ctx]


@pytest.mark.skipif(not PY312, reason="asyncio.eager_task_factory is 3.12+")
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    steps = []

    async def coro():
        steps.append("started")
        await asyncio.sleep(0)
        steps.append("resumed")
        return 5

    async def main():
        task = loop.create_task(coro())
        # Eager: the coroutine ran up to its first suspension already.
        assert steps == ["started"]
        return await task

    assert run(loop, main()) == 5
    assert steps == ["started", "resumed"]


def test_task_cancellation(loop):
    async def sleeper():
        await asyncio.sleep(3600)

    async def main():
        task = loop.create_task(sleeper())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert run(loop, main()) is True


def test_gather_many_tasks(loop):
    async def work(i):
        await asyncio.sleep(0.001 * (i % 5))
        return i * 2

    async def main():
        return await asyncio.gather(*[work(i) for i in range(500)])

    assert run(loop, main()) == [i * 2 for i in range(500)]


# --- exception handler API ---------------------------------------------------

def test_exception_handler_get_set(loop):
    original = loop.get_exception_handler()
    assert original is not None  # the fixture's recorder

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    loop.set_exception_handler(original)


def test_call_exception_handler_custom(loop, exc_handler):
    exc = ValueError("x")
    loop.call_exception_handler({"message": "custom", "exception": exc})
    assert len(exc_handler.calls) == 1
    assert exc_handler.calls[0]["message"] == "custom"
    assert exc_handler.calls[0]["exception"] is exc


def test_custom_handler_receives_loop(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append((lp, ctx)))
    loop.call_exception_handler({"message": "m"})
    assert got == [(loop, {"message": "m"})]


def test_default_exception_handler_logs(loop, caplog):
    loop.set_exception_handler(None)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        try:
            raise ZeroDivisionError("division")
        except ZeroDivisionError as exc:
            loop.call_exception_handler({"message": "Something broke", "exception": exc,
                                         "extra_key": "extra value"})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert "Something broke" in rec.getMessage()
    assert "extra_key: 'extra value'" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[0] is ZeroDivisionError


def test_default_exception_handler_without_message(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert msgs == ["Unhandled exception in event loop"]


def test_exception_handler_that_raises_is_logged(loop, caplog):
    def bad_handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(bad_handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(msgs) == 1
    assert "Unhandled error in exception handler" in msgs[0]
    assert "original" in msgs[0]


def test_unhandled_callback_error_goes_to_default_handler(loop, caplog):
    loop.set_exception_handler(None)

    def bad():
        raise KeyError("in callback")

    loop.call_soon(bad)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_forever()
    records = [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.ERROR]
    assert len(records) == 1
    assert records[0].exc_info[0] is KeyError
    assert "Exception in callback" in records[0].getMessage()


# --- debug -------------------------------------------------------------------

def test_get_set_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_slow_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow():
        time.sleep(0.05)

    loop.call_soon(slow)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert any(m.startswith("Executing ") and " took " in m and "slow" in m for m in msgs), msgs


def test_no_slow_callback_warning_without_debug(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    assert not [r for r in caplog.records if r.getMessage().startswith("Executing ")]


def test_coroutine_origin_tracking(loop):
    loop.set_debug(True)
    before = sys.get_coroutine_origin_tracking_depth()

    async def inner():
        return None

    async def main():
        c = inner()
        origin = c.cr_origin
        c.close()
        return sys.get_coroutine_origin_tracking_depth(), origin

    depth, origin = run(loop, main())
    assert depth > 0
    assert origin is not None and len(origin) >= 1
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_no_coroutine_origin_tracking_without_debug(loop):
    loop.set_debug(False)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert run(loop, main()) == sys.get_coroutine_origin_tracking_depth() == 0


def test_debug_handles_record_source_traceback(loop):
    loop.set_debug(True)
    h = loop.call_soon(lambda: None)
    assert h._source_traceback
    h.cancel()


# --- async generators --------------------------------------------------------

def test_shutdown_asyncgens(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g

    g = run(loop, main())
    assert closed == []
    run(loop, loop.shutdown_asyncgens())
    assert closed == [True]
    del g


def test_asyncgen_after_shutdown_warns(loop):
    async def agen():
        yield 1

    run(loop, loop.shutdown_asyncgens())

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    run(loop, main())


def test_asyncgen_finalized_by_gc_is_closed_on_loop(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(asyncio.get_running_loop())

    async def main():
        g = agen()
        await g.__anext__()
        del g  # the finalizer hook schedules aclose() on the loop
        full_gc()  # (PyPy has no reference counting)
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    assert closed == [loop]


def test_shutdown_asyncgens_reports_errors(loop, exc_handler):
    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("in aclose")

    async def main():
        g = agen()
        await g.__anext__()
        return g

    g = run(loop, main())
    run(loop, loop.shutdown_asyncgens())
    assert len(exc_handler.calls) == 1
    ctx = exc_handler.calls[0]
    assert isinstance(ctx["exception"], ValueError)
    assert "an error occurred during closing of asynchronous generator" in ctx["message"]
    assert ctx["asyncgen"] is g


# --- executors ---------------------------------------------------------------

def test_run_in_executor_default(loop):
    main_thread = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident()

    result, tid = run(loop, loop.run_in_executor(None, work, 1, 2))
    assert result == 3
    assert tid != main_thread


def test_run_in_executor_exception(loop):
    def work():
        raise LookupError("in thread")

    with pytest.raises(LookupError, match="in thread"):
        run(loop, loop.run_in_executor(None, work))


def test_run_in_executor_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom") as ex:
        name = run(loop, loop.run_in_executor(ex, lambda: threading.current_thread().name))
    assert name.startswith("custom")


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mydefault")
    loop.set_default_executor(ex)
    name = run(loop, loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("mydefault")
    run(loop, loop.shutdown_default_executor())
    # shutdown_default_executor() shut our executor down.
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)


def test_shutdown_default_executor(loop):
    run(loop, loop.run_in_executor(None, time.sleep, 0.01))
    run(loop, loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, lambda: None)


def test_shutdown_default_executor_without_executor(loop):
    run(loop, loop.shutdown_default_executor())


@pytest.mark.skipif(not PY312, reason="shutdown_default_executor(timeout=) is 3.12+")
def test_shutdown_default_executor_with_timeout_finishes(loop):
    run(loop, loop.run_in_executor(None, time.sleep, 0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(loop, loop.shutdown_default_executor(timeout=SOON))


@pytest.mark.skipif(sys.version_info < (3, 13),
                    reason="the timeout bounds the whole wait from 3.13 (3.12.1 only bounds the join)")
def test_shutdown_default_executor_timeout(loop):
    release = threading.Event()
    loop.run_in_executor(None, release.wait, SOON)

    async def main():
        with pytest.warns(RuntimeWarning, match="did not finish"):
            await loop.shutdown_default_executor(timeout=0.05)

    try:
        run(loop, main())
    finally:
        release.set()


def test_run_in_executor_many(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, i, 2) for i in range(200)]
        return await asyncio.gather(*futs)

    assert run(loop, main()) == [i * i for i in range(200)]


def test_closed_loop_shuts_executor(loop):
    run(loop, loop.run_in_executor(None, lambda: None))
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_in_executor(None, lambda: None)


def test_no_warnings_on_clean_run(loop):
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        async def main():
            await asyncio.sleep(0)
            return 1

        assert run(loop, main()) == 1


# --- iteration order -----------------------------------------------------------

def test_iteration_order_ready_then_io_then_timers(loop):
    """One iteration runs what was ready, then I/O callbacks, then due
    timers (stdlib's order)."""
    import socket

    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.send(b"x")
        order = []

        def on_read():
            a.recv(10)
            loop.remove_reader(a)
            order.append("reader")

        loop.add_reader(a, on_read)
        loop.call_at(loop.time() - 1, order.append, "timer")
        loop.call_soon(order.append, "soon")
        done = loop.create_future()
        loop.call_later(0.02, done.set_result, None)
        run(loop, done)
        assert order == ["soon", "reader", "timer"]
    finally:
        a.close()
        b.close()


def test_threadsafe_wakes_loop_waiting_on_long_timer(loop):
    fut = loop.create_future()
    long_timer = loop.call_later(3600, lambda: None)
    th = threading.Timer(0.05, loop.call_soon_threadsafe, args=(fut.set_result, "woken"))
    safety = threading.Timer(SOON, loop.call_soon_threadsafe, args=(loop.stop,))
    th.start()
    safety.start()
    try:
        assert loop.run_until_complete(fut) == "woken"
    finally:
        th.join()
        safety.cancel()
        safety.join()
        long_timer.cancel()


def test_run_forever_restores_asyncgen_hooks(loop):
    def firstiter(agen):
        pass

    def finalizer(agen):
        pass

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
    try:
        seen = []
        loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks()))
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert seen[0].firstiter is not firstiter  # the loop's own while running
        hooks = sys.get_asyncgen_hooks()
        assert hooks.firstiter is firstiter and hooks.finalizer is finalizer
    finally:
        sys.set_asyncgen_hooks(*old)


def test_run_until_complete_done_future(loop):
    fut = loop.create_future()
    fut.set_result("already")
    assert loop.run_until_complete(fut) == "already"


def test_exception_context_for_failing_callback(loop, exc_handler):
    def failing():
        raise ValueError("ctx")

    handle = loop.call_soon(failing)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(exc_handler.calls) == 1
    ctx = exc_handler.calls[0]
    assert ctx["message"].startswith("Exception in callback ")
    assert ctx["handle"] is handle
    assert isinstance(ctx["exception"], ValueError)


def test_exception_context_for_failing_task(loop, exc_handler):
    async def failing():
        raise ValueError("task ctx")

    async def main():
        t = loop.create_task(failing())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return t

    task = run(loop, main())
    assert task.done()
    del task
    full_gc()
    assert len(exc_handler.calls) == 1
    ctx = exc_handler.calls[0]
    assert ctx["message"] == "Task exception was never retrieved"
    assert isinstance(ctx["exception"], ValueError)
    assert "future" in ctx
