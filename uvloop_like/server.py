"""Listening: create_server, create_unix_server and the accept loop that
asyncio.base_events.Server drives (``_start_serving``/``_stop_serving``).

The Server returned is stdlib's own ``asyncio.base_events.Server`` (close,
wait_closed, serve_forever, ``async with``, close_clients... with each
version's semantics); it calls back into ``_start_serving`` and
``_stop_serving`` here.  Accepting is stdlib's: up to ``backlog`` accept()
calls per readiness of the listening socket on the loop's selector, and a
one second back-off when out of descriptors (libuv's own accept would drop
those clients instead).  Each accepted socket is handed to libuv.
"""
from __future__ import annotations

import collections.abc
import errno
import functools
import itertools
import logging
import os
import socket
import stat
import sys
from asyncio import base_events as _base_events
from asyncio import tasks as _tasks
from asyncio import trsock

from . import _compat
from .handles import fs as _fs
from .sockets import _check_ssl_args
from .sslproto import SSLProtocol

logger = logging.getLogger("asyncio")

_ACCEPT_RETRY_DELAY = 1
_HAS_IPV6 = hasattr(socket, "AF_INET6")


def _set_reuseport(sock):
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError("reuse_port not supported by socket module, "
                         "SO_REUSEPORT defined but not implemented.") from None


def _new_server(loop, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                ssl_shutdown_timeout):
    if _compat.PY311:
        return _base_events.Server(loop, sockets, protocol_factory, ssl, backlog,
                                   ssl_handshake_timeout, ssl_shutdown_timeout)
    return _base_events.Server(loop, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout)


