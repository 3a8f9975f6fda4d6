"""Child process of the conformance runner: one test_asyncio module on one loop.

Run by runner.py as a script (``python child.py --loop uvloop_like --module test_tasks
--out results.jsonl``), never imported by the test suite.  It writes one JSON object per
line to --out, flushed as it goes, so that a test that hangs or crashes the interpreter
loses nothing but itself:

    {"event": "begin", "tests": [ids...], "dropped": {...}, ...}
    {"event": "start", "id": "test_tasks.PyTask_PyFuture_Tests.test_foo"}
    {"event": "end", "id": ..., "status": "pass|fail|error|skip|xpass", "loops": N, "runs": M, ...}
    {"event": "fixture", "id": "test_tasks.tearDownModule", "status": "error", ...}
    {"event": "done", "loops": N}

A test still running after --timeout seconds makes faulthandler dump every thread's stack
to stderr and exit the process; runner.py then records the test as "timeout" and starts a
new child that skips it.
"""

import argparse
import faulthandler
import functools
import json
import os
import sys
import time
import traceback
import unittest

import plan  # sibling module: this file is run as a script from tests/conformance/

PREFIX = "test.test_asyncio."
DETAIL_LIMIT = 4000
EXIT_TIMEOUT = 30.0


def short_id(test_id):
    return test_id[len(PREFIX):] if test_id.startswith(PREFIX) else test_id


class Target:
    """The loop under test: how to make one, its class, and how many were made."""

    def __init__(self, kind):
        import asyncio
        import asyncio.events as events

        self.kind = kind
        if kind == "uvloop_like":
            import uvloop_like

            self.cls = uvloop_like.Loop
            factory = uvloop_like.new_event_loop
            policy_cls = uvloop_like.EventLoopPolicy
            lock = events._lock

            # Test modules reset the policy with set_event_loop_policy(None) in
            # tearDownModule (and some tests in between); make the "default" policy
            # that get_event_loop_policy() then creates ours, as a user's install() would
            # not survive that but the conformance question is about the loop.
            def _init_event_loop_policy():
                with lock:
                    if events._event_loop_policy is None:
                        events._event_loop_policy = policy_cls()

            events._init_event_loop_policy = _init_event_loop_policy
            asyncio.set_event_loop_policy(policy_cls())
        elif kind == "asyncio":
            self.cls = asyncio.SelectorEventLoop
            factory = asyncio.SelectorEventLoop
        else:
            raise SystemExit("unknown loop %r" % kind)

        self.created = 0
        original_init = self.cls.__init__
        target = self

        @functools.wraps(original_init)
        def __init__(loop, *args, **kwargs):
            target.created += 1
            original_init(loop, *args, **kwargs)

        self.cls.__init__ = __init__

        # A loop made outside the test (IsolatedAsyncioTestCase on 3.9/3.10 makes it in
        # run(), before startTest) still counts for the tests that run it.
        self.runs = 0
        original_run_forever = self.cls.run_forever

        @functools.wraps(original_run_forever)
        def run_forever(loop, *args, **kwargs):
            target.runs += 1
            return original_run_forever(loop, *args, **kwargs)

        self.cls.run_forever = run_forever

        def checked_factory():
            loop = factory()
            if not isinstance(loop, self.cls):
                raise AssertionError("conformance binding made %r, not a %s" % (loop, self.cls))
            return loop

        self.factory = checked_factory

        # The policy must now produce the loop under test, or the whole run is a lie.
        loop = asyncio.new_event_loop()
        try:
            if not isinstance(loop, self.cls):
                raise SystemExit("asyncio.new_event_loop() made %r, not a %s" % (loop, self.cls))
            self.core = None
            if kind == "uvloop_like":
                # Which of uvloop_like's cores runs (UVLOOP_LIKE_CORE / _PURE), and
                # that a loop really has it: a run meant for the native core that
                # silently ran the Python one would answer the wrong question.
                self.core = uvloop_like.core()
                has_native = getattr(loop, "_native", None) is not None
                if has_native != (self.core == "native"):
                    raise SystemExit("uvloop_like.core() is %r but a new loop %s the native core"
                                     % (self.core, "has" if has_native else "lacks"))
                from uvloop_like import _coresel

                if _coresel.wanted() == "native" and self.core != "native":
                    raise SystemExit("the native core is wanted (the default on CPython), but "
                                     "uvloop_like runs its %s core (did uvloop_like._core "
                                     "build?); UVLOOP_LIKE_PURE=1 tests the Python core"
                                     % self.core)
        finally:
            loop.close()
        self.created = 0
        self.runs = 0


def format_err(err):
    return "".join(traceback.format_exception(*err))


