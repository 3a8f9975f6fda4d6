"""Fixtures shared by the unit tests.

Every behaviour test takes the ``loop`` fixture and so runs twice: on a stdlib
asyncio loop (id ``asyncio``) and on a uvloop_like loop (id ``uvloop_like``).
If a test fails on stdlib, the test is wrong.

After each test the fixture:

* fails the test if the loop's exception handler was called and the test did
  not ask for the ``exc_handler`` fixture (which records the calls for the
  test to assert on);
* shuts down async generators and the default executor, closes the loop and
  collects garbage, so "Task was destroyed but it is pending" and "exception
  was never retrieved" reports land in the recorder too;
* for uvloop_like, fails if a libuv handle or request is still open once the
  loop is closed.

The core the ``uvloop_like`` loops run is the process's (see
uvloop_like/_coresel.py): the native core by default on CPython,
``UVLOOP_LIKE_PURE=1`` runs the whole suite on the Python core (``make
test-pure``).  When the native core is wanted and not available, the session
fails at once rather than silently testing the Python one.
"""
from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

LOOP_KINDS = ("asyncio", "uvloop_like")


def _wanted_core():
    from uvloop_like import _coresel

    return _coresel.wanted()


def pytest_report_header(config):
    return "uvloop_like core: %s (wanted %s)" % (_import_uvloop_like().core(), _wanted_core())


def pytest_sessionstart(session):
    if _wanted_core() == "native" and _import_uvloop_like().core() != "native":
        pytest.exit("the native core is wanted (the default on CPython), but it is not "
                    "available (uvloop_like._core did not build or import); "
                    "UVLOOP_LIKE_PURE=1 tests the Python core", returncode=3)


def _import_uvloop_like():
    """The uvloop_like module.  Once the package exists, failing to import it
    is a test failure, never a skip."""
    if importlib.util.find_spec("uvloop_like") is None:  # pragma: no cover
        pytest.fail("uvloop_like is not importable: run `make dev` first", pytrace=False)
    import uvloop_like

    return uvloop_like


def new_loop(kind):
    """A new, not running, loop of ``kind`` ("asyncio" or "uvloop_like")."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    return _import_uvloop_like().new_event_loop()


def open_uv_handles(loop):
    """What libuv still has open for a closed uvloop_like loop (should be
    nothing): the handle wrappers and in-flight requests the loop tracks."""
    handles = getattr(loop, "_uv_handles", None)
    requests = getattr(loop, "_uv_requests", None)
    if handles is None or requests is None:
        pytest.fail("uvloop_like.Loop no longer exposes _uv_handles/_uv_requests: "
                    "update tests/conftest.py's leak check", pytrace=False)
    return list(handles) + list(requests)


class ExceptionRecorder:
    """An exception handler that records every context it receives."""

    def __init__(self):
        self.calls = []
        self.expected = False

    def __call__(self, loop, context):
        self.calls.append(context)

    def __len__(self):
        return len(self.calls)

    def __getitem__(self, index):
        return self.calls[index]

    def exceptions(self):
        return [c.get("exception") for c in self.calls]

    def clear(self):
        del self.calls[:]


def _format_contexts(calls, limit=10):
    lines = []
    for ctx in calls[:limit]:
        exc = ctx.get("exception")
        lines.append(f"  message={ctx.get('message')!r} exception={exc!r:.500} "
                     f"keys={sorted(ctx)}")
    if len(calls) > limit:
        lines.append(f"  ... and {len(calls) - limit} more")
    return "\n".join(lines)


def _finish_loop(loop):
    """Close the loop as asyncio.run() does: cancel what is left, close async
    generators and the default executor."""
    if loop.is_closed():
        return
    if loop.is_running():  # pragma: no cover - a test bug
        pytest.fail("the loop is still running at teardown")
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


@pytest.fixture
def _exception_recorder():
    return ExceptionRecorder()


@pytest.fixture
def exc_handler(_exception_recorder):
    """Ask for this to say that the test expects exception-handler calls; it
    is the recorder, with ``calls`` (the contexts) to assert on."""
    _exception_recorder.expected = True
    return _exception_recorder


@pytest.fixture(params=LOOP_KINDS)
def loop(request, _exception_recorder):
    yield from loop_fixture(request.param, _exception_recorder)


def loop_fixture(param, recorder):
    """The body of the ``loop`` fixture, for modules that parametrize their
    own: ``param`` is a loop kind, or "uvloop_like+VARIANT" for a module that
    runs uvloop_like a second way (the loop itself is the same)."""
    kind = param.partition("+")[0]
    lp = new_loop(kind)
    lp.set_exception_handler(recorder)
    asyncio.set_event_loop(None)
    try:
        yield lp
    finally:
        try:
            _finish_loop(lp)
        finally:
            asyncio.set_event_loop(None)
            gc.collect()
    if recorder.calls and not recorder.expected:
        pytest.fail("unexpected exception handler calls:\n"
                    + _format_contexts(recorder.calls), pytrace=False)
    if kind == "uvloop_like":
        leaked = open_uv_handles(lp)
        if leaked:
            pytest.fail(f"libuv handles still open after close(): {leaked!r}", pytrace=False)


@pytest.fixture
def is_uvloop_like(loop):
    return type(loop).__module__.startswith("uvloop_like")
