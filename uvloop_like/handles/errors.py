"""libuv status codes -> the exceptions CPython's stdlib loop raises."""
from __future__ import annotations

import errno
import os
import socket

from .._ffi import ffi, lib

# libuv's getaddrinfo errors, by name, and the socket.EAI_* code Python uses.
_EAI_NAMES = {
    "EAI_ADDRFAMILY": "EAI_ADDRFAMILY",
    "EAI_AGAIN": "EAI_AGAIN",
    "EAI_BADFLAGS": "EAI_BADFLAGS",
    "EAI_BADHINTS": "EAI_BADFLAGS",
    "EAI_FAIL": "EAI_FAIL",
    "EAI_FAMILY": "EAI_FAMILY",
    "EAI_MEMORY": "EAI_MEMORY",
    "EAI_NODATA": "EAI_NODATA",
    "EAI_NONAME": "EAI_NONAME",
    "EAI_OVERFLOW": "EAI_OVERFLOW",
    "EAI_PROTOCOL": "EAI_PROTOCOL",
    "EAI_SERVICE": "EAI_SERVICE",
    "EAI_SOCKTYPE": "EAI_SOCKTYPE",
}

_cache: dict = {}
_ECLOSED = lib.UVL_ECLOSED  # uvl.c: the loop is closed


def uv_err_name(status: int) -> str:
    """The libuv name of a status code, e.g. "ECONNRESET"."""
    name = _cache.get(status)
    if name is None:
        name = ffi.string(lib.uv_err_name(status)).decode("ascii", "replace")
        _cache[status] = name
    return name


def gaierror(eai: int) -> socket.gaierror:
    """socket.gaierror for the platform's EAI_* code ``eai``, with its
    gai_strerror() text, as socket.getaddrinfo raises it."""
    return socket.gaierror(eai, ffi.string(lib.gai_strerror(eai)).decode())


def convert_error(status: int) -> BaseException:
    """Return the exception CPython raises for a negative libuv status.

    Maps by libuv's error *name* to the platform errno, so the result is the
    same OSError subclass (ConnectionResetError, BrokenPipeError, ...) with the
    same strerror that the stdlib loop produces; getaddrinfo errors become
    socket.gaierror with the platform's EAI_* code and gai_strerror text.
    """
    if status == _ECLOSED:
        # uvl.c refused a call on a closed loop (DESIGN.md rule 10).
        return RuntimeError("Event loop is closed")
    name = uv_err_name(status)
    if name.startswith("EAI_"):
        eai = getattr(socket, _EAI_NAMES.get(name, name), None)
        if eai is None:
            return socket.gaierror(status, ffi.string(lib.uv_strerror(status)).decode())
        if name == "EAI_SYSTEM":  # pragma: no cover - libuv maps these to errno codes
            return OSError(status, os.strerror(-status))
        return gaierror(eai)
    if name == "ECANCELED":
        import asyncio

        return asyncio.CancelledError()
    code = getattr(errno, name, None)
    if code is None:
        # Names libuv invents (EOF, UNKNOWN, ...): no errno; keep libuv's text.
        return OSError(ffi.string(lib.uv_strerror(status)).decode())
    return OSError(code, os.strerror(code))
