"""create_datagram_endpoint and the datagram transport, on both loops."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile

import pytest
from loop_testutil import is_uvloop_like, run


class Proto(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.received = asyncio.Queue()
        self.errors = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data, addr):
        assert isinstance(data, bytes)
        self.received.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)
        self.received.put_nowait(("error", exc))

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.done.set_result(exc)


class Echo(Proto):
    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def _ipv6_ok():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_udp_echo_ipv4(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Echo(loop), local_addr=("127.0.0.1", 0))
        if is_uvloop_like(loop):  # stdlib's is not one (3.9-3.13)
            assert isinstance(server, asyncio.DatagramTransport)
        addr = server.get_extra_info("sockname")
        assert addr[0] == "127.0.0.1" and addr[1] > 0
        assert server.get_extra_info("peername") is None
        sock = server.get_extra_info("socket")
        assert sock.getsockname() == addr and sock.type == socket.SOCK_DGRAM
        client, cp = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=addr)
        assert client.get_extra_info("peername") == addr
        client.sendto(b"ping")
        client.sendto(bytearray(b"ping2"), addr)
        client.sendto(memoryview(b"ping3"))
        got = [await cp.received.get() for _ in range(3)]
        assert [d for d, _ in got] == [b"ping", b"ping2", b"ping3"]
        assert got[0][1] == addr
        assert client.get_write_buffer_size() == 0
        with pytest.raises(ValueError, match="Invalid address"):
            client.sendto(b"x", ("127.0.0.1", 1))
        with pytest.raises(TypeError):
            client.sendto("text")
        client.close()
        client.close()
        assert client.is_closing()
        assert await cp.done is None
        server.close()
        assert await sp.done is None
        assert cp.events == ["made", ("lost", None)]
    run(loop, main())


def test_udp_ipv6_addr_form(loop):
    if not _ipv6_ok():
        pytest.skip("no IPv6 loopback")

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("::1", 0))
        addr = server.get_extra_info("sockname")
        assert len(addr) == 4
        client, cp = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("::1", 0), family=socket.AF_INET6)
        client.sendto(b"six", addr[:2])
        data, frm = await sp.received.get()
        assert data == b"six" and len(frm) == 4
        assert frm[:2] == client.get_extra_info("sockname")[:2]
        client.close()
        server.close()
        await cp.done
        await sp.done
    run(loop, main())


def test_udp_connected_icmp_error(loop):
    async def main():
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
        probe.close()
        client, cp = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=dead)
        for _ in range(5):
            client.sendto(b"anyone?")
            try:
                item = await asyncio.wait_for(cp.received.get(), 0.5)
            except asyncio.TimeoutError:
                continue
            assert item[0] == "error" and isinstance(item[1], ConnectionRefusedError)
            break
        else:
            pytest.fail("no error_received")
        assert not client.is_closing()
        client.close()
        assert await cp.done is None
    run(loop, main())


def test_udp_empty_datagram(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, cp = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=addr)
        client.sendto(b"")
        client.sendto(b"after")
        first = await sp.received.get()
        if sys.version_info >= (3, 13):
            assert first[0] == b""
            first = await sp.received.get()
        assert first[0] == b"after"
        client.close()
        server.close()
        await cp.done
        await sp.done
    run(loop, main())


def test_udp_sock_argument(loop):
    async def main():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        addr = sock.getsockname()
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=sock)
        assert tr.get_extra_info("sockname") == addr
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.1", 0))
        other.sendto(b"hi", addr)
        data, frm = await proto.received.get()
        assert data == b"hi" and frm == other.getsockname()
        other.close()
        tr.close()
        await proto.done
        assert sock.fileno() == -1  # the transport closed it, once
    run(loop, main())


def test_udp_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match="unexpected address family"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol)
        with pytest.raises((TypeError, AssertionError), match="2-tuple is expected"):  # 3.10: assert
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1",))
        tcp = socket.socket()
        with pytest.raises(ValueError, match="A (UDP|datagram) [Ss]ocket was expected"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=tcp)
        tcp.close()
        udp = socket.socket(type=socket.SOCK_DGRAM)
        with pytest.raises(ValueError, match="socket modifier keyword arguments"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=udp,
                                                local_addr=("127.0.0.1", 0))
        udp.close()
        if sys.version_info >= (3, 11):
            with pytest.raises(TypeError):
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=("127.0.0.1", 0), reuse_address=True)
        else:
            with pytest.raises(ValueError, match="reuse_address"):
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=("127.0.0.1", 0), reuse_address=True)
        with pytest.raises(TypeError, match="string is expected"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("a", 1),
                                                family=socket.AF_UNIX)
    run(loop, main())


def test_udp_reuse_port_and_broadcast(loop):
    async def main():
        tr1, p1 = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = tr1.get_extra_info("sockname")
        tr2, p2 = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=addr, reuse_port=True, allow_broadcast=True)
        assert tr2.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        tr1.close()
        tr2.close()
        await p1.done
        await p2.done
    run(loop, main())


def test_unix_datagram(loop):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            spath = os.path.join(d, "s")
            cpath = os.path.join(d, "c")
            server, sp = await loop.create_datagram_endpoint(
                lambda: Echo(loop), local_addr=spath, family=socket.AF_UNIX)
            client, cp = await loop.create_datagram_endpoint(
                lambda: Proto(loop), local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX)
            big = os.urandom(100000)
            client.sendto(big)
            data, frm = await cp.received.get()
            assert data == big and frm == spath
            client.close()
            server.close()
            await cp.done
            await sp.done
    run(loop, main())


def _unix_pair(d):
    """Two unix datagram sockets with names, a connected to b (b does not read)."""
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.bind(os.path.join(d, "b"))
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.bind(os.path.join(d, "a"))
    a.connect(os.path.join(d, "b"))
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return a, b


def test_udp_flow_control_and_close_after_queued(loop, tmp_path):
    async def main():
        a, b = _unix_pair(str(tmp_path))
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=a)
        tr.set_write_buffer_limits(high=2000)
        n = 0
        while tr.get_write_buffer_size() == 0 and n < 10000:
            tr.sendto(b"x" * 1000)
            n += 1
        tr.sendto(b"x" * 1000)
        tr.sendto(b"x" * 1000)
        n += 2
        assert tr.get_write_buffer_size() > 0
        assert proto.events == ["made", "pause"]
        tr.close()  # waits for the queued datagrams
        assert not proto.done.done()
        b.setblocking(False)
        got = 0
        while got < n:
            try:
                b.recv(2000)
                got += 1
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert await proto.done is None
        assert proto.events == ["made", "pause", "resume", ("lost", None)]
        b.close()
    run(loop, main())


def test_udp_abort_drops_queue(loop, tmp_path):
    async def main():
        a, b = _unix_pair(str(tmp_path))
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=a)
        while tr.get_write_buffer_size() == 0:
            tr.sendto(b"x" * 1000)
        tr.abort()
        if is_uvloop_like(loop):  # stdlib forgets to reset its count (3.9-3.13)
            assert tr.get_write_buffer_size() == 0
        assert await proto.done is None
        assert a.fileno() == -1
        b.close()
    run(loop, main())


def test_udp_sock_ops_interop(loop):
    if not is_uvloop_like(loop) and sys.version_info < (3, 11):
        pytest.skip("stdlib has sock_sendto/sock_recvfrom from 3.11 (uvloop_like on every version)")

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Echo(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, b"low", addr)
        data, frm = await loop.sock_recvfrom(sock, 100)
        assert data == b"low" and frm == addr
        await loop.sock_sendto(sock, b"into", addr)
        buf = bytearray(100)
        nbytes, frm = await loop.sock_recvfrom_into(sock, buf)
        assert buf[:nbytes] == b"into"
        sock.close()
        server.close()
        await sp.done
    run(loop, main())
