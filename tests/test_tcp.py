"""TCP transports, create_connection and create_server, on both loops."""
from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
import sys
from asyncio import trsock

import pytest
from loop_testutil import is_uvloop_like, run
from stream_testutil import Echo, Recorder, Sink, tcp_listener

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


async def _echo_server(loop, **kwargs):
    return await loop.create_server(Echo, "127.0.0.1", 0, **kwargs)


def _port(server):
    return server.sockets[0].getsockname()[1]


# --- basic connection and protocol state machine --------------------------------------

def test_echo_state_machine_and_extra_info(loop):
    async def main():
        server = await _echo_server(loop)
        assert isinstance(server, asyncio.base_events.Server)
        assert all(isinstance(s, trsock.TransportSocket) for s in server.sockets)
        assert server.is_serving() and server.get_loop() is loop
        rec = Recorder(loop)
        tr, pr = await loop.create_connection(lambda: rec, "127.0.0.1", _port(server))
        assert pr is rec and rec.events == ["made"]
        assert isinstance(tr, asyncio.Transport)
        assert tr.get_extra_info("peername") == ("127.0.0.1", _port(server))
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        sock = tr.get_extra_info("socket")
        assert isinstance(sock, trsock.TransportSocket)
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # on by default
        assert tr.get_extra_info("nonexistent", 42) == 42
        assert tr.get_protocol() is rec
        assert tr.is_reading() and not tr.is_closing() and tr.can_write_eof()
        tr.write(b"hello ")
        tr.writelines([b"wor", bytearray(b"ld"), memoryview(b"!")])
        await rec.wait_for_bytes(12)
        assert bytes(rec.data) == b"hello world!"
        tr.write_eof()
        await rec.eof       # Echo closes on EOF
        assert await rec.lost is None
        assert tr.is_closing()
        rec.assert_ok()
        assert rec.events[-2:] == ["eof", "lost"]
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
    run(loop, main())


def test_write_type_errors(loop):
    async def main():
        server = await _echo_server(loop)
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server))
        with pytest.raises(TypeError):
            tr.write("str")
        tr.write(b"")  # nothing happens
        tr.write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"x")
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_eof_received_true_keeps_half_open(loop):
    async def main():
        done = loop.create_future()

        class HalfOpen(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                self.buf = b""

            def data_received(self, data):
                self.buf += data

            def eof_received(self):
                # Still writable after the peer's EOF.
                loop.call_soon(self._reply)
                return True

            def _reply(self):
                self.transport.write(b"got:" + self.buf)
                self.transport.close()

            def connection_lost(self, exc):
                done.set_result(exc)

        server = await loop.create_server(HalfOpen, "127.0.0.1", 0)
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, "127.0.0.1", _port(server))
        tr.write(b"abc")
        tr.write_eof()
        await rec.eof
        assert bytes(rec.data) == b"got:abc"
        assert await done is None
        await rec.lost
        rec.assert_ok()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_pause_reading_holds_data(loop):
    async def main():
        lsock = tcp_listener()
        rec = Recorder(loop)
        fut = loop.create_task(loop.create_connection(lambda: rec, sock=None, host="127.0.0.1",
                                                      port=lsock.getsockname()[1]))
        peer, _ = await loop.sock_accept(lsock)
        lsock.close()
        tr, _ = await fut
        tr.pause_reading()
        tr.pause_reading()  # idempotent
        assert not tr.is_reading()
        await loop.sock_sendall(peer, b"while paused")
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert rec.data == b""
        tr.resume_reading()
        tr.resume_reading()
        assert tr.is_reading()
        await rec.wait_for_bytes(12)
        assert rec.data == b"while paused"
        # Paused when the peer closes: nothing is delivered until resumed,
        # then the data and the EOF in order.
        tr.pause_reading()
        await loop.sock_sendall(peer, b"more")
        peer.close()
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert rec.data == b"while paused" and "eof" not in rec.events
        tr.resume_reading()
        await rec.eof
        await rec.lost
        assert rec.data == b"while paused" + b"more"
        rec.assert_ok()
    run(loop, main())


# --- writes: flush on close, abort, flow control, after close ---------------------------

async def _accept_pair(loop, protocol):
    """(transport, peer socket): a loop transport connected to a raw socket."""
    lsock = tcp_listener()
    try:
        connect = loop.create_task(loop.create_connection(lambda: protocol, "127.0.0.1",
                                                          lsock.getsockname()[1]))
        peer, _ = await loop.sock_accept(lsock)
        tr, _ = await connect
    finally:
        lsock.close()
    return tr, peer


