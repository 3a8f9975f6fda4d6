"""The README's first Python example (and the docs site's home page's) runs
verbatim on every interpreter the suite runs on (make test-all: CPython
3.9-3.13 and PyPy 3.9), and prints what its comments say it prints.

It runs in a fresh interpreter: the example calls uvloop_like.install(), which
sets the process-wide event loop policy, and a reader copies it into a fresh
interpreter too.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The first example a reader meets, on GitHub and on the docs site.
EXAMPLES = ["README.md", os.path.join("docs", "index.md")]

# ```python ... ``` fences at the start of a line.
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# print(...)  # what it prints
_PRINT_COMMENT = re.compile(r"^print\(.*\)\s+#\s*(.+)$")


def first_python_block(text: str) -> str:
    match = _BLOCK.search(text)
    assert match is not None, "no ```python block"
    return match.group(1)


def expected_output(code: str) -> list:
    """The output lines the example's top-level print() comments promise."""
    return [m.group(1).strip() for m in map(_PRINT_COMMENT.match, code.splitlines()) if m]


@pytest.mark.parametrize("doc", EXAMPLES)
def test_first_example_runs_verbatim(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        code = first_python_block(f.read())
    expected = expected_output(code)
    # Not vacuous: the example says what it prints, and the test holds it to that.
    assert expected, "the example's print() calls should say what they print"
    env = dict(os.environ)
    # The checkout's uvloop_like, as the rest of the suite imports it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    # python -c, not a file under tmp_path: nothing shared with other pytest sessions.
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=45,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err
    assert proc.stdout.decode().splitlines() == expected
    # No ResourceWarning, DeprecationWarning, "Task was destroyed ..." or logged
    # traceback. (Not an empty stderr: under PYTHONASYNCIODEBUG=1, which the suite's
    # second run sets, a slow callback on a busy machine is logged there.)
    for bad in ("Warning", "Traceback", "destroyed", "never retrieved", "Unclosed"):
        assert bad not in err, err
