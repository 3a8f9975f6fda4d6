"""``python -m bench --instr`` (``make bench-instr``): CPU instructions per operation.

Each (workload, loop) runs twice as a ``bench.child`` under valgrind's callgrind,
with a small and a large ``n``; the instructions of the two runs are subtracted
and divided by the difference in operations, so that interpreter start-up, the
imports, the loop's creation and the workload's setup cancel out.  Only the
measured process is counted: callgrind runs with ``--trace-children=no``, so the
load generator a network workload starts runs natively and is not counted.

Unlike the wall-clock table, the count does not depend on what the other tenants
of a shared machine do: on this project's 2-core box it is the number to optimise
against (the wall-clock table confirms it).  It is not exactly reproducible for
the network workloads (how many reads one loop iteration finds depends on
timing), but varies by a few per cent at most from one run to the next.

Loops come from ``bench.loops.LOOPS`` (``--loops``): a loop added there (with the
environment it needs, ``LoopSpec.env``) gets its column here too.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from bench import loops, registry

# workload -> (row label, small n, large n).  Every n is a multiple of 20 and at
# least 80, so that each workload's warm-up (n // 10, run before the measured n)
# and sleep0_pingpong's halving are exact: a run of n does n + n // 10 operations.
WORKLOADS: Dict[str, Tuple[str, int, int]] = {
    "call_soon_chain": ("call_soon chain", 2_000, 12_000),
    "call_later_timers": ("call_later timers", 1_000, 6_000),
    "sleep0_pingpong": ("sleep(0) ping-pong", 2_000, 12_000),
    "task_await": ("create_task+await", 1_000, 6_000),
    "echo_tcp_protocol_1k": ("TCP echo Protocol 1 KiB", 200, 1_400),
    "echo_tcp_streams_1k": ("streams echo 1 KiB", 200, 1_400),
    "udp_echo_256": ("UDP echo 256 B", 200, 1_400),
}
RUN_TIMEOUT = 300.0  # seconds for one run under callgrind (about 50x slower than native)


def ops_done(n: int) -> int:
    """Operations a child run with ``--n n`` performs: the warm-up then n."""
    return n + n // 10


def find_valgrind() -> Optional[str]:
    return shutil.which("valgrind")


def _totals(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def count(valgrind: str, loop: str, workload: str, n: int, cpus: Optional[List[int]],
          env: Dict[str, str], root: str) -> int:
    """Instructions one child run executes (all of it, start-up included)."""
    fd, out = tempfile.mkstemp(prefix="bench-instr-", suffix=".out")
    os.close(fd)
    try:
        argv = [valgrind, "--tool=callgrind", "--trace-children=no", f"--callgrind-out-file={out}",
                sys.executable, "-m", "bench.child", "--loop", loop, "--workload", workload, "--n", str(n)]
        if cpus:
            argv += ["--cpus", ",".join(map(str, cpus))]
        proc = subprocess.run(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, start_new_session=True)
        if proc.returncode != 0 or b"BENCH-RESULT " not in proc.stdout:
            lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith(("==", "--"))]
            raise RuntimeError(lines[-1][:300] if lines else f"exit status {proc.returncode}")
        return _totals(out)
    finally:
        os.unlink(out)


def per_op(valgrind: str, loop: str, workload: str, small: int, large: int,
           cpus: Optional[List[int]], env: Dict[str, str], root: str) -> float:
    a = count(valgrind, loop, workload, small, cpus, env, root)
    b = count(valgrind, loop, workload, large, cpus, env, root)
    return (b - a) / (ops_done(large) - ops_done(small))


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(rows: List[str], active: List[str], results: Dict[str, Dict[str, Optional[float]]],
          markdown: bool) -> str:
    ratio_cols = [(loops.SUBJECT, "uvloop")] if "uvloop" in active and loops.SUBJECT in active else []
    ratio_cols += [(name, "uvloop") for name in active
                   if name.startswith(loops.SUBJECT + "_") and "uvloop" in active]
    header = ["workload (instructions per op)"] + active + [f"{a} / {b}" for a, b in ratio_cols]
    body = []
    for wl in rows:
        cells = [WORKLOADS[wl][0]] + [_fmt(results[wl].get(name)) for name in active]
        for a, b in ratio_cols:
            x, y = results[wl].get(a), results[wl].get(b)
            cells.append(f"{x / y:.2f}x" if x and y else "-")
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def run(wanted_loops: List[str], only: List[str], cpus: Optional[List[int]], markdown: bool,
        env_for, root: str, log) -> int:
    """The --instr mode of ``bench.cli.main``; returns the exit status."""
    valgrind = find_valgrind()
    if valgrind is None:
        log("valgrind is not installed: `make bench-instr` installs it (Debian), or install it yourself")
        return 1
    import fnmatch

    patterns = [p for arg in only for p in arg.split(",") if p]
    rows = [w for w in WORKLOADS if not patterns or any(fnmatch.fnmatchcase(w, p) for p in patterns)]
    if not rows:
        raise SystemExit(f"--only: none of {', '.join(WORKLOADS)} matches")
    missing = [w for w in rows if w not in registry.WORKLOADS]
    if missing:
        raise SystemExit(f"--instr: workloads {', '.join(missing)} are not registered")
    started = time.perf_counter()
    # Byte-compile first: a run that writes the .pyc files would count the
    # compilation, and only the first (small) run would pay it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "bench", "uvloop_like"], cwd=root,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    active: List[str] = []
    for name in wanted_loops:
        # Importable here (uvloop may not be)?  A cheap native probe.
        probe = subprocess.run([sys.executable, "-m", "bench.child", "--loop", name, "--probe"], cwd=root,
                               env=env_for(name), stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if probe.returncode == 0:
            active.append(name)
        else:
            log(f"skipping {name}: not importable here")
    failed = loops.SUBJECT not in active
    results: Dict[str, Dict[str, Optional[float]]] = {}
    for wl in rows:
        label, small, large = WORKLOADS[wl]
        t0 = time.perf_counter()
        results[wl] = {}
        wl_cpus = cpus[:registry.WORKLOADS[wl].processes] if cpus else None
        for name in active:
            try:
                results[wl][name] = per_op(valgrind, name, wl, small, large, wl_cpus, env_for(name), root)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[wl][name] = None
                failed = True
                log(f"  {wl} on {name} failed: {exc}")
        row = "  ".join(f"{name} {_fmt(results[wl][name])}" for name in active)
        log(f"{wl:22} {row}   ({time.perf_counter() - t0:.0f}s)")
    print(f"CPU instructions per operation (valgrind callgrind, the loop's process only; runs of "
          f"two sizes subtracted; {platform.python_implementation()} {platform.python_version()}; "
          f"lower is better; {time.perf_counter() - started:.0f}s)")
    print(table(rows, active, results, markdown))
    return 1 if failed else 0
