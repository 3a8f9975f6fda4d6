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
from asyncio import constants as _constants

from ..handles.errors import convert_error
from ..handles.stream import UV_EOF

logger = logging.getLogger("asyncio")

_LOG_THRESHOLD_FOR_CONNLOST_WRITES = getattr(_constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES", 5)

FAILED = object()  # what StreamReading._call_protocol returns when the callback raised


def owned_data(data):
    """``data`` (from write_data) as a queued write may keep it: libuv
    points at it until the write completes, so whatever the caller could
    still change (a bytearray, a view of one) is copied once to bytes."""
    if isinstance(data, memoryview):
        if not isinstance(data.obj, bytes) or not data.c_contiguous:
            return bytes(data)
        return data
    if not isinstance(data, bytes):
        return bytes(data)
    return data


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


def transport_repr(transport, closed, fd, *state):
    """asyncio's transport repr, ``<Class closed|closing fd=N state...>``:
    ``state`` (strings) shows only while the transport is not closed."""
    info = [type(transport).__name__]
    if closed:
        info.append("closed")
    elif transport._closing:
        info.append("closing")
    info.append(f"fd={fd}")
    if not closed:
        info.extend(state)
    return "<{}>".format(" ".join(info))


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

    def _write_after_lost(self, message="socket.send() raised exception."):
        """A write after the connection was lost: dropped and counted, with
        a warning from the threshold-th such write on, as stdlib's."""
        if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning(message)
        self._conn_lost += 1


class SelectorWatch:
    """One descriptor watched on the loop's selector, reader or writer side,
    for one owner (a write pipe waiting for its reader to go away, a native
    sendfile waiting for its socket to drain).  start() and stop() are
    idempotent, and stop() removes only a watch this object added: a
    descriptor another callback watches now is left alone.  The callback
    is given to start(), not kept here: the owner holding this object must
    not be held by it (no reference cycle; transports die by refcount)."""

    __slots__ = ("_loop", "_fd", "_writer", "active")

    def __init__(self, loop, fd, writer=False):
        self._loop = loop
        self._fd = fd
        self._writer = writer
        self.active = False                    # a callback of ours is registered

    def start(self, callback):
        if not self.active:
            loop = self._loop
            (loop._add_writer if self._writer else loop._add_reader)(self._fd, callback)
            self.active = True

    def stop(self):
        if self.active:
            self.active = False
            loop = self._loop
            (loop._remove_writer if self._writer else loop._remove_reader)(self._fd)

    def forget(self):
        """The loop is gone (closed with us registered): nothing to remove."""
        self.active = False


class HandleReading:
    """Starting and stopping libuv's reads of the transport's one handle
    (a stream, or a UDP socket: both have read_start/read_stop).  The
    transport provides ``_handle``, ``_closing``, ``_reading`` and
    ``_read_error_message``; ``_ready_to_read()`` may refuse a start."""

    _read_error_message = "Fatal read error on socket transport"

    def _ready_to_read(self):
        return True

    def _start_reading(self):
        if self._closing or self._reading or self._handle.closed or not self._ready_to_read():
            return
        try:
            self._handle.read_start()
        except OSError as exc:
            self._fatal_error(exc, self._read_error_message)
            return
        self._reading = True

    def _stop_reading(self):
        if self._reading:
            self._reading = False
            self._handle.read_stop()


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



class StreamReading(HandleReading, PausableReading):
    """The read half every libuv stream transport shares (TCP, unix sockets,
    read pipes): the one guard around protocol callbacks, the read path
    chosen once in set_protocol (data_received, or get_buffer/buffer_updated
    for a BufferedProtocol), reads held while paused, and the posted
    buffer's export given back as soon as a read has used it.

    The transport provides ``_handle`` (a StreamHandle), ``_protocol``,
    ``_context`` (contextvars.Context the protocol runs in), ``_closing``,
    ``_paused``, ``_reading``, ``_held``, ``_buffered``, ``_on_eof()``
    and ``_read_error_message``."""

    def _call_protocol(self, callback, *args):
        """Run one protocol callback in the protocol's context; return its
        result, or FAILED.  The one guard: an exception goes to
        _fatal_error (the exception handler, then the one close path), as
        stdlib's transports do; SystemExit and KeyboardInterrupt go on."""
        try:
            return self._context.run(callback, *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            name = getattr(callback, "__name__", "callback")
            self._fatal_error(exc, f"Fatal error: protocol.{name}() call failed.")
            return FAILED

    def _ready_to_read(self):
        """Not while paused; a BufferedProtocol needs a posted buffer first."""
        if self._paused:
            return False
        return not self._buffered or self._handle.has_posted() or self._post_buffer()

    def _post_buffer(self):
        """BufferedProtocol: ask for the buffer the next read lands in."""
        try:
            self._handle.post_buffer(self._context.run(self._protocol.get_buffer, -1))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return False
        return True

    def _deliver_held(self):
        while self._held and not self._paused and not self._closing:
            nread, data = self._held.popleft()
            self._deliver(nread, data)
        if not self._held:
            self._start_reading()

    def _on_read(self, nread, data):
        """A read completed: nread bytes (in ``data``, or in the posted
        buffer when data is None), or EOF / an error when nread < 0.

        The two common cases are handled inline (frames less per read);
        their guard is the same as _call_protocol's."""
        if data is None and nread > 0 and self._handle.release_after_read:
            # The read used the posted buffer: unpin it before any protocol
            # code runs, so get_buffer() may resize or replace it.
            self._handle.release_posted()
        if self._closing:
            return
        if self._paused or self._held:
            # Reads libuv finished in the same iteration as pause_reading():
            # keep them, in order, for resume_reading().  A read into the
            # posted buffer stays there: nothing asks for a new buffer
            # until it has been delivered.
            self._held.append((nread, data))
            return
        if nread > 0:
            if data is not None:
                if not self._buffered:
                    try:
                        self._context.run(self._protocol.data_received, data)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                    return
            else:
                protocol = self._protocol
                run = self._context.run
                try:
                    run(protocol.buffer_updated, nread)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
                    return
                if not self._reading or self._closing:
                    return
                try:
                    buf = run(protocol.get_buffer, -1)
                    handle = self._handle
                    if buf is handle.posted_obj:
                        repost = handle.repost  # (a local: see StreamTransport.write)
                        repost()  # the same memoryview: one store
                    else:
                        handle.post_buffer(buf)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
        self._deliver(nread, data)

    def _deliver(self, nread, data):
        if nread > 0:
            if data is None:
                if self._call_protocol(self._protocol.buffer_updated, nread) is not FAILED and \
                        self._reading and not self._closing:
                    self._post_buffer()
            elif self._buffered:
                self._call_protocol(self._feed_buffered, data)
            else:
                self._call_protocol(self._protocol.data_received, data)
        elif nread == UV_EOF:
            self._on_eof()
        else:
            self._fatal_error(convert_error(nread), self._read_error_message)

    def _feed_buffered(self, data):
        """Bytes that arrived before a switch to a BufferedProtocol: copy them
        through get_buffer/buffer_updated, as many rounds as needed."""
        view = memoryview(data)
        while view:
            buf = self._protocol.get_buffer(len(view))
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
            n = min(len(buf), len(view))
            memoryview(buf)[:n] = view[:n]
            self._protocol.buffer_updated(n)
            view = view[n:]

    _feed_buffered.__name__ = "buffer_updated"  # what the guard names when it fails


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
