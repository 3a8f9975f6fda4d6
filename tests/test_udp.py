"""create_datagram_endpoint and the datagram transport, on both loops."""
from __future__ import annotations

import asyncio
import errno
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


# --- uv_udp_t specifics, on both loops ------------------------------------------


def _udp_pair(connected=True):
    """A UDP socket ``a`` for the transport and a plain one ``b`` that does not read
    until the test says so; ``a`` is connected to ``b`` unless told otherwise."""
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    if connected:
        a.connect(b.getsockname())
    return a, b


class _SendBlocker:
    """Makes a UDP transport's sends "would block" until ``release()``.

    UDP sends over loopback never block on Linux (the kernel drops instead), so
    the queueing path needs this: on stdlib the transport's socket is wrapped
    (its send/sendto raise BlockingIOError), on uvloop_like libuv's
    uv_udp_try_send answers UV_EAGAIN (and the datagram goes to uv_udp_send)."""

    def __init__(self, loop, transport, monkeypatch):
        self.blocked = True
        if is_uvloop_like(loop):
            from uvloop_like.handles.udp import UV_EAGAIN, UDPHandle

            send_now = transport._send_now   # bytes
            try_send = UDPHandle.try_send    # other buffers
            monkeypatch.setattr(transport, "_send_now", lambda data, size, addr: (
                UV_EAGAIN if self.blocked else send_now(data, size, addr)))
            monkeypatch.setattr(UDPHandle, "try_send", lambda handle, data, addr: (
                UV_EAGAIN if self.blocked else try_send(handle, data, addr)))
        else:
            transport._sock = _WouldBlockSocket(transport._sock, self)

    def release(self):
        self.blocked = False


class _WouldBlockSocket:
    def __init__(self, sock, blocker):
        self._sock = sock
        self._blocker = blocker

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def send(self, data):
        if self._blocker.blocked:
            raise BlockingIOError
        return self._sock.send(data)

    def sendto(self, data, addr):
        if self._blocker.blocked:
            raise BlockingIOError
        return self._sock.sendto(data, addr)


async def _recv_n(sock, n, size=70000):
    """Read n datagrams from the plain socket ``sock`` without blocking the loop."""
    sock.setblocking(False)
    got = []
    while len(got) < n:
        try:
            got.append(sock.recv(size))
        except BlockingIOError:
            await asyncio.sleep(0.002)
    return got


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
def test_udp_send_queue_flow_control(loop, monkeypatch, connected):
    async def main():
        a, b = _udp_pair(connected)
        dest = None if connected else b.getsockname()
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=a)
        tr.set_write_buffer_limits(high=2100)  # 3.13's stdlib counts 8 more per datagram
        blocker = _SendBlocker(loop, tr, monkeypatch)
        tr.sendto(b"1" * 1000, dest)
        tr.sendto(b"2" * 1000, dest)
        assert proto.events == ["made"]  # 2000 is not above the high mark
        tr.sendto(bytearray(b"3" * 1000), dest)
        assert proto.events == ["made", "pause"]
        assert tr.get_write_buffer_size() >= 3000  # 3.13's stdlib adds 8 per datagram
        blocker.release()
        got = await _recv_n(b, 3)
        assert got == [b"1" * 1000, b"2" * 1000, b"3" * 1000]  # in order, intact
        await _until(lambda: "resume" in proto.events)
        assert proto.events == ["made", "pause", "resume"]
        assert proto.errors == []
        tr.sendto(b"after", dest)
        assert await _recv_n(b, 1) == [b"after"]
        tr.close()
        assert await proto.done is None
        assert a.fileno() == -1
        b.close()
    run(loop, main())


def test_udp_close_flushes_queued_sends(loop, monkeypatch):
    async def main():
        a, b = _udp_pair()
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=a)
        tr.set_write_buffer_limits(high=2000)
        blocker = _SendBlocker(loop, tr, monkeypatch)
        for i in range(3):
            tr.sendto(bytes([65 + i]) * 1000)
        tr.close()  # waits for the queued datagrams
        assert tr.is_closing() and not proto.done.done()
        blocker.release()
        assert await _recv_n(b, 3) == [b"A" * 1000, b"B" * 1000, b"C" * 1000]
        assert await proto.done is None
        assert proto.events == ["made", "pause", "resume", ("lost", None)]
        assert a.fileno() == -1
        b.close()
    run(loop, main())


def test_udp_abort_with_queued_sends(loop, monkeypatch):
    async def main():
        a, b = _udp_pair()
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=a)
        blocker = _SendBlocker(loop, tr, monkeypatch)
        for _ in range(3):
            tr.sendto(b"x" * 1000)
        assert tr.get_write_buffer_size() >= 3000
        tr.abort()
        if is_uvloop_like(loop):  # stdlib forgets to reset its count (3.9-3.13)
            assert tr.get_write_buffer_size() == 0
        blocker.release()
        assert await proto.done is None
        assert proto.events == ["made", ("lost", None)]
        assert proto.errors == []
        assert a.fileno() == -1
        b.close()
    run(loop, main())


