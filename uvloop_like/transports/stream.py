"""The asyncio Transport face of a libuv stream (TCP or unix socket).

Protocol state machine (asyncio's): connection_made first; then any number
of data_received (or get_buffer/buffer_updated for a BufferedProtocol); at
most one eof_received, after which no more data; connection_lost exactly
once, last.  One close path for everything: ``_fatal_error`` ->
``_force_close`` -> ``call_soon(_call_connection_lost)``, which tells the
protocol and only then closes the libuv handle.
"""
from __future__ import annotations

import collections
import contextvars
import logging
import socket
import warnings
from asyncio import constants as _constants
from asyncio import protocols as _protocols
from asyncio import transports as _transports
from asyncio import trsock as _trsock

from .. import _compat, _coresel
from .._futures import set_result_unless_cancelled
from ..handles.errors import convert_error
from ..handles.stream import UV_ECANCELED, StreamHandle, export_buffer
from .base import (
    FAILED,
    DescriptorSocket,
    StreamReading,
    TransportErrors,
    owned_data,
    transport_repr,
    write_data,
)

logger = logging.getLogger("asyncio")

try:
    _SENDFILE_TRY_NATIVE = _constants._SendfileMode.TRY_NATIVE
except AttributeError:  # pragma: no cover
    _SENDFILE_TRY_NATIVE = None



