"""create_datagram_endpoint: UDP (IPv4/IPv6) and unix datagram endpoints.

Argument handling is stdlib's (base_events.create_datagram_endpoint) for
each Python version; the transports are in transports/datagram.py: a
uv_udp_t for AF_INET/AF_INET6, the selector for AF_UNIX (libuv's uv_udp_t
cannot hold a unix datagram socket)."""
from __future__ import annotations

import logging
import socket
import warnings

from . import _compat
from .server import _set_reuseport
from .transports.datagram import UnixDatagramTransport, adopt_udp_socket

logger = logging.getLogger("asyncio")

_unset = object()


class DatagramMixin:
    """Loop methods for datagram endpoints."""

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return adopt_udp_socket(self, sock, protocol, address, waiter, extra)
        return UnixDatagramTransport(self, sock, protocol, address, waiter, extra)

    async def _create_datagram_endpoint(self, protocol_factory, local_addr, remote_addr, family,
                                        proto, flags, reuse_address, reuse_port, allow_broadcast,
                                        sock):
        created = sock is None  # ours to close if no transport takes it
        if sock is not None:
            if sock.type != socket.SOCK_DGRAM:
                if _compat.PY313:
                    raise ValueError(f"A datagram socket was expected, got {sock!r}")
                raise ValueError(f"A UDP Socket was expected, got {sock!r}")
            if (local_addr or remote_addr or family or proto or flags
                    or (reuse_address is not _unset and reuse_address)
                    or reuse_port or allow_broadcast):
                # show the problematic kwargs in exception msg
                opts = dict(local_addr=local_addr, remote_addr=remote_addr, family=family,
                            proto=proto, flags=flags)
                if reuse_address is not _unset:
                    opts["reuse_address"] = reuse_address
                opts.update(reuse_port=reuse_port, allow_broadcast=allow_broadcast)
                problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
                raise ValueError(f"socket modifier keyword arguments can not be used "
                                 f"when sock is specified. ({problems})")
            sock.setblocking(False)
            r_addr = None
        else:
            if reuse_address is not _unset:
                if reuse_address:
                    raise ValueError("Passing `reuse_address=True` is no longer supported, as the "
                                     "usage of SO_REUSEPORT in UDP poses a significant security "
                                     "concern.")
                warnings.warn("The *reuse_address* parameter has been deprecated as of 3.5.10 "
                              "and is scheduled for removal in 3.11.", DeprecationWarning,
                              stacklevel=3)
            if not (local_addr or remote_addr):
                if family == 0:
                    raise ValueError("unexpected address family")
                addr_pairs_info = (((family, proto), (None, None)),)
            elif hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
                for addr in (local_addr, remote_addr):
                    if addr is not None and not isinstance(addr, str):
                        raise TypeError("string is expected")
                if local_addr and local_addr[0] not in (0, "\x00"):
                    # On the thread pool (server.py), as create_unix_server.
                    await self._remove_stale_unix_socket(local_addr)
                addr_pairs_info = (((family, proto), (local_addr, remote_addr)),)
            else:
                # join address by (family, protocol)
                addr_infos = {}
                for idx, addr in ((0, local_addr), (1, remote_addr)):
                    if addr is not None:
                        if not (isinstance(addr, tuple) and len(addr) == 2):
                            raise TypeError("2-tuple is expected")
                        infos = await self._ensure_resolved(
                            addr, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags)
                        if not infos:
                            raise OSError("getaddrinfo() returned empty list")
                        for fam, _, pro, _, address in infos:
                            key = (fam, pro)
                            if key not in addr_infos:
                                addr_infos[key] = [None, None]
                            addr_infos[key][idx] = address
                # each addr has to have info for each (family, proto) pair
                addr_pairs_info = [
                    (key, addr_pair) for key, addr_pair in addr_infos.items()
                    if not ((local_addr and addr_pair[0] is None)
                            or (remote_addr and addr_pair[1] is None))]
                if not addr_pairs_info:
                    raise ValueError("can not get address information")

            exceptions = []
            for (family, proto), (local_address, remote_address) in addr_pairs_info:
                sock = None
                r_addr = None
                try:
                    sock = socket.socket(family=family, type=socket.SOCK_DGRAM, proto=proto)
                    if reuse_port:
                        _set_reuseport(sock)
                    if allow_broadcast:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    sock.setblocking(False)
                    if local_addr:
                        sock.bind(local_address)
                    if remote_addr:
                        if not allow_broadcast:
                            await self.sock_connect(sock, remote_address)
                        r_addr = remote_address
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    exceptions.append(exc)
                except BaseException:
                    if sock is not None:
                        sock.close()
                    raise
                else:
                    break
            else:
                raise exceptions[0]

        protocol = protocol_factory()
        waiter = self.create_future()
        try:
            transport = self._make_datagram_transport(sock, protocol, r_addr, waiter)
        except BaseException:
            if created:
                sock.close()
            raise
        if self._debug:
            if local_addr:
                logger.info("Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                            local_addr, remote_addr, transport, protocol)
            else:
                logger.debug("Datagram endpoint remote_addr=%r created: (%r, %r)",
                             remote_addr, transport, protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol


if _compat.PY311:
    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0, reuse_port=None,
                                       allow_broadcast=None, sock=None):
        return await self._create_datagram_endpoint(
            protocol_factory, local_addr, remote_addr, family, proto, flags, _unset, reuse_port,
            allow_broadcast, sock)
else:  # pragma: no cover - 3.9/3.10 still accept (and reject) reuse_address
    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0, reuse_address=_unset,
                                       reuse_port=None, allow_broadcast=None, sock=None):
        return await self._create_datagram_endpoint(
            protocol_factory, local_addr, remote_addr, family, proto, flags, reuse_address,
            reuse_port, allow_broadcast, sock)

create_datagram_endpoint.__doc__ = """Create a datagram endpoint (UDP over IPv4/IPv6, or a unix
datagram socket with family=AF_UNIX); return (transport, protocol)."""
DatagramMixin.create_datagram_endpoint = create_datagram_endpoint
del create_datagram_endpoint
