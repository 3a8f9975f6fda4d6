"""The read completions the native core dispatches in C (uvloop_like/_core.c,
"completions": data_received for stream reads, the datagram queue for UDP
receives), on both loops: the corners where the C path could drift from the
Python one (LoopCore.process -> StreamReading._on_read) and from stdlib.

An exception from data_received goes to the exception handler and closes the
transport; KeyboardInterrupt propagates out of run_until_complete and the
reads of the same batch are delivered afterwards, in order; pause_reading
from inside data_received holds what libuv already read; a transport closed
(or aborted) by an earlier read of the same batch gets nothing more;
loop.close() inside data_received is refused; data_received runs in the
transport's context; a BufferedProtocol's reads (into the same or a fresh
memoryview) arrive in order, its callbacks' errors close the transport, and
pause_reading inside buffer_updated holds the rest; a datagram's sender
address is the one the socket module gives.  uvloop_like only: a replaced
_on_read and a slow-callback hook take the Python path.  Reference leaks
(native core): flat over many reads and many datagrams.
"""
from __future__ import annotations

import asyncio
import contextvars
import gc
import socket
import sys

import pytest

import uvloop_like

NATIVE = uvloop_like.core() == "native"

_NO_BLOCK_COUNT = pytest.mark.skipif(
    not hasattr(sys, "getallocatedblocks") or sys.getallocatedblocks() == 0
    or asyncio.coroutines._is_debug_mode(),
    reason="sys.getallocatedblocks() is CPython's and counts nothing under PYTHONMALLOC=malloc "
           "(make sanitize); under PYTHONASYNCIODEBUG=1 the loops run the Python core")


def _run_until(loop, predicate, timeout=10.0):
    """Run the loop until predicate() holds (bounded in time)."""
    async def wait():
        while not predicate():
            await asyncio.sleep(0.005)
    loop.run_until_complete(asyncio.wait_for(wait(), timeout))


class _Recorder(asyncio.Protocol):
    """A server-side protocol that records its calls; ``on_data`` (if set)
    runs first in data_received."""

    def __init__(self, registry, on_data=None):
        self.registry = registry
        self.on_data = on_data
        self.chunks = []
        self.lost = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.registry.append(self)

    def data_received(self, data):
        self.chunks.append(data)
        if self.on_data is not None:
            self.on_data(self, data)

    def connection_lost(self, exc):
        self.lost.append(exc)


def _server_with_clients(loop, n, factory):
    """A TCP server on loopback and n blocking client sockets connected to
    it, once the server has made all n protocols (in accept order)."""
    registry = []
    server = loop.run_until_complete(
        loop.create_server(lambda: factory(registry), "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        clients.append(c)
        # Accepted one at a time: the registry's order is the clients'.
        _run_until(loop, lambda: len(registry) == len(clients))
    return server, clients, registry


def _close_all(loop, server, clients):
    for c in clients:
        c.close()
    server.close()
    loop.run_until_complete(server.wait_closed())


def test_data_received_exception_goes_to_handler_and_closes(loop, exc_handler):
    boom = ValueError("boom")

    def raise_it(proto, data):
        raise boom

    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Recorder(reg, raise_it))
    try:
        clients[0].sendall(b"hello")
        _run_until(loop, lambda: protos[0].lost)
        assert protos[0].chunks == [b"hello"]
        assert protos[0].transport.is_closing()
        assert protos[0].lost == [boom]
        calls = [c for c in exc_handler.calls if c.get("exception") is boom]
        assert len(calls) == 1
        assert calls[0]["message"] == "Fatal error: protocol.data_received() call failed."
        assert calls[0]["protocol"] is protos[0]
        assert calls[0]["transport"] is protos[0].transport
        # The peer sees the connection closed.
        clients[0].settimeout(5)
        assert clients[0].recv(10) == b""
    finally:
        _close_all(loop, server, clients)


def test_exception_handler_sees_the_exception_being_handled(loop, exc_handler):
    # _fatal_error runs inside the guard's `except` block: sys.exc_info() is
    # the protocol's exception while the handler runs.
    seen = []

    def handler(lp, context):
        seen.append(sys.exc_info()[1])

    loop.set_exception_handler(handler)

    def raise_it(proto, data):
        raise KeyError("k")

    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Recorder(reg, raise_it))
    try:
        clients[0].sendall(b"x")
        _run_until(loop, lambda: protos[0].lost)
        assert len(seen) == 1 and isinstance(seen[0], KeyError)
        assert protos[0].lost[0] is seen[0]
    finally:
        _close_all(loop, server, clients)


