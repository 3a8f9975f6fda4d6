"""Which core runs the scheduler: the Python core, or the native one.

The native core (``uvloop_like/_core.c``, CPython only; issue 9) takes over
call_soon, call_soon_threadsafe, call_later, call_at, create_task,
create_future and the run loop of a Loop.  It is the DEFAULT on CPython;
``UVLOOP_LIKE_PURE=1`` (or ``UVLOOP_LIKE_CORE=python``) selects the Python
core instead.  PyPy, and a CPython where the extension did not build, always
run the Python core.  The choice is made once, at import;
``uvloop_like.core()`` reports it.
"""
from __future__ import annotations

import os

from ._compat import PYPY

_native = None  # the _core module, when the native core is selected


def wanted(environ=os.environ) -> str:
    """The core the environment asks for on this interpreter: ``"python"``
    on PyPy, with ``UVLOOP_LIKE_PURE`` set (not "0") or with
    ``UVLOOP_LIKE_CORE=python``; otherwise ``"native"``."""
    if PYPY or environ.get("UVLOOP_LIKE_PURE", "") not in ("", "0"):
        return "python"
    if environ.get("UVLOOP_LIKE_CORE", "native").strip().lower() == "python":
        return "python"
    return "native"


def _select():
    if wanted() != "native":
        return None
    try:
        from . import _core
    except ImportError:
        return None
    return _core


_native = _select()

# The Loop methods the native core replaces, each only while the loop's class
# does not override it (nor the methods it relies on): name -> those methods.
_REPLACED = {
    "call_soon": ("call_soon",),
    "call_soon_threadsafe": ("call_soon_threadsafe", "call_soon"),
    "call_at": ("call_at",),
    "call_later": ("call_later", "call_at"),
    "create_task": ("create_task", "_check_closed"),
    "create_future": ("create_future",),
}


def core() -> str:
    """The core this process runs: ``"native"`` or ``"python"``."""
    return "native" if _native is not None else "python"


def attach(loop, base):
    """The native core for ``loop`` (an instance of ``base``, uvloop_like's
    Loop, or of a subclass), its methods bound on the instance; None on the
    Python core."""
    if _native is None:
        return None
    cls = type(loop)
    # The native core builds Handles as Loop does outside debug mode, which
    # it learns from the loop's own get_debug/_debug: a class that overrides
    # get_debug, or the run loop, keeps the Python core.
    if cls.get_debug is not base.get_debug:
        return None
    native = _native.Core(
        loop, base.time, base.call_soon, base.call_soon_threadsafe, base.call_later, base.call_at,
        base.create_task, base.create_future)
    for name, needs in _REPLACED.items():
        # (Loop itself overrides nothing: no per-name check for it.)
        if cls is base or all(getattr(cls, n) is getattr(base, n) for n in needs):
            setattr(loop, name, getattr(native, name))
    return native


def detach(loop, native):
    """Loop.close(): unbind the native methods and let the core drop the
    loop, so that a closed loop dies by reference counting (no cycle through
    its __dict__); the Python methods then raise 'Event loop is closed'."""
    d = loop.__dict__
    for name in _REPLACED:
        if getattr(d.get(name), "__self__", None) is native:
            del d[name]
    native.close()
