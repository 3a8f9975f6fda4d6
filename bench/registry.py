"""The workload registry: every benchmark is a named function registered here.

A workload is a plain function ``func(ctx: Context) -> Measurement`` that runs in a
child process where exactly one loop implementation is importable through
``ctx.new_event_loop``.  It measures what it wants with ``time.perf_counter`` (setup,
warm-up and teardown excluded) and returns how many operations it did in how many
seconds; the parent turns that into ops/s and takes the median over repeats.

Most loop-core workloads only need ``run_in_loop``: write ``async def body(loop, n)``
that does ``n`` operations and returns the seconds it measured.  Workloads with a
load generator in another process (TCP/UDP/unix echo, TLS, HTTP) declare
``processes=2`` and get a second core in ``ctx.cpus[1]`` to pin that helper to with
``bench.registry.pin`` (see ``spawn_pinned``).
"""
from __future__ import annotations

import dataclasses
import gc
import inspect
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

perf_counter = time.perf_counter


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one run of a workload did: ``ops`` operations in ``seconds``."""

    ops: int
    seconds: float
    # CPU time the loop's process spent in those seconds, where the workload can tell
    # (the stream and HTTP load generators read it from /proc): less noisy than the
    # throughput on a shared machine, and what a profile per op should add up to.
    cpu_seconds: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Context:
    """What a workload gets in its child process."""

    loop_name: str  # "stdlib", "uvloop" or "uvloop_like"
    new_event_loop: Callable[[], Any]  # the implementation's loop factory
    n: int  # operations to do in the measured part
    cpus: Optional[List[int]]  # cpus[0] is this process's core, cpus[1:] for helpers; None: unpinned
    quick: bool  # a smoke run: keep any extra setup short too


@dataclasses.dataclass(frozen=True)
class Workload:
    """A registered benchmark."""

    name: str
    func: Callable[[Context], Measurement]
    n: int  # operations in a default run
    quick_n: int  # operations in a --quick run
    group: str  # "core" for the loop core; later "net", "tls", "subprocess", ...
    unit: str  # what one operation is, for the legend
    description: str  # the first paragraph of the function's docstring
    processes: int  # cores it wants: 1, or 2 for a server plus a pinned load generator
    timeout: float  # seconds before the parent kills a run
    repeat: Optional[int] = None  # default repeats (fresh processes) per loop; None: the CLI's default
    in_quick: bool = True  # part of a plain --quick run (False: only when named with --only)


WORKLOADS: Dict[str, Workload] = {}


def workload(
    name: str,
    *,
    n: int,
    quick_n: Optional[int] = None,
    group: str = "core",
    unit: str = "op",
    processes: int = 1,
    timeout: float = 60.0,
    repeat: Optional[int] = None,
    in_quick: bool = True,
) -> Callable[[Callable[[Context], Measurement]], Callable[[Context], Measurement]]:
    """Register ``func(ctx) -> Measurement`` as the workload ``name``.

    The function's docstring (first paragraph) is the workload's description in
    ``--list`` and in the ``--markdown`` legend: say exactly what one op is.
    """

    def decorate(func: Callable[[Context], Measurement]) -> Callable[[Context], Measurement]:
        if name in WORKLOADS:
            raise ValueError(f"workload {name!r} registered twice")
        doc = inspect.getdoc(func) or ""
        description = " ".join(doc.split("\n\n", 1)[0].split())
        WORKLOADS[name] = Workload(
            name=name,
            func=func,
            n=n,
            quick_n=quick_n if quick_n is not None else max(1, n // 10),
            group=group,
            unit=unit,
            description=description,
            processes=processes,
            timeout=timeout,
            repeat=repeat,
            in_quick=in_quick,
        )
        return func

    return decorate


def run_in_loop(ctx: Context, body: Callable[[Any, int], Any], warmup: Optional[int] = None) -> Measurement:
    """Run ``await body(loop, n)`` on a fresh loop and return its Measurement.

    ``body`` returns the seconds it measured itself, so that its setup stays out of
    the number.  A warm-up run of ``n // 10`` operations on the same loop comes first
    (caches, lazily created loop machinery, PyPy's JIT).
    """
    loop = ctx.new_event_loop()
    try:
        if warmup is None:
            warmup = max(1, ctx.n // 10)
        if warmup:
            loop.run_until_complete(body(loop, warmup))
        gc.collect()
        seconds = loop.run_until_complete(body(loop, ctx.n))
    finally:
        loop.close()
    return Measurement(ops=ctx.n, seconds=seconds)


def can_pin_in_process() -> bool:
    """Whether ``os.sched_setaffinity`` exists (CPython on Linux; not PyPy 3.9)."""
    return hasattr(os, "sched_setaffinity")


def pin_prefix(cpu: Optional[int]) -> List[str]:
    """A command prefix that starts a process pinned to ``cpu`` where this Python
    cannot pin a process itself (``taskset`` from util-linux); else ``[]``."""
    if cpu is None or can_pin_in_process():
        return []
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu)] if taskset else []


def pin(cpu: Optional[int], pid: int = 0) -> None:
    """Pin process ``pid`` (0: this one) to ``cpu``; a no-op where unsupported
    (then ``pin_prefix`` pins at start)."""
    if cpu is not None and can_pin_in_process():
        os.sched_setaffinity(pid, {cpu})


def spawn_pinned(argv: Sequence[str], cpu: Optional[int], **kwargs: Any) -> "subprocess.Popen[bytes]":
    """Start a helper process (a load generator, say) pinned to ``cpu``.

    ``argv`` starting with ``-m`` or a script path runs under this interpreter.
    The helper is pinned right after it starts: before it does any work it should
    wait for a go signal (a line on stdin, a connection) anyway.
    """
    cmd = [sys.executable, *argv] if argv and (argv[0] == "-m" or argv[0].endswith(".py")) else list(argv)
    proc = subprocess.Popen(pin_prefix(cpu) + cmd, **kwargs)
    try:
        pin(cpu, proc.pid)
    except OSError:
        pass
    return proc
