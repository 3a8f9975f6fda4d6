"""Run CPython's test_asyncio against uvloop_like (and the stdlib loop) and check expectations.

    python -m tests.conformance.runner [--loop both|uvloop_like|asyncio] [--module test_tasks ...]
                                       [--update-expectations] [--json results.json] [--jobs 2]

Each (module, loop) pair runs in its own child process (child.py) with a per-test timeout;
a test that hangs or crashes the interpreter is recorded as "timeout"/"crash" and the
module resumes after it in a fresh process.  The uvloop_like results are compared with
expected_failures.txt (see expectations.py); the stdlib results give the baseline column
and excuse failures that happen on the stdlib loop too.  tests/conformance/test_conformance.py
drives the same code from pytest (``make conformance``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

try:
    from . import expectations, plan
except ImportError:  # run as a plain script
    import expectations
    import plan

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHILD = os.path.join(HERE, "child.py")
LOOPS = ("uvloop_like", "asyncio")
FAILED = ("fail", "error", "timeout", "crash", "xpass")
MAX_LAUNCHES = 25  # per module run: one per hung/crashed test, then give up
PROCESS_TIMEOUT = 600.0  # backstop for one child process; tests have their own timeout

# Rough relative run times, so the longest modules start first and two workers finish
# together.  Unknown modules count as 1.
WEIGHTS = {
    "test_subprocess": 30, "test_tasks": 25, "test_events": 25, "test_ssl": 20,
    "test_sslproto": 12, "test_streams": 10, "test_sendfile": 10, "test_sock_lowlevel": 8,
    "test_locks": 6, "test_queues": 5, "test_runners": 5, "test_unix_events": 5,
    "test_waitfor": 5, "test_futures": 4, "test_taskgroups": 4, "test_timeouts": 4,
}


def default_out_dir():
    return os.path.join(REPO, "build", "conformance", "py" + plan.python_version())


def _env():
    env = dict(os.environ)
    # Debug mode changes asyncio's behaviour (and test outcomes); the suite runs without it.
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def used_loop(rec):
    """Did this test create or run a loop of the kind under test?"""
    return rec.get("loops", 0) > 0 or rec.get("runs", 0) > 0


def _read_records(path):
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass  # a line cut short by a crash
    return records


def _tail(path, offset, limit=3000):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")[-limit:]


def run_module(loop, module, out_dir=None, timeout=None, only=None, tag="", python=None):
    """Run one test_asyncio module on one loop; return its results as a dict.

    {"module", "loop", "tests": {id: record}, "fixtures": {id: record}, "all_ids": [...],
     "loops": int, "launches": int, "duration": float, "dropped": {...}}
    where a record has "status" (pass/fail/error/skip/xpass/timeout/crash/notrun),
    "loops" and "runs" (loops under test created, and run_forever calls on them, during the
    test), "summary" and "detail".
    """
    out_dir = out_dir or default_out_dir()
    os.makedirs(out_dir, exist_ok=True)
    timeout = timeout or plan.DEFAULT_TEST_TIMEOUT
    stem = os.path.join(out_dir, "%s.%s%s" % (module, loop, tag))
    records_path, log_path = stem + ".jsonl", stem + ".log"
    exclude_path, only_path = stem + ".exclude", stem + ".only"
    for p in (records_path, log_path, exclude_path, only_path):
        if os.path.exists(p):
            os.unlink(p)
    if only is not None:
        with open(only_path, "w") as f:
            f.write("\n".join(sorted(only)) + "\n")

    result = {"module": module, "loop": loop, "python": plan.python_version(),
              "tests": {}, "fixtures": {}, "all_ids": [], "selected": 0, "loops": 0, "used": 0,
              "launches": 0, "dropped": {}}
    t0 = time.monotonic()
    cwd = tempfile.mkdtemp(prefix="conformance-%s-%s-" % (module, loop))
    consumed = 0  # records already processed
    finished = False
    try:
        while not finished and result["launches"] < MAX_LAUNCHES:
            result["launches"] += 1
            with open(exclude_path, "w") as f:
                f.write("\n".join(sorted(set(result["tests"]) | set(result["fixtures"]))) + "\n")
            cmd = [python or sys.executable, CHILD, "--loop", loop, "--module", module,
                   "--out", records_path, "--exclude", exclude_path, "--timeout", str(timeout)]
            if only is not None:
                cmd += ["--only", only_path]
            log_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
            with open(log_path, "ab") as log:
                log.write(("\n=== launch %d: %s\n" % (result["launches"], " ".join(cmd))).encode())
                log.flush()
                log_offset = log.tell()
                try:
                    proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=_env(),
                                          timeout=PROCESS_TIMEOUT)
                    returncode = proc.returncode
                except subprocess.TimeoutExpired:
                    returncode = "killed after %ds" % PROCESS_TIMEOUT
            records = _read_records(records_path)
            pending = None
            for rec in records[consumed:]:
                event = rec.get("event")
                if event == "begin":
                    if not result["all_ids"]:
                        result["all_ids"] = rec["tests"]
                        result["dropped"] = rec.get("dropped", {})
                        result["loop_class"] = rec.get("loop_class")
                        result["core"] = rec.get("core")
                        result["selected"] = rec.get("selected", 0)
                elif event == "start":
                    pending = rec["id"]
                elif event == "end":
                    pending = None
                    result["tests"][rec["id"]] = {k: rec.get(k, 0) for k in
                                                  ("status", "loops", "runs", "duration",
                                                   "summary", "detail")}
                    result["loops"] += rec["loops"]
                    result["used"] += used_loop(rec)
                elif event == "fixture":
                    result["fixtures"][rec["id"]] = {
                        "status": rec["status"], "loops": 0, "duration": 0.0,
                        "summary": rec["summary"], "detail": rec["detail"]}
                elif event == "done":
                    finished = True
            consumed = len(records)
            if finished and returncode != 0:
                # All tests ran, then the interpreter died (at shutdown, say).
                text = _tail(log_path, log_offset)
                result["fixtures"]["%s.<process>" % module] = {
                    "status": "crash", "loops": 0, "duration": 0.0,
                    "summary": ("hung at interpreter exit (a non-daemon thread still running?)"
                                if "Timeout (" in text else
                                "child exited with %s after the last test" % returncode),
                    "detail": text}
            if finished:
                break
            text = _tail(log_path, log_offset)
            timed_out = "Timeout (" in text
            if pending is not None:
                result["tests"][pending] = {
                    "status": "timeout" if timed_out else "crash", "loops": 0,
                    "duration": timeout if timed_out else 0.0,
                    "summary": ("killed after %ss (per-test timeout)" % timeout) if timed_out
                    else "interpreter died (exit %s)" % returncode,
                    "detail": text}
                continue
            # Died outside any test: while importing/binding, or in a class/module fixture.
            result["fixtures"]["%s.<process>" % module] = {
                "status": "timeout" if timed_out else "crash", "loops": 0, "duration": 0.0,
                "summary": "child exited with %s outside any test%s" % (
                    returncode, " (timeout)" if timed_out else ""),
                "detail": text}
            break
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    wanted = result["all_ids"] if only is None else [i for i in result["all_ids"] if i in only]
    for test_id in wanted:
        if test_id not in result["tests"]:
            result["tests"][test_id] = {
                "status": "notrun", "loops": 0, "duration": 0.0,
                "summary": "not run (class or module fixture failed or was skipped, "
                           "or the child gave up)", "detail": ""}
    result["duration"] = round(time.monotonic() - t0, 2)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    return result


# --- comparison --------------------------------------------------------------------------------


class ModuleReport:
    def __init__(self, module):
        self.module = module
        self.uv = None
        self.std = None
        self.expected = {}
        self.problems = []  # fail the run
        self.notes = []  # reported only

    def count(self, which, status="pass"):
        res = self.uv if which == "uvloop_like" else self.std
        if res is None:
            return None
        return sum(1 for r in res["tests"].values() if r["status"] == status)

    @property
    def total(self):
        res = self.uv or self.std
        return len(res["tests"]) if res else 0

    @property
    def on_loop(self):
        if self.uv is None:
            return None
        return sum(1 for r in self.uv["tests"].values() if used_loop(r))

    @property
    def duration(self):
        return max((r or {}).get("duration", 0.0) for r in (self.uv, self.std))


def _records(result):
    merged = dict(result["tests"])
    merged.update(result["fixtures"])
    return merged


def _describe(test_id, rec, limit=1500):
    detail = (rec.get("detail") or "").strip()
    if len(detail) > limit:
        detail = "..." + detail[-limit:]
    return "%s: %s (%s)\n%s" % (test_id, rec["status"], rec.get("summary", ""), detail)


def compare(report, rerun=None):
    """Fill report.problems/notes from report.uv, report.std and report.expected.

    rerun(ids) -> results dict of the uvloop_like module restricted to ids; used once to
    confirm every unexpected outcome before calling it a problem.
    """
    uv, std, expected = report.uv, report.std, report.expected
    module = report.module
    if uv is None:
        return report
    if not uv["all_ids"]:
        # The child died before running anything (uvloop_like does not import, say).
        report.problems.append("%s: the %s child process ran no test:\n%s" % (
            module, uv["loop"], "\n".join(_describe(k, r) for k, r in uv["fixtures"].items())))
        return report
    if not any(used_loop(r) for r in uv["tests"].values()) and uv["tests"]:
        report.problems.append(
            "%s: runner bug: no %s loop was created in the whole module, so nothing here "
            "ran on it" % (module, uv["loop"]))
    unbound = sorted(test_id for test_id, rec in uv["tests"].items()
                     if test_id.split(".")[1].startswith("Conformance")
                     and rec["status"] == "pass" and not used_loop(rec))
    if unbound:
        report.problems.append(
            "%s: runner bug: these tests of a Conformance* binding passed without creating a "
            "%s loop: %s" % (module, uv["loop"], ", ".join(unbound)))
    uv_recs = _records(uv)
    std_recs = _records(std) if std else {}
    unexpected_fail, unexpected_pass = [], []
    for test_id, rec in sorted(uv_recs.items()):
        status = rec["status"]
        entry = expected.get(test_id)
        std_status = std_recs.get(test_id, {}).get("status") if std else None
        if entry is not None and entry.kind == "stdlib":
            if std is not None and std_status == "pass":
                report.notes.append("%s: listed as failing on stdlib, but passed on stdlib "
                                    "in this run" % test_id)
            continue
        if entry is not None and entry.kind == "flaky":
            continue
        failed = status in FAILED
        if entry is not None:  # kind == "fail"
            if status == "pass":
                unexpected_pass.append(test_id)
            elif status in ("skip", "notrun"):
                report.notes.append("%s: listed as failing but was %s: %s"
                                    % (test_id, status, rec.get("summary", "")))
        elif failed:
            if std_status in FAILED:
                report.notes.append("%s: fails on stdlib too (%s), not listed"
                                    % (test_id, std_recs[test_id].get("summary", "")))
            else:
                unexpected_fail.append(test_id)
        elif status == "notrun" and std_status == "pass":
            unexpected_fail.append(test_id)
    # Listed failures that did not show up at all: a fixture error that went away, or a
    # test that no longer exists.  Both mean the entry must go.
    for test_id, entry in sorted(expected.items()):
        if entry.kind == "fail" and test_id.split(".", 1)[0] == module and test_id not in uv_recs:
            report.problems.append(
                "%s: listed in expected_failures.txt but did not fail (not in the run): "
                "remove the line" % test_id)

    if (unexpected_fail or unexpected_pass) and rerun is not None:
        again = _records(rerun(set(unexpected_fail) | set(unexpected_pass)))
    else:
        again = {}
    for test_id in unexpected_fail:
        second = again.get(test_id)
        if second is not None and second["status"] == "pass":
            report.notes.append("%s: FLAKY: %s on the first run, passed on the rerun: %s"
                                % (test_id, uv_recs[test_id]["status"],
                                   uv_recs[test_id].get("summary", "")))
        else:
            report.problems.append("UNEXPECTED FAILURE " + _describe(test_id, uv_recs[test_id]))
    for test_id in unexpected_pass:
        second = again.get(test_id)
        if second is not None and second["status"] != "pass":
            report.notes.append("%s: FLAKY: listed as failing, passed once, then %s on rerun"
                                % (test_id, second["status"]))
        else:
            report.problems.append(
                "UNEXPECTED PASS %s: listed in expected_failures.txt [%s] (%s) but passes "
                "on uvloop_like now: remove the line"
                % (test_id, plan.python_version(), expected[test_id].reason))
    return report


# --- sessions: all modules, both loops, two at a time ------------------------------------------


class Session:
    """Runs (module, loop) jobs in the background, at most `jobs` child processes at once."""

    def __init__(self, modules, loops=LOOPS, jobs=2, out_dir=None, timeout=None):
        self.modules = list(modules)
        self.loops = tuple(loops)
        self.out_dir = out_dir or default_out_dir()
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        self.futures = {}
        self.reports = {}
        self.expected = expectations.for_version(plan.python_version())
        self.started = None
        self.finished = None
        self._lock = threading.Lock()

    def start(self):
        self.started = time.monotonic()
        order = sorted(self.modules, key=lambda m: -WEIGHTS.get(m, 1))
        for module in order:
            for loop in self.loops:
                self.futures[(module, loop)] = self.pool.submit(
                    run_module, loop, module, self.out_dir, self.timeout)
        return self

    def result(self, module, loop):
        fut = self.futures.get((module, loop))
        return fut.result() if fut is not None else None

    def report(self, module):
        with self._lock:
            if module in self.reports:
                return self.reports[module]
        rep = ModuleReport(module)
        rep.uv = self.result(module, "uvloop_like")
        rep.std = self.result(module, "asyncio")
        rep.expected = {k: v for k, v in self.expected.items()
                        if k.split(".", 1)[0] == module}

        def rerun(ids):
            # Through the pool, so that at most `jobs` child processes run at once.
            return self.pool.submit(run_module, "uvloop_like", module, self.out_dir,
                                    self.timeout, only=ids, tag=".rerun").result()

        compare(rep, rerun=rerun)
        with self._lock:
            self.reports[module] = rep
            self.finished = time.monotonic()
        return rep

    def shutdown(self):
        self.pool.shutdown(wait=False)

    def all_reports(self):
        return [self.reports[m] for m in sorted(self.reports)]


# --- output ------------------------------------------------------------------------------------


def format_table(reports, skipped=None, elapsed=None):
    """The per-module table: tests, passed on stdlib, passed on uvloop_like, ..."""
    cols = ["module", "tests", "pass stdlib", "pass uvloop_like", "ran on uvloop_like",
            "expected fail", "problems", "secs"]
    rows = []
    totals = [0] * 6

    def cell(v):
        return "-" if v is None else str(v)

    for rep in reports:
        expected_fail = sum(1 for e in rep.expected.values() if e.kind == "fail")
        vals = [rep.total, rep.count("asyncio"), rep.count("uvloop_like"), rep.on_loop,
                expected_fail, len(rep.problems)]
        for i, v in enumerate(vals):
            totals[i] += v or 0
        rows.append([rep.module] + [cell(v) for v in vals] + ["%.0f" % rep.duration])
    rows.append(["TOTAL"] + [str(t) for t in totals] + ["%.0f" % elapsed if elapsed else ""])
    widths = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
    # uvloop_like's core, as its children reported it (UVLOOP_LIKE_CORE picks it).
    cores = sorted({rep.uv.get("core") or "?" for rep in reports if rep.uv})
    lines = ["CPython %s test_asyncio conformance (pass = passed; ran on uvloop_like = tests "
             "that created or ran a uvloop_like loop); uvloop_like's core: %s"
             % (plan.python_version(), "/".join(cores) or "-")]
    fmt = "  ".join("%%-%ds" if i == 0 else "%%%ds" for i in range(len(cols))) % tuple(widths)
    lines.append(fmt % tuple(cols))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows[:-1]:
        lines.append(fmt % tuple(r))
    lines.append("  ".join("-" * w for w in widths))
    lines.append(fmt % tuple(rows[-1]))
    if skipped:
        lines.append("not run (not about the event loop implementation):")
        for name in sorted(skipped):
            lines.append("  %-22s %s" % (name, skipped[name]))
    return "\n".join(lines)


def format_problems(reports, verbose_notes=True):
    lines = []
    for rep in reports:
        for p in rep.problems:
            lines.append(p)
        if verbose_notes:
            for n in rep.notes:
                lines.append("note: " + n)
    return "\n".join(lines)


# --- expectations update -----------------------------------------------------------------------


def update_expectations(reports, version=None, path=expectations.PATH):
    """Rewrite `version`'s section from these reports (both loops must have run)."""
    version = version or plan.python_version()
    sections = expectations.load(path)
    old = sections.get(version, {})
    # Reasons already written for a test, best first: by a person for this version, by a
    # person for another version, guessed for this version, guessed for another.
    known_reasons = {}
    ranked = sorted(((expectations._is_guessed(e.reason), v != version, v, e)
                     for v in sections for e in sections[v].values()),
                    key=lambda t: t[:3])
    for _, _, _, entry in ranked:
        known_reasons.setdefault((entry.kind, entry.test_id), entry.reason)
    ran = {rep.module for rep in reports}
    runnable, _ = plan.available_modules()
    new = {k: v for k, v in old.items()
           if k.split(".", 1)[0] not in ran and k.split(".", 1)[0] in runnable}
    for rep in reports:
        if rep.uv is None or rep.std is None:
            raise SystemExit("--update-expectations needs both loops")
        std_recs = _records(rep.std)
        for test_id, rec in sorted(_records(rep.uv).items()):
            std_rec = std_recs.get(test_id)
            prev = old.get(test_id)
            if std_rec is not None and std_rec["status"] in FAILED:
                reason = known_reasons.get(("stdlib", test_id)) or \
                    "fails on stdlib too: %s" % std_rec.get("summary", "")
                new[test_id] = expectations.Entry("stdlib", test_id, reason)
            elif rec["status"] in FAILED or (rec["status"] == "notrun" and std_rec
                                              and std_rec["status"] == "pass"):
                kind = "flaky" if prev is not None and prev.kind == "flaky" else "fail"
                reason = expectations.choose_reason(
                    known_reasons.get((kind, test_id)), expectations.guess_reason(test_id, rec))
                new[test_id] = expectations.Entry(kind, test_id, reason)
            elif prev is not None and prev.kind == "flaky":
                new[test_id] = prev
        for test_id, std_rec in sorted(std_recs.items()):
            if test_id not in new and std_rec["status"] in FAILED:
                reason = known_reasons.get(("stdlib", test_id)) or \
                    "fails on stdlib too: %s" % std_rec.get("summary", "")
                new[test_id] = expectations.Entry("stdlib", test_id, reason)
    sections[version] = new
    expectations.save(sections, path)
    return new


