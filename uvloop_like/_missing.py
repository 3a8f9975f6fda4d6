"""The ImportError raised when the compiled module ``uvloop_like._uv`` is missing.

The usual cause is a source checkout shadowing the installed package: Python
puts the script's directory (or, for ``python -c``/``-m`` and pytest's
rootdir insertion, the current directory) first on ``sys.path``, so running
from the root of a checkout imports its ``uvloop_like/``, which has no
extension unless it was built in place.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import List, Optional


def missing_extension_error(package_dir: str, path: List[str]) -> Optional[ImportError]:
    """The ImportError to raise instead of "No module named 'uvloop_like._uv'",
    or None when the extension is there (its own load error is the one to show)."""
    try:
        names = os.listdir(package_dir)
    except OSError:
        names = []
    if any("_uv" + suffix in names for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        return None
    others = sorted(n for n in names if n.startswith("_uv.") and n.endswith((".so", ".pyd")))
    built_for_others = (" (it holds builds for other interpreters: %s)" % ", ".join(others)) if others else ""
    root = os.path.dirname(package_dir)
    tag = "%s %s" % (sys.implementation.name, ".".join(map(str, sys.version_info[:2])))
    if not os.path.exists(os.path.join(root, "build_ffi.py")):
        return ImportError(
            "uvloop_like in %s has no compiled module (_uv) for %s%s: reinstall it "
            "(pip install --force-reinstall uvloop_like)" % (package_dir, tag, built_for_others),
            name="uvloop_like._uv",
        )
    installed = None
    for entry in path:
        if os.path.realpath(entry or os.curdir) == os.path.realpath(root):
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec("uvloop_like", [entry or os.curdir])
        except (ImportError, OSError, ValueError):
            continue
        if spec is not None and spec.origin:
            installed = os.path.dirname(spec.origin)
            break
    shadow = (" It shadows the uvloop_like installed in %s." % installed) if installed else ""
    return ImportError(
        "uvloop_like is imported from its source tree %s (on sys.path, often as the current "
        "directory), where the compiled module uvloop_like/_uv is not built for %s%s.%s "
        "Run from another directory (or take the source tree off sys.path/PYTHONPATH) to use "
        "the installed package, or build the tree in place: pip install -e %s (or make dev)."
        % (root, tag, built_for_others, shadow, root),
        name="uvloop_like._uv",
    )
