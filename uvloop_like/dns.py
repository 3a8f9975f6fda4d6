"""getaddrinfo / getnameinfo on libuv's thread pool (uv_getaddrinfo).

Arguments are checked as ``socket.getaddrinfo`` checks them, so bad input
raises what stdlib raises; the few inputs libuv cannot express (a numeric
check that needs a resolver, exotic sockaddr tuples) go to the default
executor with ``socket.getnameinfo`` itself, exactly as stdlib does.
"""
from __future__ import annotations

import operator
import socket
import struct

from . import _compat
from ._futures import settler
from .handles.dns import GetAddrInfoRequest, GetNameInfoRequest
from .handles.errors import gaierror


def _int_arg(value):
    """An int argument of socket.getaddrinfo, with its TypeError messages."""
    if _compat.PYPY:
        # PyPy's socket module: ints only, kept to their low 32 bits as C does.
        if not isinstance(value, int):
            raise TypeError(f"expected integer, got {type(value).__name__} object")
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value >= 1 << 31 else value
    try:
        return operator.index(value)
    except TypeError:
        if _compat.PY310:
            raise
        if isinstance(value, float):
            raise TypeError("integer argument expected, got float") from None
        raise TypeError(f"an integer is required (got type {type(value).__name__})") from None


def _encode_host(host):
    if host is None:
        return None
    if isinstance(host, str):
        return host.encode("idna")
    if isinstance(host, bytes):  # not bytearray: socket.getaddrinfo refuses it
        return host
    raise TypeError("getaddrinfo() argument 1 must be string or None")


_LONG_MAX = 2 ** (8 * struct.calcsize("l") - 1) - 1  # C long, what socket.getaddrinfo parses
_LONG_MIN = -_LONG_MAX - 1


def _encode_port_pypy(port):
    # PyPy's socket.getaddrinfo: a C int (bool too), str or bytes.
    if isinstance(port, int):
        if not -(1 << 31) <= port < 1 << 31:
            raise OverflowError("int too large to convert to int")
        return str(int(port)).encode("ascii")
    if isinstance(port, str):
        return port.encode("utf-8")
    if isinstance(port, bytes):
        return port
    raise TypeError("getaddrinfo() argument 2 must be integer or string")


def _encode_port(port):
    if port is None:
        return None
    if _compat.PYPY:
        return _encode_port_pypy(port)
    if type(port) is int:  # exactly int, as socket.getaddrinfo (True is refused)
        # Before 3.12 socket.getaddrinfo parsed the port as a C long; 3.12+
        # formats any int, so a huge one fails later as EAI_SERVICE.
        if not _compat.PY312 and not _LONG_MIN <= port <= _LONG_MAX:
            raise OverflowError("Python int too large to convert to C long")
        return str(port).encode("ascii")
    if isinstance(port, str):
        return port.encode("utf-8")
    if isinstance(port, bytes):  # not bytearray: socket.getaddrinfo refuses it
        return port
    raise OSError("Int or String expected")


_UV_HOST_MAX = 255  # uv_getaddrinfo's hostname buffer is 256 bytes with the NUL


async def getaddrinfo(loop, host, port, family=0, type=0, proto=0, flags=0):
    # stdlib's run_in_executor() refuses a closed loop before the arguments
    # are looked at.
    loop._check_closed()
    bhost = _encode_host(host)
    bport = _encode_port(port)
    family = _int_arg(family)
    type = _int_arg(type)
    proto = _int_arg(proto)
    flags = _int_arg(flags)
    if bhost is None and bport is None:
        raise gaierror(socket.EAI_NONAME)
    if (bhost == b"" or b"\0" in (bhost or b"") or b"\0" in (bport or b"")
            or (bhost is not None and (len(bhost) > _UV_HOST_MAX or not bhost.isascii()))):
        # Edge cases libuv's own hostname handling treats differently from the
        # C library: let socket.getaddrinfo decide, off the loop.  (libuv
        # refuses a host longer than 255 bytes with EINVAL, its fix for
        # GHSA-f74f-cvh7-c6q6, where the C library says EAI_NONAME; and it
        # runs its own IDNA conversion over non-ASCII bytes.)
        return await loop.run_in_executor(None, socket.getaddrinfo, host, port,
                                          family, type, proto, flags)
    fut = loop.create_future()
    done = settler(loop, fut)

    req = GetAddrInfoRequest(loop, bhost, bport, family, type, proto, flags, done)
    try:
        return await fut
    except BaseException:
        req.cancel()
        raise


def _numeric_family(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError, TypeError):
            continue
        return family
    return None


async def getnameinfo(loop, sockaddr, flags=0):
    loop._check_closed()  # first, as stdlib's run_in_executor()
    family = None
    if (isinstance(sockaddr, tuple) and len(sockaddr) in (2, 4)
            and isinstance(sockaddr[0], str) and isinstance(flags, int)
            and all(isinstance(x, int) for x in sockaddr[1:])):
        family = _numeric_family(sockaddr[0])
        if family == socket.AF_INET and len(sockaddr) != 2:
            family = None
        elif family is not None:
            port = sockaddr[1]
            flowinfo = sockaddr[2] if len(sockaddr) == 4 else 0
            scope_id = sockaddr[3] if len(sockaddr) == 4 else 0
            if not (0 <= port <= 0xFFFF and 0 <= flowinfo <= 0xFFFFF and 0 <= scope_id <= 0xFFFFFFFF
                    and -(2 ** 31) <= flags < 2 ** 31):
                family = None
    if family is None:
        # Names to resolve first, and malformed tuples: stdlib's own path, so
        # the same result or the same exception.
        return await loop.run_in_executor(None, socket.getnameinfo, sockaddr, flags)
    fut = loop.create_future()
    done = settler(loop, fut)

    req = GetNameInfoRequest(loop, family, sockaddr[0].encode("ascii"), port, flowinfo, scope_id,
                             flags, done)
    try:
        return await fut
    except BaseException:
        req.cancel()
        raise
