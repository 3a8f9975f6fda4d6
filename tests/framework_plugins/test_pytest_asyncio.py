"""Async tests and async fixtures under pytest-asyncio, on both loops (see
conftest.py): the loop each test gets, fixtures sharing it, a TCP round trip,
a subprocess, timeouts and cancellation."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from test_streams import _line_server  # the line-upper-casing handler

pytest_asyncio = pytest.importorskip("pytest_asyncio")

# Run once per CI (make test-unit), not in every interpreter column: see the Makefile.
pytestmark = pytest.mark.frameworks


def loop_kind_of(request):
    """The loop kind this test was parametrized with (its id: "asyncio" or
    "uvloop_like"); AttributeError if pytest-asyncio did not parametrize it."""
    return request.node.callspec.id


def assert_on_kind(request):
    kind = type(asyncio.get_running_loop()).__module__.split(".")[0]
    assert kind == loop_kind_of(request), (kind, request.node.nodeid)


@pytest_asyncio.fixture
async def echo_server():
    server = await asyncio.start_server(_line_server, "127.0.0.1", 0)
    yield server
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio
async def test_runs_on_a_loop_of_the_configured_kind(request):
    assert_on_kind(request)
    await asyncio.sleep(0.01)
    assert_on_kind(request)


@pytest.mark.asyncio
async def test_async_fixture_shares_the_loop(request, echo_server):
    assert_on_kind(request)
    assert echo_server.get_loop() is asyncio.get_running_loop()
    port = echo_server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 10) == b"HELLO\n"
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_subprocess_and_timeouts(request):
    assert_on_kind(request)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child')", stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b"child" and proc.returncode == 0
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.sleep(10), 0.05)
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
