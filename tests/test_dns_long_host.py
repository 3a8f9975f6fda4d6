"""getaddrinfo / getnameinfo of host names longer than 255 bytes (issue 8, A9).

libuv refuses such a host with UV_EINVAL (its fix for GHSA-f74f-cvh7-c6q6);
the C library, and so socket.getaddrinfo and stdlib's loop, answer with
socket.gaierror.  Both loops must raise exactly what the socket module
raises for the same arguments: type, errno and message.
"""
from __future__ import annotations

import socket

import pytest
from loop_testutil import run

# Labels of at most 63 bytes (valid for IDNA), the whole name over 255 bytes.
_LONG_NAME = ".".join(["a" * 63] * 4) + ".invalid"          # 264 bytes
_LONG_HOSTS = [
    pytest.param(_LONG_NAME, id="str-264"),
    pytest.param(_LONG_NAME.encode(), id="bytes-264"),
    pytest.param(b"a" * 256, id="bytes-256-one-label"),
    pytest.param(b"a" * 255, id="bytes-255-one-label"),
    pytest.param(b"a" * 70000, id="bytes-70000"),
    pytest.param("a" * 256, id="str-256-idna-label-too-long"),
    pytest.param("\u00e9" * 200, id="str-non-ascii-idna"),
    pytest.param("\u00e9".encode() * 200, id="bytes-non-ascii"),
]


def _outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return ("raise", type(exc), exc.args)


@pytest.mark.parametrize("host", _LONG_HOSTS)
def test_getaddrinfo_long_host_raises_what_socket_raises(loop, host):
    expected = _outcome(socket.getaddrinfo, host, 80, 0, socket.SOCK_STREAM)

    async def lookup():
        return await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM)

    got = _outcome(lambda: run(loop, lookup()))
    assert got == expected
    assert got[0] == "raise"  # none of these names resolves


@pytest.mark.parametrize("host", ["a" * 256, _LONG_NAME, "1" * 300])
def test_getnameinfo_long_host_raises_what_socket_raises(loop, host):
    expected = _outcome(socket.getnameinfo, (host, 80), 0)

    async def lookup():
        return await loop.getnameinfo((host, 80))

    got = _outcome(lambda: run(loop, lookup()))
    assert got == expected
    assert got[0] == "raise"
