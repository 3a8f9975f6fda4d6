"""The loop's stream-connection entry points: create_connection,
create_unix_connection, connect_accepted_socket and sendfile.

Arguments, errors and messages follow CPython's stdlib loop of the running
version (3.9-3.13); the per-version signatures are at the end of this module.
Sockets are connected here with sock_connect (the loop's selector), then
handed to libuv (``_make_socket_transport``), which adopts the descriptor.

Descriptor ownership: a socket this module creates is closed here on every
failure or cancellation before the transport exists; once the transport
exists it owns the descriptor, and a failure or cancellation while waiting
for connection_made closes the transport (libuv closes the fd).  A socket the
caller passed with ``sock=`` stays the caller's until the transport adopts it.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import socket
from asyncio import constants as _constants
from asyncio import protocols as _protocols
from asyncio import staggered as _staggered
from asyncio import transports as _transports

from . import _compat
from .sockets import _check_sendfile_params, _check_ssl_args
from .sslproto import SSLProtocol
from .transports.stream import StreamTransport

logger = logging.getLogger("asyncio")

_SENDFILE_FALLBACK_BLOCK = 16384   # stdlib's transport fallback block size

def _interleave_addrinfos(addrinfos, first_family_count=1):
    """Reorder getaddrinfo() results so address families alternate, the first
    family contributing ``first_family_count`` entries up front (RFC 8305)."""
    by_family = collections.OrderedDict()
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    result = []
    if first_family_count > 1:
        result.extend(queues[0][:first_family_count - 1])
        del queues[0][:first_family_count - 1]
    longest = max((len(q) for q in queues), default=0)
    for i in range(longest):
        for queue in queues:
            if i < len(queue):
                result.append(queue[i])
    return result


class StreamConnectMixin:
    """create_connection & co for Loop (which provides sock_connect,
    _ensure_resolved and _make_socket_transport)."""

    # --- create_connection -------------------------------------------------------

    async def _connect_one(self, exceptions, connected, addr_info, local_addr_infos):
        """Create, bind and connect one socket for ``addr_info``.  Its errors
        go to ``exceptions`` (a list per attempt, as stdlib keeps them)."""
        errors = []
        exceptions.append(errors)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                for lfamily, _, _, _, laddr in local_addr_infos:
                    if _compat.PY310 and lfamily != family:
                        # 3.10+: skip local addresses of another family
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        reason = str(exc).lower() if _compat.PY313 else exc.strerror.lower()
                        errors.append(OSError(
                            exc.errno, f"error while attempting to bind on address {laddr!r}: {reason}"))
                else:
                    if errors:
                        raise errors.pop()
                    raise OSError(f"no matching local address with family={family!r} found")
            await self.sock_connect(sock, address)
            # From here the caller owns it; a happy-eyeballs loser is closed
            # by create_connection once the race is decided.
            connected.append(sock)
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            exceptions = errors = None

    async def _create_connection(self, protocol_factory, host, port, ssl, family, proto, flags,
                                 sock, local_addr, server_hostname, ssl_handshake_timeout,
                                 ssl_shutdown_timeout, happy_eyeballs_delay, interleave,
                                 all_errors):
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        _check_ssl_args(ssl, sock, ssl_handshake_timeout, ssl_shutdown_timeout)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1  # happy eyeballs interleaves families by default

        own_sock = False
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            infos = await self._ensure_resolved((host, port), family=family, type=socket.SOCK_STREAM,
                                                proto=proto, flags=flags)
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            if local_addr is not None:
                laddr_infos = await self._ensure_resolved(local_addr, family=family,
                                                          type=socket.SOCK_STREAM, proto=proto,
                                                          flags=flags)
                if not laddr_infos:
                    raise OSError("getaddrinfo() returned empty list")
            else:
                laddr_infos = None
            if interleave:
                infos = _interleave_addrinfos(infos, interleave)

            exceptions = []
            connected = []   # every socket that finished connecting
            try:
                if happy_eyeballs_delay is None:
                    for addr_info in infos:
                        try:
                            sock = await self._connect_one(exceptions, connected, addr_info,
                                                           laddr_infos)
                            break
                        except OSError:
                            continue
                else:
                    attempts = (functools.partial(self._connect_one, exceptions, connected,
                                                  addr_info, laddr_infos) for addr_info in infos)
                    sock, _, _ = await _staggered.staggered_race(attempts, happy_eyeballs_delay,
                                                                 loop=self)
            except BaseException:
                for other in connected:
                    other.close()
                raise
            # Attempts that connected in the same turn as the winner lost.
            for other in connected:
                if other is not sock:
                    other.close()
            connected = None
            if sock is None:
                flat = [exc for sub in exceptions for exc in sub]
                exceptions = None
                try:
                    if all_errors:
                        raise ExceptionGroup("create_connection failed", flat)  # noqa: F821
                    if len(flat) == 1:
                        raise flat[0]
                    model = str(flat[0])
                    if all(str(exc) == model for exc in flat):
                        raise flat[0]
                    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in flat)))
                finally:
                    flat = None
            own_sock = True
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")

        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname, own_sock=own_sock,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self._debug:
            logger.debug("%r connected to %s:%r: (%r, %r)", transport.get_extra_info("socket"),
                         host, port, transport, protocol)
        return transport, protocol

    async def _create_connection_transport(self, sock, protocol_factory, ssl, server_hostname,
                                           server_side=False, ssl_handshake_timeout=None,
                                           ssl_shutdown_timeout=None, *, own_sock=False):
        """Adopt the connected ``sock`` into a transport and wait for
        connection_made.  ``own_sock``: the loop created it, so close it if
        anything fails before libuv adopts it (a caller's sock= stays open,
        as with stdlib)."""
        try:
            sock.setblocking(False)
            protocol = protocol_factory()
            waiter = self.create_future()
            if ssl:
                sslcontext = None if isinstance(ssl, bool) else ssl
                ssl_protocol = SSLProtocol(self, protocol, sslcontext, waiter, server_side,
                                           server_hostname,
                                           ssl_handshake_timeout=ssl_handshake_timeout,
                                           ssl_shutdown_timeout=ssl_shutdown_timeout)
                raw = self._make_socket_transport(sock, ssl_protocol)
                transport = ssl_protocol._app_transport
            else:
                raw = transport = self._make_socket_transport(sock, protocol, waiter)
        except BaseException:
            if own_sock and sock.fileno() != -1:
                sock.close()
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            # Cancelled before the raw transport's connection_made ran: the
            # TLS layer has nothing to abort yet, so close the raw one too.
            if raw is not transport:
                raw.abort()
            raise
        return transport, protocol

    # --- unix sockets --------------------------------------------------------------

    async def _create_unix_connection(self, protocol_factory, path, ssl, sock, server_hostname,
                                      ssl_handshake_timeout, ssl_shutdown_timeout):
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError("you have to pass server_hostname when using ssl")
        else:
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            if ssl_handshake_timeout is not None:
                raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
            if ssl_shutdown_timeout is not None:
                raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        own_sock = False
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
            own_sock = True
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            sock.setblocking(False)
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname, own_sock=own_sock,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)

    # --- accepted sockets ------------------------------------------------------------

    async def _connect_accepted_socket(self, protocol_factory, sock, ssl, ssl_handshake_timeout,
                                       ssl_shutdown_timeout):
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        _check_ssl_args(ssl, sock, ssl_handshake_timeout, ssl_shutdown_timeout)
        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, "", server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self._debug:
            logger.debug("%r handled: (%r, %r)", transport.get_extra_info("socket"), transport, protocol)
        return transport, protocol

    # --- sendfile --------------------------------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send ``file`` over ``transport``; return the number of bytes sent.

        os.sendfile() on the transport's descriptor once its write buffer has
        drained; with ``fallback``, read and write() the file in blocks when
        that is not possible (not a regular file, say)."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible", _constants._SendfileMode.UNSUPPORTED)
        if mode is _constants._SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is _constants._SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except _compat.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not "
                               f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transport, file, offset, count):
        if not isinstance(transport, StreamTransport):
            raise _compat.SendfileNotAvailableError("sendfile syscall is not supported")
        sock = transport.get_extra_info("socket")
        if sock is None:
            raise _compat.SendfileNotAvailableError("sendfile syscall is not supported")
        _check_sendfile_params(sock, file, offset, count)
        resume_reading = transport.is_reading()
        transport.pause_reading()
        try:
            # Bytes already queued in libuv go first.
            await transport._make_empty_waiter()
            # sock_sendfile's own native path (sockets.py), as stdlib's
            # transport sendfile is its sock_sendfile(fallback=False).
            return await self._sendfile_native_fd(transport._fd, file, offset, count, transport)
        finally:
            transport._reset_empty_waiter()
            if resume_reading:
                transport.resume_reading()

    async def _sendfile_fallback(self, transport, file, offset, count):
        self._check_closed()  # stdlib's run_in_executor refuses
        proto = _SendfileFallbackProtocol(transport)

        async def send(block):
            await proto.drain()
            transport.write(block)

        try:
            return await self._sendfile_read_send(file, offset, count, _SENDFILE_FALLBACK_BLOCK, send)
        finally:
            await proto.restore()


class _SendfileFallbackProtocol(_protocols.Protocol):
    """Stands in for the transport's protocol while the fallback writes the
    file: reading is paused, write flow control is turned into drain()."""

    def __init__(self, transport):
        if not isinstance(transport, _transports._FlowControlMixin):
            raise TypeError("transport should be _FlowControlMixin instance")
        self._transport = transport
        self._proto = transport.get_protocol()
        self._should_resume_reading = transport.is_reading()
        self._should_resume_writing = transport._protocol_paused
        transport.pause_reading()
        transport.set_protocol(self)
        # Already paused: the first drain() waits for resume_writing.
        self._write_ready_fut = transport._loop.create_future() if self._should_resume_writing else None

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._write_ready_fut
        if fut is not None:
            await fut

    def connection_made(self, transport):
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc):
        fut = self._write_ready_fut
        if fut is not None and not fut.done():
            # Losing the connection mid-file is an error even when clean.
            fut.set_exception(exc if exc is not None else ConnectionError("Connection is closed by peer"))
        self._proto.connection_lost(exc)

    def pause_writing(self):
        if self._write_ready_fut is None:
            self._write_ready_fut = self._transport._loop.create_future()

    def resume_writing(self):
        fut = self._write_ready_fut
        if fut is not None:
            self._write_ready_fut = None
            if not fut.done():
                fut.set_result(False)

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self):
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        if self._write_ready_fut is not None:
            self._write_ready_fut.cancel()
        if self._should_resume_writing:
            self._proto.resume_writing()


# --- the public methods, with each CPython version's exact signature ---------------

if _compat.PY312:
    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None, family=0,
                                proto=0, flags=0, sock=None, local_addr=None, server_hostname=None,
                                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                happy_eyeballs_delay=None, interleave=None, all_errors=False):
        return await self._create_connection(
            protocol_factory, host, port, ssl, family, proto, flags, sock, local_addr,
            server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout, happy_eyeballs_delay,
            interleave, all_errors)
elif _compat.PY311:
    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None, family=0,
                                proto=0, flags=0, sock=None, local_addr=None, server_hostname=None,
                                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                happy_eyeballs_delay=None, interleave=None):
        return await self._create_connection(
            protocol_factory, host, port, ssl, family, proto, flags, sock, local_addr,
            server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout, happy_eyeballs_delay,
            interleave, False)
else:
    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None, family=0,
                                proto=0, flags=0, sock=None, local_addr=None, server_hostname=None,
                                ssl_handshake_timeout=None, happy_eyeballs_delay=None,
                                interleave=None):
        return await self._create_connection(
            protocol_factory, host, port, ssl, family, proto, flags, sock, local_addr,
            server_hostname, ssl_handshake_timeout, None, happy_eyeballs_delay, interleave, False)

if _compat.PY311:
    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None):
        return await self._create_unix_connection(protocol_factory, path, ssl, sock, server_hostname,
                                                  ssl_handshake_timeout, ssl_shutdown_timeout)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        return await self._connect_accepted_socket(protocol_factory, sock, ssl,
                                                   ssl_handshake_timeout, ssl_shutdown_timeout)
else:
    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None):
        return await self._create_unix_connection(protocol_factory, path, ssl, sock, server_hostname,
                                                  ssl_handshake_timeout, None)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None):
        return await self._connect_accepted_socket(protocol_factory, sock, ssl,
                                                   ssl_handshake_timeout, None)

create_connection.__doc__ = """Connect to a TCP server at host/port (every getaddrinfo() result is
tried; happy_eyeballs_delay races them) or adopt the connected ``sock``;
return (transport, protocol) once connection_made has run."""
create_unix_connection.__doc__ = """Connect to the unix socket at ``path`` (or adopt ``sock``);
return (transport, protocol)."""
connect_accepted_socket.__doc__ = """Wrap a connection accepted outside asyncio in a transport;
return (transport, protocol)."""
StreamConnectMixin.create_connection = create_connection
StreamConnectMixin.create_unix_connection = create_unix_connection
StreamConnectMixin.connect_accepted_socket = connect_accepted_socket
del create_connection, create_unix_connection, connect_accepted_socket
