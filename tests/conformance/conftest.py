"""Hooks for the conformance run: which modules were selected, and the summary table."""

import os
import time

from . import plan, runner

HERE = os.path.dirname(os.path.abspath(__file__))
_, SKIPPED = plan.available_modules()


def pytest_collection_modifyitems(session, config, items):
    # Start child processes only for the modules that will run (-k, node ids).
    selected = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        path = str(getattr(item, "path", None) or item.fspath)
        if path == os.path.join(HERE, "test_conformance.py") and callspec is not None:
            module = callspec.params.get("module")
            if module and module not in selected and module not in SKIPPED:
                selected.append(module)
    config._conformance_selected = selected


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_conformance_session", None)
    if session is None or not session.reports:
        return
    reports = session.all_reports()
    _, skipped = plan.available_modules()
    elapsed = (session.finished or time.monotonic()) - session.started
    terminalreporter.write_sep("=", "CPython test_asyncio conformance")
    terminalreporter.write_line(runner.format_table(reports, skipped, elapsed))
    notes = [n for rep in reports for n in rep.notes]
    if notes:
        terminalreporter.write_line("notes:")
        for note in notes:
            terminalreporter.write_line("  " + note)
    terminalreporter.write_line("logs and raw results: %s" % session.out_dir)