def test_keyboard_interrupt_from_data_received_then_the_rest_in_order(loop):
    raised = []

    def interrupt_once(proto, data):
        if not raised:
            raised.append(proto)
            raise KeyboardInterrupt

    server, clients, protos = _server_with_clients(
        loop, 3, lambda reg: _Recorder(reg, interrupt_once))
    try:
        # All three readable before the loop polls: one libuv batch (on
        # uvloop_like) or three ready reader callbacks (stdlib).
        for i, c in enumerate(clients):
            c.sendall(b"first%d-" % i)

        async def forever():
            await asyncio.sleep(30)

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(forever())
        assert len(raised) == 1
        # What arrives now comes after what was read (or readable) before.
        for i, c in enumerate(clients):
            c.sendall(b"second%d" % i)
        expected = [b"first%d-second%d" % (i, i) for i in range(3)]
        _run_until(loop, lambda: [b"".join(p.chunks) for p in protos] == expected)
        for p in protos:
            assert not p.transport.is_closing()
            assert p.lost == []
    finally:
        for t in asyncio.all_tasks(loop):
            t.cancel()
        _close_all(loop, server, clients)


def test_pause_reading_inside_data_received_holds_the_rest(loop):
    size = 3 * 256 * 1024 + 1000   # more than one read of libuv's (256 KiB each)
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    def pause_first(proto, data):
        if len(proto.chunks) == 1:
            proto.transport.pause_reading()

    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Recorder(reg, pause_first))
    try:
        c = clients[0]
        c.setblocking(False)
        sent = 0
        try:
            # As much as the kernel takes now (the loop is not running).
            while sent < len(payload):
                sent += c.send(payload[sent:])
        except BlockingIOError:
            pass
        _run_until(loop, lambda: protos[0].chunks)
        p = protos[0]
        assert not p.transport.is_reading()
        # Paused: nothing more is delivered, however long the loop runs.
        for _ in range(5):
            loop.run_until_complete(asyncio.sleep(0.01))
        assert len(p.chunks) == 1
        p.on_data = None
        p.transport.resume_reading()
        while sent < len(payload):
            try:
                sent += c.send(payload[sent:])
            except BlockingIOError:
                loop.run_until_complete(asyncio.sleep(0.005))
        _run_until(loop, lambda: sum(map(len, p.chunks)) >= len(payload))
        assert b"".join(p.chunks) == payload
    finally:
        _close_all(loop, server, clients)


@pytest.mark.parametrize("how", ["close", "abort"])
def test_transport_closed_by_an_earlier_read_of_the_batch(loop, how):
    # Whichever connection's data comes first closes (or aborts) all the
    # others: their reads (in the same batch, or later) are never delivered.
    def close_the_others(proto, data):
        for other in proto.registry:
            if other is not proto and not other.transport.is_closing():
                getattr(other.transport, how)()

    server, clients, protos = _server_with_clients(
        loop, 6, lambda reg: _Recorder(reg, close_the_others))
    try:
        for c in clients:
            c.sendall(b"a")
        _run_until(loop, lambda: sum(1 for p in protos if p.lost) == 5)
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0.01))
        delivered = [p for p in protos if p.chunks]
        assert len(delivered) == 1
        for p in protos:
            if p is not delivered[0]:
                assert p.chunks == [] and p.lost == [None]
        assert not delivered[0].transport.is_closing()
    finally:
        _close_all(loop, server, clients)


