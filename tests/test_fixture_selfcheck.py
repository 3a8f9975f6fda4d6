"""The ``loop`` fixture's own checks work: a test that makes the exception
handler fire unexpectedly fails, one that asks for ``exc_handler`` passes, and
both loop kinds are collected (uvloop_like is never silently skipped)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from loop_testutil import HERE, ROOT

INNER_TESTS = r'''
import asyncio


def test_unexpected_handler_call(loop):
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_expected_handler_call(loop, exc_handler):
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert isinstance(exc_handler.calls[0]["exception"], ZeroDivisionError)


def test_never_retrieved_future_exception(loop):
    fut = loop.create_future()
    fut.set_exception(ValueError("never retrieved"))
    del fut


def test_clean(loop):
    assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1
'''


def test_fixture_reports_unexpected_exception_handler_calls(tmp_path):
    shutil.copy(os.path.join(HERE, "conftest.py"), tmp_path / "conftest.py")
    shutil.copy(os.path.join(HERE, "loop_testutil.py"), tmp_path / "loop_testutil.py")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    for kind in ("asyncio", "uvloop_like"):
        assert f"PASSED test_inner.py::test_clean[{kind}]" in out, out
        assert f"PASSED test_inner.py::test_expected_handler_call[{kind}]" in out, out
        for name in ("test_unexpected_handler_call", "test_never_retrieved_future_exception"):
            assert (f"ERROR test_inner.py::{name}[{kind}]" in out
                    or f"FAILED test_inner.py::{name}[{kind}]" in out), out
    assert "unexpected exception handler calls" in out
    assert "skipped" not in out.splitlines()[-1], out
