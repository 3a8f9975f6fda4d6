"""Exceptions raised by callbacks: ordinary ones reach the exception handler
and the loop keeps going; KeyboardInterrupt and SystemExit stop run_forever
and propagate.  Closed loops refuse work with stdlib's RuntimeError."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading

import pytest
from loop_testutil import SOON, run


class Boom(Exception):
    pass


def _raise(exc_type=Boom):
    raise exc_type("from callback")


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def restore_sigusr1():
    saved = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, saved)
    signal.set_wakeup_fd(-1)


# Each scheduler arranges for _raise(exc_type) to run once as a loop
# callback, plus whatever it needs to undo afterwards (returns a cleanup).

def _sched_call_soon(loop, func, pair):
    loop.call_soon(func)


def _sched_call_later(loop, func, pair):
    loop.call_later(0.001, func)


def _sched_call_at(loop, func, pair):
    loop.call_at(loop.time(), func)


def _sched_threadsafe(loop, func, pair):
    th = threading.Thread(target=loop.call_soon_threadsafe, args=(func,))
    th.start()
    th.join()


def _sched_reader(loop, func, pair):
    a, b = pair

    def on_read():
        a.recv(100)
        loop.remove_reader(a)
        func()

    loop.add_reader(a, on_read)
    b.send(b"x")


def _sched_writer(loop, func, pair):
    a, _ = pair

    def on_write():
        loop.remove_writer(a)
        func()

    loop.add_writer(a, on_write)


def _sched_done_callback(loop, func, pair):
    fut = loop.create_future()
    fut.add_done_callback(lambda f: func())
    loop.call_soon(fut.set_result, None)


def _sched_signal(loop, func, pair):
    def handler():
        loop.remove_signal_handler(signal.SIGUSR1)
        func()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)


SCHEDULERS = {
    "call_soon": _sched_call_soon,
    "call_later": _sched_call_later,
    "call_at": _sched_call_at,
    "call_soon_threadsafe": _sched_threadsafe,
    "reader": _sched_reader,
    "writer": _sched_writer,
    "done_callback": _sched_done_callback,
    "signal_handler": _sched_signal,
}


@pytest.mark.parametrize("where", SCHEDULERS)
def test_exception_in_callback_reaches_handler(loop, exc_handler, pair, restore_sigusr1, where):
    ran = []

    def func():
        ran.append(True)
        _raise(Boom)

    SCHEDULERS[where](loop, func, pair)
    after = loop.create_future()
    loop.call_later(0.05, after.set_result, "loop kept running")
    assert run(loop, after) == "loop kept running"
    assert ran == [True]
    assert len(exc_handler.calls) == 1
    ctx = exc_handler.calls[0]
    assert isinstance(ctx["exception"], Boom)
    assert "message" in ctx
    assert "handle" in ctx or "future" in ctx


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", SCHEDULERS)
def test_base_exception_in_callback_propagates(loop, pair, restore_sigusr1, where, exc_type):
    ran = []

    def func():
        ran.append(True)
        raise exc_type()

    SCHEDULERS[where](loop, func, pair)
    safety = loop.call_later(SOON, loop.stop)
    with pytest.raises(exc_type):
        loop.run_forever()
    safety.cancel()
    assert ran == [True]
    assert not loop.is_running()
    # The loop is still usable.
    assert run(loop, asyncio.sleep(0, "usable")) == "usable"


def test_keyboard_interrupt_keeps_other_ready_callbacks(loop):
    calls = []

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(calls.append, 1)
    loop.call_soon(interrupt)
    loop.call_soon(calls.append, 2)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert calls == [1]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1, 2]


def test_keyboard_interrupt_in_coroutine(loop):
    async def main():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())


def test_system_exit_in_task_from_run_until_complete(loop):
    async def main():
        await asyncio.sleep(0.001)
        raise SystemExit(3)

    with pytest.raises(SystemExit) as exc_info:
        loop.run_until_complete(main())
    assert exc_info.value.code == 3


def test_exception_in_task_never_retrieved_is_reported(loop, exc_handler):
    async def failing():
        raise Boom("in task")

    async def main():
        task = loop.create_task(failing())
        await asyncio.sleep(0.01)
        assert task.done()

    run(loop, main())
    import gc
    gc.collect()
    assert any(isinstance(c.get("exception"), Boom) for c in exc_handler.calls)


def test_many_failing_callbacks_all_reported(loop, exc_handler):
    for _ in range(100):
        loop.call_soon(_raise, Boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(exc_handler.calls) == 100


def test_exception_handler_raising_keyboard_interrupt_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    loop.call_soon(_raise, Boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()


# --- closing with work pending ---------------------------------------------------

def test_close_with_pending_everything(loop, pair):
    """Timers, ready callbacks, readers, writers, futures, executor jobs:
    close() drops them without crashing (the fixture checks that no libuv
    handle is left)."""
    a, b = pair
    calls = []
    loop.call_soon(calls.append, "soon")
    loop.call_later(3600, calls.append, "later")
    loop.call_at(loop.time() + 7200, calls.append, "at")
    loop.add_reader(a, calls.append, "reader")
    loop.add_writer(b, calls.append, "writer")
    fut = loop.create_future()
    loop.run_in_executor(None, lambda: None)
    loop.close()
    assert loop.is_closed()
    assert calls == []
    assert not fut.done()


def test_close_after_run_with_pending_timers(loop):
    calls = []
    for i in range(100):
        loop.call_later(3600 + i, calls.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert calls == []


# --- closed loop -------------------------------------------------------------------

def _closed_loop_calls(loop, pair):
    a, _ = pair
    return {
        "call_soon": lambda: loop.call_soon(lambda: None),
        "call_later": lambda: loop.call_later(1, lambda: None),
        "call_at": lambda: loop.call_at(loop.time() + 1, lambda: None),
        "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(lambda: None),
        "run_forever": lambda: loop.run_forever(),
        "run_in_executor": lambda: loop.run_in_executor(None, lambda: None),
        "add_reader": lambda: loop.add_reader(a, lambda: None),
        "add_writer": lambda: loop.add_writer(a, lambda: None),
        "add_signal_handler": lambda: loop.add_signal_handler(signal.SIGUSR1, lambda: None),
    }


@pytest.mark.parametrize("method", list(_closed_loop_calls(None, (None, None))))
def test_closed_loop_raises(loop, pair, method, restore_sigusr1):
    loop.close()
    call = _closed_loop_calls(loop, pair)[method]
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        call()


def test_closed_loop_run_until_complete(loop):
    loop.close()

    async def main():
        return 1

    coro = main()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_until_complete(coro)
    coro.close()


def test_closed_loop_create_task(loop):
    loop.close()

    async def main():
        return 1

    coro = main()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.create_task(coro)
    coro.close()


def test_closed_loop_remove_reader_is_false(loop, pair):
    a, _ = pair
    loop.add_reader(a, lambda: None)
    loop.close()
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_closed_loop_still_answers_queries(loop):
    loop.close()
    assert loop.is_closed()
    assert not loop.is_running()
    assert isinstance(loop.time(), float)
    loop.get_debug()
    loop.set_debug(True)
    loop.stop()  # harmless
    fut = loop.create_future()  # allowed on a closed loop, as stdlib
    assert not fut.done()


def test_future_callbacks_after_close(loop):
    """Completing a future of a closed loop raises as stdlib does (its done
    callbacks would be scheduled with call_soon)."""
    fut = loop.create_future()
    fut.add_done_callback(lambda f: None)
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        fut.set_result(1)
