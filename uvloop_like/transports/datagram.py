"""Datagram transports: UDP on libuv's uv_udp_t, unix datagram sockets on the selector.

``UDPTransport`` (AF_INET/AF_INET6): libuv adopts a dup() of the socket's
descriptor as a ``uv_udp_t`` (handles/udp.py) and closes it; the caller's
socket object stays open (``get_extra_info('socket')``) until the transport
closes it in connection_lost, as stdlib does: each descriptor has one owner
and is closed exactly once.  Datagrams arrive as completions of the loop's
iteration (no Python runs inside uv_run) and reach the protocol from the
ready queue, after the callbacks that were ready before the poll, as with
stdlib.  The sender's sockaddr becomes the socket module's address tuple
through a small cache, and ``sendto`` turns an address tuple into a
sockaddr through another.  ``sendto`` tries
``uv_udp_try_send`` at once and queues with ``uv_udp_send`` only what would
block; the queued bytes drive pause_writing/resume_writing as stdlib's
flow control does.

``UnixDatagramTransport`` (AF_UNIX): a uv_udp_t cannot hold a unix
datagram socket, so these keep the Python socket and the loop's selector
(add_reader/add_writer), as stdlib's _SelectorDatagramTransport does.
Reads go through ``recvfrom_into`` into one loop-wide preallocated buffer
(never a fresh 256 KiB allocation per datagram, see "Rules that keep it
fast"), up to ``_READS_PER_WAKEUP`` datagrams per readiness event.

State machine (asyncio's): connection_made first; datagram_received /
error_received any number of times; connection_lost exactly once, last.
One close path: ``_fatal_error`` -> ``_force_close`` ->
``call_soon(_call_connection_lost)``.
"""
from __future__ import annotations

import collections
import contextvars
import logging
import operator
import os
import socket
import warnings
from asyncio import events as _events
from asyncio import transports as _transports
from asyncio import trsock as _trsock

from .. import _compat, _coresel
from .._futures import set_result_unless_cancelled
from ..handles.errors import convert_error
from ..handles.udp import NO_ADDRESS, UV_EAGAIN, UV_ECANCELED, UDPHandle, address, sockaddr
from .base import HandleReading, TransportErrors, transport_repr

logger = logging.getLogger("asyncio")

_MAX_SIZE = 256 * 1024       # as stdlib's max_size: a unix datagram can be this large
_READS_PER_WAKEUP = 32       # datagrams taken per readiness event (libuv's uv_udp takes 32)
_SEND_EMPTY = _compat.PY313  # 3.13 sends empty datagrams; before, sendto(b"") did nothing
_CACHE_MAX = 1024            # addresses remembered per transport, each way
_NOTHING = object()          # _send_target: no datagram to send



def _socket_extra(extra, sock):
    extra["socket"] = _trsock.TransportSocket(sock)
    try:
        extra["sockname"] = sock.getsockname()
    except OSError:
        extra["sockname"] = None
    if "peername" not in extra:
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None


