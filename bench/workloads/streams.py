"""Stream workloads: echo servers on the loop under test, over TCP loopback and unix sockets.

The server runs in the workload's process (pinned to ``ctx.cpus[0]``) on the loop under
test; the load generator is ``bench.loadgen echo``, the same fixed client for every loop
(a C epoll loop, see there), in a second process pinned to ``ctx.cpus[1]``.  It keeps
``CONNS`` connections open, each with one message in flight: one op is one round trip
of one message (the client sends it, the server echoes it back as it arrives, the
client has read all of it).  Only the server's loop differs between the columns.

Three servers, each written as an application would write it with the public API:

- ``protocol``: ``asyncio.Protocol``, ``data_received(data)`` -> ``transport.write(data)``;
- ``streams``: ``asyncio.start_server`` / ``start_unix_server`` with a handler that loops
  ``data = await reader.read(65536)``, ``writer.write(data)``, ``await writer.drain()``;
- ``buffered``: ``asyncio.BufferedProtocol`` reading into one 64 KiB buffer,
  ``buffer_updated(n)`` -> ``transport.write(view[:n])`` (and a fresh buffer whenever
  the transport kept some of it queued, so a queued write is never overwritten).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Callable, List, Optional, Tuple

from bench import loadgen
from bench.registry import Context, Measurement, spawn_pinned, workload

CONNS = 4  # concurrent connections of the echo client
BUFFER_SIZE = 65536  # BufferedProtocol's buffer and the streams handler's read size
REPEAT = 3  # fresh processes per cell by default (each run starts two processes)


# --- the servers ----------------------------------------------------------------


class EchoProtocol(asyncio.Protocol):
    transport: Any = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    transport: Any = None

    def connection_made(self, transport):
        self.transport = transport
        self.view = memoryview(bytearray(BUFFER_SIZE))

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        transport = self.transport
        transport.write(self.view[:nbytes])
        if transport.get_write_buffer_size():
            # Some of it is queued and may still point into our buffer.
            self.view = memoryview(bytearray(BUFFER_SIZE))


async def _echo_streams(reader, writer):
    read = reader.read
    write = writer.write
    drain = writer.drain
    try:
        while True:
            data = await read(BUFFER_SIZE)
            if not data:
                break
            write(data)
            await drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _start_server(loop, kind: str, family: str, path: Optional[str]):
    """Start the ``kind`` echo server; return (server, loadgen address arguments)."""
    if kind == "streams":
        if family == "tcp":
            server = await asyncio.start_server(_echo_streams, "127.0.0.1", 0)
        else:
            server = await asyncio.start_unix_server(_echo_streams, path)
    else:
        factory = EchoProtocol if kind == "protocol" else EchoBufferedProtocol
        if family == "tcp":
            server = await loop.create_server(factory, "127.0.0.1", 0)
        else:
            server = await loop.create_unix_server(factory, path)
    if family == "tcp":
        host, port = server.sockets[0].getsockname()[:2]
        return server, ["--tcp", f"{host}:{port}"]
    return server, ["--unix", path]


# --- driving a load generator from the server's process ---------------------------


async def wait_helper(proc: "subprocess.Popen[bytes]") -> bytes:
    """Let the loop serve until the helper closes its stdout (it exits); return what it
    printed.  The loop watches the pipe with ``add_reader``: no timer and no thread, so
    while the load runs the loop under test does nothing but serve.  (No timeout here:
    the parent kills the whole process group when a run overstays.)"""
    loop = asyncio.get_running_loop()
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    done = loop.create_future()
    chunks: List[bytes] = []

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)


def helper_result(proc: "subprocess.Popen[bytes]", output: bytes) -> dict:
    out = output.decode(errors="replace")
    proc.wait()
    for line in out.splitlines():
        if line.startswith(loadgen.RESULT_MARKER) and proc.returncode == 0:
            return json.loads(line[len(loadgen.RESULT_MARKER):])
    raise RuntimeError(f"load generator failed (exit status {proc.returncode}); see its stderr")


def serve_with_loadgen(
    ctx: Context,
    start: Callable[[Any], Any],
    loadgen_argv: Callable[[List[str]], List[str]],
    stop: Optional[Callable[[Any], Any]] = None,
    module: str = "bench.loadgen",
) -> dict:
    """On a fresh loop: ``server, addr = await start(loop)``; run ``python -m
    MODULE *loadgen_argv(addr)`` pinned to ``ctx.cpus[1]`` while the loop
    serves; ``await stop(server)``; return the load generator's result."""
    loop = ctx.new_event_loop()
    asyncio.set_event_loop(loop)
    proc = None
    try:
        server, addr = loop.run_until_complete(start(loop))
        cpu = ctx.cpus[1] if ctx.cpus and len(ctx.cpus) > 1 else None
        argv = [*loadgen_argv(addr), "--server-pid", str(os.getpid())]
        proc = spawn_pinned(["-m", module, *argv], cpu,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        output = loop.run_until_complete(wait_helper(proc))
        result = helper_result(proc, output)
        # Let the server see the client's EOFs, then shut it down.
        loop.run_until_complete(asyncio.sleep(0.02))
        if stop is not None:
            loop.run_until_complete(stop(server))
        return result
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def measurement(result: dict) -> Measurement:
    cpu = result.get("server_cpu_s")
    return Measurement(ops=int(result["ops"]), seconds=float(result["seconds"]),
                       cpu_seconds=float(cpu) if cpu is not None else None)


async def _stop_server(server) -> None:
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 1.0)
    except (asyncio.TimeoutError, OSError):
        pass


