"""What runs in each benchmark subprocess: one loop implementation, one workload.

    python -m bench.child --loop NAME --workload NAME --n N [--cpus 1,0] [--quick] [--profile PATH]
    python -m bench.child --loop NAME --probe

prints exactly one line ``BENCH-RESULT {json}`` on stdout (anything else a workload
prints is ignored) and exits 0; on failure the traceback goes to stderr and the
exit status is non-zero.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import traceback

from bench import loops, registry, workloads

RESULT_MARKER = "BENCH-RESULT "


def _emit(payload: dict) -> None:
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("--loop", required=True, choices=sorted(loops.LOOPS))
    parser.add_argument("--workload")
    parser.add_argument("--n", type=int)
    parser.add_argument("--cpus", default="", help="comma-separated cores; first is this process's")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--probe", action="store_true", help="report versions instead of running")
    parser.add_argument("--profile", metavar="PATH", help="run under cProfile and dump its stats to PATH")
    args = parser.parse_args(argv)

    cpus = [int(c) for c in args.cpus.split(",") if c] or None
    try:
        if args.probe:
            info = loops.describe(args.loop)
            info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
            _emit(info)
            return 0
        registry.pin(cpus[0] if cpus else None)
        workloads.load_all()
        wl = registry.WORKLOADS[args.workload]
        factory = loops.load(args.loop)
        ctx = registry.Context(
            loop_name=args.loop,
            new_event_loop=factory,
            n=args.n if args.n else (wl.quick_n if args.quick else wl.n),
            cpus=cpus,
            quick=args.quick,
        )
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(wl.func, ctx)
            profiler.dump_stats(args.profile)
        else:
            result = wl.func(ctx)
        payload = {"ops": result.ops, "seconds": result.seconds}
        if result.cpu_seconds is not None:
            payload["cpu_seconds"] = result.cpu_seconds
        _emit(payload)
        return 0
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1


if __name__ == "__main__":
    sys.exit(main())