class _DatagramTransportBase(TransportErrors, _transports._FlowControlMixin, _transports.DatagramTransport):
    """What the UDP and the unix datagram transports share: the protocol,
    repr, the ResourceWarning, and connection_lost closing the socket.
    Subclasses call ``_start`` at the end of their ``__init__`` and may add
    ``_release()``."""

    max_size = _MAX_SIZE

    def __init__(self, loop, sock, protocol, address, extra):
        super().__init__(extra, loop)
        _socket_extra(self._extra, sock)
        self._sock = sock                      # the caller's socket; closed by _call_connection_lost
        self._sock_fd = sock.fileno()
        self._protocol = protocol
        self._protocol_connected = True
        self._address = address                # remote_addr for a connected endpoint
        self._connected = bool(self._extra["peername"])  # as stdlib: send() only with a peer name
        self._buffer_size = 0                  # bytes queued, not sent yet
        self._conn_lost = 0                    # connection_lost scheduled (and sends after it)
        self._closing = False

    def _start(self, start_reading, waiter):
        """Register with the loop, then, in stdlib's order: connection_made,
        the first read (only once connection_made has run), the waiter."""
        loop = self._loop
        loop._transports[self._sock_fd] = self
        loop.call_soon(self._protocol.connection_made, self)
        loop.call_soon(start_reading)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        return transport_repr(self, self._sock is None, self._sock_fd, f"write=<bufsize={self._buffer_size}>")

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._release()
            self._sock.close()

    def _release(self):
        """Let go of what the transport holds besides its socket."""

    def _send_target(self, data, addr):
        """sendto()'s checks, as stdlib's: TypeError for data that is not
        bytes-like, ValueError for another address than a connected
        endpoint's.  Returns where to send, or _NOTHING when there is nothing
        to send (an empty datagram before 3.13)."""
        if type(data) is not bytes and not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if not data and not _SEND_EMPTY:
            return _NOTHING
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            return self._address
        return addr

    def _send_error(self, exc):
        """What sending raised: an OSError goes to error_received and the
        transport stays open; anything else is fatal (as with stdlib)."""
        if isinstance(exc, OSError):
            self._protocol.error_received(exc)
        else:
            self._fatal_error(exc, "Fatal write error on datagram transport")

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def get_write_buffer_size(self):
        return self._buffer_size

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
                self._release()
                sock.close()  # the caller's socket, as stdlib does
            self._sock = None
            self._protocol = None


