"""The asyncio faces of libuv pipes: ReadPipeTransport and WritePipeTransport.

Behaviour follows stdlib's unix_events._UnixReadPipeTransport and
_UnixWritePipeTransport, callback for callback.

Descriptor ownership (rule 8): stdlib's pipe transports read and write the
pipe object's own descriptor and close the pipe *object* when the transport
closes (in ``_call_connection_lost``); user code relies on that (``pipe`` in
get_extra_info, ``pipe.fileno()`` staying valid while the transport lives).
libuv's ``uv_pipe_open`` would adopt and close the descriptor it is given, so
libuv gets a ``dup()`` of it instead: libuv owns and closes the dup (on
``uv_close``), the transport closes the pipe object once, as stdlib does.
Each descriptor is closed exactly once.  The write pipe watches the
*original* descriptor through the loop's selector to learn that the reader
went away (stdlib's trick); libuv's dup has a different number, so the two
never share a libuv watcher.
"""
from __future__ import annotations

import collections
import contextvars
import errno
import logging
import os
import stat
import warnings
from asyncio import transports as _transports

from .._futures import set_result_unless_cancelled
from ..handles.errors import convert_error
from ..handles.stream import UV_ECANCELED, StreamHandle
from .base import SelectorWatch, StreamReading, TransportErrors, owned_data, transport_repr, write_data

logger = logging.getLogger("asyncio")

try:
    import select as _select

    _epoll = getattr(_select, "epoll", None)
except ImportError:  # pragma: no cover
    _epoll = None



def _check_pollable(fd):
    """libuv aborts the process when epoll refuses a descriptor it reads or
    writes (/dev/null, /dev/zero: EPERM), so character devices are probed
    first and refused with the OSError epoll gives (stdlib's selector would
    report that same error from add_reader)."""
    if _epoll is None:  # pragma: no cover - not Linux: kqueue accepts them
        return
    ep = _epoll()
    try:
        ep.register(fd, _select.EPOLLIN)
    finally:
        ep.close()


def _adopt(loop, fd):
    """A StreamHandle (uv_pipe_t) over a dup() of ``fd`` (see module doc)."""
    handle = StreamHandle(loop, tcp=False)
    try:
        dup = os.dup(fd)
    except BaseException:
        handle.close()
        raise
    try:
        handle.open(dup)
    except BaseException:
        handle.close()
        os.close(dup)
        raise
    return handle


class _PipeTransportBase(TransportErrors):
    _fatal_message = "Fatal error on pipe transport"

    def _force_close(self, exc):
        self._close(exc)

    """Fields and the close path both pipe directions share."""

    def _init_pipe(self, loop, pipe, protocol, read):
        self._extra["pipe"] = pipe
        self._loop = loop
        self._pipe = pipe                      # the user's pipe object; closed by us, once
        self._fileno = pipe.fileno()           # its descriptor (libuv has a dup of it)
        self._protocol = protocol
        self._closing = False                  # close()/write_eof()/EOF/error seen
        self._lost = False                     # connection_lost scheduled
        self._handle = None                    # the StreamHandle over the dup
        mode = os.fstat(self._fileno).st_mode
        is_char = stat.S_ISCHR(mode)
        is_fifo = stat.S_ISFIFO(mode)
        is_socket = stat.S_ISSOCK(mode)
        if not (is_char or is_fifo or is_socket):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            if read:
                raise ValueError("Pipe transport is for pipes/sockets only.")
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        if is_char:
            try:
                _check_pollable(self._fileno)
            except BaseException:
                self._pipe = None
                self._protocol = None
                raise
        os.set_blocking(self._fileno, False)
        try:
            self._handle = _adopt(loop, self._fileno)
        except BaseException:
            self._pipe = None
            self._protocol = None
            raise
        # Not in loop._transports: stdlib lets add_reader() take a pipe
        # transport's descriptor, and libuv's is a different one (the dup).
        return is_socket or is_fifo

    def __repr__(self):
        # "open": as stdlib's pipe transports once their loop is closed
        # (CPython's test_unclosed_pipe_transport checks for it).
        return transport_repr(self, self._pipe is None, self._fileno, "open")

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_pipe", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            handle = self._handle
            if handle is not None and not handle.closed:
                handle.close()
            self._pipe.close()

    def _schedule_connection_lost(self, exc):
        if self._lost:
            return
        self._lost = True
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            if self._handle is not None:
                self._handle.close()  # libuv closes its dup; queued writes end with ECANCELED
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = None
            self._protocol = None


