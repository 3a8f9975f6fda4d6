"""loop.getaddrinfo / loop.getnameinfo give what socket.getaddrinfo /
socket.getnameinfo give: the same list, or the same exception (type and
errno).  Only local names and numeric addresses: no test needs a resolver."""
from __future__ import annotations

import asyncio
import itertools
import socket

import pytest
from loop_testutil import run


def _ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_available()


def _sync_outcome(func, *args, **kwargs):
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return _exc_outcome(exc)


def _exc_outcome(exc):
    errno_ = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    return ("raise", type(exc), errno_)


async def _async_outcome(coro):
    try:
        return ("ok", await coro)
    except Exception as exc:
        return _exc_outcome(exc)


HOSTS = ["localhost", "127.0.0.1", "::1", "0.0.0.0", "::", None, "127.1", "0x7f.1"]
PORTS = [0, 80, "80", "http", None, b"443", "domain"]
FAMILIES = [0, socket.AF_INET, socket.AF_INET6, socket.AF_UNSPEC]
TYPES = [0, socket.SOCK_STREAM, socket.SOCK_DGRAM]
FLAGS = [0, socket.AI_PASSIVE, socket.AI_NUMERICHOST, socket.AI_CANONNAME,
         socket.AI_NUMERICSERV, socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
         socket.AI_ADDRCONFIG, socket.AI_V4MAPPED | socket.AI_ALL]


@pytest.mark.parametrize("host", HOSTS, ids=repr)
def test_getaddrinfo_matches_socket(loop, host):
    if host in ("::1", "::") and not HAS_IPV6:
        pytest.skip("no IPv6")
    cases = []
    for port, family, type_, flags in itertools.product(PORTS, FAMILIES, TYPES, FLAGS):
        if host == "localhost" and family != socket.AF_INET and not flags & socket.AI_NUMERICHOST:
            # Answered by /etc/hosts for IPv4 only: an IPv6 lookup of
            # "localhost" may go to a (missing) DNS server and take seconds.
            continue
        cases.append((port, family, type_, flags))

    async def main():
        results = []
        for port, family, type_, flags in cases:
            got = await _async_outcome(loop.getaddrinfo(host, port, family=family, type=type_,
                                                        flags=flags))
            results.append(got)
        return results

    expected = [_sync_outcome(socket.getaddrinfo, host, port, family, type_, 0, flags)
                for port, family, type_, flags in cases]
    got = run(loop, main(), timeout=50)
    assert len(cases) > 100
    mismatches = [(c, e, g) for c, e, g in zip(cases, expected, got) if e != g]
    assert not mismatches, "\n".join(
        f"host={host!r} port,family,type,flags={c!r}: socket={e!r} loop={g!r}"
        for c, e, g in mismatches[:10])
    # The table exercised both outcomes.
    assert any(e[0] == "ok" for e in expected)


def test_getaddrinfo_proto(loop):
    async def main():
        return await loop.getaddrinfo("127.0.0.1", 80, proto=socket.IPPROTO_UDP)

    assert run(loop, main()) == socket.getaddrinfo("127.0.0.1", 80, 0, 0, socket.IPPROTO_UDP)


def test_getaddrinfo_result_types(loop):
    infos = run(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert infos
    family, type_, proto, canon, addr = infos[0]
    assert family is socket.AF_INET
    assert type_ is socket.SOCK_STREAM
    assert isinstance(proto, int)
    assert canon == ""
    assert addr == ("127.0.0.1", 80)


def test_getaddrinfo_canonname_localhost(loop):
    expected = socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                  socket.AI_CANONNAME)
    got = run(loop, loop.getaddrinfo("localhost", 80, family=socket.AF_INET,
                                     type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME))
    assert got == expected


ERROR_CASES = [
    # (host, port, kwargs)
    ("256.256.256.256", 80, {"flags": socket.AI_NUMERICHOST}),
    ("not-numeric", 80, {"flags": socket.AI_NUMERICHOST}),
    ("127.0.0.1", 80, {"family": socket.AF_INET6, "flags": socket.AI_NUMERICHOST}),
    ("::1", 80, {"family": socket.AF_INET, "flags": socket.AI_NUMERICHOST}),
    ("127.0.0.1", "no-such-service-name", {}),
    ("127.0.0.1", "http", {"flags": socket.AI_NUMERICSERV}),
    ("127.0.0.1", 80, {"type": 12345}),
    ("127.0.0.1", 80, {"family": 12345}),
    ("127.0.0.1", 80, {"flags": 0x7FFF0000}),
    (None, None, {}),
    ("127.0.0.1", 70000, {}),
    ("127.0.0.1", -1, {}),
    ("127.0.0.1", "", {}),
    ("", 80, {}),
    ("", 80, {"flags": socket.AI_NUMERICHOST}),
    ("127.0.0.1\0", 80, {}),
    ("127.0.0.1", "8\x000", {}),
    ("127.0.0.1", 80, {"type": socket.SOCK_RAW, "proto": 9999}),
]


@pytest.mark.parametrize("host,port,kwargs", ERROR_CASES, ids=repr)
def test_getaddrinfo_errors_match_socket(loop, host, port, kwargs):
    expected = _sync_outcome(socket.getaddrinfo, host, port, **kwargs)
    got = run(loop, _async_outcome(loop.getaddrinfo(host, port, **kwargs)))
    assert got == expected


