"""TLS as a memory-BIO layer over any uvloop_like stream transport.

Ours, not stdlib's private ``asyncio.sslproto``: it is the same on CPython
3.9-3.13 and PyPy (3.11's behaviour everywhere: close() waits for the peer's
close_notify, bounded by ``ssl_shutdown_timeout``), and it is tuned for this
loop:

* ``SSLProtocol`` is a BufferedProtocol of the raw transport, so libuv reads
  ciphertext straight into our buffer; one copy moves it into the incoming
  ``ssl.MemoryBIO``.
* Plaintext is decrypted with ``SSLObject.read(n, buffer)`` into one
  preallocated buffer, then copied once into the exact-size ``bytes`` given
  to ``data_received`` (no 256 KiB allocation per read, see DESIGN's "fast"
  rules); a BufferedProtocol app gets it decrypted straight into the buffer
  its ``get_buffer()`` returned.
* Ciphertext is handed to the raw transport as soon as it exists; write flow
  control counts what the TLS layer holds plus what the raw transport holds,
  and the raw transport's limits follow the app transport's so its
  pause/resume notifications arrive when the total crosses the marks.

State machine of the TLS layer (``TLSState``); any state may go to UNWRAPPED
(failure, abort, the raw connection lost)::

    UNWRAPPED --connection_made--> HANDSHAKING --handshake ok--> WRAPPED
        WRAPPED --close() / peer's close_notify / raw EOF--> FLUSHING
        FLUSHING --pending plaintext delivered--> SHUTDOWN
        SHUTDOWN --close_notify exchanged (or raw EOF)--> (raw close) UNWRAPPED

* HANDSHAKING: ``do_handshake()`` runs on every ciphertext arrival; bounded
  by ``ssl_handshake_timeout`` (ConnectionAbortedError, stdlib's message).
* WRAPPED: application data both ways.
* FLUSHING: no more app writes accepted; plaintext already decrypted still
  reaches the app.
* SHUTDOWN: ``unwrap()`` sends our close_notify and waits for the peer's;
  bounded by ``ssl_shutdown_timeout`` (TimeoutError('SSL shutdown timed out')).

The app protocol's own state machine (``AppState``)::

    INIT --connection_made--> CONNECTED [--eof_received--> EOF] --connection_lost--> LOST
"""
from __future__ import annotations

import collections
import enum
import logging
import ssl
import warnings
from asyncio import constants as _constants
from asyncio import exceptions as _exceptions
from asyncio import protocols as _protocols
from asyncio import transports as _transports

from . import _compat

logger = logging.getLogger("asyncio")