def summary_line(text):
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class StreamingResult(unittest.TestResult):
    def __init__(self, emit, target, timeout):
        super().__init__()
        self.emit = emit
        self.target = target
        self.timeout = timeout
        self.current = None

    def _arm(self):
        # Re-armed at every test boundary, so class and module fixtures between tests are
        # bounded too.
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def startTest(self, test):
        super().startTest(test)
        tid = short_id(test.id())
        self.current = {
            "id": tid,
            "t0": time.monotonic(),
            "loops0": self.target.created,
            "runs0": self.target.runs,
            "problems": [],  # (kind, text)
            "skip": None,
            "xfail": False,
            "xpass": False,
        }
        self.emit({"event": "start", "id": tid})
        self._arm()

    def stopTest(self, test):
        super().stopTest(test)
        cur = self.current
        self.current = None
        if cur is None:
            return
        if cur["problems"]:
            kinds = [k for k, _ in cur["problems"]]
            status = "error" if "error" in kinds else "fail"
            detail = "\n".join(t for _, t in cur["problems"])
        elif cur["xpass"]:
            status, detail = "xpass", "unexpected success of a test marked expectedFailure"
        elif cur["skip"] is not None:
            status, detail = "skip", cur["skip"]
        else:
            status, detail = "pass", ""
        self.emit({
            "event": "end",
            "id": cur["id"],
            "status": status,
            "loops": self.target.created - cur["loops0"],
            "runs": self.target.runs - cur["runs0"],
            "duration": round(time.monotonic() - cur["t0"], 3),
            "summary": summary_line(detail) if status in ("fail", "error") else detail[:300],
            "detail": detail[-DETAIL_LIMIT:] if status in ("fail", "error") else "",
        })
        self._arm()

    def _is_current(self, test):
        return self.current is not None and isinstance(test, unittest.TestCase) and \
            short_id(test.id()) == self.current["id"]

    def _fixture(self, test, status, text):
        # unittest reports setUpModule/setUpClass/tearDown*/cleanup failures with an
        # _ErrorHolder whose description is "tearDownModule (test.test_asyncio.test_x)".
        desc = str(getattr(test, "description", test))
        name, _, where = desc.partition(" (")
        where = short_id(where.rstrip(")"))
        self.emit({
            "event": "fixture",
            "id": "%s.%s" % (where, name) if where else name,
            "status": status,
            "summary": summary_line(text),
            "detail": text[-DETAIL_LIMIT:],
        })

    def addError(self, test, err):
        super().addError(test, err)
        if self._is_current(test):
            self.current["problems"].append(("error", format_err(err)))
        else:
            self._fixture(test, "error", format_err(err))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        if self._is_current(test):
            self.current["problems"].append(("fail", format_err(err)))
        else:
            self._fixture(test, "fail", format_err(err))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None and self._is_current(test):
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self.current["problems"].append(
                (kind, "subTest %s\n%s" % (subtest._subDescription(), format_err(err))))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self._is_current(test):
            self.current["skip"] = reason
        else:
            self._fixture(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        if self._is_current(test):
            self.current["xfail"] = True

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        if self._is_current(test):
            self.current["xpass"] = True


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def read_ids(path):
    if not path:
        return None
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", required=True, choices=["uvloop_like", "asyncio"])
    parser.add_argument("--module", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--exclude", help="file of test ids not to run")
    parser.add_argument("--only", help="file of test ids to run (default: all)")
    parser.add_argument("--timeout", type=float, default=plan.DEFAULT_TEST_TIMEOUT)
    args = parser.parse_args()

    out = open(args.out, "a", buffering=1)

    def emit(record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    faulthandler.enable()
    # Importing and binding are bounded too.
    faulthandler.dump_traceback_later(max(args.timeout, 60.0), exit=True)

    target = Target(args.loop)

    import importlib

    module = importlib.import_module(PREFIX + args.module)
    dropped = plan.bind(module, args.module, target.factory)

    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = list(iter_tests(suite))
    exclude = read_ids(args.exclude) or set()
    only = read_ids(args.only)
    tests = [t for t in tests
             if not (type(t).__module__ == module.__name__ and type(t).__name__ in dropped)]
    selected = [t for t in tests
                if short_id(t.id()) not in exclude and (only is None or short_id(t.id()) in only)]
    emit({
        "event": "begin",
        "module": args.module,
        "loop": args.loop,
        "loop_class": "%s.%s" % (target.cls.__module__, target.cls.__qualname__),
        "core": target.core,
        "python": sys.version.split()[0],
        "pid": os.getpid(),
        "tests": [short_id(t.id()) for t in tests],
        "selected": len(selected),
        "dropped": dropped,
    })

    result = StreamingResult(emit, target, args.timeout)
    unittest.TestSuite(selected).run(result)
    emit({"event": "done", "loops": target.created, "runs": target.runs})
    out.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Interpreter shutdown joins non-daemon threads (a leaked executor worker, say) and
    # runs finalizers: bound it too.  runner.py reports a non-zero exit after "done" as a
    # crash of the module's <process>.
    faulthandler.dump_traceback_later(EXIT_TIMEOUT, exit=True)


if __name__ == "__main__":
    main()
