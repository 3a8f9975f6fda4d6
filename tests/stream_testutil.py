"""Helpers shared by the stream tests (test_tcp, test_unix, test_streams, ...)."""
from __future__ import annotations

import asyncio
import socket


class Recorder(asyncio.Protocol):
    """A protocol that records every call, in order, and checks asyncio's
    state machine as it goes: connection_made first, no data after
    eof_received, connection_lost once and last."""

    def __init__(self, loop, eof_result=None):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.eof_result = eof_result
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.errors = []
        self._waiters = []   # (size, future)

    def _check(self, event):
        if not self.events and event != "made":
            self.errors.append(f"{event} before connection_made")
        if self.events and self.events[-1] == "lost":
            self.errors.append(f"{event} after connection_lost")
        if event == "data" and "eof" in self.events:
            self.errors.append("data_received after eof_received")
        self.events.append(event)

    def connection_made(self, transport):
        self._check("made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes)
        self._check("data")
        self.data += data
        self._wake()

    def _wake(self):
        for size, fut in list(self._waiters):
            if len(self.data) >= size and not fut.done():
                fut.set_result(None)

    async def wait_for_bytes(self, size):
        if len(self.data) >= size:
            return
        fut = self.loop.create_future()
        self._waiters.append((size, fut))
        await fut

    def eof_received(self):
        self._check("eof")
        self.eof.set_result(None)
        return self.eof_result

    def pause_writing(self):
        self._check("pause")

    def resume_writing(self):
        self._check("resume")

    def connection_lost(self, exc):
        self._check("lost")
        if self.lost.done():
            self.errors.append("connection_lost twice")
        else:
            self.lost.set_result(exc)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(ConnectionError("lost before enough data"))

    def assert_ok(self):
        assert not self.errors, self.errors
        assert self.events[0] == "made"
        assert self.events.count("lost") <= 1
        if "lost" in self.events:
            assert self.events[-1] == "lost"


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


class Sink(asyncio.Protocol):
    """Server side that collects everything and signals EOF/loss."""

    instances = None

    def __init__(self, loop):
        self.data = bytearray()
        self.done = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        return None

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


def tcp_listener():
    """A listening, non-blocking TCP socket on 127.0.0.1 (the test accepts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    sock.setblocking(False)
    return sock


def fill_until_paused(transport, protocol_paused, chunk=b"x" * 65536, limit=1 << 30):
    """write() chunks until the protocol was paused; returns bytes written."""
    total = 0
    while not protocol_paused() and total < limit:
        transport.write(chunk)
        total += len(chunk)
    return total