SSL_HANDSHAKE_TIMEOUT = _constants.SSL_HANDSHAKE_TIMEOUT
SSL_SHUTDOWN_TIMEOUT = getattr(_constants, "SSL_SHUTDOWN_TIMEOUT", 30.0)  # 3.11+ in stdlib
_HIGH_WATER_SSL_READ = getattr(_constants, "FLOW_CONTROL_HIGH_WATER_SSL_READ", 256)    # KiB
_HIGH_WATER_SSL_WRITE = getattr(_constants, "FLOW_CONTROL_HIGH_WATER_SSL_WRITE", 512)  # KiB
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = getattr(_constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES", 5)
try:
    _SENDFILE_FALLBACK = _constants._SendfileMode.FALLBACK
except AttributeError:  # pragma: no cover
    _SENDFILE_FALLBACK = None

# "Not enough ciphertext yet": the memory BIO is empty.
_AGAIN = (ssl.SSLWantReadError, ssl.SSLSyscallError)

_PLAINTEXT_BUFFER_SIZE = 256 * 1024   # one decrypted read at most, reused
_CIPHERTEXT_BUFFER_SIZE = 256 * 1024  # libuv reads ciphertext into this


class TLSState(enum.Enum):
    """The TLS layer's state; the transitions are drawn in the module docstring."""

    UNWRAPPED = "UNWRAPPED"
    HANDSHAKING = "HANDSHAKING"
    WRAPPED = "WRAPPED"
    FLUSHING = "FLUSHING"
    SHUTDOWN = "SHUTDOWN"


# Allowed transitions (besides "anything -> UNWRAPPED").
_TRANSITIONS = {
    (TLSState.UNWRAPPED, TLSState.HANDSHAKING),
    (TLSState.HANDSHAKING, TLSState.WRAPPED),
    (TLSState.WRAPPED, TLSState.FLUSHING),
    (TLSState.FLUSHING, TLSState.SHUTDOWN),
}


class AppState(enum.Enum):
    """Where the app protocol is in asyncio's protocol state machine."""

    INIT = "INIT"
    CONNECTED = "CONNECTED"
    EOF = "EOF"
    LOST = "LOST"


def _default_context(server_side, server_hostname):
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    # ssl=True on the client: the secure default context.
    context = ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


def _flow_control_limits(high, low, kib):
    if high is None:
        high = kib * 1024 if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


class SSLTransport(_transports._FlowControlMixin, _transports.Transport):
    """The app's face of a TLS connection: plaintext in, plaintext out."""

    _start_tls_compatible = True
    _sendfile_compatible = _SENDFILE_FALLBACK

    def __init__(self, loop, ssl_protocol):
        self._loop = loop
        self._extra = {}
        self._ssl_protocol = ssl_protocol   # the SSLProtocol doing the work
        self._closed = False                # close()/abort() called or the connection is gone

    def __repr__(self):
        proto = self._ssl_protocol
        state = proto._state.value if proto is not None else "closed"
        return f"<{type(self).__name__} {state}{' closing' if self._closed else ''}>"

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    def get_extra_info(self, name, default=None):
        """ssl_object, peercert, cipher, compression and sslcontext, then
        whatever the raw transport knows (socket, peername, sockname...)."""
        return self._ssl_protocol._get_extra_info(name, default)

    def set_protocol(self, protocol):
        self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self):
        return self._ssl_protocol._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Send close_notify after the buffered data, wait for the peer's
        (at most ssl_shutdown_timeout), then close the connection; the
        protocol's connection_lost() is called with None."""
        if not self._closed:
            self._closed = True
            self._ssl_protocol._start_shutdown()

    def abort(self):
        """Close the connection now, dropping buffered data."""
        self._closed = True
        if self._ssl_protocol is not None:
            self._ssl_protocol._abort()

    def _force_close(self, exc):
        self._closed = True
        if self._ssl_protocol is not None:
            self._ssl_protocol._fatal_error(exc, "Fatal error on SSL transport", call_handler=False)

    # --- reading ------------------------------------------------------------

    def is_reading(self):
        return not self._ssl_protocol._app_reading_paused

    def pause_reading(self):
        """Stop calling data_received() until resume_reading()."""
        self._ssl_protocol._pause_reading()

    def resume_reading(self):
        self._ssl_protocol._resume_reading()

    def set_read_buffer_limits(self, high=None, low=None):
        """Limits on ciphertext held while the app does not read, above
        which the raw transport stops reading."""
        self._ssl_protocol._set_read_buffer_limits(high, low)
        self._ssl_protocol._control_ssl_reading()

    def get_read_buffer_limits(self):
        return (self._ssl_protocol._incoming_low_water, self._ssl_protocol._incoming_high_water)

    def get_read_buffer_size(self):
        return self._ssl_protocol._incoming.pending

    # --- writing ------------------------------------------------------------

    @property
    def _protocol_paused(self):
        # sendfile's fallback reads this (stdlib's _FlowControlMixin field).
        return self._ssl_protocol._app_writing_paused

    def set_write_buffer_limits(self, high=None, low=None):
        self._ssl_protocol._set_write_buffer_limits(high, low)
        self._ssl_protocol._control_app_writing()

    def get_write_buffer_limits(self):
        return (self._ssl_protocol._outgoing_low_water, self._ssl_protocol._outgoing_high_water)

    def get_write_buffer_size(self):
        """Plaintext not yet encrypted plus ciphertext not yet sent (by us
        and by the raw transport)."""
        return self._ssl_protocol._get_write_buffer_size()

    def write(self, data):
        """Encrypt ``data`` and send it; never blocks."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if type(data) is memoryview and data.nbytes != len(data):
            data = data.cast("B")  # count bytes, not items (see transports.base.write_data)
        if data:
            self._ssl_protocol._write_one(data)

    def writelines(self, list_of_data):
        self._ssl_protocol._write_appdata(list_of_data)

    def write_eof(self):
        """TLS has no half-close: not supported (can_write_eof() is False)."""
        raise NotImplementedError

    def can_write_eof(self):
        return False


class SSLProtocol(_protocols.BufferedProtocol):
    """The raw transport's protocol: runs TLS between it and the app protocol."""

    def __init__(self, loop, app_protocol, sslcontext, waiter, server_side=False,
                 server_hostname=None, call_connection_made=True, ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, "
                             f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(f"ssl_shutdown_timeout should be a positive number, "
                             f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _default_context(server_side, server_hostname)
        self._loop = loop
        self._server_side = server_side
        self._server_hostname = server_hostname if server_hostname and not server_side else None
        self._sslcontext = sslcontext
        self._extra = {"sslcontext": sslcontext}  # the rest once the handshake is done
        self._waiter = waiter                      # create_connection/start_tls wait on it
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._handshake_timer = None
        self._shutdown_timer = None
        self._handshake_start_time = None

        self._transport = None                     # the raw (ciphertext) transport
        self._state = TLSState.UNWRAPPED
        self._app_state = AppState.INIT if call_connection_made else AppState.CONNECTED
        self._conn_lost = 0                        # writes after the connection was lost
        self._eof_received = False                 # the raw transport saw EOF

        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                           server_hostname=self._server_hostname)
        # The C object behind ssl.SSLObject: its read/write without the
        # Python wrapper (one call less per TLS record).
        native = getattr(self._sslobj, "_sslobj", self._sslobj)
        self._sslobj_read = getattr(native, "read", self._sslobj.read)
        self._sslobj_write = getattr(native, "write", self._sslobj.write)
        self._cipher_buffer = memoryview(bytearray(_CIPHERTEXT_BUFFER_SIZE))

        self._write_backlog = collections.deque()  # plaintext waiting for the handshake
        self._write_backlog_size = 0

        self._app_reading_paused = False
        self._ssl_reading_paused = False           # we paused the raw transport's reading
        self._incoming_high_water = self._incoming_low_water = 0
        self._set_read_buffer_limits()

        self._app_writing_paused = False
        self._raw_writing_paused = False           # the raw transport called pause_writing
        self._outgoing_high_water = self._outgoing_low_water = 0
        self._set_write_buffer_limits()

        self._app_transport = SSLTransport(loop, self)
        self._set_app_protocol(app_protocol)

    def __repr__(self):
        return f"<SSLProtocol {self._state.value} app={self._app_state.value}>"

    def _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        self._app_is_buffered = isinstance(app_protocol, _protocols.BufferedProtocol)

    def _set_state(self, new_state):
        if new_state is not TLSState.UNWRAPPED and (self._state, new_state) not in _TRANSITIONS:
            raise RuntimeError(f"cannot switch state from {self._state} to {new_state}")
        self._state = new_state

    def _wakeup_waiter(self, exc=None):
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)

    def _get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    # --- the raw transport's protocol ---------------------------------------

    def connection_made(self, transport):
        self._transport = transport
        try:
            # So that its pause/resume notifications match our marks.
            transport.set_write_buffer_limits(self._outgoing_high_water, self._outgoing_low_water)
        except (AttributeError, NotImplementedError):
            pass
        self._start_handshake()

    def connection_lost(self, exc):
        self._write_backlog.clear()
        self._write_backlog_size = 0
        self._outgoing.read()
        self._conn_lost += 1
        app_transport = self._app_transport
        if app_transport is not None:
            app_transport._closed = True
        was_handshaking = self._state is TLSState.HANDSHAKING
        if not was_handshaking and self._app_state in (AppState.CONNECTED, AppState.EOF):
            self._app_state = AppState.LOST
            self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state(TLSState.UNWRAPPED)
        self._transport = None
        self._app_transport = None
        # Break the cycle app protocol -> app transport -> us -> app protocol,
        # so a closed connection (and its SSLContext) is freed without the
        # cyclic GC, as with stdlib.
        self._app_protocol = None
        if was_handshaking and exc is None:
            exc = ConnectionResetError("Connection lost during the TLS handshake")
        self._wakeup_waiter(exc)
        self._cancel_timers()

    def _cancel_timers(self):
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None

    def get_buffer(self, sizehint):
        return self._cipher_buffer

    def buffer_updated(self, nbytes):
        self._incoming.write(self._cipher_buffer[:nbytes])
        self._step()

    def _step(self):
        """Run the current state's work over the ciphertext that has arrived
        (and the application's reads it may now satisfy)."""
        state = self._state
        if state is TLSState.WRAPPED:
            self._do_read()
        elif state is TLSState.HANDSHAKING:
            self._do_handshake()
        elif state is TLSState.FLUSHING:
            self._do_flush()
        elif state is TLSState.SHUTDOWN:
            self._do_shutdown()

    def eof_received(self):
        self._eof_received = True
        try:
            if self._loop.get_debug():
                logger.debug("%r received EOF", self)
            state = self._state
            if state is TLSState.HANDSHAKING:
                self._on_handshake_complete(ConnectionResetError())
            elif state is TLSState.WRAPPED:
                # The peer closed without close_notify: as stdlib, the app
                # gets what was decrypted, then eof_received, then the end.
                self._set_state(TLSState.FLUSHING)
                if self._app_reading_paused:
                    return True
                self._do_flush()
            elif state is TLSState.FLUSHING:
                self._do_write()
                self._set_state(TLSState.SHUTDOWN)
                self._do_shutdown()
            elif state is TLSState.SHUTDOWN:
                self._do_shutdown()
        except Exception:
            if self._transport is not None:
                self._transport.close()
            raise
        return None

    def pause_writing(self):
        self._raw_writing_paused = True
        self._control_app_writing()

    def resume_writing(self):
        self._raw_writing_paused = False
        self._control_app_writing()

    # --- handshake ------------------------------------------------------------

    def _start_handshake(self):
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start_time = self._loop.time()
        self._set_state(TLSState.HANDSHAKING)
        self._handshake_timer = self._loop.call_later(self._ssl_handshake_timeout,
                                                      self._check_handshake_timeout)
        self._do_handshake()

    def _check_handshake_timeout(self):
        self._handshake_timer = None
        if self._state is TLSState.HANDSHAKING:
            msg = (f"SSL handshake is taking longer than {self._ssl_handshake_timeout} seconds: "
                   f"aborting the connection")
            self._fatal_error(ConnectionAbortedError(msg))

    def _do_handshake(self):
        try:
            self._sslobj.do_handshake()
        except _AGAIN:
            self._flush_outgoing()
        except ssl.SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    def _on_handshake_complete(self, exc):
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        sslobj = self._sslobj
        try:
            if exc is not None:
                raise exc
            self._set_state(TLSState.WRAPPED)
            peercert = sslobj.getpeercert()
        except Exception as err:
            self._set_state(TLSState.UNWRAPPED)
            # The alert OpenSSL wrote tells the peer why, rather than a bare EOF.
            self._flush_outgoing()
            if isinstance(err, ssl.CertificateError):
                msg = "SSL handshake failed on verifying the certificate"
            else:
                msg = "SSL handshake failed"
            self._fatal_error(err, msg)
            self._wakeup_waiter(err)
            return
        if self._loop.get_debug():
            dt = self._loop.time() - self._handshake_start_time
            logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)
        self._extra.update(peercert=peercert, cipher=sslobj.cipher(),
                           compression=sslobj.compression(), ssl_object=sslobj)
        if self._app_state is AppState.INIT:
            self._app_state = AppState.CONNECTED
            self._app_protocol.connection_made(self._app_transport)
        self._wakeup_waiter()
        # Session tickets (TLS 1.3 server), the client's Finished (TLS 1.2),
        # and whatever the app wrote meanwhile.
        self._do_write()
        self._do_read()

    # --- shutdown -----------------------------------------------------------

    def _start_shutdown(self):
        state = self._state
        if state in (TLSState.FLUSHING, TLSState.SHUTDOWN, TLSState.UNWRAPPED):
            return
        if self._app_transport is not None:
            self._app_transport._closed = True
        if state is TLSState.HANDSHAKING:
            self._abort()
            return
        self._set_state(TLSState.FLUSHING)
        self._shutdown_timer = self._loop.call_later(self._ssl_shutdown_timeout,
                                                     self._check_shutdown_timeout)
        # The peer's close_notify must get through even if the app paused.
        if self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()
        self._do_flush()

    def _check_shutdown_timeout(self):
        self._shutdown_timer = None
        if self._state in (TLSState.FLUSHING, TLSState.SHUTDOWN) and self._transport is not None:
            self._transport._force_close(_compat.TimeoutError("SSL shutdown timed out"))

    def _do_flush(self):
        self._do_read()
        if self._state is not TLSState.FLUSHING:
            return  # the app aborted from data_received, say
        self._do_write()
        self._set_state(TLSState.SHUTDOWN)
        self._do_shutdown()

    def _do_shutdown(self):
        try:
            if not self._eof_received:
                self._sslobj.unwrap()
        except _AGAIN:
            self._flush_outgoing()
            if self._ssl_reading_paused and self._transport is not None:
                # The peer's close_notify has to get in.
                self._ssl_reading_paused = False
                self._transport.resume_reading()
        except ssl.SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._flush_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)

    def _on_shutdown_complete(self, exc):
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if exc is not None:
            self._fatal_error(exc)
        elif self._transport is not None:
            # At once, not call_soon: connection_lost (and the release of the
            # SSLContext with it) lands in as few loop iterations as stdlib's.
            self._transport.close()

    def _abort(self):
        self._set_state(TLSState.UNWRAPPED)
        if self._transport is not None:
            self._transport.abort()

    # --- outgoing: app plaintext -> ciphertext -> raw transport ---------------

    def _write_appdata(self, list_of_data):
        state = self._state
        if state is not TLSState.WRAPPED and state is not TLSState.HANDSHAKING:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("SSL connection is closed")
            self._conn_lost += 1
            return
        backlog = self._write_backlog
        try:
            if state is TLSState.WRAPPED and not backlog:
                # The common case: encrypt and hand over at once.
                write = self._sslobj_write
                for data in list_of_data:
                    if backlog:
                        backlog.append(data)
                        self._write_backlog_size += len(data)
                    elif len(data):
                        try:
                            count = write(data)
                        except _AGAIN:
                            count = 0
                        if count < len(data):
                            backlog.append(memoryview(data)[count:])
                            self._write_backlog_size += len(data) - count
                self._flush_outgoing()
                return
            for data in list_of_data:
                if len(data):
                    backlog.append(data)
                    self._write_backlog_size += len(data)
            if state is TLSState.WRAPPED:
                self._do_write()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _write_one(self, data):
        """write() of one buffer: _write_appdata without the loop."""
        if self._state is TLSState.WRAPPED and not self._write_backlog:
            try:
                count = self._sslobj_write(data)
            except _AGAIN:
                count = 0
            except Exception as exc:
                self._fatal_error(exc, "Fatal error on SSL protocol")
                return
            if count < len(data):
                self._write_backlog.append(memoryview(data)[count:])
                self._write_backlog_size += len(data) - count
            self._flush_outgoing()
        else:
            self._write_appdata((data,))

    def _do_write(self):
        backlog = self._write_backlog
        if backlog:
            write = self._sslobj_write
            try:
                while backlog:
                    data = backlog[0]
                    count = write(data)
                    if count < len(data):
                        backlog[0] = memoryview(data)[count:]
                    else:
                        backlog.popleft()
                    self._write_backlog_size -= count
            except _AGAIN:
                pass  # renegotiation wants the peer first: kept for later
        self._flush_outgoing()

    def _flush_outgoing(self):
        if self._outgoing.pending:
            data = self._outgoing.read()
            if self._transport is not None:
                self._transport.write(data)
        if self._write_backlog_size or self._raw_writing_paused or self._app_writing_paused:
            self._control_app_writing()
        # Else the total is what the raw transport holds, and it has not
        # called pause_writing: at most the high-water mark (its limits
        # are ours), so no mark was crossed.

    def _control_app_writing(self):
        size = self._get_write_buffer_size()
        if size > self._outgoing_high_water:
            if not self._app_writing_paused:
                self._app_writing_paused = True
                self._call_app_flow_control("pause_writing")
        elif self._app_writing_paused and size <= self._outgoing_low_water:
            self._app_writing_paused = False
            self._call_app_flow_control("resume_writing")

    def _call_app_flow_control(self, name):
        try:
            getattr(self._app_protocol, name)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self._app_transport,
                "protocol": self,
            })

    def _get_write_buffer_size(self):
        size = self._write_backlog_size + self._outgoing.pending
        if self._transport is not None:
            size += self._transport.get_write_buffer_size()
        return size

    def _set_write_buffer_limits(self, high=None, low=None):
        high, low = _flow_control_limits(high, low, _HIGH_WATER_SSL_WRITE)
        self._outgoing_high_water = high
        self._outgoing_low_water = low
        if self._transport is not None:
            try:
                self._transport.set_write_buffer_limits(high, low)
            except (AttributeError, NotImplementedError):
                pass

    # --- incoming: raw transport ciphertext -> plaintext -> app --------------

    def _do_read(self):
        state = self._state
        if state is not TLSState.WRAPPED and state is not TLSState.FLUSHING:
            return
        try:
            if not self._app_reading_paused:
                self._read_and_deliver()
                if self._write_backlog:
                    self._do_write()
                elif self._outgoing.pending:
                    # Post-handshake messages (TLS 1.3 tickets, key updates).
                    self._flush_outgoing()
            self._control_ssl_reading()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _read_and_deliver(self):
        """Decrypt into a buffer and hand it to the app, repeat until the BIO
        is empty, the app pauses, or the connection ends.  The buffer: a
        BufferedProtocol app's own, from its get_buffer() (no copy); else
        ours, handed over as exact-size bytes."""
        app_buffered = self._app_is_buffered
        if not app_buffered:
            # One buffer per loop: its content is copied out before the app
            # runs (which may re-enter here), and the loop runs one callback
            # at a time.
            buf = self._loop._core.scratch("tls", _PLAINTEXT_BUFFER_SIZE)[1]
            size = len(buf)
        read = self._sslobj_read
        incoming = self._incoming
        while True:
            if app_buffered:
                buf = self._app_protocol.get_buffer(incoming.pending or -1)
                size = len(buf)
                if not size:
                    raise RuntimeError("get_buffer() returned an empty buffer")
            offset = 0
            closed = False
            try:
                while offset < size:
                    count = read(size - offset, memoryview(buf)[offset:]) if offset else read(size, buf)
                    if not count:
                        closed = True
                        break
                    offset += count
                    if not incoming.pending:
                        # A short read emptied its record and no other
                        # ciphertext is left: a further read could only
                        # raise SSLWantReadError (an exception per read).
                        break
            except _AGAIN:
                pass
            if offset:
                if app_buffered:
                    self._app_protocol.buffer_updated(offset)
                else:
                    self._app_protocol.data_received(buf[:offset].tobytes())
            if closed:
                self._on_close_notify()
                return
            if (offset < size or self._app_reading_paused
                    or (self._state is not TLSState.WRAPPED and self._state is not TLSState.FLUSHING)):
                return

    def _on_close_notify(self):
        self._call_eof_received()
        self._start_shutdown()

    def _call_eof_received(self):
        try:
            if self._app_state is AppState.CONNECTED:
                self._app_state = AppState.EOF
                keep_open = self._app_protocol.eof_received()
                if keep_open:
                    logger.warning("returning true from eof_received() has no effect when using ssl")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    def _pause_reading(self):
        self._app_reading_paused = True

    def _resume_reading(self):
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._resume)

    def _resume(self):
        # (the handshake goes on by itself: resuming the app changes nothing)
        if not self._app_reading_paused and self._state is not TLSState.HANDSHAKING:
            self._step()

    def _control_ssl_reading(self):
        size = self._incoming.pending
        if size >= self._incoming_high_water and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._incoming_low_water and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()

    def _set_read_buffer_limits(self, high=None, low=None):
        high, low = _flow_control_limits(high, low, _HIGH_WATER_SSL_READ)
        self._incoming_high_water = high
        self._incoming_low_water = low

    # --- errors ---------------------------------------------------------------

    def _fatal_error(self, exc, message="Fatal error on transport", call_handler=True):
        if self._transport is not None:
            self._transport._force_close(exc)
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif call_handler and not isinstance(exc, _exceptions.CancelledError):
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self._transport,
                "protocol": self,
            })