class UDPTransport(HandleReading, _DatagramTransportBase):
    """A UDP socket (IPv4 or IPv6) owned by libuv (see module doc)."""

    def __init__(self, loop, handle, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(loop, sock, protocol, address, extra)
        self._handle = handle                  # the UDPHandle; libuv owns a dup() of sock's fd
        self._send_now = handle.send_now       # its per-datagram C call
        self._family = sock.family
        self._context = contextvars.copy_context()  # datagram_received runs in it, as with stdlib
        self._received = []                    # (data, sockaddr) read in this iteration, not delivered yet
        # Delivers them from the ready queue, after the callbacks that were
        # ready before the poll (stdlib appends its reader callback so too).
        self._deliver_handle = _events.Handle(self._deliver, (), loop, self._context)
        self._send_sizes = collections.deque()  # size of each queued uv_udp_send, FIFO
        self._dropped = 0                      # queued sends abort() dropped (completions to ignore)
        self._reading = False
        self._addresses = {}                   # sender sockaddr (bytes) -> address tuple
        self._sockaddrs = {}                   # address tuple -> sockaddr (bytes), for sendto
        handle.set_callbacks(on_recv=self._on_recv, on_send=self._on_send)
        if getattr(loop, "_native", None) is not None and type(self).sendto is __class__.sendto:
            # The native core's send fast path (_core.c), bound as StreamTransport's write.
            self.sendto = _coresel._native.DatagramSend(self, handle, __class__.sendto)
        self._start(self._start_reading, waiter)

    def _release(self):
        self._handle.close()  # libuv closes its dup; queued sends end with ECANCELED
        # It refers to the loop and, through its callback, to self: no
        # cycle keeps a closed transport (and its loop) for the cyclic GC.
        self._deliver_handle = None
        self._received = []

    # --- receiving -----------------------------------------------------------

    _read_error_message = "Fatal read error on datagram transport"

    def _on_recv(self, data, sa):
        """A datagram (bytes) from the sockaddr ``sa`` (bytes); or, with
        ``sa`` None, the libuv error status ``data`` the socket reported.
        Runs from LoopCore.process, for each datagram libuv read."""
        received = self._received
        if not received:
            deliver = self._deliver_handle
            if deliver is None:
                return  # connection_lost has run (a completion saved from an interrupted batch)
            self._loop._ready.append(deliver)
        received.append((data, sa))

    def _deliver(self):
        """Hand the datagrams (and errors) of the last iteration to the
        protocol, in order."""
        received = self._received
        self._received = []
        addresses = self._addresses
        i = 0
        try:
            for data, sa in received:
                i += 1
                if self._closing:
                    return  # read in the iteration of close(): stdlib would not have read them
                protocol = self._protocol
                if sa is not None:
                    addr = addresses.get(sa)
                    if addr is None:
                        addr = self._new_address(sa)
                    try:
                        protocol.datagram_received(data, addr)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._callback_error(exc, "datagram_received")
                else:
                    try:
                        protocol.error_received(convert_error(data))
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._callback_error(exc, "error_received")
        except BaseException:
            rest = received[i:]
            if rest and self._deliver_handle is not None:  # keep them, in order, for the next round
                if not self._received:
                    self._loop._ready.append(self._deliver_handle)
                self._received[:0] = rest
            raise

    def _callback_error(self, exc, method):
        # stdlib calls the protocol from its reader callback, so an exception
        # is reported as that callback's and the transport keeps reading.
        self._loop.call_exception_handler({
            "message": f"Exception in callback {type(self).__name__}: protocol.{method}() call failed.",
            "exception": exc,
            "transport": self,
            "protocol": self._protocol,
        })

    def _new_address(self, sa):
        addr = address(sa)
        addresses = self._addresses
        if len(addresses) >= _CACHE_MAX:
            addresses.clear()
        addresses[sa] = addr
        sockaddrs = self._sockaddrs
        if len(sockaddrs) >= _CACHE_MAX:
            sockaddrs.clear()
        sockaddrs[addr] = sa  # a reply to the sender needs no conversion
        return addr

    # --- sending -------------------------------------------------------------

    def _sockaddr(self, addr):
        """The sockaddr for an address tuple, checked as socket.sendto checks
        it (TypeError/OverflowError for bad ones; a host name is resolved,
        blocking, as socket.sendto does)."""
        family = self._family
        name = "AF_INET" if family == socket.AF_INET else "AF_INET6"
        if not isinstance(addr, tuple):
            raise TypeError(f"sendto(): {name} address must be tuple, not {type(addr).__name__}")
        if family == socket.AF_INET:
            if len(addr) != 2:
                raise TypeError("AF_INET address must be a pair (host, port)")
            host, port = addr
            flowinfo = scope_id = 0
        else:
            if not 2 <= len(addr) <= 4:
                raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
            host, port, flowinfo, scope_id = (addr + (0, 0))[:4]
            flowinfo = operator.index(flowinfo)
            if not 0 <= flowinfo <= 0xFFFFF:
                raise OverflowError("sendto(): flowinfo must be 0-1048575.")
            scope_id = operator.index(scope_id)
            if not 0 <= scope_id <= 0xFFFFFFFF:
                raise OverflowError("sendto(): scope_id must be 0-4294967295.")
        port = operator.index(port)
        if not 0 <= port <= 65535:
            raise OverflowError("sendto(): port must be 0-65535.")
        if isinstance(host, str):
            try:
                raw = host.encode("ascii")
            except UnicodeEncodeError:
                raw = None  # an IDNA name: resolved below
        elif isinstance(host, (bytes, bytearray)):
            raw = bytes(host)
        else:
            raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
        if raw is not None and b"\0" in raw:
            raise TypeError("host name must not contain null character")
        sa = sockaddr(family, raw, port, flowinfo, scope_id) if raw is not None else None
        if sa is not None:
            sockaddrs = self._sockaddrs
            if len(sockaddrs) >= _CACHE_MAX:
                sockaddrs.clear()
            sockaddrs[addr] = sa
            return sa
        # Not numeric: resolve it each time (never cached: names move).
        resolved = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4][0]
        sa = sockaddr(family, resolved.split("%", 1)[0].encode("ascii"), port, flowinfo, scope_id)
        if sa is None:  # pragma: no cover - getaddrinfo returns numeric hosts
            raise OSError(f"cannot send to {addr!r}")
        return sa

    def sendto(self, data, addr=None):
        if type(data) is not bytes or not data or self._address:
            # (_send_target returns addr itself for a non-empty bytes datagram
            # on an endpoint with no remote address: the hot path skips it)
            addr = self._send_target(data, addr)
            if addr is _NOTHING:
                return
        if self._conn_lost and (self._address or self._handle.closed):
            self._write_after_lost()
            return
        if self._connected:
            sa = NO_ADDRESS
        else:
            try:
                sa = self._sockaddrs[addr]
            except (KeyError, TypeError):
                try:
                    sa = self._sockaddr(addr)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._send_error(exc)
                    return
        if not self._send_sizes:
            if type(data) is bytes:
                n = self._send_now(data, len(data), sa)
            else:
                n = self._handle.try_send(data, sa)
            if n >= 0:
                return
            if n != UV_EAGAIN:
                self._protocol.error_received(convert_error(n))
                return
        # Queue an immutable copy: libuv points at it until the send completes.
        if type(data) is not bytes:
            data = bytes(data)
        try:
            self._handle.send(data, sa)
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        self._send_sizes.append(len(data))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _on_send(self, status):
        self._handle.send_done()
        if self._dropped:
            self._dropped -= 1  # abort() already forgot it
            return
        self._buffer_size -= self._send_sizes.popleft()
        if status < 0 and status != UV_ECANCELED:
            self._protocol.error_received(convert_error(status))
        self._maybe_resume_protocol()  # may queue more
        if not self._send_sizes and self._closing and not self._conn_lost:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    # --- closing -------------------------------------------------------------

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._send_sizes:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        if self._send_sizes:
            # libuv cancels them when the handle closes: their completions
            # are only counted off.
            self._dropped += len(self._send_sizes)
            self._send_sizes.clear()
            self._buffer_size = 0
        if not self._closing:
            self._closing = True
            self._stop_reading()
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)



