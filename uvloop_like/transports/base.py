"""What every uvloop_like transport shares, as asyncio's transports do.

``TransportErrors``: one fatal-error report.  OSErrors (the peer's doing) are
only logged in debug mode; anything else goes to the loop's exception
handler; then the transport closes through ``_force_close(exc)``.

``PausableReading``: pause_reading/resume_reading with the rules asyncio
documents (idempotent; reads that libuv finished in the iteration of the
pause are held, in order, and delivered on resume).  The transport provides
``_paused``, ``_closing``, ``_held``, ``_start_reading``, ``_stop_reading``
and ``_deliver_held``.
"""
from __future__ import annotations

import logging

logger = logging.getLogger("asyncio")


def write_data(data):
    """``data`` as write() sends it: a bytes-like object whose len() is its
    size in bytes.  A memoryview of wider items or of several dimensions
    becomes a flat byte view of the same memory (stdlib's write would send
    its bytes but then count them as items and lose the tail).  Anything
    else that is not bytes or bytearray: TypeError, as stdlib."""
    if isinstance(data, memoryview):
        return data if data.nbytes == len(data) else data.cast("B")
    if isinstance(data, (bytes, bytearray)):
        return data
    raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")


class TransportErrors:
    _fatal_message = "Fatal error on transport"

    def _quiet_error(self, exc):
        """Errors reported only in debug mode."""
        return isinstance(exc, OSError)

    def _fatal_error(self, exc, message=None):
        if message is None:
            message = self._fatal_message
        if self._quiet_error(exc):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    def abort(self):
        self._force_close(None)


class PausableReading:
    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        if not self.is_reading():
            return
        self._paused = True
        self._stop_reading()
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._held:
            self._loop.call_soon(self._deliver_held)
        else:
            self._start_reading()
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)
