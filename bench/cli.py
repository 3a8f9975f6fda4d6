"""``python -m bench``: run the registered workloads on each loop, in subprocesses.

Every (workload, loop, repeat) is its own fresh child process (``bench.child``)
pinned to one core, so that the implementations never share a process, a heap or a
warmed-up cache.  Within a workload the repeats interleave the loops, and the order
rotates from one repeat to the next, so that a burst of load from a neighbour on
this shared machine hits every column alike; the table reports medians.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from bench import child, loops, registry, report, workloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REPEAT = 5  # fresh processes per workload and loop, unless the workload says otherwise
# Debug and development modes change what the loops do per callback: never
# inherit them.  Nor uvloop_like's core selection: each column sets its own
# (bench/loops.py), so that a column runs the core it is named after.
_SCRUBBED_ENV = ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONMALLOCSTATS",
                 "UVLOOP_LIKE_PURE", "UVLOOP_LIKE_CORE")


def _child_env(loop: Optional[str] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    if loop is not None:
        env.update(loops.LOOPS[loop].env)
    return env


def run_child(argv: List[str], timeout: float, cpu: Optional[int] = None) -> Tuple[Optional[dict], Optional[str]]:
    """Run ``python -m bench.child ARGV``; return (result, None) or (None, error)."""
    proc = subprocess.Popen(
        registry.pin_prefix(cpu) + [sys.executable, "-m", "bench.child", *argv],
        cwd=ROOT,
        env=_child_env(argv[argv.index("--loop") + 1] if "--loop" in argv else None),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a timeout ends its helpers too
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        return None, f"timed out after {timeout:g}s"
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(child.RESULT_MARKER):
            if proc.returncode == 0:
                return json.loads(line[len(child.RESULT_MARKER):]), None
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {proc.returncode}, no output"
    return None, last[:300]


def _cpu_plan(args: argparse.Namespace) -> Optional[List[int]]:
    """Cores in the order workloads get them: main process first, then helpers."""
    if args.no_pin:
        return None
    if hasattr(os, "sched_getaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
    elif registry.pin_prefix(0):  # PyPy 3.9 has no sched_*affinity: pin with taskset
        allowed = list(range(os.cpu_count() or 1))
    else:
        return None
    first = args.cpu if args.cpu is not None else allowed[-1]  # core 0 takes more interrupts
    if first not in allowed:
        raise SystemExit(f"--cpu {first}: not among the allowed cores {allowed}")
    return [first] + [c for c in reversed(allowed) if c != first]


def _cpus_for(plan: Optional[List[int]], processes: int) -> Optional[List[int]]:
    if plan is None:
        return None
    return [plan[i % len(plan)] for i in range(processes)]


def _select(only: List[str]) -> List[registry.Workload]:
    every = list(registry.WORKLOADS.values())
    if not only:
        return every
    patterns = [p for arg in only for p in arg.split(",") if p]
    chosen = [w for w in every if any(fnmatch.fnmatchcase(w.name, p) or w.group == p for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(w.name, p) or w.group == p for w in every)]
    if unknown:
        names = ", ".join(w.name for w in every)
        raise SystemExit(f"--only: no workload matches {', '.join(unknown)} (have: {names})")
    return chosen


def _print_profile(path: str, title: str, top: int = 15) -> None:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(path, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    body = text[text.find("   ncalls"):] if "   ncalls" in text else text
    _log(f"--- profile: {title} ({path}), by own time ---\n{body.rstrip()}\n")


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark stdlib asyncio, uvloop and uvloop_like side by side "
        "(ratios to stdlib, higher = faster; medians over repeats).",
        epilog="Exit status 1 when a run failed or timed out, or uvloop_like is not importable "
        "(a missing uvloop only skips its column), so that `--quick` can serve as a CI smoke test.",
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these workloads (name, glob or group; repeatable or comma-separated)")
    parser.add_argument("--loops", default=",".join(loops.LOOPS), metavar="LIST",
                        help="loop implementations to compare (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="fresh processes per workload and loop (default 5, or the workload's own "
                        "default, 3 for the stream and http groups; --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a tenth of the work, one repeat, and without --only a subset of "
                        "the stream workloads (under half a minute in all)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for README.md)")
    parser.add_argument("--json", metavar="PATH", help="also write every run's raw numbers to PATH")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--cpu", type=int, default=None, help="core for the loop process (default: the last one)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before one run is killed (default: the workload's, 15 with --quick)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run's number")
    parser.add_argument("--instr", action="store_true",
                        help="count CPU instructions per operation under valgrind's callgrind instead "
                        "(the loop's process only, two run sizes subtracted; a fixed set of workloads, "
                        "--only narrows it; about 10 minutes; `make bench-instr`)")
    parser.add_argument("--profile", nargs="?", const="", default=None, metavar="DIR",
                        help="run each workload once per loop under cProfile, print the top functions "
                        "and keep the .prof files in DIR (default: a new temporary directory); "
                        "the numbers then include the profiler's overhead")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.repeat = 1
    if args.repeat is None and args.quick:
        args.repeat = 1
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    workloads.load_all()
    if args.list:
        for w in registry.WORKLOADS.values():
            quick = f"quick {w.quick_n}" if w.in_quick else "not in --quick"
            print(f"{w.name:24} [{w.group}] n={w.n} ({quick}), one op = one {w.unit}\n    {w.description}")
        return 0
    if args.instr:
        from bench import instr

        def env_for(name: str) -> Dict[str, str]:
            env = _child_env(name)
            env["PYTHONHASHSEED"] = "0"  # the same dict layouts in both runs
            return env

        unknown = [name for name in args.loops.split(",") if name and name not in loops.LOOPS]
        if unknown:
            raise SystemExit(f"--loops: unknown {', '.join(unknown)} (have: {', '.join(loops.LOOPS)})")
        return instr.run([n for n in args.loops.split(",") if n], args.only, _cpu_plan(args),
                         args.markdown, env_for, ROOT, _log)
    selected = _select(args.only)
    if args.quick and not args.only:
        selected = [w for w in selected if w.in_quick]
    wanted = [name for name in args.loops.split(",") if name]
    unknown = [name for name in wanted if name not in loops.LOOPS]
    if unknown:
        raise SystemExit(f"--loops: unknown {', '.join(unknown)} (have: {', '.join(loops.LOOPS)})")
    plan = _cpu_plan(args)
    profile_dir = None
    if args.profile is not None:
        profile_dir = args.profile or tempfile.mkdtemp(prefix="bench-profile-")
        os.makedirs(profile_dir, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    # Which implementations import here; skip the others with a note.
    active: List[str] = []
    info: Dict[str, dict] = {}
    notes: List[str] = []
    failed = False  # the exit status: a smoke run in CI must fail when uvloop_like does
    for name in wanted:
        result, error = run_child(["--loop", name, "--probe"], timeout=60)
        if result is None:
            if name == loops.BASELINE:
                raise SystemExit(f"the baseline loop {name} does not work: {error}")
            notes.append(f"{name}: not importable here ({error}); its column is skipped.")
            failed = failed or name == loops.SUBJECT
            _log(f"skipping {name}: {error}")
            continue
        active.append(name)
        info[name] = result
        _log(f"{name}: {', '.join(f'{k} {v}' for k, v in result.items())}")

    runs: Dict[str, Dict[str, List[float]]] = {}
    errors: Dict[str, Dict[str, str]] = {}
    repeats: Dict[str, int] = {}
    cpu: Dict[str, Dict[str, List[float]]] = {}  # seconds of the loop process's CPU per op
    for wl in selected:
        t_wl = time.perf_counter()
        n = wl.quick_n if args.quick else wl.n
        cpus = _cpus_for(plan, wl.processes)
        timeout = args.timeout if args.timeout is not None else (min(wl.timeout, 15.0) if args.quick else wl.timeout)
        runs[wl.name] = {name: [] for name in active}
        cpu[wl.name] = {}
        errors[wl.name] = {}
        repeats[wl.name] = args.repeat or wl.repeat or DEFAULT_REPEAT
        for rep in range(repeats[wl.name]):
            order = active[rep % len(active):] + active[:rep % len(active)]
            for name in order:
                if name in errors[wl.name]:
                    continue  # it failed once: don't spend the budget failing again
                argv = ["--loop", name, "--workload", wl.name, "--n", str(n)]
                if cpus:
                    argv += ["--cpus", ",".join(map(str, cpus))]
                if args.quick:
                    argv.append("--quick")
                prof_path = None
                if profile_dir is not None:
                    prof_path = os.path.abspath(os.path.join(profile_dir, f"{wl.name}-{name}.prof"))
                    argv += ["--profile", prof_path]
                result, error = run_child(argv, timeout, cpus[0] if cpus else None)
                if prof_path and result is not None:
                    _print_profile(prof_path, f"{wl.name} on {name}")
                if result is None:
                    errors[wl.name][name] = error or "failed"
                    failed = True
                    _log(f"  {wl.name} on {name} failed: {error}")
                    continue
                rate = result["ops"] / result["seconds"] if result["seconds"] > 0 else float("inf")
                runs[wl.name][name].append(rate)
                cpu_note = ""
                if result.get("cpu_seconds") is not None and result["ops"]:
                    cpu_per_op = result["cpu_seconds"] / result["ops"]
                    cpu[wl.name].setdefault(name, []).append(cpu_per_op)
                    cpu_note = f", {cpu_per_op * 1e6:.2f} us CPU/op"
                if args.verbose:
                    _log(f"  {wl.name} {name} #{rep + 1}: {report.fmt_rate(rate)} ops/s ({result['seconds']:.3f}s{cpu_note})")
        row = "  ".join(
            f"{name} {report.fmt_rate(report.median(runs[wl.name][name]))}" if runs[wl.name][name] else f"{name} ERR"
            for name in active
        )
        _log(f"{wl.name:22} {row}   ({time.perf_counter() - t_wl:.1f}s)")

    elapsed = time.perf_counter() - started
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu_model": report.cpu_model(),
        "cores": os.cpu_count(),
        "pinned": plan[0] if plan else None,
        "repeat": repeats,
        "quick": args.quick,
        "profiled": profile_dir is not None,
        "elapsed_s": round(elapsed, 1),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "loops": info,
    }
    table = report.Table(selected, active, runs, errors, notes, meta, cpu)
    print(table.markdown() if args.markdown else table.text())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "runs": runs, "cpu_per_op": cpu, "errors": errors, "notes": notes}, f, indent=1)
    return 1 if failed else 0
