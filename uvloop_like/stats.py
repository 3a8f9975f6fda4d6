"""``loop.stats()``'s snapshot type and ``set_slow_callback_hook``'s checks.

Where each counter is maintained, and what exactly each one means, is in
docs/design.md ("Observability") and docs/api.md.
"""
from __future__ import annotations

import asyncio
import math
import numbers
from typing import NamedTuple


class LoopStats(NamedTuple):
    """A snapshot of ``loop.stats()``: counters cumulative since the loop was
    created, then gauges (the state at the time of the call).  Attributes,
    ``._asdict()``, and ``dict(snapshot)`` all work."""

    iterations: int            # loop iterations
    callbacks: int             # handles run (counted when their iteration ends)
    idle_time: float           # seconds in libuv waits (nothing was ready to run)
    busy_time: float           # seconds of the loop's running time not idle
    slow_callbacks: int        # callbacks / I/O dispatches reported to the slow-callback hook
    max_callback_time: float   # the longest busy interval of one iteration (seconds)
    bytes_received: int        # by every stream, pipe and datagram transport
    bytes_sent: int
    connections_accepted: int  # by every server of the loop
    ready: int                 # gauge: handles in the ready queue
    timers: int                # gauge: scheduled timers not cancelled
    handles: int               # gauge: open libuv handles
    transports: int            # gauge: open transports

    # dict(snapshot) takes keys() and snapshot[key]; integer indexing stays a tuple's.
    def keys(self):
        return self._fields

    def __getitem__(self, key):
        if isinstance(key, str):
            if key in self._fields:
                return getattr(self, key)
            raise KeyError(key)
        return tuple.__getitem__(self, key)


def check_threshold(threshold):
    """set_slow_callback_hook's threshold as a float; TypeError/ValueError as
    float arguments are checked elsewhere in asyncio."""
    if not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number of seconds, not {type(threshold).__name__}")
    threshold = float(threshold)
    if math.isnan(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number of seconds, not {threshold!r}")
    return threshold


# The object a slow I/O dispatch is reported with: the transport (or server,
# or other owner) whose libuv completion ran protocol code.  By event kind, the
# wrapper attribute holding the owner's bound callback.
_CALLBACK_SLOTS = ("_on_read", "_on_recv", "_on_write", "_on_send", "_on_connection",
                   "_on_shutdown", "on_event", "_on_exit_cb", "_callback")


def dispatch_target(wrapper, kind_slot=None):
    """What a slow I/O dispatch of ``wrapper``'s completion is reported as:
    the object its callback is bound to (a transport, usually), else the
    wrapper itself."""
    slots = (kind_slot,) if kind_slot else _CALLBACK_SLOTS
    for slot in slots:
        callback = getattr(wrapper, slot, None)
        owner = getattr(callback, "__self__", None)
        if owner is not None and owner is not wrapper:
            return owner
    # An idle stream handle holds its transport only weakly and its callbacks
    # are its own methods (handles/stream.py, set_owner): the owner is still
    # the transport until that is closed or collected.
    owner_ref = getattr(wrapper, "_owner_ref", None)
    if owner_ref is not None:
        owner = owner_ref()
        if owner is not None:
            return owner
    return wrapper


def is_transport(obj):
    return isinstance(obj, asyncio.BaseTransport)
