"""loop.stats() and loop.set_slow_callback_hook() (docs/api.md, "Observability").

stdlib's loop has neither, so most tests here run on uvloop_like only (the
``uvl`` fixture: the same checks as the ``loop`` fixture).  Debug mode's
slow-callback warning, which stdlib has, is checked on both loops.  No test
asserts that something is fast: durations are only checked from below (a
callback that slept 0.2 s took at least 0.2 s) or against the wall clock
measured around them.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import tempfile
import time

import pytest
from conftest import loop_fixture

SLEEP = 0.2


@pytest.fixture
def uvl(_exception_recorder):
    yield from loop_fixture("uvloop_like", _exception_recorder)


def _delta(after, before):
    return {k: after[k] - before[k] for k in after.keys()}


def _settle(loop, turns=5):
    """A few iterations, so that closing transports finish closing."""
    async def spin():
        for _ in range(turns):
            await asyncio.sleep(0)
    loop.run_until_complete(spin())


def _assert_two_transports_moved(uvl, base, during, nbytes):
    """Two open transports moved ``nbytes`` each way by ``during``; once
    closed and settled, the transport and handle gauges are back to ``base``."""
    d = _delta(during, base)
    assert d["bytes_sent"] == d["bytes_received"] == nbytes
    assert d["transports"] == 2
    _settle(uvl)
    end = uvl.stats()
    assert (end.transports, end.handles) == (base.transports, base.handles)


# --- the snapshot --------------------------------------------------------------

FIELDS = ("iterations", "callbacks", "idle_time", "busy_time", "slow_callbacks", "max_callback_time",
          "bytes_received", "bytes_sent", "connections_accepted", "ready", "timers", "handles", "transports")


def test_snapshot_shape(uvl):
    s = uvl.stats()
    assert s._fields == FIELDS
    assert list(dict(s)) == list(FIELDS)
    assert dict(s) == s._asdict()
    for name in FIELDS:
        assert getattr(s, name) == dict(s)[name] == s[name]
    assert s[0] == s.iterations  # still a tuple
    assert tuple(s) == tuple(getattr(s, f) for f in FIELDS)
    with pytest.raises(KeyError):
        s["nope"]
    for name in ("idle_time", "busy_time", "max_callback_time"):
        assert isinstance(getattr(s, name), float)
    for name in set(FIELDS) - {"idle_time", "busy_time", "max_callback_time"}:
        assert isinstance(getattr(s, name), int)
    # A new loop has done nothing yet.
    assert (s.iterations, s.callbacks, s.bytes_received, s.bytes_sent, s.connections_accepted) == (0, 0, 0, 0, 0)
    assert (s.ready, s.timers, s.transports, s.slow_callbacks) == (0, 0, 0, 0)
    assert s.idle_time == s.busy_time == s.max_callback_time == 0.0


def test_stats_after_close(uvl):
    uvl.run_until_complete(asyncio.sleep(0))
    before = uvl.stats()
    uvl.close()
    after = uvl.stats()
    assert after.iterations == before.iterations and after.callbacks == before.callbacks
    assert (after.ready, after.timers, after.handles, after.transports) == (0, 0, 0, 0)


# --- scheduler counters ----------------------------------------------------------

def test_call_soon_batch_counts(uvl):
    ran = []
    before = uvl.stats()
    for i in range(1000):
        uvl.call_soon(ran.append, i)
    cancelled = [uvl.call_soon(ran.append, -1) for _ in range(10)]
    for h in cancelled:
        h.cancel()
    assert uvl.stats().ready == 1010  # queued, cancelled ones included until the loop drops them
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    d = _delta(uvl.stats(), before)
    assert len(ran) == 1000
    assert d["callbacks"] == 1001  # the 1000 and stop; cancelled handles are not run
    assert d["iterations"] >= 1
    assert uvl.stats().ready == 0


def _chain(loop, count):
    """Run a callback that re-schedules itself ``count`` times: one per iteration."""
    left = [count]

    def step():
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    loop.run_forever()


@pytest.mark.parametrize("patched", [False, True], ids=["run_forever", "instance_run_once"])
def test_callbacks_count_chain(uvl, patched):
    if patched:
        # An instance-replaced _run_once is called once per iteration (as stdlib's).
        original = uvl._run_once
        uvl._run_once = lambda: original()
    before = uvl.stats()
    _chain(uvl, 50)
    d = _delta(uvl.stats(), before)
    assert d["callbacks"] == 50
    assert d["iterations"] >= 50


def test_callbacks_counted_when_a_callback_raises_keyboardinterrupt(uvl):
    before = uvl.stats()

    def boom():
        raise KeyboardInterrupt

    uvl.call_soon(lambda: None)
    uvl.call_soon(boom)
    uvl.call_soon(lambda: None)
    with pytest.raises(KeyboardInterrupt):
        uvl.run_forever()
    assert uvl.stats().callbacks - before.callbacks == 2  # the third has not run yet
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert uvl.stats().callbacks - before.callbacks == 4


def test_timers_gauge(uvl):
    timers = [uvl.call_later(60, lambda: None) for _ in range(5)]
    assert uvl.stats().timers == 5
    timers[0].cancel()
    timers[1].cancel()
    assert uvl.stats().timers == 3
    for t in timers:
        t.cancel()
    assert uvl.stats().timers == 0
    uvl.run_until_complete(asyncio.sleep(0))
    assert uvl.stats().timers == 0


def test_sleep_is_idle_time(uvl):
    before = uvl.stats()
    t0 = time.monotonic()
    uvl.run_until_complete(asyncio.sleep(SLEEP))
    wall = time.monotonic() - t0
    d = _delta(uvl.stats(), before)
    assert d["idle_time"] >= 0.5 * SLEEP
    assert d["busy_time"] >= 0
    # Both accrue only while the loop runs, on the same monotonic clock.
    assert d["idle_time"] + d["busy_time"] <= wall + 1e-3
    assert d["timers"] == 0


def test_busy_time_and_max_callback_time(uvl):
    before = uvl.stats()

    def spin():
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            pass

    uvl.call_soon(spin)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    after = uvl.stats()
    assert after.busy_time - before.busy_time >= 0.05
    assert after.max_callback_time >= 0.05  # an upper bound of every callback's time
    assert after.max_callback_time <= after.busy_time


def test_stats_inside_a_callback(uvl):
    seen = []

    def probe():
        seen.append(uvl.stats())

    async def main():
        uvl.call_soon(probe)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        uvl.call_soon(probe)
        await asyncio.sleep(0)

    uvl.run_until_complete(main())
    first, second = seen
    assert second.iterations > first.iterations
    assert second.callbacks > first.callbacks
    assert second.busy_time >= first.busy_time
    # The interval under way is included: busy time grows while a callback runs.
    assert first.busy_time > 0


# --- byte and connection counters --------------------------------------------------

class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class _Collect(asyncio.Protocol):
    def __init__(self, want):
        self.want = want
        self.data = bytearray()
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.want and not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(bytes(self.data))


def test_tcp_echo_bytes_and_accepts(uvl):
    size = 64 * 1024 + 7
    payload = os.urandom(size)
    base = uvl.stats()

    async def main():
        server = await uvl.create_server(_Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await uvl.create_connection(lambda: _Collect(size), "127.0.0.1", port)
        transport.write(payload)
        assert await asyncio.wait_for(proto.done, 10) == payload
        during = uvl.stats()
        transport.close()
        server.close()
        await server.wait_closed()
        return during

    during = uvl.run_until_complete(main())
    d = _delta(during, base)
    # Both ends live on this loop: each byte is sent twice and received twice.
    assert d["bytes_sent"] == 2 * size
    assert d["bytes_received"] == 2 * size
    assert d["connections_accepted"] == 1
    assert d["transports"] == 2  # the client and the server's connection
    assert d["handles"] >= 2
    _settle(uvl)
    end = uvl.stats()
    assert (end.transports, end.handles, end.ready, end.timers) == (base.transports, base.handles, 0, 0)


def test_streams_bytes(uvl):
    async def handle(reader, writer):
        writer.write(await reader.readexactly(3000))
        await writer.drain()
        writer.close()

    base = uvl.stats()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 3000)
        assert await reader.readexactly(3000) == b"x" * 3000
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    uvl.run_until_complete(main())
    d = _delta(uvl.stats(), base)
    assert d["bytes_sent"] == d["bytes_received"] == 6000
    assert d["connections_accepted"] == 1
    _settle(uvl)
    assert uvl.stats().transports == base.transports


def test_sendfile_bytes(uvl, tmp_path):
    size = 200_000
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(size))
    base = uvl.stats()

    async def main():
        server = await uvl.create_server(lambda: _Collect(size), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await uvl.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with open(path, "rb") as f:
            assert await uvl.sendfile(transport, f) == size
        transport.close()
        server.close()
        await server.wait_closed()

    uvl.run_until_complete(main())
    _settle(uvl)
    d = _delta(uvl.stats(), base)
    assert d["bytes_sent"] == size
    assert d["bytes_received"] == size


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, echo, want=0):
        self.echo = echo
        self.want = want
        self.got = []
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got.append(data)
        if self.echo:
            self.transport.sendto(data, addr)
        elif len(self.got) == self.want and not self.done.done():
            self.done.set_result(None)


def test_udp_bytes(uvl):
    base = uvl.stats()

    async def main():
        server, _ = await uvl.create_datagram_endpoint(lambda: _Datagrams(True), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await uvl.create_datagram_endpoint(lambda: _Datagrams(False, 5), remote_addr=addr)
        for i in range(5):
            client.sendto(bytes([i]) * 100)
        await asyncio.wait_for(proto.done, 10)
        during = uvl.stats()
        client.close()
        server.close()
        return during

    _assert_two_transports_moved(uvl, base, uvl.run_until_complete(main()), 1000)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="unix sockets")
def test_unix_datagram_bytes(uvl):
    tmp = tempfile.mkdtemp(prefix="uvl-obs-")
    path_a, path_b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    base = uvl.stats()

    async def main():
        a, _ = await uvl.create_datagram_endpoint(lambda: _Datagrams(True), local_addr=path_a,
                                                  family=socket.AF_UNIX)
        b, proto = await uvl.create_datagram_endpoint(lambda: _Datagrams(False, 3), local_addr=path_b,
                                                      remote_addr=path_a, family=socket.AF_UNIX)
        for _ in range(3):
            b.sendto(b"u" * 50)
        await asyncio.wait_for(proto.done, 10)
        a.close()
        b.close()

    try:
        uvl.run_until_complete(main())
    finally:
        for p in (path_a, path_b):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmp)
    d = _delta(uvl.stats(), base)
    assert d["bytes_sent"] == d["bytes_received"] == 300


def test_pipe_bytes(uvl):
    rfd, wfd = os.pipe()
    base = uvl.stats()

    async def main():
        rpipe = os.fdopen(rfd, "rb", 0)
        wpipe = os.fdopen(wfd, "wb", 0)
        rtransport, rproto = await uvl.connect_read_pipe(lambda: _Collect(5000), rpipe)
        wtransport, _ = await uvl.connect_write_pipe(asyncio.Protocol, wpipe)
        wtransport.write(b"p" * 5000)
        assert await asyncio.wait_for(rproto.done, 10) == b"p" * 5000
        during = uvl.stats()
        wtransport.close()
        rtransport.close()
        return during

    _assert_two_transports_moved(uvl, base, uvl.run_until_complete(main()), 5000)


# --- the slow-callback hook -------------------------------------------------------

def _sleepy(seconds=SLEEP):
    time.sleep(seconds)


def test_hook_fires_once_for_a_slow_callback(uvl):
    calls = []
    uvl.set_slow_callback_hook(lambda handle, seconds: calls.append((handle, seconds)), threshold=0.1)
    before = uvl.stats()
    for _ in range(100):
        uvl.call_soon(lambda: None)
    slow = uvl.call_soon(_sleepy)
    for _ in range(100):
        uvl.call_soon(lambda: None)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert len(calls) == 1
    handle, seconds = calls[0]
    assert handle is slow
    assert isinstance(handle, asyncio.Handle)
    assert seconds >= SLEEP
    after = uvl.stats()
    assert after.slow_callbacks - before.slow_callbacks == 1
    assert after.callbacks - before.callbacks == 202  # counted in the timed path too
    assert after.max_callback_time >= SLEEP


def test_hook_never_fires_for_fast_callbacks(uvl):
    calls = []
    uvl.set_slow_callback_hook(lambda h, s: calls.append(h), threshold=0.1)

    async def main():
        for _ in range(200):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)

    uvl.run_until_complete(main())
    assert calls == []
    assert uvl.stats().slow_callbacks == 0


def test_hook_removed(uvl):
    calls = []
    uvl.set_slow_callback_hook(lambda h, s: calls.append(h), threshold=0.01)
    uvl.set_slow_callback_hook(None)
    uvl.call_soon(_sleepy, 0.05)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert calls == []
    assert uvl.stats().slow_callbacks == 0


def test_raising_hook_reaches_the_exception_handler(uvl, exc_handler):
    error = RuntimeError("hook failed")

    def hook(handle, seconds):
        raise error

    uvl.set_slow_callback_hook(hook, threshold=0.05)
    slow = uvl.call_soon(_sleepy, 0.1)
    after = []
    uvl.call_soon(after.append, 1)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert after == [1]  # the loop went on
    assert len(exc_handler) == 1
    context = exc_handler[0]
    assert context["exception"] is error
    assert context["handle"] is slow
    assert "slow callback hook" in context["message"]


def test_hook_reports_a_slow_data_received_with_its_transport(uvl):
    calls = []

    class SlowServer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            time.sleep(0.15)
            self.transport.write(data)

    async def main():
        server = await uvl.create_server(SlowServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        uvl.set_slow_callback_hook(lambda h, s: calls.append((h, s)), threshold=0.1)
        transport, proto = await uvl.create_connection(lambda: _Collect(5), "127.0.0.1", port)
        transport.write(b"hello")
        assert await asyncio.wait_for(proto.done, 10) == b"hello"
        transport.close()
        server.close()
        await server.wait_closed()

    uvl.run_until_complete(main())
    assert len(calls) == 1
    owner, seconds = calls[0]
    assert isinstance(owner, asyncio.Transport)
    assert seconds >= 0.15
    _settle(uvl)


def test_hook_in_debug_mode_keeps_the_warning(uvl, caplog):
    calls = []
    uvl.set_debug(True)
    uvl.slow_callback_duration = 0.05
    uvl.set_slow_callback_hook(lambda h, s: calls.append(h), threshold=0.05)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        slow = uvl.call_soon(_sleepy, 0.1)
        uvl.call_soon(uvl.stop)
        uvl.run_forever()
    assert calls == [slow]
    assert any("took" in r.getMessage() and "_sleepy" in r.getMessage() for r in caplog.records)


def test_debug_slow_callback_warning(loop, caplog):
    # stdlib's behaviour, kept with or without a hook.
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(_sleepy, 0.1)
        loop.call_soon(loop.stop)
        loop.run_forever()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("Executing") and "took" in m and "_sleepy" in m for m in messages), messages


@pytest.mark.parametrize("hook,threshold,error", [
    (42, 0.1, TypeError),
    ("print", 0.1, TypeError),
    (print, "0.1", TypeError),
    (print, None, TypeError),
    (print, -0.1, ValueError),
    (print, float("nan"), ValueError),
    (print, -math.inf, ValueError),
])
def test_hook_bad_input(uvl, hook, threshold, error):
    with pytest.raises(error):
        uvl.set_slow_callback_hook(hook, threshold)
    # Nothing was set.
    assert uvl._slow_callback_hook is None


def test_hook_threshold_zero_reports_everything(uvl):
    calls = []
    uvl.set_slow_callback_hook(lambda h, s: calls.append(h), threshold=0)
    uvl.call_soon(lambda: None)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert len(calls) == 2
    assert all(isinstance(h, asyncio.Handle) for h in calls)


# --- handovers between the cores, and the native core itself ------------------------

def test_callbacks_exact_when_debug_mode_starts_mid_run(uvl):
    # The native core hands the rest of the run to the Python core when debug
    # mode starts: each handle is still counted once.
    before = uvl.stats()
    left = [50]

    def step():
        left[0] -= 1
        if left[0] == 25:
            uvl.set_debug(True)
        if left[0]:
            uvl.call_soon(step)
        else:
            uvl.stop()

    uvl.call_soon(step)
    uvl.run_forever()
    uvl.set_debug(False)
    d = _delta(uvl.stats(), before)
    # The 50 steps, and set_debug's call_soon_threadsafe of the loop's
    # coroutine origin tracking (as stdlib's set_debug on a running loop).
    assert d["callbacks"] == 51
    assert d["iterations"] >= 50


def test_hook_set_and_removed_mid_run(uvl):
    calls = []
    before = uvl.stats()

    def hook(handle, seconds):
        calls.append(handle)

    def set_hook():
        uvl.set_slow_callback_hook(hook, threshold=0.05)

    def remove_hook():
        uvl.set_slow_callback_hook(None)

    async def main():
        await asyncio.sleep(0)
        unhooked = [uvl.call_soon(_sleepy, 0.06)]  # before the hook: not reported
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        uvl.call_soon(set_hook)
        await asyncio.sleep(0)
        slow = uvl.call_soon(_sleepy, 0.06)  # reported
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        uvl.call_soon(remove_hook)
        await asyncio.sleep(0)
        unhooked.append(uvl.call_soon(_sleepy, 0.06))  # after: not reported
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return slow, unhooked

    slow, unhooked = uvl.run_until_complete(main())
    # (Exactly: a busy machine may make another callback of the hooked
    # stretch slow too.)
    assert calls.count(slow) == 1
    assert not any(h in calls for h in unhooked)
    assert uvl.stats().slow_callbacks - before.slow_callbacks == len(calls)


def test_hook_counts_cancelled_and_raising_handles_as_the_untimed_path(uvl, exc_handler):
    uvl.set_slow_callback_hook(lambda h, s: None, threshold=10)
    before = uvl.stats()
    uvl.call_soon(lambda: None)
    uvl.call_soon(lambda: None).cancel()
    uvl.call_soon(lambda: 1 / 0)
    uvl.call_soon(uvl.stop)
    uvl.run_forever()
    assert uvl.stats().callbacks - before.callbacks == 3  # the cancelled one did not run
    assert len(exc_handler) == 1 and isinstance(exc_handler[0]["exception"], ZeroDivisionError)


NATIVE = __import__("uvloop_like").core() == "native"


@pytest.mark.skipif(not NATIVE, reason="about the native core (the default on CPython; make test-unit runs it)")
def test_native_core_keeps_the_counters_itself(uvl):
    # What ran is the native core: the loop's scheduling methods are its
    # bound C methods, and the Python core's run loop (its per-iteration
    # libuv run, LoopCore.run, and its timed path) is never entered, while
    # every counter and the hook work.
    # Debug mode (PYTHONASYNCIODEBUG=1, make test-debug) runs on the Python
    # core by design: this test is about the native core's own loop.
    uvl.set_debug(False)
    native = uvl._native
    assert native is not None and type(native).__module__ == "uvloop_like._core"
    for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at"):
        assert getattr(uvl, name).__self__ is native
    python_paths = []

    def python_path(name):
        # Fail at once: a Python-core iteration without its libuv run would
        # spin (and record) forever.
        def entered(*args):
            python_paths.append(name)
            raise AssertionError(f"the Python core's {name} ran")
        return entered

    real_run = uvl._core.run
    uvl._core.run = python_path("LoopCore.run")
    uvl._run_ready_timed = python_path("_run_ready_timed")
    calls = []
    uvl.set_slow_callback_hook(lambda h, s: calls.append((h, s)), threshold=0.1)

    class SlowEcho(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            time.sleep(0.12)
            self.transport.write(data)

    before = uvl.stats()
    slow = []

    async def main():
        for _ in range(100):
            await asyncio.sleep(0)
        await asyncio.sleep(SLEEP)  # idle
        slow.append(uvl.call_soon(_sleepy, 0.12))
        await asyncio.sleep(0)
        server = await uvl.create_server(SlowEcho, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await uvl.create_connection(lambda: _Collect(4), "127.0.0.1", port)
        transport.write(b"ping")
        assert await asyncio.wait_for(proto.done, 10) == b"ping"
        transport.close()
        server.close()
        await server.wait_closed()

    try:
        uvl.run_until_complete(main())
        _settle(uvl)
    finally:
        uvl._core.run = real_run
        del uvl._run_ready_timed
    after = uvl.stats()
    d = _delta(after, before)
    assert python_paths == []
    assert d["iterations"] >= 100
    assert d["callbacks"] >= 100
    assert d["idle_time"] >= 0.5 * SLEEP
    assert d["busy_time"] >= 0.24  # the two slow callbacks
    assert after.max_callback_time >= 0.12
    assert d["bytes_sent"] == d["bytes_received"] == 8
    assert d["connections_accepted"] == 1
    # The slow callback and the slow data_received (its transport); a busy
    # machine may add others, so not exactly two.
    assert d["slow_callbacks"] == len(calls) >= 2
    assert [s for h, s in calls if h is slow[0]] and [s for h, s in calls if h is slow[0]][0] >= 0.12
    transports = [s for h, s in calls if isinstance(h, asyncio.Transport)]
    assert transports and max(transports) >= 0.12
    assert (after.ready, after.timers, after.transports) == (0, 0, before.transports)


@pytest.mark.skipif(not hasattr(__import__("sys"), "getallocatedblocks"),
                    reason="sys.getallocatedblocks() is CPython's")
@pytest.mark.timeout(300)
@pytest.mark.parametrize("threshold", [None, 10.0, 0.0], ids=["no_hook", "hook_quiet", "hook_every_callback"])
def test_no_leak_with_counters_and_hook(uvl, threshold):
    import gc
    import sys

    reported = [0]

    def hook(handle, seconds):
        reported[0] += 1

    if threshold is not None:
        uvl.set_slow_callback_hook(hook, threshold=threshold)

    def burst(n_batches):
        left = [n_batches]

        def batch():
            for _ in range(100):
                uvl.call_soon(len, ())
            left[0] -= 1
            if left[0]:
                uvl.call_soon(batch)
            else:
                uvl.call_soon(uvl.stop)

        uvl.call_soon(batch)
        uvl.run_forever()

    burst(20)
    gc.collect()
    before = sys.getallocatedblocks()
    burst(1000)  # 101,000 callbacks
    gc.collect()
    after = sys.getallocatedblocks()
    assert after - before < 2000, (before, after)
    if threshold == 0.0:
        assert reported[0] >= 101_000


def test_debug_mode_started_by_a_callback_while_a_hook_is_set(uvl, caplog):
    # The rest of the iteration gets debug mode's warning too (the Python
    # core's timed path asks before each callback).
    calls = []
    uvl.set_slow_callback_hook(lambda h, s: calls.append(h), threshold=0.05)
    uvl.slow_callback_duration = 0.05
    before = uvl.stats()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        uvl.call_soon(uvl.set_debug, True)
        slow = uvl.call_soon(_sleepy, 0.06)
        uvl.call_soon(uvl.stop)
        uvl.run_forever()
    uvl.set_debug(False)
    assert calls.count(slow) == 1
    assert any("took" in r.getMessage() and "_sleepy" in r.getMessage() for r in caplog.records)
    # The three (set_debug's call_soon_threadsafe on the running loop is
    # still queued: stop() ended the loop in the same iteration).
    assert uvl.stats().callbacks - before.callbacks == 3
    assert uvl.stats().ready == 1
