"""Every function the documentation names exists.

The README, CONTRIBUTING.md, CHANGELOG.md and every page under docs/ are scanned
for ``uvloop_like.<dotted name>`` (resolved attribute by attribute, importing
submodules as needed) and ``loop.<name>(`` (a method of ``uvloop_like.Loop``).
A doc that names something the code does not have fails here, so the docs
cannot drift into describing functions that were renamed or never landed.
"""
from __future__ import annotations

import ast
import glob
import importlib
import importlib.util
import os
import re
import types

import pytest

import uvloop_like

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Not preceded by a path or word character: "uvloop_like/_native" and
# "pip install uvloop_like-0.1.0" are not Python names.
_MODULE_NAME = re.compile(r"(?<![\w/.-])uvloop_like((?:\.[A-Za-z_]\w*)+)")
# loop.create_server(, self.loop.call_soon( -- but not event_loop.x( or my_loop.x(.
_LOOP_METHOD = re.compile(r"(?<![\w])loop\.([A-Za-z_]\w*)\(")


def doc_files():
    files = [os.path.join(ROOT, name) for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    return [f for f in files if os.path.exists(f)]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _top_level_names(filename):
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def resolve(dotted: str):
    """getattr along ``dotted`` from uvloop_like, importing submodules on the way.

    A submodule that exists but cannot be imported here because an optional
    dependency is missing (uvloop_like.gunicorn without gunicorn) is checked
    from its source instead: the next name must be defined at its top level."""
    obj = uvloop_like
    path = "uvloop_like"
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        path += "." + part
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(path)
        except ImportError as exc:
            spec = importlib.util.find_spec(path) if isinstance(obj, types.ModuleType) else None
            origin = getattr(spec, "origin", None) or ""
            if not origin.endswith(".py"):
                raise AttributeError("%s does not exist (%s)" % (path, exc)) from None
            rest = parts[i + 1:]
            if rest and rest[0] not in _top_level_names(origin):
                raise AttributeError("%s.%s is not defined in %s" % (path, rest[0], origin)) from None
            return origin
    return obj


def _mentions(pattern):
    found = {}
    for path in doc_files():
        for lineno, line in enumerate(_read(path).splitlines(), 1):
            for m in pattern.finditer(line):
                found.setdefault(m.group(1).lstrip("."), []).append("%s:%d" % (os.path.relpath(path, ROOT), lineno))
    return found


def test_docs_are_found():
    names = [os.path.relpath(f, ROOT) for f in doc_files()]
    assert "README.md" in names and os.path.join("docs", "api.md") in names
    # The scan is not vacuous: the README names run(), the user guide loop.set_debug().
    assert "run" in _mentions(_MODULE_NAME)
    assert "set_debug" in _mentions(_LOOP_METHOD)


@pytest.mark.parametrize("dotted", sorted(_mentions(_MODULE_NAME)))
def test_named_uvloop_like_attribute_exists(dotted):
    where = ", ".join(_mentions(_MODULE_NAME)[dotted][:5])
    try:
        resolve(dotted)
    except AttributeError as exc:
        pytest.fail("uvloop_like.%s is named in %s but: %s" % (dotted, where, exc))


@pytest.mark.parametrize("method", sorted(_mentions(_LOOP_METHOD)))
def test_named_loop_method_exists(method):
    where = ", ".join(_mentions(_LOOP_METHOD)[method][:5])
    assert callable(getattr(uvloop_like.Loop, method, None)), (
        "loop.%s() is named in %s but uvloop_like.Loop has no such method" % (method, where)
    )


# The README's wall-clock table comes from the run checked in as
# docs/bench/bench-cores-run.json (python -m bench --json, both cores beside
# stdlib and uvloop): a new run must update both.  Each row: its first cell's
# start -> the workloads whose ratios it shows ("a / b" cells: one per workload).
_README_CORES_RUN = os.path.join(ROOT, "docs", "bench", "bench-cores-run.json")
_README_ROWS = {
    "| loop core (9), geometric mean": "core",
    "| `call_soon` chain / batch": ["call_soon_chain", "call_soon_batch"],
    "| `call_later` timers": ["call_later_timers"],
    "| `create_task` + await": ["task_await"],
    "| creating and closing a loop": ["loop_lifecycle"],
    "| TCP echo Protocol 1 KiB / streams 1 KiB": ["echo_tcp_protocol_1k", "echo_tcp_streams_1k"],
    "| unix echo Protocol 1 KiB": ["echo_unix_protocol_1k"],
    "| UDP echo, 256 B datagrams": ["udp_echo_256"],
    "| aiohttp hello": ["aiohttp_hello"],
}


def test_readme_benchmark_figures_match_the_checked_in_run():
    import statistics
    import sys

    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        import gen_plots
    finally:
        sys.path.pop(0)
    data = gen_plots.load(_README_CORES_RUN)
    runs = data["runs"]

    def ratio(names, a, b):
        def one(n):
            return statistics.median(runs[n][a]) / statistics.median(runs[n][b])
        return " / ".join("%.2fx" % one(n) for n in names)

    lines = _read(os.path.join(ROOT, "README.md")).splitlines()
    for prefix, names in _README_ROWS.items():
        row = [ln for ln in lines if ln.startswith(prefix)]
        assert len(row) == 1, (prefix, row)
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        if names == "core":
            core = dict(gen_plots.grouped(data))["core"]
            assert len(core) == 9
            expected = ["%.2fx" % gen_plots.geomean([statistics.median(runs[n][a]) / statistics.median(runs[n][b])
                                                     for n in core])
                        for a, b in (("uvloop_like", "stdlib"), ("uvloop_like", "uvloop"),
                                     ("uvloop_like_py", "stdlib"))]
        else:
            expected = [ratio(names, "uvloop_like", "stdlib"), ratio(names, "uvloop_like", "uvloop"),
                        ratio(names, "uvloop_like_py", "stdlib")]
        # | workloads | native / stdlib | native / uvloop | Python core / stdlib |
        assert cells[1:] == expected, (prefix, cells)


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_of_top_level_docs_exist(name):
    """mkdocs --strict checks the links between docs/ pages; these files are
    read on the repository's front page, outside the site."""
    text = _read(os.path.join(ROOT, name))
    targets = [t for t in _LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]
    assert targets, "%s has no relative link: the scan is broken" % name
    missing = [t for t in targets if not os.path.exists(os.path.join(ROOT, t))]
    assert not missing, "%s links to missing files: %s" % (name, missing)
