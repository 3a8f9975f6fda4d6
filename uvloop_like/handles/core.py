"""The libuv loop itself, with its wake timer (uv_timer) and wake-up (uv_async).

Both of those handles live inside the C struct ``uvl_loop_t`` and use C
callbacks that do nothing: the timer only bounds how long ``uv_run`` may block
(the timer heap itself is Python's, so a patched ``loop.time()`` moves it),
and ``uv_async_send`` only makes a sleeping ``uv_run`` return.  Every other
libuv callback the core uses records a completion in ``uvl_loop_t.events``;
``run_once`` copies them out and ``dispatch`` hands each to its owner.
"""
from __future__ import annotations

import collections
import threading

from .._uv import ffi, lib
from ..errors import convert_error

EV_POLL = lib.UVL_EV_POLL
EV_CLOSE = lib.UVL_EV_CLOSE

# Loops whose libuv teardown failed keep their memory here for the life of the
# process: freeing a struct that libuv may still touch would be a crash.
_leaked = []


class LoopCore:
    """Owns one ``uvl_loop_t`` (a ``uv_loop_t`` plus the core's handles)."""

    __slots__ = ("ptr", "uv", "pending", "_wakeup_lock", "closed")

    def __init__(self):
        self.ptr = ffi.new("uvl_loop_t *")
        status = lib.uvl_loop_init(self.ptr)
        if status < 0:
            raise convert_error(status)
        self.uv = ffi.cast("uv_loop_t *", self.ptr)
        self.pending = collections.deque()
        # Serialises uv_async_send (any thread) against teardown (loop thread).
        self._wakeup_lock = threading.Lock()
        self.closed = False

    def run_once(self, timeout_ms):
        """One libuv iteration: poll for I/O at most ``timeout_ms`` (-1: no
        limit, 0: don't block), then collect the completions it produced."""
        ptr = self.ptr
        lib.uvl_run(ptr, timeout_ms)
        n = ptr.nevents
        if n:
            if ptr.overflow:
                raise MemoryError("uvloop_like: cannot record libuv completions")
            events = ptr.events
            from_handle = ffi.from_handle
            append = self.pending.append
            for i in range(n):
                ev = events[i]
                append((from_handle(ev.owner), ev.kind, ev.status, ev.events))
            ptr.nevents = 0

    def dispatch(self):
        """Hand each collected completion to its owner, in libuv's order.

        If an owner raises (KeyboardInterrupt, say), the rest stay queued for
        the next iteration instead of being lost."""
        pending = self.pending
        popleft = pending.popleft
        while pending:
            owner, kind, status, events = popleft()
            if kind == EV_POLL:
                owner._on_poll(status, events)
            elif kind == EV_CLOSE:
                owner._on_close()
            else:
                owner._on_complete(status)

    def wakeup(self):
        """Make a sleeping ``uv_run`` return; safe from any thread."""
        with self._wakeup_lock:
            if not self.closed:
                lib.uvl_wakeup(self.ptr)

    def close(self):
        """Free the libuv loop.  Every Python-owned handle must be closed and
        its close callback dispatched before this is called."""
        with self._wakeup_lock:
            if self.closed:
                return
            self.closed = True
            status = lib.uvl_loop_close(self.ptr)
        if status < 0:
            # libuv still has something open on this loop: never free it.
            _leaked.append(self.ptr)
