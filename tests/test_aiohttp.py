"""A real aiohttp application and client on both loops: GET, a 10 MiB POST,
a chunked streaming response, a websocket echo and 100 concurrent clients."""
from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from loop_testutil import describe_crash, run, run_python

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

# Run once per CI (make test-unit), not in every interpreter column: see the Makefile.
pytestmark = pytest.mark.frameworks

BIG = 10 << 20


def _make_app():
    app = web.Application(client_max_size=BIG + 1024)

    async def hello(request):
        return web.Response(text="hello, " + request.query.get("name", "world"))

    async def digest(request):
        body = await request.read()
        return web.json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def stream(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(50):
            await resp.write(b"chunk %03d\n" % i)
            if i % 10 == 0:
                await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async def websocket(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    app.router.add_get("/", hello)
    app.router.add_post("/digest", digest)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", websocket)
    return app


async def _start(loop):
    runner = web.AppRunner(_make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def test_aiohttp_app_and_client(loop):
    async def main():
        runner, base = await _start(loop)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(base + "/?name=uv") as resp:
                    assert resp.status == 200
                    assert await resp.text() == "hello, uv"

                body = os.urandom(BIG)
                async with session.post(base + "/digest", data=body) as resp:
                    assert resp.status == 200
                    result = await resp.json()
                assert result == {"size": BIG, "sha256": hashlib.sha256(body).hexdigest()}

                async with session.get(base + "/stream") as resp:
                    assert resp.headers.get("Transfer-Encoding") == "chunked"
                    lines = [line async for line in resp.content]
                assert lines == [b"chunk %03d\n" % i for i in range(50)]

                async with session.ws_connect(base + "/ws") as ws:
                    for i in range(20):
                        await ws.send_str(f"m{i}")
                        assert (await ws.receive_str()) == f"echo:m{i}"
                    await ws.send_bytes(b"abc")
                    assert (await ws.receive_bytes()) == b"cba"
                    await ws.close()
        finally:
            await runner.cleanup()
    run(loop, main(), timeout=60)


def test_aiohttp_100_concurrent_clients(loop):
    async def main():
        runner, base = await _start(loop)
        try:
            async def one(i):
                # A session each: 100 separate connections.
                async with aiohttp.ClientSession() as session:
                    for _ in range(3):
                        async with session.get(base + f"/?name={i}") as resp:
                            assert await resp.text() == f"hello, {i}"
                return True

            results = await asyncio.gather(*(one(i) for i in range(100)))
            assert all(results)
        finally:
            await runner.cleanup()
    run(loop, main(), timeout=60)


def test_aiohttp_run_app_on_uvloop_like():
    """web.run_app() with a uvloop_like loop, in a child process (run_app
    closes its loop and owns the process's signal handling)."""
    proc = run_python("""
        import asyncio, socket
        import aiohttp
        from aiohttp import web
        import uvloop_like

        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        loop = uvloop_like.new_event_loop()
        app = web.Application()

        async def hello(request):
            return web.Response(text="hi from " + type(asyncio.get_running_loop()).__module__)
        app.router.add_get("/", hello)

        async def client():
            await asyncio.sleep(0.1)  # on_startup runs before the site listens
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    print(await resp.text())
            raise web.GracefulExit()

        async def on_startup(app):
            app["client"] = asyncio.get_running_loop().create_task(client())
        app.on_startup.append(on_startup)
        web.run_app(app, host="127.0.0.1", port=port, loop=loop, print=None, handle_signals=False)
        print("done")
    """, timeout=60)
    assert proc.returncode == 0, describe_crash(proc)
    assert proc.stdout.split() == ["hi", "from", "uvloop_like.loop", "done"], describe_crash(proc)
