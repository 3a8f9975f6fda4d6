"""The loop's sock_* coroutines: non-blocking socket calls that wait for
readiness with add_reader/add_writer, as stdlib's selector loop does.

Each operation first tries the call at once; only when it would block does it
register a callback, and the future's done-callback always unregisters it, so
a cancelled operation leaves nothing behind.
"""
from __future__ import annotations

import errno
import functools
import io
import os
import socket
from asyncio import CancelledError

from . import _compat
from .handles import fs as _fs
from .handles.errors import convert_error
from .transports.base import SelectorWatch

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None

_HAS_IPV6 = hasattr(socket, "AF_INET6")
_SENDFILE_FALLBACK_CHUNK = 256 * 1024


def _check_ssl_socket(sock):
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_ssl_args(with_ssl, sock, ssl_handshake_timeout, ssl_shutdown_timeout):
    """What stdlib's create_* entry points check of their TLS arguments, in
    its order (``with_ssl``: whether the call asked for TLS, as that entry
    point decides it)."""
    if ssl_handshake_timeout is not None and not with_ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not with_ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _check_ssl_socket(sock)


def _ipaddr_info(host, port, family, type, proto, flowinfo=0, scopeid=0):
    """If ``host`` is already a numeric address, the getaddrinfo() entry for
    it; None when it needs resolving."""
    if not hasattr(socket, "inet_pton"):
        return None
    if proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP) or host is None:
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    if port is None:
        port = 0
    elif isinstance(port, bytes) and port == b"":
        port = 0
    elif isinstance(port, str) and port == "":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None
    if family == socket.AF_UNSPEC:
        families = [socket.AF_INET]
        if _HAS_IPV6:
            families.append(socket.AF_INET6)
    else:
        families = [family]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if "%" in host:
        # Scope ids need getaddrinfo to be resolved.
        return None
    for af in families:
        try:
            socket.inet_pton(af, host)
        except OSError:
            continue
        if _HAS_IPV6 and af == socket.AF_INET6:
            return af, type, proto, "", (host, port, flowinfo, scopeid)
        return af, type, proto, "", (host, port)
    return None


def _check_sendfile_params(sock, file, offset, count):
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


def _settle(fut, func, *args):
    """Complete ``fut`` with func(*args)'s result or exception; False, and
    ``fut`` untouched, when the call would block.

    The exception's traceback holds this frame, and through its f_back the
    caller's: ``fut`` is cleared in both (here in ``finally``), as stdlib
    clears it, or the frame -> fut -> exception -> traceback cycle would
    leave all of them to the cyclic GC."""
    try:
        result = func(*args)
    except (BlockingIOError, InterruptedError):
        return False
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
    finally:
        fut = None
    return True


def _call_method(sock, method, args):
    # Looked up on every try, as stdlib does.
    return getattr(sock, method)(*args)


def _connect_result(sock, address):
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        raise OSError(err, f"Connect call failed {address}")


def _accept(sock):
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address


