"""Never a segfault: the riskiest lifecycle paths (use after close, double
close, finalizers calling into the loop, garbage-collected loops that were
never closed, close racing with other threads and with in-flight libuv
requests), each in a child interpreter so a crash fails one test instead of
killing pytest."""
from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings
import weakref

import pytest
from conftest import LOOP_KINDS, new_loop, open_uv_handles
from loop_testutil import describe_crash, full_gc, run_python

PRELUDE = r"""
import asyncio, gc, os, signal, socket, sys, threading, time, warnings
warnings.simplefilter("ignore")
KIND = sys.argv[1]

def new_loop():
    if KIND == "asyncio":
        return asyncio.new_event_loop()
    import uvloop_like
    return uvloop_like.new_event_loop()

def expect_runtime_error(func, *args):
    try:
        func(*args)
    except RuntimeError:
        return
    except Exception as exc:
        print("unexpected", type(exc).__name__, exc)
        return
"""

SCENARIOS = {
    "use_after_close": r"""
loop = new_loop()
a, b = socket.socketpair()
loop.add_reader(a, lambda: None)
loop.add_writer(b, lambda: None)
loop.call_later(10, lambda: None)
loop.call_soon(lambda: None)
fut = loop.create_future()
loop.close()
for call in (
    lambda: loop.call_soon(print),
    lambda: loop.call_later(0, print),
    lambda: loop.call_at(0, print),
    lambda: loop.call_soon_threadsafe(print),
    lambda: loop.add_reader(a, print),
    lambda: loop.add_writer(b, print),
    lambda: loop.run_forever(),
    lambda: loop.run_in_executor(None, print),
):
    expect_runtime_error(call)
loop.remove_reader(a)
loop.remove_writer(b)
loop.stop()
loop.time()
loop.close()
loop.close()
try:
    fut.set_result(1)
except RuntimeError:
    pass
coro = asyncio.sleep(0)
expect_runtime_error(loop.run_until_complete, coro)
coro.close()
del loop
gc.collect()
a.close(); b.close()
""",
    "gc_unclosed_loop": r"""
for i in range(50):
    loop = new_loop()
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    loop.call_later(3600, lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    del loop
    gc.collect()
    a.close(); b.close()
# A loop in a reference cycle, collected by the cyclic GC.
class Holder: pass
h = Holder(); h.loop = new_loop(); h.loop.holder = h
h.loop.call_soon(lambda: None)
del h
gc.collect()
""",
    "finalizer_calls_loop": r"""
class Finalizer:
    def __init__(self, loop):
        self.loop = loop
        self.me = self  # a cycle: only the cyclic GC frees it
    def __del__(self):
        for call in (lambda: self.loop.call_soon(print, end=""),
                     lambda: self.loop.call_soon_threadsafe(print, end=""),
                     lambda: self.loop.call_later(0, print, end=""),
                     lambda: self.loop.create_future(),
                     lambda: self.loop.time(),
                     lambda: self.loop.close()):
            try:
                call()
            except RuntimeError:
                pass

loop = new_loop()
async def main():
    for _ in range(20):
        Finalizer(loop)
        gc.collect()
        await asyncio.sleep(0)
loop.run_until_complete(main())
for _ in range(20):
    Finalizer(loop)
gc.collect()
loop.close()
for _ in range(20):
    Finalizer(loop)
gc.collect()
""",
    "close_with_inflight_dns": r"""
for i in range(20):
    loop = new_loop()
    async def main():
        for _ in range(50):
            loop.create_task(loop.getaddrinfo("127.0.0.1", 80))
            loop.create_task(loop.getnameinfo(("127.0.0.1", 80)))
        await asyncio.sleep(0)
    loop.run_until_complete(main())
    loop.close()
    gc.collect()
""",
    "close_races_threadsafe_calls": r"""
for i in range(30):
    loop = new_loop()
    stop = threading.Event()
    def hammer():
        while not stop.is_set():
            try:
                loop.call_soon_threadsafe(lambda: None)
            except RuntimeError:
                return
    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    loop.run_until_complete(asyncio.sleep(0.005))
    loop.close()
    stop.set()
    for t in threads:
        t.join()
""",
    "loop_in_thread_closed_there": r"""
results = []
def target():
    loop = new_loop()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    loop.close()
    results.append(loop.is_closed())
threads = [threading.Thread(target=target) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [True] * 8, results
""",
    "close_from_other_thread": r"""
loop = new_loop()
loop.call_later(3600, lambda: None)
loop.run_until_complete(asyncio.sleep(0.001))
t = threading.Thread(target=loop.close)
t.start(); t.join()
assert loop.is_closed()
""",
    "fd_closed_while_watched": r"""
loop = new_loop()
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, lambda: None)
a.close()  # closed under the loop's feet
c, d = socket.socketpair()  # probably reuses the number
loop.run_until_complete(asyncio.sleep(0.01))
try:
    loop.remove_reader(fd)
except (OSError, ValueError):
    pass
loop.close()
for s in (b, c, d): s.close()
""",
    "many_loops_no_fd_leak": r"""
def nfds():
    return len(os.listdir("/proc/self/fd"))
loop = new_loop(); loop.run_until_complete(asyncio.sleep(0)); loop.close()
before = nfds()
for i in range(300):
    loop = new_loop()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
gc.collect()
after = nfds()
assert after <= before + 2, (before, after)
""",
    "exit_with_unclosed_loop": r"""
loop = new_loop()
a, b = socket.socketpair()
loop.add_reader(a, lambda: None)
loop.call_later(3600, lambda: None)
loop.run_in_executor(None, time.sleep, 0.01)
loop.run_until_complete(asyncio.sleep(0.001))
if hasattr(signal, "SIGUSR1"):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
GLOBAL = loop  # still alive at interpreter shutdown
""",
    "exception_in_del_during_run": r"""
loop = new_loop()
class Bad:
    def __init__(self): self.me = self
    def __del__(self): raise RuntimeError("in __del__")
async def main():
    for _ in range(10):
        Bad()
        gc.collect()
        await asyncio.sleep(0)
    return "ran"
assert loop.run_until_complete(main()) == "ran"
loop.close()
""",
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_no_crash(kind, scenario):
    code = PRELUDE + SCENARIOS[scenario] + '\nprint("ok", flush=True)\n'
    proc = run_python(code, kind, timeout=50)
    assert proc.returncode == 0, describe_crash(proc)
    assert proc.stdout.strip().endswith("ok"), describe_crash(proc)
    assert "unexpected" not in proc.stdout, describe_crash(proc)
    assert "Fatal Python error" not in proc.stderr, describe_crash(proc)


# --- the same paths in process, where the behaviour can be asserted --------------

@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_gc_of_unclosed_loop_warns_and_closes(kind):
    loop = new_loop(kind)
    loop.call_later(3600, lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    ref = weakref.ref(loop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del loop
        full_gc()
    assert ref() is None, gc.get_referrers(ref())
    assert any(issubclass(w.category, ResourceWarning) and "unclosed event loop" in str(w.message)
               for w in caught), [str(w.message) for w in caught]


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_close_twice_and_use_after_close(kind):
    loop = new_loop(kind)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(lambda: None)
    if kind == "uvloop_like":
        assert open_uv_handles(loop) == []


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_loop_close_on_interpreter_exit_has_no_errors(kind):
    """An unclosed loop at interpreter exit: no crash, and no error raised
    from uvloop_like's own code (stdlib 3.13 in debug mode itself prints an
    ignored ImportError from BaseEventLoop.__del__ here, so only frames in
    uvloop_like/ count)."""
    code = PRELUDE + SCENARIOS["exit_with_unclosed_loop"]
    proc = run_python(code, kind, timeout=50)
    assert proc.returncode == 0, describe_crash(proc)
    assert "Fatal Python error" not in proc.stderr, describe_crash(proc)
    frames = [line for line in proc.stderr.splitlines() if line.lstrip().startswith("File ")]
    assert not [f for f in frames if "uvloop_like" + os.sep in f], describe_crash(proc)


def test_child_crash_is_detected():
    """The harness itself: a child killed by a signal is reported as such."""
    proc = run_python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert proc.returncode < 0
    assert "killed by signal" in describe_crash(proc)


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX only")


def test_package_never_parses_c_type_strings_at_run_time():
    """cffi's string-to-type parsing is not thread-safe on PyPy: the parser
    writes into a buffer shared by the ffi and drops the GIL around the C
    parse, so two threads creating loops at once once got a ``uv_handle_t *``
    back from ``ffi.new("uv_poll_t *")`` (the loop_in_thread_closed_there
    scenario failed on PyPy in CI).  Types are realized once, at import, in
    uvloop_like/_ffi.py; everything else must use the ctype objects there."""
    import re

    import uvloop_like

    root = os.path.dirname(uvloop_like.__file__)
    pattern = re.compile(r"""ffi\.(new|cast|from_buffer|typeof|sizeof|offsetof)\(\s*["']""")
    offenders = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or path == os.path.join(root, "_ffi.py"):
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if pattern.search(line) and not line.lstrip().startswith("#"):
                        offenders.append(f"{os.path.relpath(path, root)}:{lineno}: {line.strip()}")
    assert offenders == []
