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

import errno
import functools
import logging
import os
import socket

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


def _closed_descriptor():
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


class DescriptorSocket:
    """A socket over a descriptor that libuv owns (rule 8: one descriptor
    per connection): the object ``get_extra_info('socket')``'s
    TransportSocket wraps.

    Every call goes through a temporary ``socket.socket(fileno=fd)`` that
    is detached before it is dropped, so nothing here ever closes the
    descriptor, not even at garbage collection.  Once the transport closes
    its handle (libuv closes the descriptor) ``fileno()`` is -1 and calls
    fail with EBADF, as on a closed socket."""

    __slots__ = ("_fd", "family", "type", "proto")

    def __init__(self, fd, family, type, proto):  # noqa: A002 - socket's own names
        self._fd = fd                          # libuv's descriptor; -1 once libuv closed it
        self.family = family
        self.type = type
        self.proto = proto

    def fileno(self):
        return self._fd

    def _closed(self):
        """The transport's handle closed the descriptor."""
        self._fd = -1

    def _call(self, name, *args, **kwargs):
        if self._fd < 0:
            raise _closed_descriptor()
        sock = socket.socket(self.family, self.type, self.proto, fileno=self._fd)
        try:
            return getattr(sock, name)(*args, **kwargs)
        finally:
            sock.detach()

    def getsockopt(self, *args, **kwargs):
        return self._call("getsockopt", *args, **kwargs)

    def setsockopt(self, *args, **kwargs):
        return self._call("setsockopt", *args, **kwargs)

    def getsockname(self):
        return self._call("getsockname")

    def getpeername(self):
        return self._call("getpeername")

    def dup(self):
        return self._call("dup")

    def get_inheritable(self):
        return self._call("get_inheritable")

    def shutdown(self, how):
        return self._call("shutdown", how)

    def gettimeout(self):
        return 0.0

    def setblocking(self, flag):
        if flag:
            raise ValueError("setblocking(): transport sockets cannot be blocking")

    def settimeout(self, value):
        if value != 0:
            raise ValueError("settimeout(): only 0 timeout is allowed on transport sockets")

    def close(self):
        """Closing is the transport's business (it closes the handle)."""

    def detach(self):
        raise OSError(errno.EPERM, "the descriptor belongs to the transport")

    def __getattr__(self, name):
        # The rest of socket.socket's methods (3.9/3.10's TransportSocket
        # still forwards a few deprecated ones), through a temporary socket.
        if name.startswith("_") or not callable(getattr(socket.socket, name, None)):
            raise AttributeError(name)
        return functools.partial(self._call, name)

    def __repr__(self):
        return f"<DescriptorSocket fd={self._fd}, family={self.family!s}, type={self.type!s}>"
