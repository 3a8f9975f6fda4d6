"""DatagramTransport: a UDP (or unix datagram) socket watched by the loop.

The socket stays a Python socket, watched through the loop's selector
(add_reader/add_writer, itself one uv_poll in libuv), as stdlib's
_SelectorDatagramTransport does; see docs/design.md ("Datagrams") for why
this beat a uv_udp_t here.  Reads go through ``recvfrom_into`` into one
loop-wide preallocated buffer (never a fresh 256 KiB allocation per datagram,
see "Rules that keep it fast"), and up to ``_READS_PER_WAKEUP`` datagrams are
taken per readiness event.

State machine (asyncio's): connection_made first; datagram_received /
error_received any number of times; connection_lost exactly once, last.
One close path: ``_fatal_error`` -> ``_force_close`` ->
``call_soon(_call_connection_lost)``.
"""
from __future__ import annotations

import collections
import logging
import warnings
from asyncio import transports as _transports
from asyncio import trsock as _trsock

from .. import _compat
from .base import TransportErrors

logger = logging.getLogger("asyncio")

try:
    from asyncio.constants import LOG_THRESHOLD_FOR_CONNLOST_WRITES as _LOG_THRESHOLD
except ImportError:  # pragma: no cover
    _LOG_THRESHOLD = 5

_MAX_SIZE = 256 * 1024       # as stdlib's max_size: a unix datagram can be this large
_READS_PER_WAKEUP = 32       # datagrams taken per readiness event (libuv's uv_udp takes 32)
_SEND_EMPTY = _compat.PY313  # 3.13 sends empty datagrams; before, sendto(b"") did nothing


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


class DatagramTransport(TransportErrors, _transports._FlowControlMixin, _transports.DatagramTransport):
    """A datagram socket (see module doc)."""

    max_size = _MAX_SIZE

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(extra, loop)
        self._extra["socket"] = _trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock = sock                      # the socket; closed by _call_connection_lost
        self._sock_fd = sock.fileno()
        self._protocol = protocol
        self._protocol_connected = True
        self._address = address                # remote_addr for a connected endpoint
        self._connected = bool(self._extra["peername"])  # as stdlib: send() only with a peer name
        self._buffer = collections.deque()     # (bytes, addr) not sent yet
        self._buffer_size = 0                  # bytes in _buffer
        self._conn_lost = 0                    # connection_lost scheduled (and sends after it)
        self._closing = False
        self._recv_buffer = loop._datagram_buffer()
        loop._transports[self._sock_fd] = self
        loop.call_soon(self._protocol.connection_made, self)
        # only start reading when connection_made() has been called
        loop.call_soon(self._add_reader)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        info = [self.__class__.__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._sock is not None:
            info.append(f"write=<bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()

    def _add_reader(self):
        if not self._closing and self._sock is not None:
            self._loop._add_reader(self._sock_fd, self._read_ready)

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def get_write_buffer_size(self):
        return self._buffer_size

    # --- receiving -----------------------------------------------------------

    def _read_ready(self):
        buf, view = self._recv_buffer
        recvfrom_into = self._sock.recvfrom_into
        for _ in range(_READS_PER_WAKEUP):
            if self._conn_lost:
                return
            try:
                nbytes, addr = recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            self._protocol.datagram_received(view[:nbytes].tobytes(), addr)

    # --- sending -------------------------------------------------------------

    def sendto(self, data, addr=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if not data and not _SEND_EMPTY:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            if self._conn_lost >= _LOG_THRESHOLD:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                if self._connected:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop._add_writer(self._sock_fd, self._sendto_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        # Ensure that what we buffer is immutable.
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _sendto_ready(self):
        while self._buffer:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data)
            try:
                if self._connected:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._buffer.appendleft((data, addr))  # try again later
                self._buffer_size += len(data)
                break
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._maybe_resume_protocol()  # may append to buffer
        if not self._buffer:
            self._loop._remove_writer(self._sock_fd)
            if self._closing:
                self._call_connection_lost(None)

    # --- closing -------------------------------------------------------------

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._loop._remove_reader(self._sock_fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop._remove_writer(self._sock_fd)
            self._loop.call_soon(self._call_connection_lost, None)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop._remove_writer(self._sock_fd)
        if not self._closing:
            self._closing = True
            self._loop._remove_reader(self._sock_fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            sock = self._sock
            if sock is not None:
                loop = self._loop
                if loop._transports.get(self._sock_fd) is self:
                    del loop._transports[self._sock_fd]
                sock.close()
            self._sock = None
            self._protocol = None