class ReadPipeTransport(StreamReading, _PipeTransportBase, _transports.ReadTransport):
    """The read end of a pipe (or a FIFO, socket, character device) on libuv.
    Reads go through the stream core (StreamReading), with its one guard
    around protocol callbacks."""

    _read_error_message = "Fatal read error on pipe transport"

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        _transports.ReadTransport.__init__(self, extra)
        self._paused = False                   # pause_reading() in effect
        self._reading = False                  # libuv's read_start in effect
        self._held = collections.deque()       # reads that arrived after pause_reading()
        self._buffered = False                 # pipes call data_received, as stdlib's
        self._context = contextvars.copy_context()  # protocol callbacks run in it
        self._init_pipe(loop, pipe, protocol, read=True)
        self._handle.set_owner(self)           # strongly only while reading (rule 12)
        loop.call_soon(self._protocol.connection_made, self)
        # only start reading when connection_made() has been called
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def _on_eof(self):
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._stop_reading()
        self._loop.call_soon(self._protocol.eof_received)
        self._schedule_connection_lost(None)

    def close(self):
        if not self._closing:
            self._close(None)

    def _quiet_error(self, exc):
        # As stdlib: EIO (the other end of a pty went away) is not reported.
        return isinstance(exc, OSError) and exc.errno == errno.EIO

    def _close(self, exc):
        self._closing = True
        self._stop_reading()
        self._held.clear()
        self._schedule_connection_lost(exc)


class WritePipeTransport(_PipeTransportBase, _transports._FlowControlMixin, _transports.WriteTransport):
    """The write end of a pipe (or a FIFO, socket, character device) on libuv:
    ``uv_try_write`` first, the rest queued with ``uv_write``."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        _transports._FlowControlMixin.__init__(self, extra, loop)
        self._conn_lost = 0                    # writes after a fatal error (for the warning)
        self._write_buffer_size = 0            # bytes queued in libuv, not yet written
        self._dropped = False                  # _close() dropped the queued data
        watch = self._init_pipe(loop, pipe, protocol, read=False)
        # The selector watches the pipe's own descriptor for the reader going away.
        self._reader_watch = SelectorWatch(loop, self._fileno)
        self._handle.set_owner(self)           # strongly only while writing (rule 12)
        loop.call_soon(self._protocol.connection_made, self)
        if watch:
            # only start watching when connection_made() has been called
            loop.call_soon(self._watch_reader)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def _watch_reader(self):
        if self._pipe is not None and not self._lost:
            self._reader_watch.start(self._read_ready)

    def get_write_buffer_size(self):
        return self._write_buffer_size

    def _call_connection_lost(self, exc):
        self._reader_watch.stop()  # before the pipe object closes its descriptor
        super()._call_connection_lost(exc)

    def _read_ready(self):
        # Pipe was closed by peer.
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        if self._write_buffer_size:
            self._close(BrokenPipeError())
        else:
            self._close()

    def write(self, data):
        if type(data) is not bytes:
            data = write_data(data)
        if not data:
            return
        if self._conn_lost or self._closing:
            self._write_after_lost("pipe closed by peer or os.write(pipe, data) raised exception.")
            return
        try:
            if not self._write_buffer_size:
                n = self._handle.try_write(data)
                if n == len(data):
                    return
                data = memoryview(data)[n:]
            # libuv points at the data until the write completes.
            data = owned_data(data)
            size = len(data)
            self._handle.write([data], size)  # the handle keeps data with the request
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._conn_lost += 1
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        self._write_buffer_size += size
        self._maybe_pause_protocol()

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def _on_write(self, status, size):
        if self._dropped or self._loop.is_closed():
            return  # dropped by _close(), or loop.close() draining (nothing to report)
        self._write_buffer_size -= size
        if status < 0:
            if status != UV_ECANCELED and not self._lost:
                self._conn_lost += 1
                self._write_buffer_size = 0
                self._fatal_error(convert_error(status), "Fatal write error on pipe transport")
            return
        if self._lost:
            return
        self._maybe_resume_protocol()  # may write more
        if self._closing and not self._handle.writing:
            self._reader_watch.stop()
            self._schedule_connection_lost(None)

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._closing:
            return
        self._closing = True
        if not self._write_buffer_size:
            self._reader_watch.stop()
            self._schedule_connection_lost(None)

    def close(self):
        if self._pipe is not None and not self._closing:
            # write_eof is all what we needed to close the write pipe
            self.write_eof()

    def _close(self, exc=None):
        self._closing = True
        # Queued data is dropped (libuv cancels it when the handle closes);
        # the buffers themselves stay alive until their completions.
        self._write_buffer_size = 0
        self._dropped = True
        self._reader_watch.stop()
        self._schedule_connection_lost(exc)