def test_loop_close_inside_data_received_is_refused(loop):
    errors = []

    def try_close(proto, data):
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Recorder(reg, try_close))
    try:
        clients[0].sendall(b"x")
        _run_until(loop, lambda: errors)
        assert errors == ["Cannot close a running event loop"]
        assert not loop.is_closed()
        clients[0].sendall(b"y")
        _run_until(loop, lambda: len(protos[0].chunks) == 2)
    finally:
        _close_all(loop, server, clients)


def test_data_received_runs_in_the_transports_context(loop):
    var = contextvars.ContextVar("var", default=0)
    seen = []

    class P(_Recorder):
        def data_received(self, data):
            seen.append(var.get())
            var.set(var.get() + 1)   # stays in the transport's context
            super().data_received(data)

    async def start():
        var.set(100)   # the server's accept runs in a copy of this context
        return await loop.create_server(lambda: P(registry), "127.0.0.1", 0)

    registry = []
    server = loop.run_until_complete(start())
    port = server.sockets[0].getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        _run_until(loop, lambda: registry)
        for i in range(3):
            c.sendall(b"%d" % i)
            _run_until(loop, lambda i=i: len(seen) > i)
        _run_until(loop, lambda: sum(map(len, registry[0].chunks)) == 3)
        assert seen == list(range(100, 100 + len(seen)))
        assert var.get() == 0   # nothing leaked into the caller's context
    finally:
        _close_all(loop, server, [c])


class _Buffered(asyncio.BufferedProtocol):
    """A BufferedProtocol over memoryviews (the buffers the native core's
    read path keeps posted); ``fail`` names the callback that raises."""

    def __init__(self, registry, fail=None, fresh_views=False):
        self.registry = registry
        self.fail = fail
        self.fresh_views = fresh_views
        self.storage = bytearray(64 * 1024)
        self.view = memoryview(self.storage)
        self.received = bytearray()
        self.calls = []
        self.lost = []

    def connection_made(self, transport):
        self.transport = transport
        self.registry.append(self)

    def get_buffer(self, sizehint):
        self.calls.append("get_buffer")
        if self.fail == "get_buffer" and "buffer_updated" in self.calls:
            raise ValueError("get_buffer failed")
        if self.fresh_views:
            self.view = memoryview(self.storage)   # another object each time: post_buffer
        return self.view

    def buffer_updated(self, nbytes):
        self.calls.append("buffer_updated")
        self.received += self.storage[:nbytes]
        if self.fail == "buffer_updated":
            raise ValueError("buffer_updated failed")

    def connection_lost(self, exc):
        self.lost.append(exc)


@pytest.mark.parametrize("fresh_views", [False, True], ids=["same_view", "fresh_views"])
def test_buffered_protocol_reads_in_order(loop, fresh_views):
    payload = bytes(range(256)) * 2000   # 512,000 bytes: several reads
    server, clients, protos = _server_with_clients(
        loop, 1, lambda reg: _Buffered(reg, fresh_views=fresh_views))
    try:
        clients[0].setblocking(False)
        sent = 0
        while sent < len(payload):
            try:
                sent += clients[0].send(payload[sent:])
            except BlockingIOError:
                loop.run_until_complete(asyncio.sleep(0.005))
        _run_until(loop, lambda: len(protos[0].received) >= len(payload))
        assert bytes(protos[0].received) == payload
        assert protos[0].lost == []
    finally:
        _close_all(loop, server, clients)