class StreamTransport(TransportErrors, StreamReading, _transports._FlowControlMixin):
    """A connected TCP or unix stream socket owned by libuv."""

    _start_tls_compatible = True
    _sendfile_compatible = _SENDFILE_TRY_NATIVE

    # The state the native core's read and write paths (_core.c) test on
    # every read and write lives in slots, read there at a fixed offset (a
    # few instructions; an attribute look-up costs about a hundred and fifty).
    # The instance keeps its __dict__ (the mixins have none of their own), so
    # nothing else changes; a subclass redefining one of these names (a
    # property, say) sends the native core to the generic path.
    __slots__ = ("_handle", "_protocol", "_context", "_closing", "_paused", "_reading", "_held",
                 "_buffered", "_eof", "_conn_lost", "_empty_waiter")

    def __init__(self, loop, handle, protocol, waiter=None, extra=None, server=None, sock=None,
                 fileobj=None):
        extra = dict(extra or {})
        # The caller's socket object when there is one (stdlib hands out the
        # same object); else a DescriptorSocket over libuv's descriptor.
        extra["socket"] = _trsock.TransportSocket(sock if fileobj is None else fileobj)
        super().__init__(extra, loop)
        self._handle = handle                  # the StreamHandle; libuv owns the descriptor
        self._sock = sock                      # DescriptorSocket over it (never closes it)
        self._fd = sock.fileno()               # the descriptor, for the loop's registry
        self._server = server                  # the Server that accepted us, or None
        self._protocol = None
        self._protocol_connected = False
        self._buffered = False                 # BufferedProtocol: libuv reads into get_buffer()
        self._context = contextvars.copy_context()  # protocol callbacks run in it, as with stdlib
        self._closing = False                  # close() or _force_close() called
        self._conn_lost = 0                    # connection_lost scheduled (and writes after it)
        self._paused = False                   # pause_reading() in effect
        self._reading = False                  # libuv's read_start in effect
        self._eof = False                      # write_eof() called
        self._held = collections.deque()       # reads that arrived after pause_reading()
        self._write_buffer_size = 0            # bytes queued in libuv, not yet written
        self._empty_waiter = None              # future waited on by sendfile, or None
        self._sendfile_active = None           # the native sendfile writing to our fd, or None
        handle.set_owner(self)                 # strongly only while reading/writing (rule 12)
        if getattr(loop, "_native", None) is not None and type(self).write is __class__.write:
            # The native core's write fast path (_core.c), bound on the instance as the
            # loop binds Core's call_soon, unless a subclass overrides write(); anything
            # it does not do itself, it hands to this class's write().
            self.write = _coresel._native.StreamWrite(self, handle, __class__.write)
        self.set_protocol(protocol)
        loop._transports[self._fd] = self
        if server is not None:
            if _compat.PY313:
                server._attach(self)            # 3.13: the server tracks its clients
            else:
                server._attach()
        loop.call_soon(self._protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        return transport_repr(self, self._handle is None or self._handle.closed, self._fd,
                              "read=polling" if self._reading else "read=idle",
                              f"write=<bufsize={self._write_buffer_size}>")

    def __del__(self, _warn=warnings.warn):
        if self._handle is not None and not self._closing and not self._handle.closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._handle.close()  # closes the descriptor (libuv's, the only one)
            self._sock._closed()

    # --- extra info ------------------------------------------------------------

    # --- protocol ----------------------------------------------------------------

    def set_protocol(self, protocol):
        buffered = isinstance(protocol, _protocols.BufferedProtocol)
        self._protocol = protocol
        self._protocol_connected = True
        self._buffered = buffered
        if self._handle is not None and not self._handle.closed:
            # The posted buffer belongs to the old protocol (even when both
            # are BufferedProtocols, as around start_tls): take it back, and
            # let the next read land in the new protocol's get_buffer().
            self._handle.unpost()
            self._handle.set_buffered(buffered)
            if buffered and self._reading:
                self._post_buffer()

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    # --- reading (StreamReading) ----------------------------------------------

    def _on_eof(self):
        self._stop_reading()
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        keep_open = self._call_protocol(self._protocol.eof_received)
        if keep_open is FAILED:
            return
        if not keep_open:
            self.close()

    # --- writing -----------------------------------------------------------------

    def _can_write(self):
        """write()'s checks, in stdlib's order: False if nothing is to be
        written (the connection is lost: count it, warn as stdlib)."""
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if self._conn_lost:
            self._write_after_lost()
            return False
        return True

    def write(self, data):
        # The hot path: each check a field test, one C call for the write.
        kind = type(data)
        if kind is not bytes and kind is not bytearray and (kind is not memoryview or data.nbytes != len(data)):
            data = write_data(data)  # (a bytearray or flat byte view: what it returns; no frame)
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost and not self._can_write():
            return
        handle = self._handle
        if not handle.queued:
            try:
                # (through a local: a method-call form on a slot holding a
                # bound C function stays unspecialised and costs a type lookup)
                try_write = handle.try_write_bytes
                # bytes go to C as they are; a bytearray or view as an export
                # of its memory (a view that is not contiguous raises
                # BufferError here: a fatal write error, as stdlib's send()).
                n = try_write(data if kind is bytes else export_buffer(data), len(data))
                if n < 0:
                    n = handle.try_write_error(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            if n == len(data):
                return
            data = memoryview(data)[n:]
        self._queue_write([data], len(data))

    def writelines(self, list_of_data):
        """Write the pieces as one vectored write (no joining copy)."""
        pieces = []
        total = 0
        for i, data in enumerate(list_of_data):
            if isinstance(data, memoryview) and not data.contiguous:
                # Checked at the call, as stdlib's b"".join() does, so the
                # transport stays usable (a later write would fail fatally).
                raise TypeError(f"sequence item {i}: expected a bytes-like object, "
                                f"{type(data).__name__} found")
            data = write_data(data)
            if data:
                pieces.append(data)
                total += len(data)
        if len(pieces) < 2:
            self.write(pieces[0] if pieces else b"")
            return
        if not self._can_write():
            return
        if not self._handle.writing:
            try:
                n = self._handle.try_writev(pieces)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            if n == total:
                return
            total -= n
            while n >= len(pieces[0]):
                n -= len(pieces.pop(0))
            if n:
                pieces[0] = memoryview(pieces[0])[n:]
        self._queue_write(pieces, total)

    def _queue_write(self, pieces, size):
        # libuv keeps pointers to the data until the write completes: own
        # immutable copies of whatever the caller could still change.
        owned = [owned_data(data) for data in pieces]
        try:
            self._handle.write(owned, size)  # the handle keeps them with the request
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        self._write_buffer_size += size
        self._maybe_pause_protocol()

    def _on_write(self, status, size):
        if self._conn_lost or self._loop.is_closed():
            # _force_close dropped the queued data (the buffer size is 0
            # already), or loop.close() is draining its handles: nothing to
            # report, and never a call_soon on a closed loop (defect A2).
            return
        self._write_buffer_size -= size
        if status < 0:
            if status != UV_ECANCELED:
                self._fatal_error(convert_error(status), "Fatal write error on socket transport")
            return
        self._maybe_resume_protocol()
        if not self._handle.writing:
            if self._empty_waiter is not None:
                waiter, self._empty_waiter = self._empty_waiter, None
                if not waiter.done():
                    waiter.set_result(None)
            if self._closing and not self._conn_lost:
                self._conn_lost += 1
                self._loop.call_soon(self._call_connection_lost, None)

    def get_write_buffer_size(self):
        return self._write_buffer_size

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        try:
            # libuv sends the FIN after the queued writes.
            self._handle.shutdown()
        except OSError as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")

    def _on_shutdown(self, status):
        if status < 0 and status != UV_ECANCELED and not self._conn_lost and not self._loop.is_closed():
            self._fatal_error(convert_error(status), "Fatal write error on socket transport")

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._handle.writing:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None

    # --- closing -----------------------------------------------------------------

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._handle.writing:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        if not self._closing:
            self._closing = True
            self._stop_reading()
        # Queued data is dropped, as stdlib's buffer is: libuv cancels it
        # when the handle closes (the data lives until those completions).
        self._write_buffer_size = 0
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._context.run(self._protocol.connection_lost, exc)
        finally:
            self._close_handle()
            waiter, self._empty_waiter = self._empty_waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("Connection is closed by peer"))
            self._protocol = None
            server = self._server
            if server is not None:
                self._server = None
                if _compat.PY313:
                    server._detach(self)
                else:
                    server._detach()

    def _close_handle(self):
        sender = self._sendfile_active
        if sender is not None:
            # Stop watching our fd on the selector before libuv closes it.
            self._sendfile_active = None
            sender.abort(ConnectionError("Connection is closed by peer"))
        handle = self._handle
        if handle is not None:
            if self._loop is not None and self._loop._transports.get(self._fd) is self:
                del self._loop._transports[self._fd]
            handle.close()  # libuv closes the descriptor; queued writes end with ECANCELED
        self._sock._closed()  # get_extra_info('socket') now reports fd -1, as a closed socket


def adopt_socket(loop, sock, protocol, waiter=None, extra=None, server=None):
    """Make a StreamTransport of a connected stream socket.

    libuv adopts the socket's own descriptor (rule 8: one descriptor per
    connection, no dup) and closes it when the transport closes.  ``sock``
    stays usable meanwhile (its fileno() valid, setsockopt working, as with
    stdlib; get_extra_info('socket') is a TransportSocket over it), held by
    the handle and detached when the handle closes, so it never closes the
    descriptor a second time.  If adoption fails, ``sock`` is left to the
    caller, untouched."""
    tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
    extra = dict(extra or {})
    try:
        extra.setdefault("sockname", sock.getsockname())
    except OSError:
        extra.setdefault("sockname", None)
    if "peername" not in extra:
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None
    if tcp:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    sock.setblocking(False)
    handle = StreamHandle(loop, tcp=tcp)
    try:
        handle.open(sock.fileno())
    except BaseException:
        handle.close()  # libuv did not take the descriptor: closing it leaves it alone
        raise
    view = DescriptorSocket(sock.fileno(), sock.family, sock.type, sock.proto)
    handle.keep_socket(sock)
    try:
        return StreamTransport(loop, handle, protocol, waiter, extra, server, view, sock)
    except BaseException:
        handle.close()  # the descriptor is libuv's now: closed with it, once
        view._closed()
        raise
