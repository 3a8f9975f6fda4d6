"""Descriptor ownership for every sock= entry point (DESIGN rule 8): once a
transport owns a descriptor it is closed exactly once, by the transport, and
a failed or cancelled setup leaves no descriptor open and closes nothing that
is not its own (the number may already belong to someone else)."""
from __future__ import annotations

import asyncio
import gc
import os
import socket
from asyncio import trsock

import pytest
from loop_testutil import is_uvloop_like, run
from stream_testutil import Echo, Recorder


def _ino(fd):
    """The inode behind ``fd``, or None when it is closed."""
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None


def _open_fds():
    """The open socket descriptors of this process, as {(fd, 'socket:[inode]')}."""
    result = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue   # listdir's own descriptor, closed by now
        if target.startswith("socket:"):
            result.add((int(name), target))
    return result


async def _until_closed(fd, ino, turns=200):
    for _ in range(turns):
        if _ino(fd) != ino:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"fd {fd} still open")


async def _check_not_closed_again(fd):
    """Occupy ``fd`` with a new descriptor; nobody may close it now."""
    new = os.open(os.devnull, os.O_RDONLY)
    try:
        ino = _ino(new)
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0.001)
        gc.collect()
        assert _ino(new) == ino, "a stale owner closed a reused descriptor"
    finally:
        os.close(new)


async def _connected_tcp(loop, server_port):
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server_port))
    return sock


async def _connected_unix(loop, path):
    sock = socket.socket(socket.AF_UNIX)
    sock.setblocking(False)
    await loop.sock_connect(sock, path)
    return sock


ENTRY_POINTS = ["create_connection", "create_unix_connection", "connect_accepted_socket"]


async def _make_sock(loop, kind, tcp_port, unix_path):
    if kind == "create_connection":
        return await _connected_tcp(loop, tcp_port)
    if kind == "create_unix_connection":
        return await _connected_unix(loop, unix_path)
    # connect_accepted_socket: the accepted end of a socketpair-like TCP pair
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    try:
        connecting = loop.create_task(loop.sock_connect(client, lsock.getsockname()))
        conn, _ = await loop.sock_accept(lsock)
        await connecting
    finally:
        lsock.close()
    _make_sock.peers.append(client)
    return conn


_make_sock.peers = []


def _call(loop, kind, factory, sock):
    if kind == "create_connection":
        return loop.create_connection(factory, sock=sock)
    if kind == "create_unix_connection":
        return loop.create_unix_connection(factory, sock=sock)
    return loop.connect_accepted_socket(factory, sock)


@pytest.fixture
def servers(loop, tmp_path):
    """(tcp port, unix path) of echo servers on ``loop``, closed afterwards."""
    path = str(tmp_path / "fd.sock")

    async def start():
        tcp = await loop.create_server(Echo, "127.0.0.1", 0)
        unix = await loop.create_unix_server(Echo, path)
        return tcp, unix

    tcp, unix = run(loop, start())
    yield tcp.sockets[0].getsockname()[1], path
    async def stop():
        for server in (tcp, unix):
            server.close()
            await server.wait_closed()

    run(loop, stop())
    for peer in _make_sock.peers:
        peer.close()
    del _make_sock.peers[:]


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_sock_owned_by_transport_closed_once(loop, servers, kind):
    async def main():
        sock = await _make_sock(loop, kind, *servers)
        fd = sock.fileno()
        ino = _ino(fd)
        rec = Recorder(loop)
        tr, _ = await _call(loop, kind, lambda: rec, sock)
        # The caller's socket object no longer closes the descriptor.
        del sock
        gc.collect()
        assert _ino(fd) == ino
        if kind != "connect_accepted_socket":
            tr.write(b"still mine")
            await rec.wait_for_bytes(10)
        tr.close()
        await rec.lost
        await _until_closed(fd, ino)
        await _check_not_closed_again(fd)
    run(loop, main())


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_cancel_mid_setup_closes_once(loop, servers, kind):
    async def main():
        sock = await _make_sock(loop, kind, *servers)
        fd = sock.fileno()
        ino = _ino(fd)
        task = loop.create_task(_call(loop, kind, asyncio.Protocol, sock))
        await asyncio.sleep(0)          # the transport exists; connection_made pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until_closed(fd, ino)
        assert sock.fileno() == -1       # detached or closed: never closes fd again
        del sock
        await _check_not_closed_again(fd)
    run(loop, main())


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_failed_setup_leaves_callers_sock_open(loop, servers, kind):
    async def main():
        sock = await _make_sock(loop, kind, *servers)
        fd = sock.fileno()
        ino = _ino(fd)

        def factory():
            raise ZeroDivisionError("factory failed")

        with pytest.raises(ZeroDivisionError):
            await _call(loop, kind, factory, sock)
        # Not adopted: still the caller's, open, and closed by the caller once.
        assert sock.fileno() == fd and _ino(fd) == ino
        sock.close()
        await _check_not_closed_again(fd)
    run(loop, main())