@pytest.mark.parametrize("fail", ["buffer_updated", "get_buffer"])
def test_buffered_protocol_callback_error_goes_to_handler_and_closes(loop, exc_handler, fail):
    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Buffered(reg, fail=fail))
    try:
        clients[0].sendall(b"data")
        _run_until(loop, lambda: protos[0].received)
        # stdlib asks for the next buffer when more arrives, uvloop_like
        # right after buffer_updated: either way the next get_buffer fails.
        try:
            clients[0].sendall(b"more")
        except OSError:
            pass   # (already closed by the peer: uvloop_like)
        _run_until(loop, lambda: protos[0].lost)
        p = protos[0]
        assert bytes(p.received) == b"data"
        assert p.transport.is_closing()
        assert isinstance(p.lost[0], ValueError) and str(p.lost[0]) == fail + " failed"
        calls = [c for c in exc_handler.calls if c.get("exception") is p.lost[0]]
        assert [c["message"] for c in calls] == ["Fatal error: protocol.%s() call failed." % fail]
    finally:
        _close_all(loop, server, clients)


def test_buffered_protocol_pause_inside_buffer_updated(loop):
    class Pausing(_Buffered):
        def buffer_updated(self, nbytes):
            super().buffer_updated(nbytes)
            if self.pause_next:
                self.pause_next = False
                self.transport.pause_reading()

    def make(reg):
        p = Pausing(reg)
        p.pause_next = True
        return p

    server, clients, protos = _server_with_clients(loop, 1, make)
    try:
        clients[0].sendall(b"one")
        _run_until(loop, lambda: protos[0].received)
        p = protos[0]
        assert not p.transport.is_reading()
        clients[0].sendall(b"two")
        for _ in range(5):
            loop.run_until_complete(asyncio.sleep(0.01))
        assert bytes(p.received) == b"one"
        p.transport.resume_reading()
        _run_until(loop, lambda: bytes(p.received) == b"onetwo")
    finally:
        _close_all(loop, server, clients)


def _udp_addr_roundtrip(loop, family, host):
    received = []

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            received.append((data, addr))

    transport, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(P, local_addr=(host, 0), family=family))
    try:
        target = transport.get_extra_info("sockname")
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            for i in range(3):
                s.sendto(b"d%d" % i, target[:2])
            _run_until(loop, lambda: len(received) == 3)
            assert [d for d, _ in received] == [b"d0", b"d1", b"d2"]
            for _, addr in received:
                assert addr == s.getsockname()
                assert type(addr) is tuple
    finally:
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))


def test_datagram_address_is_the_socket_modules_ipv4(loop):
    _udp_addr_roundtrip(loop, socket.AF_INET, "127.0.0.1")


def test_datagram_address_is_the_socket_modules_ipv6(loop):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    _udp_addr_roundtrip(loop, socket.AF_INET6, "::1")


def test_datagram_received_exception_reported_and_reading_goes_on(loop, exc_handler):
    received = []

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            received.append(data)
            if data == b"bad":
                raise ValueError("bad datagram")

    transport, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0)))
    try:
        target = transport.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"bad", target)
            _run_until(loop, lambda: received)
            s.sendto(b"good", target)
            _run_until(loop, lambda: len(received) == 2)
        assert received == [b"bad", b"good"]
        assert not transport.is_closing()
        assert [type(c.get("exception")) for c in exc_handler.calls] == [ValueError]
    finally:
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))


@pytest.mark.skipif(not NATIVE, reason="the native core's C dispatch (the default on CPython)")
def test_native_core_binds_stream_and_udp_handles():
    # The fast path is in use: the loop's Core bound the handles (else every
    # read would quietly take the Python path and these tests prove less).
    loop = uvloop_like.new_event_loop()
    try:
        assert loop._native is not None
        from uvloop_like.handles.stream import StreamHandle
        from uvloop_like.handles.udp import UDPHandle

        h = StreamHandle(loop)
        u = UDPHandle(loop)
        assert loop._native.bind(h) is True
        assert loop._native.bind(u) is True
        with pytest.raises(TypeError):
            loop._native.bind(object())
        h.close()
        u.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


def _blocks():
    gc.collect()
    return sys.getallocatedblocks()


