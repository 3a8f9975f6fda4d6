"""Packaging facts that need no build: the type stub matches the loop, and a
source tree without its compiled module says so on import."""

import ast
import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import uvloop_like

PACKAGE_DIR = os.path.dirname(os.path.abspath(uvloop_like.__file__))


def _stub_names():
    with open(os.path.join(PACKAGE_DIR, "loop.pyi")) as f:
        tree = ast.parse(f.read())
    (loop_class,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Loop"]
    names = set()
    for node in loop_class.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stub_lists_the_whole_public_loop_api():
    # Type checkers read loop.pyi, not loop.py: a public method missing there
    # is invisible to them, one there that Loop lacks is a lie.
    loop = uvloop_like.new_event_loop()
    try:
        public = {n for n in dir(loop) if not n.startswith("_")}
    finally:
        loop.close()
    stub = _stub_names()
    assert public - stub == set(), "public Loop names missing from loop.pyi"
    assert stub - public - {"__init__"} == set(), "loop.pyi names that Loop does not have"
    abstract = {n for n in dir(asyncio.AbstractEventLoop) if not n.startswith("_")}
    assert abstract <= stub


def _tree_without_extension(tmp_path, checkout):
    """A copy of the package's Python files (no compiled module) in tmp_path,
    laid out as a source checkout (build_ffi.py beside it) or not."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE_DIR, str(root / "uvloop_like"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.tmp-*"))
    if checkout:
        (root / "build_ffi.py").write_text("# stands for the checkout's build script\n")
    return root


# -S: no site module, so no editable-install finder for this checkout (it
# would win over everything); site-packages (cffi) comes back through
# PYTHONPATH, behind the current directory that -c puts first on sys.path, as
# running a script or pytest from a checkout's root does.
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def _python(code, cwd, *path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(p) for p in path] + [SITE_PACKAGES]))
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def _import_from(cwd):
    return _python("import uvloop_like", cwd)


def test_unbuilt_checkout_says_it_shadows_the_installed_package(tmp_path):
    root = _tree_without_extension(tmp_path, checkout=True)
    proc = _import_from(root)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    last = err.strip().splitlines()[-1]
    assert last.startswith("ImportError: uvloop_like is imported from its source tree %s" % root), err
    assert "not built for" in last and "Run from another directory" in last and "pip install -e" in last, err
    assert "No module named 'uvloop_like._uv'" in err  # the cause stays in the chain


def test_shadowing_message_names_the_installed_copy(tmp_path):
    # An installed uvloop_like (a plain directory on PYTHONPATH) behind the
    # checkout: the message says which one is hidden.
    root = _tree_without_extension(tmp_path, checkout=True)
    installed = tmp_path / "site"
    shutil.copytree(PACKAGE_DIR, str(installed / "uvloop_like"), ignore=shutil.ignore_patterns("__pycache__"))
    proc = _python("import uvloop_like", root, installed)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "It shadows the uvloop_like installed in %s" % (installed / "uvloop_like") in err, err
    # ... and from elsewhere the installed copy imports and works.
    proc = _python("import uvloop_like, asyncio; print(uvloop_like.run(asyncio.sleep(0, 'ok')))",
                   tmp_path, installed)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split()[0] == "ok"


def test_installed_copy_without_extension_says_reinstall(tmp_path):
    root = _tree_without_extension(tmp_path, checkout=False)
    proc = _import_from(root)
    assert proc.returncode != 0
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert "has no compiled module (_uv)" in last and "pip install --force-reinstall uvloop_like" in last, last


@pytest.mark.parametrize("name", ["LICENSE", "py.typed"])
def test_source_tree_carries(name):
    root = os.path.dirname(PACKAGE_DIR)
    path = os.path.join(root, name) if name == "LICENSE" else os.path.join(PACKAGE_DIR, name)
    assert os.path.isfile(path)
    if name == "LICENSE":
        with open(path) as f:
            text = f.read()
        assert text.startswith("MIT License") and "Copyright (c) 2026 uvloop_like developers" in text