async def _read_all(loop, sock):
    chunks = []
    while True:
        data = await loop.sock_recv(sock, 1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_close_flushes_buffered_data(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        payload = bytes(range(256)) * 40000   # ~10 MiB: more than the socket buffers take
        tr.write(payload)
        assert tr.get_write_buffer_size() > 0
        tr.close()
        assert tr.is_closing()
        assert await _read_all(loop, peer) == payload
        assert await rec.lost is None
        peer.close()
        rec.assert_ok()
    run(loop, main())


def test_abort_drops_buffered_data(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        payload = b"y" * (10 << 20)
        tr.write(payload)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        assert await rec.lost is None
        received = await _read_all(loop, peer)
        assert len(received) < len(payload)
        peer.close()
        rec.assert_ok()
    run(loop, main())


def test_flow_control_marks(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=100_000, low=20_000)
        assert tr.get_write_buffer_limits() == (20_000, 100_000)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=2)
        # Fill the kernel buffers first, so that what follows stays queued.
        while tr.get_write_buffer_size() == 0:
            tr.write(b"f" * 65536)
            if "pause" in rec.events:
                break
        events_before = rec.events.count("pause")
        # Top up to exactly the high mark: not paused (strictly above pauses).
        size = tr.get_write_buffer_size()
        if size < 100_000 and events_before == 0:
            tr.write(b"e" * (100_000 - size))
            assert tr.get_write_buffer_size() == 100_000
            assert rec.events.count("pause") == 0
            tr.write(b"!")
        assert rec.events.count("pause") == 1
        assert tr.get_write_buffer_size() > 100_000
        # Drain: resume once at or below the low mark.
        received = 0
        while "resume" not in rec.events:
            received += len(await loop.sock_recv(peer, 65536))
        assert tr.get_write_buffer_size() <= 20_000
        assert rec.events.count("resume") == 1
        tr.close()
        await _read_all(loop, peer)
        await rec.lost
        peer.close()
        rec.assert_ok()
    run(loop, main())


def test_write_after_close_warns_as_stdlib(loop, caplog):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        tr.close()
        await rec.lost
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(10):
                tr.write(b"late")   # no exception
        warnings = [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
        assert len(warnings) == 6
        peer.close()
    run(loop, main())


def test_peer_reset_mid_write(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        tr.write(b"z" * (8 << 20))
        assert tr.get_write_buffer_size() > 0
        # RST: SO_LINGER with a zero timeout, then close.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        exc = await rec.lost
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
        rec.assert_ok()
        tr.write(b"after reset")   # dropped, no exception
    run(loop, main())


def test_peer_closes_while_paused(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        tr.pause_reading()
        peer.close()
        for _ in range(10):
            await asyncio.sleep(0.005)
        assert "eof" not in rec.events and not rec.lost.done()
        tr.resume_reading()
        await rec.eof
        assert await rec.lost is None
        rec.assert_ok()
    run(loop, main())


# --- BufferedProtocol ---------------------------------------------------------------

class BufRecorder(asyncio.BufferedProtocol):
    def __init__(self, loop, size=1024):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.events = []
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.sizes = []

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint):
        self.sizes.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        self.events.append("data")
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def test_buffered_protocol(loop):
    async def main():
        server = await _echo_server(loop)
        proto = BufRecorder(loop, size=100)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", _port(server))
        payload = bytes(range(256)) * 100
        tr.write(payload)
        while len(proto.data) < len(payload):
            await asyncio.sleep(0.001)
        assert bytes(proto.data) == payload
        tr.write_eof()
        await proto.eof
        await proto.lost
        assert proto.events[0] == "made" and proto.events[-2:] == ["eof", "lost"]
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_switch_protocol_mid_stream(loop):
    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        await loop.sock_sendall(peer, b"first")
        await rec.wait_for_bytes(5)
        buffered = BufRecorder(loop, size=7)
        tr.set_protocol(buffered)
        assert tr.get_protocol() is buffered
        await loop.sock_sendall(peer, b"second part")
        while len(buffered.data) < 11:
            await asyncio.sleep(0.001)
        assert bytes(buffered.data) == b"second part"
        back = Recorder(loop)
        back._check("made")
        tr.set_protocol(back)
        await loop.sock_sendall(peer, b"third")
        await back.wait_for_bytes(5)
        assert bytes(back.data) == b"third"
        assert bytes(rec.data) == b"first"
        peer.close()
        await back.lost
        back.assert_ok()
    run(loop, main())


def test_buffered_protocol_empty_buffer_is_fatal(loop, exc_handler):
    async def main():
        class Empty(BufRecorder):
            def get_buffer(self, sizehint):
                return bytearray()

        proto = Empty(loop)
        tr, peer = await _accept_pair(loop, proto)
        await loop.sock_sendall(peer, b"data")
        exc = await proto.lost
        assert exc is not None
        peer.close()
    run(loop, main())
    assert exc_handler.calls
    assert "get_buffer" in exc_handler.calls[0]["message"]


# --- create_connection ---------------------------------------------------------------

def test_create_connection_refused(loop):
    async def main():
        lsock = tcp_listener()
        port = lsock.getsockname()[1]
        lsock.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    run(loop, main())


def test_create_connection_argument_errors(loop):
    async def main():
        sock = socket.socket()
        udp = socket.socket(type=socket.SOCK_DGRAM)
        try:
            cases = [
                (dict(host="127.0.0.1", port=1, sock=sock),
                 ValueError, "host/port and sock can not be specified at the same time"),
                (dict(), ValueError, "host and port was not specified and no sock specified"),
                (dict(host="127.0.0.1", port=1, server_hostname="x"),
                 ValueError, "server_hostname is only meaningful with ssl"),
                (dict(host="127.0.0.1", port=1, ssl_handshake_timeout=1),
                 ValueError, "ssl_handshake_timeout is only meaningful with ssl"),
                (dict(port=1, ssl=True), ValueError,
                 "You must set server_hostname when using ssl without a host"),
                (dict(sock=udp), ValueError, "A Stream Socket was expected"),
            ]
            if PY311:
                cases.append((dict(host="127.0.0.1", port=1, ssl_shutdown_timeout=1),
                              ValueError, "ssl_shutdown_timeout is only meaningful with ssl"))
            for kwargs, exc_type, msg in cases:
                with pytest.raises(exc_type, match=msg):
                    await loop.create_connection(asyncio.Protocol, **kwargs)
            if not PY312:
                with pytest.raises(TypeError):
                    await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, all_errors=True)
        finally:
            sock.close()
            udp.close()
    run(loop, main())


def _fake_getaddrinfo(loop, ports):
    """Make 'multi.invalid' resolve to 127.0.0.1 on each of ``ports``."""
    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        assert host == "multi.invalid"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", p))
                for p in ports]
    loop.getaddrinfo = getaddrinfo


def _closed_ports(n):
    ports = []
    socks = [tcp_listener() for _ in range(n)]
    for s in socks:
        ports.append(s.getsockname()[1])
        s.close()
    return ports


def test_create_connection_tries_every_address(loop):
    async def main():
        server = await _echo_server(loop)
        _fake_getaddrinfo(loop, _closed_ports(2) + [_port(server)])
        tr, _ = await loop.create_connection(asyncio.Protocol, "multi.invalid", 0)
        assert tr.get_extra_info("peername")[1] == _port(server)
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_connection_all_fail(loop):
    async def main():
        ports = _closed_ports(2)
        _fake_getaddrinfo(loop, ports)
        with pytest.raises(OSError) as info:
            await loop.create_connection(asyncio.Protocol, "multi.invalid", 0)
        assert "Multiple exceptions" in str(info.value)
        if PY312:
            with pytest.raises(ExceptionGroup) as group:  # noqa: F821
                await loop.create_connection(asyncio.Protocol, "multi.invalid", 0, all_errors=True)
            assert len(group.value.exceptions) == 2
            assert all(isinstance(e, ConnectionRefusedError) for e in group.value.exceptions)
    run(loop, main())


def test_create_connection_happy_eyeballs(loop):
    async def main():
        server = await _echo_server(loop)
        _fake_getaddrinfo(loop, _closed_ports(1) + [_port(server), _port(server)])
        tr, _ = await loop.create_connection(asyncio.Protocol, "multi.invalid", 0,
                                             happy_eyeballs_delay=0.05)
        assert tr.get_extra_info("peername")[1] == _port(server)
        tr.close()
        tr2, _ = await loop.create_connection(asyncio.Protocol, "multi.invalid", 0,
                                              happy_eyeballs_delay=0.0, interleave=2)
        tr2.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_connection_local_addr(loop):
    async def main():
        server = await _echo_server(loop)
        probe = tcp_listener()
        local_port = probe.getsockname()[1]
        probe.close()
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server),
                                             local_addr=("127.0.0.1", local_port))
        assert tr.get_extra_info("sockname") == ("127.0.0.1", local_port)
        # The same local address again: the bind fails, with stdlib's message.
        with pytest.raises(OSError, match="error while attempting to bind on address"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", _port(server),
                                         local_addr=("127.0.0.1", local_port))
        tr.close()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_connection_sock(loop):
    async def main():
        server = await _echo_server(loop)
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", _port(server)))
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, sock=sock)
        tr.write(b"ping")
        await rec.wait_for_bytes(4)
        tr.close()
        await rec.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_connection_protocol_factory_raises(loop):
    async def main():
        server = await _echo_server(loop)

        def factory():
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await loop.create_connection(factory, "127.0.0.1", _port(server))
        server.close()
        await server.wait_closed()
    run(loop, main())