def _assert_flat(loop, main):
    """Run ``main()`` (which returns the allocated-block counts before and
    after its measured work) on ``loop``, close the loop, and check that
    the count stayed flat."""
    try:
        before, after = loop.run_until_complete(asyncio.wait_for(main(), 280))
    finally:
        loop.close()
    assert after - before < 2000, (before, after)


@_NO_BLOCK_COUNT
@pytest.mark.timeout(300)
def test_no_leak_over_many_reads_and_errors():
    """20,000 echoes on one connection, and 500 connections whose
    data_received raises (the fatal-error path): allocated blocks flat."""
    loop = uvloop_like.new_event_loop()
    loop.set_exception_handler(lambda lp, ctx: None)

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            if data == b"raise":
                raise ValueError("raise")
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def __init__(self):
            self.waiter = None
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.waiter.set_result(data)

        def connection_lost(self, exc):
            self.lost.set_result(None)

    async def echoes(port, n):
        transport, client = await loop.create_connection(Client, "127.0.0.1", port)
        for _ in range(n):
            client.waiter = loop.create_future()
            transport.write(b"x" * 100)
            assert len(await client.waiter) == 100
        transport.close()
        await client.lost

    async def failures(port, n):
        for _ in range(n):
            transport, client = await loop.create_connection(Client, "127.0.0.1", port)
            transport.write(b"raise")
            await client.lost

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await echoes(port, 1000)
            await failures(port, 50)
            before = _blocks()
            await echoes(port, 20000)
            await failures(port, 500)
            after = _blocks()
        finally:
            server.close()
            await server.wait_closed()
        return before, after

    _assert_flat(loop, main)


@_NO_BLOCK_COUNT
@pytest.mark.timeout(300)
def test_no_leak_over_many_datagrams():
    loop = uvloop_like.new_event_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        waiter = None

        def datagram_received(self, data, addr):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(data)

    async def pings(client_t, client, n):
        for _ in range(n):
            client.waiter = loop.create_future()
            client_t.sendto(b"y" * 64)
            await asyncio.wait_for(client.waiter, 5)

    async def main():
        server_t, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        client_t, client = await loop.create_datagram_endpoint(
            Client, remote_addr=server_t.get_extra_info("sockname"))
        try:
            await pings(client_t, client, 1000)
            before = _blocks()
            await pings(client_t, client, 20000)
            after = _blocks()
        finally:
            client_t.close()
            server_t.close()
            await asyncio.sleep(0)
        return before, after

    _assert_flat(loop, main)


def _uvloop_like_echo_once(loop, setup):
    """One read on a uvloop_like server connection, after ``setup(proto)``
    (at connection_made); returns the protocol."""
    server, clients, protos = _server_with_clients(loop, 1, lambda reg: _Recorder(reg))
    try:
        setup(protos[0])
        clients[0].sendall(b"ping")
        _run_until(loop, lambda: protos[0].chunks)
        return protos[0]
    finally:
        _close_all(loop, server, clients)


def test_replaced_on_read_takes_the_python_path():
    # uvloop_like's own internals (both cores): a handle whose _on_read is
    # not StreamReading's (replaced on the instance here; a subclass
    # overriding it is the same case) gets its reads through that callable.
    loop = uvloop_like.new_event_loop()
    seen = []
    try:
        def setup(proto):
            handle = proto.transport._handle
            original = handle._on_read

            def spy(nread, data):
                seen.append(nread)
                original(nread, data)
            handle._on_read = spy

        proto = _uvloop_like_echo_once(loop, setup)
        assert seen[0] == 4 and proto.chunks == [b"ping"]   # (then EOF, as the client closes)
    finally:
        loop.close()


