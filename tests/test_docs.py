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


# The README's "run B" columns are the checked-in benchmark run the docs site plots
# (docs/bench/bench-run.json): a new run must update both.
_README_ROWS = {"core": "| loop core", "stream": "| TCP and unix echo", "http": "| HTTP", "udp": "| UDP",
                "subprocess": "| subprocesses", "tls": "| TLS"}


def test_readme_benchmark_figures_match_the_plotted_run():
    import sys

    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        import gen_plots
    finally:
        sys.path.pop(0)
    means = gen_plots.group_means(gen_plots.load(gen_plots.DEFAULT_JSON))
    assert set(means) == set(_README_ROWS)
    lines = _read(os.path.join(ROOT, "README.md")).splitlines()
    for group, prefix in _README_ROWS.items():
        row = [ln for ln in lines if ln.startswith(prefix)]
        assert len(row) == 1, (group, row)
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        like, uv = means[group]["uvloop_like"], means[group]["uvloop"]
        # | workloads | vs stdlib A | vs stdlib B | vs uvloop A | vs uvloop B |
        assert cells[2] == "%.2fx" % like, (group, cells)
        assert cells[4] == "%.2fx" % (like / uv), (group, cells)


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