def test_cancelled_connect_leaves_no_descriptor(loop):
    async def main():
        # A connect that never completes, cancelled: the socket it made is closed.
        started = loop.create_future()

        async def stuck_connect(sock, address):
            started.set_result(sock.fileno())
            await asyncio.sleep(3600)

        loop.sock_connect = stuck_connect
        before = _open_fds()
        task = loop.create_task(loop.create_connection(asyncio.Protocol, "127.0.0.1", 9))
        fd = await started
        assert _ino(fd) is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
        assert _open_fds() <= before
    run(loop, main())


def test_failed_connect_leaves_no_descriptor(loop):
    async def main():
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        before = _open_fds()
        for _ in range(20):
            with pytest.raises(ConnectionRefusedError):
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        gc.collect()
        assert _open_fds() <= before
    run(loop, main())


def test_create_server_sock_closed_by_server(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        fd = lsock.fileno()
        ino = _ino(fd)
        server = await loop.create_server(Echo, sock=lsock)
        server.close()
        await server.wait_closed()
        assert _ino(fd) != ino and lsock.fileno() == -1
        await _check_not_closed_again(fd)
    run(loop, main())


def test_create_unix_server_sock_closed_by_server(loop, tmp_path):
    async def main():
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind(str(tmp_path / "srv.sock"))
        fd = lsock.fileno()
        ino = _ino(fd)
        server = await loop.create_unix_server(Echo, sock=lsock)
        server.close()
        await server.wait_closed()
        assert _ino(fd) != ino and lsock.fileno() == -1
        await _check_not_closed_again(fd)
    run(loop, main())


def test_server_protocol_factory_failure_closes_accepted(loop):
    async def main():
        def factory():
            raise ZeroDivisionError

        # Debug mode reports each failure; keeping the report would keep
        # stdlib's unclosed socket alive (stdlib leaves it to the GC).
        reports = []
        loop.set_exception_handler(lambda lp, ctx: reports.append(ctx["message"]))
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        before = _open_fds()
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while True:
                # stdlib (in debug mode) leaves the socket in a reference
                # cycle for the GC to close.
                gc.collect()
                try:
                    data = await asyncio.wait_for(reader.read(), 0.1)
                    break
                except asyncio.TimeoutError:
                    continue
            assert data == b""    # closed by the server
            writer.close()
            await writer.wait_closed()
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert _open_fds() <= before
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_no_descriptor_leak_over_many_connections(loop, servers):
    async def main():
        port, path = servers
        before = _open_fds()
        for i in range(50):
            if i % 2:
                tr, pr = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            else:
                tr, pr = await loop.create_unix_connection(asyncio.Protocol, path)
            tr.get_extra_info("socket")   # the dup() it makes is released too
            tr.close()
        for _ in range(20):
            await asyncio.sleep(0.001)
        gc.collect()
        assert _open_fds() <= before
    run(loop, main())


def test_abort_during_native_sendfile_unwatches_fd(loop, servers, tmp_path):
    if not is_uvloop_like(loop):
        pytest.skip("uvloop_like only: stdlib leaves the sendfile future pending")

    async def main():
        port, _ = servers
        path = tmp_path / "big.bin"
        path.write_bytes(b"\0" * (64 << 20))

        stalled = []

        class Stall(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()     # the peer never reads
                stalled.append(transport)

        server = await loop.create_server(Stall, "127.0.0.1", 0)
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, "127.0.0.1",
                                             server.sockets[0].getsockname()[1])
        fd = tr.get_extra_info("socket").fileno()   # a dup, unaffected
        with open(path, "rb") as f:
            task = loop.create_task(loop.sendfile(tr, f))
            await asyncio.sleep(0.05)
            assert not task.done()
            tr.abort()
            with pytest.raises(ConnectionError):
                await task
        await rec.lost
        assert not any(key.fd == tr._fd for key in loop._selector.get_map().values())
        assert fd >= 0
        for transport in stalled:
            transport.abort()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_one_descriptor_per_connection(loop, servers):
    """Each transport holds one descriptor (DESIGN rule 8): N connections,
    both ends in this process, add 2 N descriptors (stdlib and uvloop too)."""
    async def main():
        port, path = servers
        before = len(_open_fds())
        transports = []
        for i in range(40):
            if i % 2:
                tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            else:
                tr, _ = await loop.create_unix_connection(asyncio.Protocol, path)
            transports.append(tr)
        for _ in range(20):
            await asyncio.sleep(0.001)
        added = len(_open_fds()) - before
        for tr in transports:
            tr.close()
        assert added == 2 * len(transports), f"{added / len(transports):.2f} descriptors per connection"
    run(loop, main())


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_callers_sock_ends_detached_or_closed(loop, servers, kind):
    async def main():
        sock = await _make_sock(loop, kind, *servers)
        fd = sock.fileno()
        ino = _ino(fd)
        rec = Recorder(loop)
        tr, _ = await _call(loop, kind, lambda: rec, sock)
        tr.close()
        await rec.lost
        await _until_closed(fd, ino)
        assert sock.fileno() == -1
        sock.close()                       # the caller's close: nothing left to close
        await _check_not_closed_again(fd)
    run(loop, main())


def test_transport_socket_over_the_descriptor(loop, servers):
    """get_extra_info('socket'): a TransportSocket whose socket calls work
    on the connection's descriptor, that never closes it (not when the
    object is collected either), and that reports -1 once closed."""
    async def main():
        port, _ = servers
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, "127.0.0.1", port)
        tsock = tr.get_extra_info("socket")
        assert isinstance(tsock, trsock.TransportSocket)
        assert tsock.family == socket.AF_INET and tsock.type == socket.SOCK_STREAM
        assert tsock.getpeername() == ("127.0.0.1", port)
        assert tsock.getsockname() == tr.get_extra_info("sockname")
        tsock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert tsock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert tsock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        fd = tsock.fileno()
        ino = _ino(fd)
        assert fd >= 0 and ino is not None
        dup = tsock.dup()                  # a socket of its own, closed by its owner
        assert dup.fileno() != fd
        dup.close()
        assert "fd=%d" % fd in repr(tsock)
        del tsock
        gc.collect()
        assert _ino(fd) == ino
        tr.write(b"ping")
        await rec.wait_for_bytes(4)
        tr.close()
        await rec.lost
        await _until_closed(fd, ino)
        assert tr.get_extra_info("socket").fileno() == -1
        await _check_not_closed_again(fd)
    run(loop, main())


