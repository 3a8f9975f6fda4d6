"""HTTP workloads: an aiohttp.web application served on the loop under test.

The server (``aiohttp.web`` app, ``AppRunner`` + ``TCPSite`` on 127.0.0.1, access log
off) runs in the workload's process, pinned to ``ctx.cpus[0]``; the load comes from
``bench.loadgen http`` pinned to ``ctx.cpus[1]``: ``wrk`` with one thread and
``CONNS`` keep-alive connections for ``SECONDS`` (after a short keep-alive warm-up
from Python), the same for every loop.  Without ``wrk`` a Python ``selectors`` client
takes its place and then likely limits the faster loops (the table says which ran).
``n`` is not used: wrk runs for a fixed time, and one op is one request answered.
A ``--quick`` run uses the Python client for ``QUICK_SECONDS`` (wrk takes whole
seconds): a smoke test of the server side, not a number to compare.
"""
from __future__ import annotations

import asyncio

from bench.registry import Context, Measurement, workload
from bench.workloads.streams import measurement, serve_with_loadgen

CONNS = 8
SECONDS = 2  # wrk takes whole seconds
QUICK_SECONDS = 0.3
WARMUP_REQUESTS = 500
REPEAT = 3
BODY_10K = b"x" * (10 * 1024)


async def _start(loop, path: str):
    from aiohttp import web

    async def hello(request):
        return web.Response(text="Hello, World!")

    async def body_10k(request):
        return web.Response(body=BODY_10K, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/10k", body_10k)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = site._server.sockets[0].getsockname()[:2]  # aiohttp has no public accessor
    return runner, f"http://{host}:{port}{path}"


async def _stop(runner) -> None:
    try:
        await asyncio.wait_for(runner.cleanup(), 2.0)
    except (asyncio.TimeoutError, OSError):
        pass


def _serve(ctx: Context, path: str) -> Measurement:
    seconds = QUICK_SECONDS if ctx.quick else SECONDS
    warmup = WARMUP_REQUESTS // 5 if ctx.quick else WARMUP_REQUESTS
    result = serve_with_loadgen(
        ctx,
        lambda loop: _start(loop, path),
        lambda url: ["http", "--url", url, "--seconds", str(seconds), "--conns", str(CONNS),
                     "--warmup", str(warmup)] + (["--python"] if ctx.quick else []),
        _stop,
    )
    return measurement(result)


@workload("aiohttp_hello", n=1, quick_n=1, group="http", unit="request", processes=2, repeat=REPEAT)
def aiohttp_hello(ctx: Context) -> Measurement:
    """``GET /`` answered by an aiohttp.web handler returning ``web.Response(text="Hello,
    World!")``, on the loop under test; load from wrk (1 thread, 8 keep-alive
    connections, 2 s) pinned to the other core, identical for every loop.
    """
    return _serve(ctx, "/")


@workload("aiohttp_10k", n=1, quick_n=1, group="http", unit="request", processes=2, repeat=REPEAT)
def aiohttp_10k(ctx: Context) -> Measurement:
    """``GET /10k`` answered by an aiohttp.web handler returning a 10 KiB ``bytes`` body,
    on the loop under test; load from wrk (1 thread, 8 keep-alive connections, 2 s)
    pinned to the other core, identical for every loop.
    """
    return _serve(ctx, "/10k")
