"""Abandoned transports are collected (issue 8, A5; DESIGN rule 12).

A transport that only the loop knows about and that is neither reading nor
writing -- its protocol kept a half-open connection (eof_received returned
True) and dropped every reference -- is garbage collected, warns
``ResourceWarning: unclosed transport`` and closes its descriptor, on stdlib
as on uvloop_like."""
from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import warnings

import pytest
from loop_testutil import full_gc, run


def _socket_fds():
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:
            continue
    return fds


class _HalfOpen(asyncio.Protocol):
    """Keeps the connection half-open at EOF and references nothing."""

    made = 0
    eofs = 0

    def connection_made(self, transport):
        _HalfOpen.made += 1

    def eof_received(self):
        _HalfOpen.eofs += 1
        return True


async def _settle(loop, until, rounds=500):
    for _ in range(rounds):
        if until():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


async def _collect_until(baseline, rounds=200):
    """gc until the process's socket descriptors are back to ``baseline``."""
    for _ in range(rounds):
        full_gc()
        if _socket_fds() <= baseline:
            return
        await asyncio.sleep(0.002)


def _unclosed(caught):
    return [w for w in caught if issubclass(w.category, ResourceWarning)
            and "unclosed" in str(w.message)]


def test_half_open_transports_dropped_by_their_protocol_are_collected(loop):
    count = 100

    async def main():
        _HalfOpen.made = _HalfOpen.eofs = 0
        server = await loop.create_server(_HalfOpen, "127.0.0.1", 0, backlog=count)
        port = server.sockets[0].getsockname()[1]
        baseline = _socket_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clients = []
            for _ in range(count):
                sock = socket.socket()
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                clients.append(sock)
            await _settle(loop, lambda: _HalfOpen.made == count)
            for sock in clients:
                sock.shutdown(socket.SHUT_WR)    # EOF: the server keeps its half open
            await _settle(loop, lambda: _HalfOpen.eofs == count)
            for sock in clients:
                sock.close()
            del clients, sock
            await _collect_until(baseline)
            left = _socket_fds() - baseline
            warned = _unclosed(caught)
        server.close()
        if sys.version_info < (3, 12):
            # 3.12+'s wait_closed() waits for every connection to detach from
            # the server, and a transport collected unclosed never does
            # (stdlib's neither): it would wait forever.
            await server.wait_closed()
        assert not left, f"{len(left)} descriptors left open by abandoned transports"
        assert len(warned) >= count, f"{len(warned)} ResourceWarnings for {count} abandoned transports"
        assert any("unclosed transport" in str(w.message) for w in warned)
    run(loop, main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.11+ start_server (as the issue reports it)")
def test_start_server_callback_that_drops_its_writer(loop):
    count = 20

    async def main():
        served = []

        async def handler(reader, writer):
            served.append(None)     # and drops reader and writer

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        baseline = _socket_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(count):
                sock = socket.socket()
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                sock.close()
            del sock
            await _settle(loop, lambda: len(served) == count)
            for _ in range(20):
                await asyncio.sleep(0.002)   # the EOFs arrive
            await _collect_until(baseline)
            left = _socket_fds() - baseline
            warned = _unclosed(caught)
        server.close()
        await server.wait_closed()
        assert not left, f"{len(left)} descriptors left open by abandoned connections"
        assert len(warned) >= count
    run(loop, main())


def test_reading_transport_is_kept_alive_by_the_loop(loop):
    """The other side of the rule: a transport that is reading is not
    collected even though nobody references it; its data still arrives."""
    async def main():
        got = loop.create_future()

        class Quiet(asyncio.Protocol):
            def data_received(self, data):
                if not got.done():
                    got.set_result(data)

        a, b = socket.socketpair()
        await loop.create_unix_connection(Quiet, sock=a)
        gc.collect()
        await asyncio.sleep(0.01)
        gc.collect()
        b.sendall(b"still here")
        assert await got == b"still here"
        b.close()
        for _ in range(20):
            await asyncio.sleep(0.002)   # EOF: the transport closes itself
    run(loop, main())