def _echo(ctx: Context, kind: str, family: str, size: int) -> Measurement:
    tmpdir = tempfile.mkdtemp(prefix="bench-echo-") if family == "unix" else None
    path = os.path.join(tmpdir, "echo.sock") if tmpdir else None
    warmup = max(CONNS, ctx.n // 10)
    try:
        result = serve_with_loadgen(
            ctx,
            lambda loop: _start_server(loop, kind, family, path),
            lambda addr: ["echo", *addr, "--size", str(size), "--n", str(ctx.n),
                          "--warmup", str(warmup), "--conns", str(CONNS)],
            _stop_server,
        )
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return measurement(result)


# --- registration -----------------------------------------------------------------

_KINDS = {
    "protocol": "an ``asyncio.Protocol`` (``data_received`` -> ``transport.write``)",
    "streams": "asyncio streams (``reader.read(65536)``, ``writer.write``, ``await writer.drain()``)",
    "buffered": "an ``asyncio.BufferedProtocol`` (64 KiB buffer, ``buffer_updated`` -> ``transport.write``)",
}
_FAMILIES = {"tcp": "TCP loopback (127.0.0.1)", "unix": "a unix socket"}
# (label, bytes, round trips per run over TCP, over a unix socket): sized so that one
# run takes a few tenths of a second to a second here (unix sockets are faster).
_SIZES: List[Tuple[str, int, int, int]] = [
    ("1k", 1024, 15_000, 20_000),
    ("10k", 10 * 1024, 10_000, 15_000),
    ("100k", 100 * 1024, 2_000, 5_000),
]


# A plain --quick run smoke-tests every server at 1 KiB, and the paths with queued
# (partial) writes at 100 KiB once per family, to stay under half a minute.
_QUICK = {("tcp", "protocol", "100k"), ("unix", "buffered", "100k")}


def _register(family: str, kind: str, label: str, size: int, n: int) -> None:
    def run(ctx: Context) -> Measurement:
        return _echo(ctx, kind, family, size)

    run.__doc__ = (
        f"Echo server written with {_KINDS[kind]} on the loop under test, over "
        f"{_FAMILIES[family]}; the load generator is the same for every loop (a C epoll "
        f"client in its own process pinned to the other core) and keeps {CONNS} connections "
        f"each with one {size // 1024} KiB message in flight.  One op is one round trip."
    )
    run.__name__ = f"echo_{family}_{kind}_{label}"
    workload(run.__name__, n=n, group="stream", unit="round trip", processes=2, timeout=60.0,
             repeat=REPEAT, in_quick=label == "1k" or (family, kind, label) in _QUICK)(run)


for _family in ("tcp", "unix"):
    for _kind in ("protocol", "streams", "buffered"):
        for _label, _size, _n_tcp, _n_unix in _SIZES:
            _register(_family, _kind, _label, _size, _n_tcp if _family == "tcp" else _n_unix)