# --- create_server ----------------------------------------------------------------------

def test_create_server_argument_errors(loop):
    async def main():
        sock = socket.socket()
        udp = socket.socket(type=socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError, match="Neither host/port nor sock were specified"):
                await loop.create_server(asyncio.Protocol)
            with pytest.raises(ValueError, match="host/port and sock can not be specified"):
                await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, sock=sock)
            with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
                await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)
            with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
                await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1)
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                await loop.create_server(asyncio.Protocol, sock=udp)
            if not PY313:
                with pytest.raises(TypeError):
                    await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, keep_alive=True)
        finally:
            sock.close()
            udp.close()
    run(loop, main())


def test_create_server_address_in_use(loop):
    async def main():
        server = await _echo_server(loop)
        with pytest.raises(OSError, match="error while attempting to bind on address") as info:
            await loop.create_server(Echo, "127.0.0.1", _port(server), reuse_address=False)
        assert info.value.errno is not None
        server.close()
        await server.wait_closed()
    run(loop, main())


@pytest.mark.parametrize("host", [None, "", "localhost", ["127.0.0.1", "127.0.0.1"]])
def test_create_server_hosts(loop, host):
    async def main():
        server = await loop.create_server(Echo, host, 0, family=socket.AF_INET)
        names = {s.getsockname() for s in server.sockets}
        assert len(names) == 1    # duplicates bound once
        port = next(iter(names))[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hi")
        assert await r.readexactly(2) == b"hi"
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_create_server_options(loop):
    async def main():
        kwargs = dict(reuse_address=True, reuse_port=True, backlog=5)
        if PY313:
            kwargs["keep_alive"] = True
        server = await loop.create_server(Echo, "127.0.0.1", 0, **kwargs)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        if PY313:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        # A second server on the same port with reuse_port.
        other = await loop.create_server(Echo, "127.0.0.1", _port(server), reuse_port=True)
        other.close()
        server.close()
        await asyncio.gather(server.wait_closed(), other.wait_closed())
    run(loop, main())


def test_create_server_start_serving_false_then_serve_forever(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        r, w = await asyncio.open_connection("127.0.0.1", _port(server))
        w.write(b"abc\n")
        assert await r.readline() == b"abc\n"
        w.close()
        await w.wait_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        await server.wait_closed()
    run(loop, main())


def test_create_server_sock_and_async_with(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        port = lsock.getsockname()[1]
        async with await loop.create_server(Echo, sock=lsock) as server:
            assert server.sockets[0].getsockname() == ("127.0.0.1", port)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"x")
            assert await r.readexactly(1) == b"x"
            w.close()
            await w.wait_closed()
        assert not server.is_serving()
        assert lsock.fileno() == -1   # the server closed it
    run(loop, main())


@pytest.mark.skipif(not PY313, reason="Server.close_clients/abort_clients are 3.13+")
def test_server_close_and_abort_clients(loop):
    async def main():
        server = await loop.create_server(lambda: Sink(loop), "127.0.0.1", 0)
        recs = []
        for _ in range(3):
            rec = Recorder(loop)
            await loop.create_connection(lambda rec=rec: rec, "127.0.0.1", _port(server))
            recs.append(rec)
        await asyncio.sleep(0.01)
        server.close()
        server.close_clients()
        for rec in recs:
            await rec.eof
            await rec.lost
        await server.wait_closed()
    run(loop, main())


def test_wait_closed_waits_for_connections(loop):
    async def main():
        server = await loop.create_server(lambda: Sink(loop), "127.0.0.1", 0)
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, "127.0.0.1", _port(server))
        await asyncio.sleep(0.01)
        server.close()
        waiter = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.02)
        if sys.version_info >= (3, 12, 1):
            assert not waiter.done()   # a client is still connected
        tr.close()
        await asyncio.wait_for(waiter, 5)
    run(loop, main())


