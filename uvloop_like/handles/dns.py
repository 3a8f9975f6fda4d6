"""uv_getaddrinfo_t / uv_getnameinfo_t requests (libuv's thread pool)."""
from __future__ import annotations

import platform
import socket

from .._ffi import CHAR_ARRAY, GETADDRINFO_P, GETNAMEINFO_P, INT_P, REQ_P, UINT_P, ffi, lib
from .base import check_open
from .errors import convert_error

_HOSTLEN = 64  # > INET6_ADDRSTRLEN (46)

# PyPy's socket.getaddrinfo writes a scoped IPv6 host as "fe80::1%lo";
# CPython (3.7+) leaves the scope to the tuple's scope_id only.  Match the
# interpreter we run on.
_SCOPE_IN_HOST = platform.python_implementation() == "PyPy"


def _with_scope(host, scope_id):
    name = ffi.new(CHAR_ARRAY, lib.IF_NAMESIZE + 1)
    if lib.if_indextoname(scope_id, name) == ffi.NULL:
        return "%s%%%d" % (host, scope_id)
    return "%s%%%s" % (host, ffi.string(name).decode("ascii", "replace"))


def _intenum(enum_cls, value):
    try:
        return enum_cls(value)
    except ValueError:
        return value


class _Request:
    __slots__ = ("_loop", "_ptr", "_data", "_callback", "done")

    _ctype = None

    def __init__(self, loop, callback):
        check_open(loop)
        self._loop = loop
        self._ptr = ffi.new(self._ctype)
        self._data = ffi.new_handle(self)
        self._ptr.data = self._data
        self._callback = callback
        self.done = False

    def _started(self, status):
        if status < 0:
            self._data = self._callback = None  # libuv never saw it (see _on_complete)
            raise convert_error(status)
        # Reachable until libuv has called back: it owns a pointer to _ptr.
        self._loop._uv_requests.add(self)

    def cancel(self):
        """Ask libuv to cancel the request if the pool has not started it;
        the completion then arrives with UV_ECANCELED."""
        if not self.done:
            lib.uvl_cancel(ffi.cast(REQ_P, self._ptr))

    def _on_complete(self, status):
        self.done = True
        self._loop._uv_requests.discard(self)
        # libuv is done with the request: break the self -> ffi handle ->
        # self cycle, and let go of the callback (and the loop it refers to).
        self._data = None
        callback, self._callback = self._callback, None
        try:
            result = convert_error(status) if status < 0 else self._result()
        finally:
            self._release()
        callback(result)

    def _result(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _release(self):
        pass


class GetAddrInfoRequest(_Request):
    """``uv_getaddrinfo``; the callback gets a list like socket.getaddrinfo's,
    or the exception."""

    __slots__ = ()
    _ctype = GETADDRINFO_P

    def __init__(self, loop, host, port, family, type, proto, flags, callback):
        super().__init__(loop, callback)
        status = lib.uvl_getaddrinfo(
            loop._core.uv, self._ptr,
            ffi.NULL if host is None else host,
            ffi.NULL if port is None else port,
            family, type, proto, flags)
        self._started(status)

    def _result(self):
        out = []
        host = ffi.new(CHAR_ARRAY, _HOSTLEN)
        port = ffi.new(INT_P)
        flowinfo = ffi.new(UINT_P)
        scope_id = ffi.new(UINT_P)
        ai = self._ptr.addrinfo
        while ai != ffi.NULL:
            family = lib.uvl_sockaddr_info(ai.ai_addr, host, _HOSTLEN, port, flowinfo, scope_id)
            if family == socket.AF_INET:
                addr = (ffi.string(host).decode("ascii"), port[0])
            elif family == socket.AF_INET6:
                text = ffi.string(host).decode("ascii")
                if _SCOPE_IN_HOST and scope_id[0]:
                    text = _with_scope(text, scope_id[0])
                addr = (text, port[0], flowinfo[0], scope_id[0])
            else:
                addr = None
            if addr is not None:
                canon = ""
                if ai.ai_canonname != ffi.NULL:
                    canon = ffi.string(ai.ai_canonname).decode("utf-8", "surrogateescape")
                out.append((_intenum(socket.AddressFamily, ai.ai_family),
                            _intenum(socket.SocketKind, ai.ai_socktype),
                            ai.ai_protocol, canon, addr))
            ai = ai.ai_next
        return out

    def _release(self):
        if self._ptr.addrinfo != ffi.NULL:
            lib.uv_freeaddrinfo(self._ptr.addrinfo)
            self._ptr.addrinfo = ffi.NULL


class GetNameInfoRequest(_Request):
    """``uv_getnameinfo`` of a numeric address; the callback gets
    ``(host, service)`` or the exception."""

    __slots__ = ()
    _ctype = GETNAMEINFO_P

    def __init__(self, loop, family, host, port, flowinfo, scope_id, flags, callback):
        super().__init__(loop, callback)
        status = lib.uvl_getnameinfo(loop._core.uv, self._ptr, family, host, port,
                                     flowinfo, scope_id, flags)
        self._started(status)

    def _result(self):
        return (ffi.string(self._ptr.host).decode("utf-8", "surrogateescape"),
                ffi.string(self._ptr.service).decode("utf-8", "surrogateescape"))