def test_slow_callback_hook_reports_a_slow_data_received():
    # With a hook set, completions are timed one by one (LoopCore.process_timed
    # on both cores) and a slow data_received is reported with its transport.
    loop = uvloop_like.new_event_loop()
    reports = []
    try:
        loop.set_slow_callback_hook(lambda what, seconds: reports.append((what, seconds)),
                                    threshold=0.01)
        slow_done = []

        def setup(proto):
            def slow(p, data):
                t0 = loop.time()
                while loop.time() - t0 < 0.02:
                    pass
                slow_done.append(True)
            proto.on_data = slow

        proto = _uvloop_like_echo_once(loop, setup)
        assert slow_done and proto.chunks == [b"ping"]
        assert any(what is proto.transport and seconds >= 0.01 for what, seconds in reports), reports
    finally:
        loop.close()



class _PausedProperty:
    """``_paused`` as a property whose answer is in the instance dict
    ("paused_value"); setting it sets both that and StreamTransport's slot,
    so the two disagree only when a test makes them (the slot says False
    while the property says True): a read then taken by the slot would be
    delivered, one taken by the property is held."""

    def __init__(self):
        from uvloop_like.transports.stream import StreamTransport
        self.slot = StreamTransport.__dict__["_paused"]
        self.reads = 0

    def make(self):
        def get(tr):
            self.reads += 1
            return tr.__dict__["paused_value"]

        def set_(tr, value):
            tr.__dict__["paused_value"] = value
            self.slot.__set__(tr, value)
        return property(get, set_)


def _held_by_the_property(loop, monkeypatch, cls, paused, install=None):
    """A uvloop_like server connection whose transport is of class ``cls``:
    "ping" delivered and echoed (through transport.write); ``install(tr)``;
    then the property ``paused`` says paused while the slot says not:
    "pong" must be held (the read path asked the property), and arrives
    after resume_reading()."""
    from uvloop_like.transports import stream as stream_mod
    monkeypatch.setattr(stream_mod, "StreamTransport", cls)
    server, clients, protos = _server_with_clients(
        loop, 1, lambda reg: _Recorder(reg, on_data=lambda p, data: p.transport.write(data)))
    try:
        proto = protos[0]
        tr = proto.transport
        assert type(tr) is cls
        clients[0].sendall(b"ping")
        _run_until(loop, lambda: proto.chunks)
        assert clients[0].recv(16) == b"ping"
        if install is not None:
            install(tr)
        tr.__dict__["paused_value"] = True  # (the slot still says False)
        reads = paused.reads
        clients[0].sendall(b"pong")
        _run_until(loop, lambda: tr._held)
        assert proto.chunks == [b"ping"] and paused.reads > reads
        tr._paused = True   # (both)
        tr.resume_reading()
        _run_until(loop, lambda: len(proto.chunks) == 2)
        assert proto.chunks == [b"ping", b"pong"] and clients[0].recv(16) == b"pong"
        assert not proto.lost
    finally:
        _close_all(loop, server, clients)
    _run_until(loop, lambda: proto.lost)


def test_transport_subclass_with_a_property_for_a_hot_attribute(monkeypatch):
    # uvloop_like's own internals (both cores): the native core reads the
    # transport's hot state (StreamTransport.__slots__) at the slots'
    # offsets only while the class resolves each name to its slot; a
    # subclass redefining one as a property is read through the property
    # (reads and writes), as on the Python core.
    from uvloop_like.transports.stream import StreamTransport
    paused = _PausedProperty()

    class Watched(StreamTransport):
        _paused = paused.make()

    loop = uvloop_like.new_event_loop()
    try:
        _held_by_the_property(loop, monkeypatch, Watched, paused)
    finally:
        loop.close()


def test_transport_class_changed_after_its_first_reads(monkeypatch):
    # The native core's verdict on a class is dropped when the class is
    # modified (CPython's version tag): a property set on the class after
    # the first read is the one the next read asks.
    from uvloop_like.transports.stream import StreamTransport
    paused = _PausedProperty()

    class Plain(StreamTransport):
        pass

    def install(tr):
        tr.__dict__["paused_value"] = tr._paused
        Plain._paused = paused.make()

    loop = uvloop_like.new_event_loop()
    try:
        _held_by_the_property(loop, monkeypatch, Plain, paused, install)
    finally:
        loop.close()
