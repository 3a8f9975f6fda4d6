"""A real ASGI application served by uvicorn on both loops, as an application
swaps its loop: uvicorn's ``Server.serve()`` runs on whatever loop runs it.

An aiohttp client (on the same loop) checks lifespan startup/shutdown, a GET, a
1 MiB POST echoed back, a streamed (chunked) response, keep-alive, 50 requests
at once, and a graceful shutdown with a request still in flight."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from loop_testutil import is_uvloop_like, run

uvicorn = pytest.importorskip("uvicorn")
aiohttp = pytest.importorskip("aiohttp")

# Run once per CI (make test-unit), not in every interpreter column: see the Makefile.
pytestmark = pytest.mark.frameworks

BODY = 1 << 20


def _make_app(events, in_flight):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        path = scope["path"]
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            for i in range(20):
                await send({"type": "http.response.body", "body": b"part %02d\n" % i, "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/slow":
            in_flight.set_result(None)
            await asyncio.sleep(0.2)
        payload = json.dumps({
            "path": path,
            "method": scope["method"],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "loop": type(asyncio.get_running_loop()).__module__,
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


def test_uvicorn_serves_asgi_app(loop):
    async def main():
        events = []
        in_flight = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(_make_app(events, in_flight), lifespan="on", log_level="warning",
                                access_log=False, http="h11", ws="none")
        server = uvicorn.Server(config)
        serving = loop.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.01)
        assert events == ["startup"]
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(base + "/hello") as resp:
                assert resp.status == 200
                info = await resp.json()
            assert info["path"] == "/hello" and info["method"] == "GET" and info["size"] == 0
            # The app really runs on the loop under test.
            assert info["loop"].startswith("uvloop_like") == is_uvloop_like(loop)

            data = bytes(range(256)) * (BODY // 256)
            async with session.post(base + "/upload", data=data) as resp:
                info = await resp.json()
            assert info["size"] == BODY and info["sha256"] == hashlib.sha256(data).hexdigest()

            async with session.get(base + "/stream") as resp:
                assert resp.status == 200
                text = await resp.text()
            assert text == "".join("part %02d\n" % i for i in range(20))

            async def one(i):
                async with session.get(f"{base}/many/{i}") as resp:
                    return (await resp.json())["path"]
            paths = await asyncio.gather(*[one(i) for i in range(50)])
            assert paths == [f"/many/{i}" for i in range(50)]

            # Graceful shutdown: a request in flight is still answered.
            slow = loop.create_task(session.get(base + "/slow"))
            await in_flight
            server.should_exit = True
            resp = await slow
            assert resp.status == 200
            assert (await resp.json())["path"] == "/slow"
            resp.release()
        await serving
        assert events == ["startup", "shutdown"]
        sock.close()
    run(loop, main(), timeout=60)


APP_MODULE = '''
import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = type(asyncio.get_running_loop()).__module__.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
'''


def test_uvicorn_command_line_loop_option(loop, tmp_path):
    """``uvicorn app:app --loop uvloop_like:new_event_loop``: uvicorn (0.36+)
    takes a loop factory by import string, and then serves on uvloop_like."""
    (tmp_path / "asgi_app.py").write_text(APP_MODULE)
    option = "uvloop_like:new_event_loop" if is_uvloop_like(loop) else "asyncio"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "asgi_app:app", "--fd", str(sock.fileno()),
         "--loop", option, "--lifespan", "off", "--log-level", "warning"],
        pass_fds=[sock.fileno()], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sock.close()  # the child has its own copy

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 200
                return await resp.text()

    try:
        served_by = run(loop, main(), timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (proc.returncode, err.decode(errors="replace")[-2000:])
    assert served_by.startswith("uvloop_like" if is_uvloop_like(loop) else "asyncio"), served_by
