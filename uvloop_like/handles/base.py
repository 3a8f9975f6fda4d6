"""The lifecycle every libuv handle wrapper shares.

Two lifetime rules, obeyed by every subclass:

1. The ``uv_*_t`` struct is allocated with ``ffi.new`` and owned by the
   wrapper.  From a successful ``uv_*_init`` until libuv has run the close
   callback, the wrapper is referenced from ``loop._uv_handles``, so neither
   the wrapper nor the struct can be freed while libuv may still touch it
   (the garbage collector may run at any time, and PyPy frees nothing
   promptly, so nothing here relies on reference counting).
2. ``handle.data`` is an ``ffi.new_handle(self)`` that the wrapper keeps; the
   C callbacks only copy that pointer into the loop's completion array, and
   Python turns it back into the wrapper after ``uv_run`` returns.

States: created -> active (after init) -> closing (uv_close called) ->
closed (close callback seen).
"""
from __future__ import annotations

import types

from .._ffi import HANDLE_P, ffi, lib


def bind_first(cfunc, first):
    """``cfunc`` with its first argument bound: ``bind_first(f, p)(x, y)``
    is ``f(p, x, y)``, for the calls made per read, write or iteration.  A
    bound method object, not a functools.partial: a cffi function takes
    its arguments as a tuple, and a partial of one builds two tuples per
    call (its own, then the concatenation) and goes through its slow call
    path; the bound method passes the arguments on as they are, one tuple
    in all."""
    return types.MethodType(cfunc, first)


def check_open(loop):
    """Refuse to start anything on a closed loop, as stdlib does: libuv has
    torn the loop down (the native layer refuses too, see uvl.c's "closed
    loop" section; this check comes first and keeps the message exact)."""
    if loop._closed:
        raise RuntimeError("Event loop is closed")


class UVHandle:
    """Owner of one ``uv_*_t`` (see module docstring for the rules)."""

    __slots__ = ("_loop", "_ptr", "_data", "_state", "__weakref__")

    CREATED, ACTIVE, CLOSING, CLOSED = range(4)

    _ctype = HANDLE_P

    def __init__(self, loop):
        check_open(loop)
        self._loop = loop
        self._ptr = ffi.new(self._ctype)
        self._data = ffi.new_handle(self)
        # Every uv_*_t (and uvl_stream_t) starts with uv_handle_t's fields.
        ffi.cast(HANDLE_P, self._ptr).data = self._data
        self._state = UVHandle.CREATED

    def _activated(self):
        """Call right after a successful ``uv_*_init``."""
        self._state = UVHandle.ACTIVE
        self._loop._uv_handles.add(self)

    @property
    def closed(self):
        return self._state >= UVHandle.CLOSING

    def close(self):
        """Start closing the handle; idempotent.  Freed on the close callback."""
        if self._state == UVHandle.ACTIVE:
            self._state = UVHandle.CLOSING
            lib.uvl_close(ffi.cast(HANDLE_P, self._ptr))
        elif self._state == UVHandle.CREATED:
            self._state = UVHandle.CLOSED
            self._data = None  # libuv never saw it (see _on_close)

    def _on_close(self):
        self._state = UVHandle.CLOSED
        self._loop._uv_handles.discard(self)
        # libuv will never call back again: drop the ffi handle, which refers
        # back to self (a cycle only the cyclic GC would free, and with it
        # the loop this wrapper refers to).  The C struct's data pointer is
        # not read after the close callback.
        self._data = None

    def fileno(self):
        """The descriptor libuv owns for this handle, or -1 (none, or closed)."""
        fd = lib.uvl_fileno(ffi.cast(HANDLE_P, self._ptr))
        return fd if fd >= 0 else -1

    def _on_poll(self, status, events):  # pragma: no cover - only polls get these
        raise RuntimeError("%r got a poll event" % (self,))

    def __repr__(self):
        state = ("created", "active", "closing", "closed")[self._state]
        return "<%s %s>" % (type(self).__name__, state)
