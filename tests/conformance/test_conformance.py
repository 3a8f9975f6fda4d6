"""CPython's own test_asyncio, run on uvloop_like and checked against expected_failures.txt.

One pytest test per test_asyncio module.  All modules start at once in the background
(two child processes at a time, each module on uvloop_like and on the stdlib loop); each
pytest test waits for its module and fails on any unexpected failure or unexpected pass.
The per-module table is printed at the end of the session (conftest.py).

Environment:
  CONFORMANCE_STDLIB=0   skip the stdlib baseline run (faster; the "pass stdlib" column is empty
                         and failures that stdlib shares are no longer excused)
  CONFORMANCE_JOBS=N     child processes at a time (default 2)
  CONFORMANCE_TIMEOUT=S  per-test timeout in seconds (default plan.DEFAULT_TEST_TIMEOUT)
"""

import os

import pytest

from . import plan, runner

RUN, SKIPPED = plan.available_modules()


def _loops():
    if os.environ.get("CONFORMANCE_STDLIB", "1") == "0":
        return ("uvloop_like",)
    return runner.LOOPS


@pytest.fixture(scope="session")
def conformance_session(request):
    selected = getattr(request.config, "_conformance_selected", None) or RUN
    timeout = os.environ.get("CONFORMANCE_TIMEOUT")
    session = runner.Session(
        selected, _loops(), jobs=int(os.environ.get("CONFORMANCE_JOBS", "2")),
        timeout=float(timeout) if timeout else None).start()
    request.config._conformance_session = session
    yield session
    session.shutdown()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("module", RUN + sorted(SKIPPED))
def test_module(module, conformance_session):
    if module in SKIPPED:
        stale = [k for k in conformance_session.expected if k.split(".", 1)[0] == module]
        if stale:
            pytest.fail("expected_failures.txt [%s] lists tests of a module that does not run: %s"
                        % (plan.python_version(), ", ".join(stale)), pytrace=False)
        pytest.skip("not run: %s" % SKIPPED[module])
    report = conformance_session.report(module)
    if report.problems:
        pytest.fail("\n\n".join(report.problems), pytrace=False)
