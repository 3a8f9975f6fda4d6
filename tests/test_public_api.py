"""The public face of uvloop_like: run(), EventLoopPolicy, install(),
new_event_loop(), asyncio.Runner(loop_factory=...), libuv_version(), and the
methods that are not implemented yet."""
from __future__ import annotations

import asyncio
import os
import sys

import pytest
from conftest import open_uv_handles

import uvloop_like

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)

# uvloop_like.run vs asyncio.run, and their loop factories.
RUNNERS = {
    "asyncio": (asyncio.run, asyncio.new_event_loop, asyncio.DefaultEventLoopPolicy),
    "uvloop_like": (uvloop_like.run, uvloop_like.new_event_loop, uvloop_like.EventLoopPolicy),
}


@pytest.fixture(params=list(RUNNERS))
def runner_kind(request):
    return request.param


@pytest.fixture
def restore_policy():
    # Use the private global so this does not trigger deprecation warnings
    # on versions that deprecate the policy API.
    from asyncio import events

    saved = events._event_loop_policy
    yield
    events._event_loop_policy = saved


def test_new_event_loop_type():
    loop = uvloop_like.new_event_loop()
    try:
        assert isinstance(loop, uvloop_like.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not loop.is_running()
        assert not loop.is_closed()
        # The leak check that every test runs is not vacuous: an open loop
        # does own libuv handles.
        assert open_uv_handles(loop)
    finally:
        loop.close()
    assert open_uv_handles(loop) == []


def test_new_event_loops_are_independent():
    loops = [uvloop_like.new_event_loop() for _ in range(5)]
    try:
        results = [lp.run_until_complete(asyncio.sleep(0, i)) for i, lp in enumerate(loops)]
        assert results == list(range(5))
    finally:
        for lp in loops:
            lp.close()
    for lp in loops:
        assert open_uv_handles(lp) == []


def test_run_returns_result(runner_kind):
    run_func, _, _ = RUNNERS[runner_kind]
    seen = []

    async def main(x):
        seen.append(type(asyncio.get_running_loop()).__module__)
        await asyncio.sleep(0.001)
        return x * 2

    assert run_func(main(21)) == 42
    if runner_kind == "uvloop_like":
        assert seen[0].startswith("uvloop_like")


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug(runner_kind, debug):
    run_func, _, _ = RUNNERS[runner_kind]

    async def main():
        return asyncio.get_running_loop().get_debug()

    assert run_func(main(), debug=debug) is debug


def test_run_propagates_exception(runner_kind):
    run_func, _, _ = RUNNERS[runner_kind]

    async def main():
        raise LookupError("inside run")

    with pytest.raises(LookupError, match="inside run"):
        run_func(main())


def test_run_cancels_leftover_tasks_and_closes_asyncgens(runner_kind):
    run_func, _, _ = RUNNERS[runner_kind]
    events = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("task cancelled")
            raise

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def main():
        asyncio.get_running_loop().create_task(leftover())
        g = agen()
        await g.__anext__()
        main.g = g
        await asyncio.sleep(0)
        return "done"

    assert run_func(main()) == "done"
    assert sorted(events) == ["agen closed", "task cancelled"]
    del main.g


def test_run_from_running_loop_raises(runner_kind):
    run_func, _, _ = RUNNERS[runner_kind]

    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                run_func(coro)
        finally:
            coro.close()

    asyncio.run(main())


def test_run_non_coroutine_raises(runner_kind):
    run_func, _, _ = RUNNERS[runner_kind]
    with pytest.raises((ValueError, TypeError)) as exc_info:
        run_func(123)
    with pytest.raises(type(exc_info.value)):
        asyncio.run(123)


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_with_loop_factory(runner_kind):
    _, factory, _ = RUNNERS[runner_kind]

    async def main(x):
        await asyncio.sleep(0)
        return x, asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=factory) as runner:
        first, loop1 = runner.run(main(1))
        second, loop2 = runner.run(main(2))
        assert runner.get_loop() is loop1 is loop2
    assert (first, second) == (1, 2)
    assert loop1.is_closed()
    if runner_kind == "uvloop_like":
        assert isinstance(loop1, uvloop_like.Loop)
        assert open_uv_handles(loop1) == []


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_debug(runner_kind):
    _, factory, _ = RUNNERS[runner_kind]

    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(loop_factory=factory, debug=True) as runner:
        assert runner.run(main()) is True


@pytest.mark.skipif(not PY312, reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory():
    async def main():
        return type(asyncio.get_running_loop())

    assert asyncio.run(main(), loop_factory=uvloop_like.new_event_loop) is uvloop_like.Loop


def test_event_loop_policy(restore_policy, runner_kind):
    _, _, policy_cls = RUNNERS[runner_kind]
    policy = policy_cls()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    loop = policy.new_event_loop()
    try:
        if runner_kind == "uvloop_like":
            assert isinstance(loop, uvloop_like.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, "policy")) == "policy"
    finally:
        loop.close()


def test_set_event_loop_policy_then_asyncio_run(restore_policy):
    asyncio.set_event_loop_policy(uvloop_like.EventLoopPolicy())

    async def main():
        return type(asyncio.get_running_loop())

    assert asyncio.run(main()) is uvloop_like.Loop


def test_install(restore_policy):
    uvloop_like.install()
    assert isinstance(asyncio.get_event_loop_policy(), uvloop_like.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop_like.Loop)
    finally:
        loop.close()


def test_policy_get_event_loop_in_main_thread(restore_policy):
    policy = uvloop_like.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        policy.set_event_loop(loop)
        assert policy.get_event_loop() is loop
    finally:
        policy.set_event_loop(None)
        loop.close()


def test_libuv_version():
    version = uvloop_like.libuv_version()
    assert isinstance(version, str)
    parts = version.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)
    if os.environ.get("UVLOOP_LIKE_SYSTEM_LIBUV") == "1":
        assert tuple(map(int, parts)) >= (1, 44, 0)
    else:
        assert version == "1.52.1"


def test_public_names():
    for name in ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run", "libuv_version"):
        assert name in uvloop_like.__all__
        assert getattr(uvloop_like, name).__doc__


def test_loop_repr():
    loop = uvloop_like.new_event_loop()
    try:
        assert "running=False" in repr(loop) and "closed=False" in repr(loop)
    finally:
        loop.close()
    assert "closed=True" in repr(loop)