# --- CLI ---------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=["both", "uvloop_like", "asyncio"], default="both")
    parser.add_argument("--module", action="append", help="run only this module (repeatable)")
    parser.add_argument("--update-expectations", action="store_true",
                        help="rewrite this Python version's section of expected_failures.txt")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("CONFORMANCE_JOBS", "2")))
    parser.add_argument("--timeout", type=float, default=None, help="per-test timeout, seconds")
    parser.add_argument("--out-dir", default=None, help="logs and raw results (default build/conformance)")
    parser.add_argument("--reuse", action="store_true",
                        help="do not run: reuse the last results in --out-dir (with "
                             "--update-expectations, to redo the file after editing reasons)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print notes")
    args = parser.parse_args(argv)

    run, skipped = plan.available_modules()
    modules = run
    if args.module:
        unknown = [m for m in args.module if m not in run]
        if unknown:
            parser.error("not runnable here: %s (skipped: %s)" % (
                ", ".join(unknown), ", ".join(sorted(skipped))))
        modules = args.module
    loops = LOOPS if args.loop == "both" or args.update_expectations else (args.loop,)

    session = Session(modules, loops, jobs=args.jobs, out_dir=args.out_dir,
                      timeout=args.timeout)
    if args.reuse:
        session.started = time.monotonic()
        for module in modules:
            for loop in loops:
                path = os.path.join(session.out_dir, "%s.%s.json" % (module, loop))
                with open(path) as f:
                    fut = Future()
                    fut.set_result(json.load(f))
                    session.futures[(module, loop)] = fut
    else:
        session.start()
    reports = []
    for module in modules:
        if "uvloop_like" in loops and not args.update_expectations:
            rep = session.report(module)  # compares, rerunning unexpected outcomes once
        else:
            rep = ModuleReport(module)
            rep.uv = session.result(module, "uvloop_like")
            rep.std = session.result(module, "asyncio")
        reports.append(rep)
        print("%-22s done in %.0fs" % (module, rep.duration), file=sys.stderr)
    session.shutdown()
    elapsed = time.monotonic() - session.started
    if args.update_expectations:
        update_expectations(reports)
    if args.update_expectations or "uvloop_like" not in loops:
        expected = expectations.for_version(plan.python_version())
        for rep in reports:
            rep.expected = {k: v for k, v in expected.items() if k.split(".", 1)[0] == rep.module}
            compare(rep)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({rep.module: {"uvloop_like": rep.uv, "asyncio": rep.std,
                                    "problems": rep.problems, "notes": rep.notes}
                       for rep in reports}, f, indent=1)
    if args.update_expectations:
        new = {k: v for rep in reports for k, v in rep.expected.items()}
        print("wrote %d entries for Python %s (%d modules) to %s" % (
            len(new), plan.python_version(), len(reports), expectations.PATH))
        untriaged = [e for e in new.values() if e.reason.startswith("UNTRIAGED")]
        if untriaged:
            print("%d entries need a reason (UNTRIAGED): edit them in the file" % len(untriaged))
    print(format_table(reports, skipped, elapsed))
    text = format_problems(reports, verbose_notes=not args.quiet)
    if text:
        print(text)
    if args.update_expectations:
        return 0
    return 1 if any(rep.problems for rep in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
