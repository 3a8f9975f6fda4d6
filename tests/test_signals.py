"""add_signal_handler / remove_signal_handler, and Ctrl-C out of run_forever."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import LOOP_KINDS
from loop_testutil import ROOT, SOON, describe_crash, run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WATCHED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP, signal.SIGWINCH)


@pytest.fixture(autouse=True)
def restore_signals():
    """Signal dispositions and the wakeup fd are process-wide: put them back."""
    saved = {sig: signal.getsignal(sig) for sig in WATCHED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def _kill(sig):
    os.kill(os.getpid(), sig)


def test_signal_handler_called_with_args(loop):
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, lambda *a: got.set_result(a), "x", 2)
    loop.call_soon(_kill, signal.SIGUSR1)
    assert run(loop, got) == ("x", 2)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_signal_wakes_sleeping_loop(loop):
    """A signal sent while the loop blocks with nothing else to do wakes it."""
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, "woken")

    def sender():
        time.sleep(0.05)
        _kill(signal.SIGUSR1)

    th = threading.Thread(target=sender)
    safety = threading.Timer(SOON, loop.call_soon_threadsafe, args=(loop.stop,))
    th.start()
    safety.start()
    try:
        assert loop.run_until_complete(got) == "woken"
    finally:
        th.join()
        safety.cancel()
        safety.join()


def test_signal_handler_runs_on_loop_not_in_signal_context(loop):
    seen = loop.create_future()

    def handler():
        seen.set_result(asyncio.get_running_loop())

    loop.add_signal_handler(signal.SIGUSR2, handler)
    loop.call_soon(_kill, signal.SIGUSR2)
    assert run(loop, seen) is loop


def test_remove_signal_handler(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_remove_sigint_handler_restores_default_int_handler(loop):
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_replace_signal_handler(loop):
    calls = []
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (calls.append("second"), got.set_result(None)))
    loop.call_soon(_kill, signal.SIGUSR1)
    run(loop, got)
    assert calls == ["second"]


def test_two_signals(loop):
    got = {}
    done = loop.create_future()

    def handler(sig):
        got[sig] = got.get(sig, 0) + 1
        if len(got) == 2 and not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGUSR1, handler, signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR2, handler, signal.SIGUSR2)

    def send_both():
        _kill(signal.SIGUSR1)
        _kill(signal.SIGUSR2)

    loop.call_soon(send_both)
    run(loop, done)
    assert set(got) == {signal.SIGUSR1, signal.SIGUSR2}


def test_signal_sent_before_run(loop):
    """A signal that arrives while the loop is not running is handled when
    it runs."""
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, "late")
    _kill(signal.SIGUSR1)
    assert run(loop, got) == "late"


def test_sigint_handler_replaces_keyboard_interrupt(loop):
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, got.set_result, "handled")
    loop.call_soon(_kill, signal.SIGINT)
    assert run(loop, got) == "handled"


def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_signal_handler_survives_many_signals(loop):
    count = [0]
    done = loop.create_future()

    def handler():
        count[0] += 1
        if count[0] == 20:
            done.set_result(None)
        else:
            loop.call_soon(_kill, signal.SIGUSR1)

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(_kill, signal.SIGUSR1)
    run(loop, done)
    assert count[0] == 20


def test_add_signal_handler_from_thread_raises(loop):
    errors = []

    def target():
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    th = threading.Thread(target=target)
    th.start()
    th.join()
    assert len(errors) == 1
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# --- Ctrl-C without a handler ----------------------------------------------------

_CTRL_C_CHILD = r"""
import asyncio, sys
kind, mode = sys.argv[1], sys.argv[2]
if kind == "asyncio":
    loop = asyncio.new_event_loop()
else:
    import uvloop_like
    loop = uvloop_like.new_event_loop()
loop.call_soon(lambda: print("ready", flush=True))
try:
    if mode == "run_forever":
        loop.run_forever()
    elif mode == "run_until_complete":
        loop.run_until_complete(asyncio.sleep(3600))
    elif mode == "busy_timers":
        def tick():
            loop.call_later(0.001, tick)
        tick()
        loop.run_forever()
    print("returned normally", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
finally:
    loop.close()
print("closed", flush=True)
"""


@pytest.mark.parametrize("mode", ["run_forever", "run_until_complete", "busy_timers"])
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_ctrl_c_interrupts_run_forever(kind, mode):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", _CTRL_C_CHILD, kind, mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", line + proc.stderr.read()
        time.sleep(0.2)  # let it block in the poller
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SOON)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, describe_crash(subprocess.CompletedProcess(
        proc.args, proc.returncode, out, err))
    assert out.split() == ["KeyboardInterrupt", "closed"], (out, err)


_RUNNER_CTRL_C_CHILD = r"""
import asyncio, sys
kind = sys.argv[1]
if kind == "asyncio":
    factory = asyncio.new_event_loop
else:
    import uvloop_like
    factory = uvloop_like.new_event_loop

async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("main cancelled", flush=True)
        raise

try:
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is 3.11+")
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_ctrl_c_in_runner_cancels_main(kind):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER_CTRL_C_CHILD, kind], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", line + proc.stderr.read()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SOON)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    assert out.split("\n")[:2] == ["main cancelled", "KeyboardInterrupt"], (out, err)


def test_run_forever_restores_wakeup_fd(loop):
    """A wakeup fd set by someone else is in place again after a run."""
    import socket

    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        old = signal.set_wakeup_fd(a.fileno())
        try:
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert signal.set_wakeup_fd(a.fileno()) == a.fileno()
        finally:
            signal.set_wakeup_fd(old)
    finally:
        a.close()
        b.close()


def test_signal_for_idle_loop_not_lost_while_other_loop_runs(loop):
    """Loop A has a SIGUSR1 handler but is not running; the signal arrives
    while another loop of the same kind runs.  A handles it on its next run
    (stdlib: A's self-pipe still holds the signal number)."""
    from conftest import new_loop

    kind = "uvloop_like" if type(loop).__module__.startswith("uvloop_like") else "asyncio"
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "A")
    other = new_loop(kind)
    try:
        other.run_until_complete(_send_and_settle(signal.SIGUSR1))
    finally:
        other.close()
    got = loop.create_future()
    loop.call_later(0.05, got.set_result, None)
    run(loop, got)
    assert calls == ["A"]


async def _send_and_settle(sig):
    _kill(sig)
    await asyncio.sleep(0.02)


_OTHER_HANDLER_CHILD = r"""
import asyncio, signal, sys
kind = sys.argv[1]
if kind == "asyncio":
    loop = asyncio.new_event_loop()
else:
    import uvloop_like
    loop = uvloop_like.new_event_loop()
loop.add_signal_handler(signal.SIGUSR1, lambda: None)
loop.call_soon(lambda: print("ready", flush=True))
try:
    loop.run_forever()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
finally:
    loop.close()
"""


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_ctrl_c_with_other_signal_handler_installed(kind):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", _OTHER_HANDLER_CHILD, kind], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", line + proc.stderr.read()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SOON)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    assert out.split() == ["KeyboardInterrupt"], (out, err)