def test_udp_empty_datagram_received(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.sendto(b"", addr)
            raw.sendto(b"next", addr)
            assert await sp.received.get() == (b"", raw.getsockname())
            assert await sp.received.get() == (b"next", raw.getsockname())
        server.close()
        await sp.done
    run(loop, main())


def test_udp_largest_datagram(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Echo(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, cp = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=addr)
        big = os.urandom(65507)  # the largest UDP payload over IPv4
        client.sendto(big)
        client.sendto(b"small")
        assert await cp.received.get() == (big, addr)
        assert await cp.received.get() == (b"small", addr)
        client.close()
        server.close()
        await cp.done
        await sp.done
    run(loop, main())


def test_udp_many_datagrams_in_one_burst(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            # More than libuv reads per readiness event (32), and few enough
            # that the default receive buffer holds them all.
            payloads = [bytes([i]) * 1000 for i in range(50)]
            for p in payloads:
                raw.sendto(p, addr)
            got = [await sp.received.get() for _ in payloads]
            assert {a for _, a in got} == {raw.getsockname()}
        assert [d for d, _ in got] == payloads
        server.close()
        await sp.done
    run(loop, main())


def test_udp_ipv6_reply_address_forms(loop):
    if not _ipv6_ok():
        pytest.skip("no IPv6 loopback")

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("::1", 0))
        host, port, flowinfo, scope_id = server.get_extra_info("sockname")
        assert (host, flowinfo, scope_id) == ("::1", 0, 0)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as raw:
            raw.bind(("::1", 0))
            raw.sendto(b"q", (host, port))
            data, frm = await sp.received.get()
            assert data == b"q" and frm == raw.getsockname() and len(frm) == 4
            server.sendto(b"four", frm)                 # the 4-tuple as received
            server.sendto(b"two", frm[:2])              # (host, port)
            server.sendto(b"three", frm[:3])            # (host, port, flowinfo)
            raw.setblocking(False)
            got = [d for d in await _recv_n(raw, 3)]
        assert got == [b"four", b"two", b"three"]
        server.close()
        await sp.done
    run(loop, main())


def test_udp_sendto_host_name(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            port = raw.getsockname()[1]
            tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), family=socket.AF_INET,
                                                            local_addr=("127.0.0.1", 0))
            tr.sendto(b"by name", ("localhost", port))
            tr.sendto(b"by bytes", (b"127.0.0.1", port))
            assert await _recv_n(raw, 2) == [b"by name", b"by bytes"]
            tr.close()
            await proto.done
    run(loop, main())


def test_udp_sendto_bad_address_is_fatal(loop, exc_handler):
    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        tr.sendto(b"x", "not a tuple")
        exc = await proto.done
        assert isinstance(exc, (TypeError, ValueError))  # PyPy's socket.sendto: ValueError
        assert tr.is_closing()
        assert exc_handler.exceptions() == [exc]
    run(loop, main())


def test_udp_datagram_received_raises(loop, exc_handler):
    class Fragile(Proto):
        def datagram_received(self, data, addr):
            if data == b"boom":
                raise ZeroDivisionError("boom")
            super().datagram_received(data, addr)

    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Fragile(loop), local_addr=("127.0.0.1", 0))
        addr = tr.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"boom", addr)
            raw.sendto(b"fine", addr)
            assert (await proto.received.get())[0] == b"fine"  # still reading, as stdlib
        assert not tr.is_closing()
        assert [type(e) for e in exc_handler.exceptions()] == [ZeroDivisionError]
        tr.close()
        await proto.done
    run(loop, main())


def test_udp_descriptors_closed_once(loop):
    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        before = open_fds()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        fd = sock.fileno()
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=sock)
        tsock = tr.get_extra_info("socket")
        assert tsock.fileno() == fd  # the caller's socket stays valid while the transport lives
        assert tsock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0  # never set for us
        tr.close()
        await proto.done
        await asyncio.sleep(0)  # libuv's close callback
        assert sock.fileno() == -1
        assert open_fds() == before
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    run(loop, main())


def test_udp_oversized_datagram_is_error_received(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, cp = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=addr)
        client.sendto(b"x" * 70000)  # more than an IPv4 datagram holds
        assert [type(e) for e in cp.errors] == [OSError] and cp.errors[0].errno == errno.EMSGSIZE
        assert not client.is_closing()
        client.sendto(b"fits")
        assert await sp.received.get() == (b"fits", client.get_extra_info("sockname"))
        client.close()
        server.close()
        await cp.done
        await sp.done
    run(loop, main())


def test_udp_datagram_after_callbacks_already_ready(loop):
    """A datagram that arrives while callbacks are ready is delivered after
    them, as stdlib's reader callback is (CPython's
    test_datagram_send_to_non_listening_address relies on it)."""
    order = []

    class Recorder(Proto):
        def datagram_received(self, data, addr):
            order.append(data)
            super().datagram_received(data, addr)

    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"dgram", tr.get_extra_info("sockname"))
            loop.call_soon(order.append, "ready before")
            await proto.received.get()
        assert order == ["ready before", b"dgram"]
        tr.close()
        await proto.done
    run(loop, main())


def test_udp_datagram_survives_keyboard_interrupt_of_another_callback(loop):
    """KeyboardInterrupt out of another protocol in the same iteration: the
    datagram that libuv read alongside is still delivered, once."""
    class Bomb(asyncio.Protocol):
        def data_received(self, data):
            raise KeyboardInterrupt

    async def setup():
        server = await loop.create_server(Bomb, "127.0.0.1", 0)
        tr, proto = await loop.create_datagram_endpoint(lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        client = socket.create_connection(server.sockets[0].getsockname())
        await asyncio.sleep(0.05)  # accepted, reading
        return server, tr, proto, client

    server, tr, proto, client = run(loop, setup())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        client.sendall(b"boom")
        raw.sendto(b"kept", tr.get_extra_info("sockname"))
        with pytest.raises(KeyboardInterrupt):
            run(loop, asyncio.sleep(1))

        async def finish():
            data, addr = await proto.received.get()
            assert data == b"kept" and addr[1] == raw.getsockname()[1]
            await asyncio.sleep(0.01)
            assert proto.received.empty()  # once
            client.close()
            tr.close()
            await proto.done
            server.close()
            await server.wait_closed()
        run(loop, finish())