class ServerMixin:
    """create_server & co for Loop."""

    # --- create_server -------------------------------------------------------------

    async def _create_server_getaddrinfo(self, host, port, family, flags):
        infos = await self._ensure_resolved((host, port), family=family, type=socket.SOCK_STREAM,
                                            flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    async def _create_server(self, protocol_factory, host, port, family, flags, sock, backlog, ssl,
                             reuse_address, reuse_port, keep_alive, ssl_handshake_timeout,
                             ssl_shutdown_timeout, start_serving):
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_ssl_args(ssl is not None, sock, ssl_handshake_timeout, ssl_shutdown_timeout)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if host == "":
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            # gather() below binds its tasks to the running loop (or, with none
            # running, to the policy's): refuse here, not in a task that a
            # coro.send() driver would wait for forever.
            self._check_closed()
            lookups = [self._create_server_getaddrinfo(h, port, family=family, flags=flags)
                       for h in hosts]
            infos = await _tasks.gather(*lookups)
            infos = set(itertools.chain.from_iterable(infos))
            sockets = []
            completed = False
            try:
                for af, socktype, proto, _, sa in infos:
                    try:
                        sock = socket.socket(af, socktype, proto)
                    except OSError:
                        # A family/type/protocol this host cannot do.
                        if self._debug:
                            logger.warning("create_server() failed to create socket.socket(%r, %r, %r)",
                                           af, socktype, proto, exc_info=True)
                        continue
                    sockets.append(sock)
                    if reuse_address:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                    if reuse_port:
                        _set_reuseport(sock)
                    if keep_alive:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                    if _HAS_IPV6 and af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                        # One socket per family: no dual-stack listening.
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                    try:
                        sock.bind(sa)
                    except OSError as err:
                        reason = str(err).lower() if _compat.PY313 else err.strerror.lower()
                        msg = "error while attempting to bind on address %r: %s" % (sa, reason)
                        if _compat.PY313 and err.errno == errno.EADDRNOTAVAIL:
                            # 3.13: the family is probably disabled (bpo-30945)
                            sockets.pop()
                            sock.close()
                            if self._debug:
                                logger.warning(msg)
                            continue
                        raise OSError(err.errno, msg) from None
                if _compat.PY313 and not sockets:
                    raise OSError("could not bind on any address out of %r" % ([info[4] for info in infos],))
                completed = True
            finally:
                if not completed:
                    for s in sockets:
                        s.close()
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]
        for s in sockets:
            s.setblocking(False)
        server = _new_server(self, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                             ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            # One turn, as stdlib, so the listening sockets are being watched.
            await _tasks.sleep(0)
        if self._debug:
            logger.info("%r is serving", server)
        return server

    # --- create_unix_server --------------------------------------------------------

    async def _create_unix_server(self, protocol_factory, path, sock, backlog, ssl,
                                  ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                                  cleanup_socket):
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_ssl_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            if path[0] not in (0, "\x00"):  # not an abstract socket (str or bytes)
                await self._remove_stale_unix_socket(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        if cleanup_socket:
            name = sock.getsockname()
            if name and name[0] not in (0, "\x00"):
                try:
                    self._unix_server_sockets[sock] = (await _fs.stat(self, name))[1]
                except FileNotFoundError:
                    pass
                except BaseException:
                    if path is not None:
                        sock.close()   # ours; a sock= stays the caller's
                    raise
        sock.setblocking(False)
        server = _new_server(self, [sock], protocol_factory, ssl, backlog, ssl_handshake_timeout,
                             ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _tasks.sleep(0)
        return server

    # --- the accept loop (asyncio.Server calls these) -----------------------------

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Accept connections on listening ``sock``."""
        self._add_reader(sock.fileno(), self._accept_connection, protocol_factory, sock, sslcontext,
                         server, backlog, ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        # A unix socket file this loop created is removed (3.13's
        # cleanup_socket), unless something else has replaced it since.
        path = sock.getsockname() if sock in self._unix_server_sockets else None
        self._remove_reader(sock.fileno())
        sock.close()
        if path is not None:
            self._unlink_unix_socket(path, self._unix_server_sockets.pop(sock))

    async def _remove_stale_unix_socket(self, path):
        """Before binding ``path`` (stdlib's check): remove it if it is a
        socket file, a previous server's.  stat and unlink run on libuv's
        thread pool, never on the loop thread."""
        try:
            mode = (await _fs.stat(self, path))[0]
            if stat.S_ISSOCK(mode):
                await _fs.unlink(self, path)
        except FileNotFoundError:
            pass
        except OSError as err:
            # The directory may only allow creating the socket.
            logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)

    def _unlink_unix_socket(self, path, prev_ino):
        """3.13's cleanup_socket at Server.close(): unlink ``path`` if its
        inode is still the one bound, so a file that replaced it survives.
        As stdlib, at once, inside close(): the stat and the unlink run in
        the native layer (handles/fs.py unlink_if_same), not as Python-level
        os calls on the loop thread.  fstat() of the listening socket would
        be no substitute: it describes the socket, not the file at
        ``path``."""
        try:
            _fs.unlink_if_same(path, prev_ino)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    def _accept_connection(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
                           ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.call_exception_handler({
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": trsock.TransportSocket(sock),
                    })
                    self._remove_reader(sock.fileno())
                    self.call_later(_ACCEPT_RETRY_DELAY, self._start_serving, protocol_factory, sock,
                                    sslcontext, server, backlog, ssl_handshake_timeout,
                                    ssl_shutdown_timeout)
                    return
                raise
            self._core.count_accepted()  # loop.stats()
            self._accept_one(protocol_factory, conn, {"peername": addr}, sslcontext, server,
                             ssl_handshake_timeout, ssl_shutdown_timeout)

    def _accept_one(self, protocol_factory, conn, extra, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout):
        protocol = None
        transport = None
        try:
            protocol = protocol_factory()
            if sslcontext:
                waiter = self.create_future()
                ssl_protocol = SSLProtocol(self, protocol, sslcontext, waiter, server_side=True,
                                           ssl_handshake_timeout=ssl_handshake_timeout,
                                           ssl_shutdown_timeout=ssl_shutdown_timeout)
                self._make_socket_transport(conn, ssl_protocol, extra=extra, server=server)
                transport = ssl_protocol._app_transport
                waiter.add_done_callback(
                    functools.partial(self._on_accepted_handshake, transport, protocol))
            else:
                transport = self._make_socket_transport(conn, protocol, extra=extra, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if conn.fileno() != -1:
                conn.close()  # not adopted by libuv: still ours to close
            if self._debug:
                context = {"message": "Error on transport creation for incoming connection",
                           "exception": exc}
                if protocol is not None:
                    context["protocol"] = protocol
                if transport is not None:
                    context["transport"] = transport
                self.call_exception_handler(context)

    def _on_accepted_handshake(self, transport, protocol, waiter):
        """The TLS handshake of an accepted connection ended: on failure,
        close it and (in debug mode, as stdlib) report it."""
        if waiter.cancelled():
            transport.close()
            return
        exc = waiter.exception()
        if exc is None:
            return
        transport.close()
        if self._debug:
            self.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
                "protocol": protocol,
                "transport": transport,
            })


# --- the public methods, with each CPython version's exact signature ---------------

if _compat.PY313:
    async def create_server(self, protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                            flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None,
                            reuse_address=None, reuse_port=None, keep_alive=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None, start_serving=True):
        return await self._create_server(protocol_factory, host, port, family, flags, sock, backlog,
                                         ssl, reuse_address, reuse_port, keep_alive,
                                         ssl_handshake_timeout, ssl_shutdown_timeout, start_serving)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100,
                                 ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                 start_serving=True, cleanup_socket=True):
        return await self._create_unix_server(protocol_factory, path, sock, backlog, ssl,
                                              ssl_handshake_timeout, ssl_shutdown_timeout,
                                              start_serving, cleanup_socket)
elif _compat.PY311:
    async def create_server(self, protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                            flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None,
                            reuse_address=None, reuse_port=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, start_serving=True):
        return await self._create_server(protocol_factory, host, port, family, flags, sock, backlog,
                                         ssl, reuse_address, reuse_port, None,
                                         ssl_handshake_timeout, ssl_shutdown_timeout, start_serving)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100,
                                 ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                 start_serving=True):
        return await self._create_unix_server(protocol_factory, path, sock, backlog, ssl,
                                              ssl_handshake_timeout, ssl_shutdown_timeout,
                                              start_serving, False)
else:
    async def create_server(self, protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                            flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None,
                            reuse_address=None, reuse_port=None, ssl_handshake_timeout=None,
                            start_serving=True):
        return await self._create_server(protocol_factory, host, port, family, flags, sock, backlog,
                                         ssl, reuse_address, reuse_port, None,
                                         ssl_handshake_timeout, None, start_serving)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100,
                                 ssl=None, ssl_handshake_timeout=None, start_serving=True):
        return await self._create_unix_server(protocol_factory, path, sock, backlog, ssl,
                                              ssl_handshake_timeout, None, start_serving, False)

create_server.__doc__ = """Create a TCP server listening on host/port (a name, '' or None for all
interfaces, or a list of them) or on ``sock``; return an asyncio Server."""
create_unix_server.__doc__ = """Create a unix socket server listening on ``path`` (an abstract
socket when it starts with a NUL byte) or on ``sock``; return an asyncio Server."""
ServerMixin.create_server = create_server
ServerMixin.create_unix_server = create_unix_server
del create_server, create_unix_server