class SocketOpsMixin:
    """sock_* methods for Loop (which provides _add_reader & co)."""

    def _check_nonblocking(self, sock):
        _check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _wait_io(self, fut, sock, writer, callback, *args):
        """Register callback for ``sock`` and unregister once fut is done."""
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        if writer:
            handle = self._add_writer(fd, callback, *args)
            fut.add_done_callback(functools.partial(self._io_done, fd, handle, self._remove_writer))
        else:
            handle = self._add_reader(fd, callback, *args)
            fut.add_done_callback(functools.partial(self._io_done, fd, handle, self._remove_reader))

    def _io_done(self, fd, handle, remove, fut):
        if not handle.cancelled():
            remove(fd)

    def _retry(self, fut, sock, method, *args):
        """Reader/writer callback: try sock.<method>(*args) again; done unless
        it would block.  The method is looked up on every try, as stdlib does."""
        if not fut.done():
            _settle(fut, _call_method, sock, method, args)
        fut = None  # this frame is the traceback's f_back (see _settle)

    async def _sock_call(self, sock, writer, method, *args):
        try:
            return getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._wait_io(fut, sock, writer, self._retry, fut, sock, method, *args)
        try:
            return await fut
        finally:
            fut = None

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from a non-blocking socket."""
        self._check_nonblocking(sock)
        return await self._sock_call(sock, False, "recv", n)

    async def sock_recv_into(self, sock, buf):
        """Receive into ``buf``; return the number of bytes received."""
        self._check_nonblocking(sock)
        return await self._sock_call(sock, False, "recv_into", buf)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to bufsize bytes: (data, address)."""
        self._check_nonblocking(sock)
        return await self._sock_call(sock, False, "recvfrom", bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf: (nbytes, address)."""
        self._check_nonblocking(sock)
        if not nbytes:
            nbytes = len(buf)
        return await self._sock_call(sock, False, "recvfrom_into", buf, nbytes)

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to ``address``; return the number of bytes sent."""
        self._check_nonblocking(sock)
        return await self._sock_call(sock, True, "sendto", data, address)

    async def sock_sendall(self, sock, data):
        """Send all of ``data``; returns None once the kernel has taken it."""
        self._check_nonblocking(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = self.create_future()
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            # Offsets count bytes.  Only cast when needed: PyPy 3.9 sends a
            # slice of a cast view by copying it byte by byte (about 1 s per
            # 8 MiB, on every partial send), so there copy it to bytes once.
            view = memoryview(view.tobytes()) if _compat.PYPY else view.cast("B")
        pos = [n]
        self._wait_io(fut, sock, True, self._sock_sendall_ready, fut, sock, view, pos)
        try:
            return await fut
        finally:
            fut = None

    def _sock_sendall_ready(self, fut, sock, view, pos):
        if fut.done():
            return
        start = pos[0]
        try:
            n = sock.send(view[start:])
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut = None  # no frame -> fut -> exception -> traceback cycle (see _settle)
            return
        start += n
        if start == len(view):
            fut.set_result(None)
        else:
            pos[0] = start

    async def _ensure_resolved(self, address, *, family=0, type=socket.SOCK_STREAM, proto=0, flags=0):
        host, port = address[:2]
        info = _ipaddr_info(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        return await self.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    async def sock_connect(self, sock, address):
        """Connect a non-blocking socket to ``address`` (names are resolved)."""
        self._check_nonblocking(sock)
        if sock.family == socket.AF_INET or (_HAS_IPV6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(address, family=sock.family, type=sock.type,
                                                   proto=sock.proto)
            if not resolved:
                raise OSError(f"getaddrinfo({address!r}) returned empty list")
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._wait_io(fut, sock, True, self._sock_connect_ready, fut, sock, address)
        try:
            return await fut
        finally:
            fut = None

    def _sock_connect_ready(self, fut, sock, address):
        if not fut.done():
            _settle(fut, _connect_result, sock, address)
        fut = None  # this frame is the traceback's f_back (see _settle)

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address); conn is non-blocking."""
        self._check_nonblocking(sock)
        fut = self.create_future()
        self._sock_accept_try(fut, sock, registered=False)
        try:
            return await fut
        finally:
            fut = None

    def _sock_accept_try(self, fut, sock, registered=True):
        if not fut.done() and not _settle(fut, _accept, sock) and not registered:
            self._wait_io(fut, sock, False, self._sock_accept_try, fut, sock)
        fut = None  # this frame is the traceback's f_back (see _settle)

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a file over a connected SOCK_STREAM socket with os.sendfile,
        falling back to read+send when that is not possible (and allowed)."""
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_ssl_socket(sock)
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except _compat.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        return await self._sendfile_native_fd(sock.fileno(), file, offset, count)

    async def _sendfile_native_fd(self, fd, file, offset, count, transport=None):
        """The native half of sock_sendfile and of sendfile on a transport
        (one implementation, stdlib's rules): SendfileNotAvailableError when
        the file cannot be sent with sendfile(2) and nothing was sent yet."""
        if not hasattr(os, "sendfile"):
            raise _compat.SendfileNotAvailableError("os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise _compat.SendfileNotAvailableError("not a regular file") from None
        if transport is None:
            # stdlib's add_writer() makes this check before it waits.
            self._ensure_fd_no_transport(fd)
        if self._closed:
            # No thread pool any more.  stdlib, which fstat()s the file on
            # the calling thread first, returns 0 for an empty file (no
            # count) without touching the loop: so do we, with the same
            # fstat -- only here, where no loop thread is left to block.
            if not count:
                try:
                    if os.fstat(fileno).st_size == 0:
                        return 0
                except OSError:
                    raise _compat.SendfileNotAvailableError("not a regular file") from None
            # Before the first sendfile(2), not after it as stdlib (whose
            # next add_writer refuses): the same exception, no bytes sent;
            # and a closed loop has closed a transport's descriptor, whose
            # number may be reused by now.
            self._check_closed()
        try:
            sender = _NativeSendfile(self, fd, fileno, offset, count, transport)
        except OSError as exc:
            # No descriptor left for our dup: the fallback needs none.
            raise _compat.SendfileNotAvailableError("os.sendfile call failed") from exc
        return await sender.run()

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        self._check_closed()  # stdlib's run_in_executor refuses
        return await self._sendfile_read_send(
            file, offset, count, _SENDFILE_FALLBACK_CHUNK,
            functools.partial(self.sock_sendall, sock))

    async def _sendfile_read_send(self, file, offset, count, blocksize, send):
        """The fallback half of sock_sendfile and of sendfile on a transport
        (stdlib's): read the file in blocks in the default executor and
        ``await send(block)`` for each; the file position ends after the
        bytes sent."""
        if offset:
            file.seek(offset)
        blocksize = min(count, blocksize) if count else blocksize
        buf = bytearray(blocksize)
        total = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        return total
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total  # EOF
                await send(view[:read])
                total += read
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)


class _NativeSendfile:
    """stdlib's os.sendfile() loop (``_sock_sendfile_native_impl``: the same
    sendfile(2) calls, result, errors and final file position), with every
    sendfile(2) on libuv's thread pool (handles/fs.SendfileRequest, on a dup
    of the socket) and the waits for writability on the loop's selector, not
    libuv's epoll, so libuv's view of a transport's descriptor is untouched.

    A transport being sent to calls ``abort`` when it is closed meanwhile,
    before libuv closes its descriptor.  When run() ends early (cancelled,
    aborted), it first waits for the step in flight, which stops after its
    current syscall: nothing writes to the socket after run() returns, and
    the file position counts every byte sent."""

    def __init__(self, loop, fd, fileno, offset, count, transport=None):
        self._loop = loop
        self._fd = fd                # the socket's descriptor, watched for writability
        self._fileno = fileno
        self._offset = offset        # where the file position ends (stdlib's lseek)
        self._total = 0              # bytes sent so far
        self._transport = transport  # the transport sent to, or None (sock_sendfile)
        self._writable = SelectorWatch(loop, fd, writer=True)
        self._idle = None            # future run() waits on for the step in flight
        self._abandoned = False      # run() was closed (its task destroyed)
        self._fut = loop.create_future()
        self._req = _fs.SendfileRequest(loop, fd, fileno, offset, count, self._on_step)

    async def run(self):
        transport = self._transport
        if transport is not None:
            transport._sendfile_active = self
        abandoned = False
        try:
            self._req.step()
            return await self._fut
        except GeneratorExit:
            # The pending task is being destroyed (its loop was closed): the
            # caller's file may be closed by now, so leave its position alone.
            abandoned = True
            raise
        finally:
            if abandoned:
                self._abandoned = True
                self._writable.forget()
                self._req.stop()
                self._req.release()   # or the last completion does (busy)
            else:
                await self._finish()

    async def _finish(self):
        self._writable.stop()
        cancelled = None
        if self._req.busy and not self._loop.is_closed():
            # Ended early (cancelled, aborted) with a step in the pool: it
            # stops after its current syscall; wait for it, so that nothing
            # writes to the socket after we return and the position below
            # counts every byte sent.
            self._req.stop()
            cancelled = await self._wait_idle()
        transport = self._transport
        if transport is not None and transport._sendfile_active is self:
            transport._sendfile_active = None
        self._req.release()
        if self._total > 0:
            # As stdlib: the position follows what was sent.  lseek only
            # sets the open file's offset: no I/O, never blocks.
            os.lseek(self._fileno, self._offset, os.SEEK_SET)
        if cancelled is not None:
            raise cancelled

    async def _wait_idle(self):
        """Wait until no step is in flight, even when cancelled again
        meanwhile; return that CancelledError (or None) for the caller to
        raise once it has finished."""
        cancelled = None
        while self._req.busy:
            self._idle = self._loop.create_future()
            try:
                await self._idle
            except CancelledError as exc:
                cancelled = exc
        return cancelled

    def abort(self, exc):
        """The transport is closing: stop watching its descriptor now."""
        self._writable.stop()
        self._req.stop()
        if not self._fut.done():
            self._fut.set_exception(exc)

    def _on_writable(self):
        self._writable.stop()
        if self._fut.done() or self._req.busy:
            return
        try:
            self._req.step()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fut.set_exception(exc)

    def _on_step(self, status):
        req = self._req
        if status == 0:
            sent = req.sent
            self._total += sent
            self._offset += sent
        idle, self._idle = self._idle, None
        if self._abandoned or self._loop.is_closed():
            req.release()   # run() will never resume
            return
        if idle is not None and not idle.done():
            idle.set_result(None)
        fut = self._fut
        if fut.done():
            return
        if status < 0:
            fut.set_exception(convert_error(status))
            return
        outcome = req.outcome
        if outcome == _fs.SF_AGAIN:
            self._writable.start(self._on_writable)
        elif outcome == _fs.SF_ERROR:
            exc = OSError(req.error, os.strerror(req.error))
            if self._total == 0:
                # Not a file sendfile(2) can read (a pipe, say), among other
                # reasons: stdlib then falls back to read + send.
                err = _compat.SendfileNotAvailableError("os.sendfile call failed")
                err.__cause__ = exc
                fut.set_exception(err)
            else:
                if exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
                    new_exc = ConnectionError("socket is not connected", errno.ENOTCONN)
                    new_exc.__cause__ = exc
                    exc = new_exc
                fut.set_exception(exc)
        elif outcome == _fs.SF_NOTREG:
            err = _compat.SendfileNotAvailableError("not a regular file")
            err.__cause__ = OSError(req.error, os.strerror(req.error))
            fut.set_exception(err)
        else:   # SF_DONE, SF_EOF (SF_STOPPED only follows abort: fut is done)
            fut.set_result(self._total)
