"""uv_udp_t: a UDP socket (IPv4 or IPv6) owned by libuv.

Receiving: libuv reads each datagram into the loop's arena, behind a header
that holds the sender's sockaddr (uvl.c, udp section); each one is one
``UVL_EV_RECV`` completion, which ``LoopCore.process`` (on the native core:
_core.c's completions section, doing the owner's work itself) hands to
``on_recv(data, sockaddr)`` as two ``bytes`` (the datagram, and the raw
sockaddr that keys the owner's address cache), or ``on_recv(status, None)``
for an error the socket reported (ECONNREFUSED after an ICMP port
unreachable, say).

Sending: ``send_now`` (bytes) or ``try_send`` (other buffers) first; a
datagram the kernel did not take now goes to ``send``, whose completions
(``on_send(status)``) arrive in FIFO order.  Addresses are sockaddrs as
``bytes`` (``sockaddr()`` makes one of a numeric address tuple), or
``NO_ADDRESS`` on a connected socket.
"""
from __future__ import annotations

import socket

from .._ffi import CHAR_ARRAY, INT_P, UDP_P, UDP_SEND_P, UINT_P, ffi, lib
from .base import UVHandle, bind_first
from .errors import convert_error

UV_EAGAIN = lib.UV_EAGAIN
UV_ECANCELED = lib.UV_ECANCELED
NO_ADDRESS = ffi.NULL  # the destination of a connected socket's datagrams
SOCKADDR_SIZE = lib.UVL_UDP_HEADER
DGRAM_MAX = lib.UVL_UDP_DGRAM_MAX
# LoopCore.process finds a datagram from its header's offset with these sizes
# written out (the hot path); uvl.c's udp section explains the layout.
if (SOCKADDR_SIZE, DGRAM_MAX, lib.UVL_UDP_BATCH_HEAD) != (32, 65536, 1024):  # pragma: no cover
    raise ImportError("uvloop_like: handles/core.py does not match uvl.c's datagram layout")
_AF_INET = socket.AF_INET
_HOSTLEN = 128  # NI_MAXHOST is 1025, but a numeric host with a %scope fits in far less


def _ignore(*args):
    pass


def sockaddr(family, host, port, flowinfo=0, scope_id=0):
    """The sockaddr (``bytes``) of a numeric address, or None if ``host`` is
    not numeric.  ``host`` is bytes; the caller has checked the ranges."""
    out = ffi.new(CHAR_ARRAY, SOCKADDR_SIZE)
    status = lib.uvl_udp_sockaddr(family, host, port, flowinfo, scope_id, out)
    if status == 1:
        return None
    if status < 0:
        raise convert_error(status)
    return ffi.buffer(out)[:]


def address(sa):
    """The address tuple the socket module makes of the sockaddr ``sa``
    (``bytes``): (host, port) for IPv4, (host, port, flowinfo, scope_id)
    for IPv6."""
    host = ffi.new(CHAR_ARRAY, _HOSTLEN)
    port = ffi.new(INT_P)
    flowinfo = ffi.new(UINT_P)
    scope_id = ffi.new(UINT_P)
    family = lib.uvl_udp_addr_parts(sa, host, _HOSTLEN, port, flowinfo, scope_id)
    if family <= 0:
        return None
    name = ffi.string(host).decode("ascii")
    if family == _AF_INET:
        return (name, port[0])
    return (name, port[0], flowinfo[0], scope_id[0])


class UDPHandle(UVHandle):
    """One libuv UDP socket.  ``on_recv`` and ``on_send`` are set by the
    owner (the transport)."""

    __slots__ = ("_on_recv", "_on_send", "_reqs", "send_now")

    _ctype = UDP_P

    def __init__(self, loop):
        super().__init__(loop)
        self._on_recv = self._on_send = _ignore
        self._reqs = []  # (uv_udp_send_t, data cdata) libuv still points to, FIFO
        status = lib.uvl_udp_init(loop._core.uv, self._ptr)
        if status < 0:
            raise convert_error(status)
        self._activated()
        # The native core dispatches this socket's datagrams in C (_core.c,
        # "completions"): it records the handle in the C struct.
        native = getattr(loop, "_native", None)
        if native is not None:
            native.bind(self)
        # send_now(data: bytes, len(data), sockaddr or NO_ADDRESS): send one
        # datagram now if the kernel takes it; its size, UV_EAGAIN (then
        # ``send`` it) or another libuv error.  The C function itself (bytes
        # go straight to its ``const char *``): this is the per-datagram path.
        self.send_now = bind_first(lib.uvl_udp_try_send, self._ptr)

    def set_callbacks(self, on_recv=None, on_send=None):
        if on_recv is not None:
            self._on_recv = on_recv
        if on_send is not None:
            self._on_send = on_send

    def open(self, fd):
        """Adopt ``fd``: from now on libuv owns it and closes it.  libuv
        learns here whether the socket is connected (getpeername)."""
        status = lib.uvl_udp_open(self._ptr, fd)
        if status < 0:
            raise convert_error(status)

    def read_start(self):
        status = lib.uvl_udp_recv_start(self._ptr)
        if status < 0:
            raise convert_error(status)

    def read_stop(self):
        if self._state == UVHandle.ACTIVE:
            lib.uvl_udp_recv_stop(self._ptr)

    def try_send(self, data, addr):
        """``send_now`` for any buffer (bytearray, memoryview, ...)."""
        cdata = ffi.from_buffer(CHAR_ARRAY, data)
        return lib.uvl_udp_try_send(self._ptr, cdata, len(cdata), addr)

    def send(self, data, addr):
        """Queue one datagram; ``data`` must not change until on_send (the
        caller passes bytes).  libuv copies the address."""
        req = ffi.new(UDP_SEND_P)
        # The from_buffer() cdata stays referenced with the request until its
        # completion: on PyPy the pointer is only valid while it lives.
        keep = ffi.from_buffer(CHAR_ARRAY, data)
        status = lib.uvl_udp_send(req, self._ptr, keep, len(data), addr)
        if status < 0:
            raise convert_error(status)
        self._reqs.append((req, keep))

    def send_done(self):
        """Release the oldest send request (its completion arrived)."""
        del self._reqs[0]

    def _on_close(self):
        super()._on_close()
        self._on_recv = self._on_send = _ignore  # no owner -> handle -> owner cycle once closed
        self._reqs = []