def adopt_udp_socket(loop, sock, protocol, address=None, waiter=None, extra=None):
    """Make a UDPTransport of a UDP socket.

    libuv adopts a dup() of the socket's descriptor and closes it; the
    caller's socket object stays open until the transport closes it in
    connection_lost.  If adoption fails, the dup is closed here and ``sock``
    is left to the caller, untouched."""
    handle = UDPHandle(loop)
    fd = -1
    try:
        fd = os.dup(sock.fileno())
        handle.open(fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)  # libuv did not take it
        handle.close()
        raise
    return UDPTransport(loop, handle, sock, protocol, address, waiter, extra)


class UnixDatagramTransport(_DatagramTransportBase):
    """A unix datagram socket on the loop's selector (see module doc)."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(loop, sock, protocol, address, extra)
        # Connected to an unnamed peer (a socketpair() end: getpeername() is
        # ''): stdlib's sendto(data) passes addr None to socket.sendto and
        # fails with TypeError; the one place a datagram can go is the peer.
        self._unnamed_peer = self._extra["peername"] is not None and not self._connected
        self._buffer = collections.deque()     # (bytes, addr) not sent yet (_buffer_size: their bytes)
        self._recv_buffer = loop._core.scratch("datagram", self.max_size)  # the loop-wide receive buffer
        self._start(self._add_reader, waiter)

    def _add_reader(self):
        if not self._closing and self._sock is not None:
            self._loop._add_reader(self._sock_fd, self._read_ready)

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
            self._loop._core.count_received(nbytes)  # loop.stats()
            self._protocol.datagram_received(view[:nbytes].tobytes(), addr)

    # --- sending -------------------------------------------------------------

    def sendto(self, data, addr=None):
        addr = self._send_target(data, addr)
        if addr is _NOTHING:
            return
        if self._conn_lost and self._address:
            self._write_after_lost()
            return
        if not self._buffer:
            try:
                self._send_one(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop._add_writer(self._sock_fd, self._sendto_ready)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._send_error(exc)
                return
        # Ensure that what we buffer is immutable.
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _send_one(self, data, addr):
        if self._connected or (addr is None and self._unnamed_peer):
            sent = self._sock.send(data)
        else:
            sent = self._sock.sendto(data, addr)
        self._loop._core.count_sent(sent)  # loop.stats()

    def _sendto_ready(self):
        while self._buffer:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data)
            try:
                self._send_one(data, addr)
            except (BlockingIOError, InterruptedError):
                self._buffer.appendleft((data, addr))  # try again later
                self._buffer_size += len(data)
                break
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._send_error(exc)
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