# --- load ------------------------------------------------------------------------------

def test_1000_concurrent_connections_echo(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1000)
        port = _port(server)
        sem = asyncio.Semaphore(1000)

        async def client(i):
            async with sem:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                msg = b"%d\n" % i * 10
                w.write(msg)
                data = await r.readexactly(len(msg))
                w.close()
                await w.wait_closed()
                return data == msg

        results = await asyncio.gather(*(client(i) for i in range(1000)))
        assert all(results)
        server.close()
        await server.wait_closed()
    run(loop, main(), timeout=60)


def test_100mib_transfer_paused_reader_bounded_buffer(loop):
    TOTAL = 100 << 20
    CHUNK = 256 * 1024

    async def main():
        done = loop.create_future()
        max_buffered = [0]

        class Producer(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                transport.set_write_buffer_limits(high=1 << 20)
                self.sent = 0
                self.paused = False
                loop.call_soon(self.produce)

            def produce(self):
                chunk = b"p" * CHUNK
                while not self.paused and self.sent < TOTAL:
                    self.transport.write(chunk)
                    self.sent += CHUNK
                    max_buffered[0] = max(max_buffered[0], self.transport.get_write_buffer_size())
                if self.sent >= TOTAL:
                    self.transport.close()

            def pause_writing(self):
                self.paused = True

            def resume_writing(self):
                self.paused = False
                loop.call_soon(self.produce)

        class Consumer(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                self.received = 0
                self.pauses = 0

            def data_received(self, data):
                before = self.received
                self.received += len(data)
                # Pause every ~8 MiB for a moment.
                if before // (8 << 20) != self.received // (8 << 20):
                    self.pauses += 1
                    self.transport.pause_reading()
                    loop.call_later(0.005, self.transport.resume_reading)

            def connection_lost(self, exc):
                done.set_result((self.received, self.pauses, exc))

        server = await loop.create_server(Producer, "127.0.0.1", 0)
        await loop.create_connection(Consumer, "127.0.0.1", _port(server))
        received, pauses, exc = await done
        assert exc is None
        assert received == TOTAL
        assert pauses >= 10
        # Bounded by the high mark plus one chunk.
        assert max_buffered[0] <= (1 << 20) + CHUNK
        server.close()
        await server.wait_closed()
    run(loop, main(), timeout=120)


def test_writelines_large_mixed_pieces_and_later_mutation(loop):
    """writelines with pieces too big for the socket buffer (part goes out at
    once, the rest is queued): the peer gets every byte in order, and a
    bytearray the caller changes after writelines() is sent as it was."""
    async def main():
        server = await _echo_server(loop)
        rec = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: rec, "127.0.0.1", _port(server))
        first = bytes(range(256)) * 8192               # 2 MiB
        mutable = bytearray(b"m" * (1 << 20))          # 1 MiB, changed below
        view = memoryview(bytes(range(255, -1, -1)) * 4096)
        tr.writelines([first, b"", mutable, view, b"tail"])
        expected = first + b"m" * (1 << 20) + bytes(view) + b"tail"
        mutable[:] = b"X" * len(mutable)
        await asyncio.wait_for(rec.wait_for_bytes(len(expected)), 30)
        assert bytes(rec.data) == expected
        tr.close()
        await rec.lost
        server.close()
        await server.wait_closed()
    run(loop, main())


def test_write_memoryview_of_wide_items_sends_every_byte(loop, request):
    """A memoryview of 4-byte items, larger than the socket buffers: every
    byte arrives.  stdlib sends the first part, then slices the rest by
    *items* with the byte count it sent and drops the tail (its write()
    mixes the two units), so on stdlib this is an expected failure."""
    if not is_uvloop_like(loop):
        request.applymarker(pytest.mark.xfail(strict=True, reason="stdlib bug: write() of a memoryview "
                                              "with itemsize > 1 loses data after a partial send"))

    async def main():
        rec = Recorder(loop)
        tr, peer = await _accept_pair(loop, rec)
        items = array.array("i", range(2_500_000))  # 10 MB
        tr.write(memoryview(items))
        tr.writelines([memoryview(array.array("i", [7, 8])), b"end"])
        tr.close()
        got = await _read_all(loop, peer)
        peer.close()
        assert len(got) == len(items) * items.itemsize + 8 + 3
        assert got == items.tobytes() + array.array("i", [7, 8]).tobytes() + b"end"
        assert await rec.lost is None
    run(loop, main())