def test_getaddrinfo_error_is_gaierror_with_errno(loop):
    with pytest.raises(socket.gaierror) as exc_info:
        run(loop, loop.getaddrinfo("256.1.1.1", 80, flags=socket.AI_NUMERICHOST))
    with pytest.raises(socket.gaierror) as expected:
        socket.getaddrinfo("256.1.1.1", 80, flags=socket.AI_NUMERICHOST)
    assert exc_info.value.errno == expected.value.errno
    assert exc_info.value.strerror == expected.value.strerror
    assert str(exc_info.value) == str(expected.value)


def test_getaddrinfo_ipv6_scope_id(loop):
    try:
        expected = socket.getaddrinfo("fe80::1%lo", 80, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pytest.skip("this kernel/libc does not resolve scoped IPv6 addresses")
    got = run(loop, loop.getaddrinfo("fe80::1%lo", 80, flags=socket.AI_NUMERICHOST))
    assert got == expected
    if hasattr(socket, "if_nametoindex"):  # (PyPy's socket module lacks it)
        assert got[0][4][3] == socket.if_nametoindex("lo")


def test_getaddrinfo_bytes_and_idna(loop):
    expected = socket.getaddrinfo(b"127.0.0.1", b"80")
    assert run(loop, loop.getaddrinfo(b"127.0.0.1", b"80")) == expected


def test_getaddrinfo_concurrent(loop):
    async def main():
        return await asyncio.gather(*[loop.getaddrinfo("127.0.0.1", i, type=socket.SOCK_STREAM)
                                      for i in range(1, 200)])

    results = run(loop, main())
    assert [r[0][4] for r in results] == [("127.0.0.1", i) for i in range(1, 200)]


def test_getaddrinfo_cancelled(loop):
    async def main():
        tasks = [loop.create_task(loop.getaddrinfo("127.0.0.1", 80)) for _ in range(20)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        # The loop still resolves afterwards.
        return results, await loop.getaddrinfo("127.0.0.1", 81)

    results, after = run(loop, main())
    for r in results:
        assert isinstance(r, (asyncio.CancelledError, list))
    assert after == socket.getaddrinfo("127.0.0.1", 81)


# --- getnameinfo ---------------------------------------------------------------

NI_CASES = [
    (("127.0.0.1", 80), 0),
    (("127.0.0.1", 80), socket.NI_NUMERICHOST),
    (("127.0.0.1", 80), socket.NI_NUMERICSERV),
    (("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("127.0.0.1", 53), socket.NI_DGRAM),
    (("127.0.0.1", 0), 0),
    (("127.0.0.1", 65535), 0),
    (("127.0.0.1", 443), socket.NI_NOFQDN),
    (("0.0.0.0", 80), socket.NI_NUMERICHOST),
    (("::1", 80, 0, 0), socket.NI_NUMERICHOST),
    (("::1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("::", 22, 0, 0), socket.NI_NUMERICHOST),
    (("::ffff:127.0.0.1", 80, 0, 0), socket.NI_NUMERICHOST),
    (("fe80::1", 80, 0, 1), socket.NI_NUMERICHOST),
    (("fe80::1", 80, 0, 1), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("fe80::1%lo", 80, 0, 0), socket.NI_NUMERICHOST),
    (("127.0.0.1", 80), socket.NI_NAMEREQD | socket.NI_NUMERICHOST),
]

NI_ERROR_CASES = [
    ("127.0.0.1", 0),                     # not a tuple
    (("127.0.0.1",), 0),                  # too short
    (("127.0.0.1", 80, 0, 0, 0), 0),      # too long
    (("127.0.0.1", "80"), 0),             # port not an int
    ((1, 80), 0),                         # host not a str
    (("127.0.0.1", 70000), 0),            # port out of range
    (("127.0.0.1", -1), 0),
    (("::1", 80, -1, 0), 0),              # bad flowinfo
    (("::1", 80, 0x100000, 0), 0),
    (("127.0.0.1", 80), "flags"),         # flags not an int
    (("127.0.0.1", 80, 0, 0), 0),         # 4-tuple for an IPv4 address
    (("not-an-address", 80), 0),
    (("", 80), 0),
]


@pytest.mark.parametrize("sockaddr,flags", NI_CASES + NI_ERROR_CASES, ids=repr)
def test_getnameinfo_matches_socket(loop, sockaddr, flags):
    if ":" in str(sockaddr[0]) and not HAS_IPV6:
        pytest.skip("no IPv6")
    if isinstance(sockaddr, tuple) and sockaddr[0] == "not-an-address":
        # socket.getnameinfo resolves non-numeric names: keep it local.
        sockaddr = ("localhost", 80)
    expected = _sync_outcome(socket.getnameinfo, sockaddr, flags)
    got = run(loop, _async_outcome(loop.getnameinfo(sockaddr, flags)))
    assert got == expected


def test_getnameinfo_localhost_name(loop):
    assert run(loop, loop.getnameinfo(("127.0.0.1", 80))) == \
        socket.getnameinfo(("127.0.0.1", 80), 0)
