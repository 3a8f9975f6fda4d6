"""Helpers for the unit tests (import as ``from loop_testutil import ...``)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# A generous bound for anything that should happen "soon": the tests only
# use it to fail instead of hanging, never to assert on speed.
SOON = 20.0


def is_uvloop_like(loop):
    return type(loop).__module__.startswith("uvloop_like")


def run(loop, coro, timeout=SOON):
    """loop.run_until_complete(coro), failing after ``timeout`` seconds
    instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def outcome(func, *args, **kwargs):
    """("ok", result) or ("raise", exception type, message) of func(...)."""
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - we compare whatever is raised
        return ("raise", type(exc), str(exc))
    return ("ok", result)


def run_python(code, *args, timeout=60, env=None):
    """Run ``code`` in a fresh interpreter (cwd: the repository root); return
    the CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, full_env.get("PYTHONPATH")) if p)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def describe_crash(proc):
    """A failure message for a child process that did not exit cleanly."""
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    return f"child {how}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def full_gc():
    """Collect until finalizers have run: once is enough on CPython, but
    PyPy runs __del__ in one collection and frees in a later one."""
    import gc
    for _ in range(4):
        gc.collect()