# --- create_datagram_endpoint(sock=...) -------------------------------------------


def _udp_sock():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_datagram_sock_owned_by_transport_closed_once(loop):
    async def main():
        before = _open_fds()
        sock = _udp_sock()
        fd = sock.fileno()
        ino = _ino(fd)
        tr, proto = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
        del sock
        gc.collect()
        assert _ino(fd) == ino
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5)
            tr.sendto(b"still mine", peer.getsockname())
            assert peer.recv(100) == b"still mine"
        tr.close()
        await _until_closed(fd, ino)
        for _ in range(200):  # libuv closes its dup() on the close callback
            if _open_fds() == before:
                break
            await asyncio.sleep(0.001)
        assert _open_fds() == before
        await _check_not_closed_again(fd)
    run(loop, main())


def test_datagram_cancel_mid_setup_closes_once(loop):
    async def main():
        before = _open_fds()
        sock = _udp_sock()
        fd = sock.fileno()
        ino = _ino(fd)
        task = loop.create_task(loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock))
        await asyncio.sleep(0)          # the transport exists; connection_made pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until_closed(fd, ino)
        assert sock.fileno() == -1
        del sock
        for _ in range(200):
            if _open_fds() == before:
                break
            await asyncio.sleep(0.001)
        assert _open_fds() == before
        await _check_not_closed_again(fd)
    run(loop, main())


