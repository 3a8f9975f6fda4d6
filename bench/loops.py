"""The loop implementations under comparison, and how a child process loads one.

Only the child processes import uvloop or uvloop_like, one implementation each, so
the two never share a process and the parent stays a plain CPython/PyPy process.
"""
from __future__ import annotations

import dataclasses
import importlib
import platform
from typing import Any, Callable, Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    name: str  # column name
    module: str  # module to import
    factory: str  # its attribute that makes a new loop
    loop_module_prefix: str  # the made loop's class must live under this module
    # Extra environment of its child processes, e.g. (("UVLOOP_LIKE_PURE", "1"),) for a
    # column that runs one implementation in another mode (both bench modes apply it).
    env: Tuple[Tuple[str, str], ...] = ()
    # For uvloop_like: the core (``uvloop_like.core()``) the column must run, so
    # that a native core that did not build is never benchmarked under its name.
    core: Optional[str] = None


_CPYTHON = platform.python_implementation() == "CPython"

# uvloop_like is the default core: native on CPython, the Python core on PyPy
# (its only one).  On CPython uvloop_like_py adds the Python core's column.
LOOPS: Dict[str, LoopSpec] = {
    spec.name: spec
    for spec in (
        LoopSpec("stdlib", "asyncio", "new_event_loop", "asyncio"),
        LoopSpec("uvloop", "uvloop", "new_event_loop", "uvloop"),
        LoopSpec("uvloop_like", "uvloop_like", "new_event_loop", "uvloop_like",
                 core="native" if _CPYTHON else "python"),
    ) + ((LoopSpec("uvloop_like_py", "uvloop_like", "new_event_loop", "uvloop_like",
                   env=(("UVLOOP_LIKE_PURE", "1"),), core="python"),) if _CPYTHON else ())
}

BASELINE = "stdlib"
SUBJECT = "uvloop_like"


def load(name: str) -> Callable[[], Any]:
    """Import implementation ``name`` and return its checked loop factory.

    The first loop made is checked to be the implementation's own class, so that a
    fallback to the stdlib loop can never be benchmarked under another name.
    """
    spec = LOOPS[name]
    module = importlib.import_module(spec.module)
    if spec.core is not None and module.core() != spec.core:
        raise RuntimeError(f"{spec.module} runs its {module.core()} core here, not the {spec.core} one")
    factory: Callable[[], Any] = getattr(module, spec.factory)
    loop = factory()
    try:
        cls = type(loop)
        if not cls.__module__.startswith(spec.loop_module_prefix):
            raise RuntimeError(f"{spec.module}.{spec.factory}() made a {cls.__module__}.{cls.__qualname__}")
    finally:
        loop.close()
    return factory


def describe(name: str) -> Dict[str, str]:
    """Version facts about implementation ``name`` (imports it: call in a child)."""
    spec = LOOPS[name]
    module = importlib.import_module(spec.module)
    factory = load(name)
    loop = factory()
    try:
        info = {"loop_class": f"{type(loop).__module__}.{type(loop).__qualname__}"}
    finally:
        loop.close()
    version = getattr(module, "__version__", None)
    if version:
        info["version"] = str(version)
    if spec.core is not None:
        info["core"] = str(module.core())
    libuv_version = getattr(module, "libuv_version", None)
    if callable(libuv_version):
        try:
            info["libuv"] = str(libuv_version())
        except Exception as exc:  # a describe failure must not hide the loop
            info["libuv"] = f"? ({exc!r})"
    return info