def test_datagram_failed_setup_leaves_callers_sock_open(loop):
    async def main():
        sock = _udp_sock()
        fd = sock.fileno()
        ino = _ino(fd)

        def factory():
            raise ZeroDivisionError("factory failed")

        with pytest.raises(ZeroDivisionError):
            await loop.create_datagram_endpoint(factory, sock=sock)
        assert sock.fileno() == fd and _ino(fd) == ino
        sock.close()
        await _check_not_closed_again(fd)
    run(loop, main())


def test_datagram_failed_adoption(loop, monkeypatch):
    """libuv cannot adopt the socket (here: dup() fails): the caller's socket
    is left to the caller, a socket the loop made is closed, nothing leaks."""
    if not is_uvloop_like(loop):
        pytest.skip("stdlib adopts no descriptor")
    from uvloop_like.transports import datagram as transports_datagram

    def failing_dup(fd):
        raise OSError(24, "Too many open files")

    async def main():
        before = _open_fds()
        sock = _udp_sock()
        fd = sock.fileno()
        monkeypatch.setattr(transports_datagram.os, "dup", failing_dup)
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
        assert sock.fileno() == fd
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        monkeypatch.undo()
        sock.close()
        await asyncio.sleep(0)  # the handle's close callback
        assert _open_fds() == before
    run(loop, main())


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_callers_sock_usable_while_the_transport_lives(loop, servers, kind):
    """As with stdlib: the socket given with sock= keeps its descriptor (the
    same one the transport uses: one per connection) until the transport
    closes; socket options set on it reach the connection; add_reader() on
    it is refused because a transport owns it; a close() by the caller
    meanwhile does not pull the descriptor from under the transport."""
    async def main():
        sock = await _make_sock(loop, kind, *servers)
        fd = sock.fileno()
        ino = _ino(fd)
        rec = Recorder(loop)
        tr, _ = await _call(loop, kind, lambda: rec, sock)
        assert sock.fileno() == fd
        assert tr.get_extra_info("socket").fileno() == fd
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        assert tr.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(sock, lambda: None)
        if kind != "connect_accepted_socket":  # (its peer is no echo server)
            tr.write(b"ping")
            await rec.wait_for_bytes(4)
        tr.close()
        await rec.lost
        await _until_closed(fd, ino)
        assert sock.fileno() == -1
        await _check_not_closed_again(fd)
    run(loop, main())


def test_callers_close_does_not_close_the_transports_descriptor(loop, servers):
    """A caller that closes its sock= socket while the transport lives: on
    uvloop_like the descriptor stays the transport's until it closes, then
    it is closed once (stdlib closes it at once and its transport fails)."""
    if not is_uvloop_like(loop):
        pytest.skip("stdlib closes the descriptor under its transport")

    async def main():
        sock = await _make_sock(loop, "create_connection", *servers)
        fd = sock.fileno()
        ino = _ino(fd)
        rec = Recorder(loop)
        tr, _ = await _call(loop, "create_connection", lambda: rec, sock)
        sock.close()
        assert _ino(fd) == ino
        tr.write(b"ping")
        await rec.wait_for_bytes(4)
        tr.close()
        await rec.lost
        await _until_closed(fd, ino)
        del sock
        await _check_not_closed_again(fd)
    run(loop, main())
