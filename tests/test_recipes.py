"""The framework recipes of docs/recipes.md, as written there, on a real server.

Each recipe runs beside its stdlib twin (``asyncio.run`` where the recipe says
``uvloop_like.run``), and the handler reports the class of the loop it ran
on.  Frameworks not installed here are skipped (make dev installs hypercorn,
anyio and, on CPython, granian).
"""

import asyncio
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import uvloop_like

pytestmark = pytest.mark.frameworks

LOOP_NAME = "uvloop_like.loop.Loop"

RUNNERS = {"asyncio": asyncio.run, "uvloop_like": uvloop_like.run}


def _loop_name():
    loop_type = type(asyncio.get_running_loop())
    return loop_type.__module__ + "." + loop_type.__qualname__


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = _loop_name().encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def http_get(port, path="/", timeout=30.0):
    """The body of one GET on 127.0.0.1:port, retrying until the server answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
    response = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    return body.decode()


def _listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.mark.timeout(90)
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_hypercorn_serve(runner):
    """uvloop_like.run(hypercorn.asyncio.serve(app, config))"""
    pytest.importorskip("hypercorn")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = ["fd://%d" % sock.detach()]  # hypercorn adopts the descriptor
    config.accesslog = None

    async def main():
        shutdown = asyncio.Event()
        server = asyncio.ensure_future(serve(asgi_app, config, shutdown_trigger=shutdown.wait))
        try:
            bodies = [await http_get(port) for _ in range(3)]
            bodies += await asyncio.gather(*(http_get(port) for _ in range(10)))
        finally:
            shutdown.set()
            await asyncio.wait_for(server, 30)
        return bodies

    bodies = RUNNERS[runner](main())
    expected = LOOP_NAME if runner == "uvloop_like" else "asyncio."
    assert len(bodies) == 13
    assert all(body.startswith(expected) for body in bodies), bodies


def _anyio_version():
    from importlib.metadata import version

    return tuple(int(part) for part in version("anyio").split(".")[:2])


async def _anyio_main():
    import anyio

    results = []

    async def handle(stream):
        async with stream:
            await stream.send(await stream.receive())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(b"ping")
            results.append(await client.receive())
        results.append(await anyio.to_thread.run_sync(sum, [1, 2]))
        group.cancel_scope.cancel()
    await listener.aclose()
    results.append(_loop_name())
    return results


@pytest.mark.timeout(60)
@pytest.mark.parametrize("recipe", ["loop_factory", "install"])
def test_anyio_run(recipe):
    """anyio.run(main, backend_options={"loop_factory": uvloop_like.new_event_loop}) on anyio 4.2+;
    uvloop_like.install() before anyio.run(main) on any version."""
    anyio = pytest.importorskip("anyio")
    if recipe == "loop_factory":
        if _anyio_version() < (4, 2):
            # 4.0 and 4.1 read the option and ignore it; 3.x has none.
            pytest.skip("anyio %d.%d: anyio.run honours loop_factory from 4.2" % _anyio_version())
        result = anyio.run(_anyio_main, backend="asyncio",
                           backend_options={"loop_factory": uvloop_like.new_event_loop})
    else:
        uvloop_like.install()
        try:
            result = anyio.run(_anyio_main)
        finally:
            asyncio.set_event_loop_policy(None)
    assert result == [b"ping", 3, LOOP_NAME]


GRANIAN_LAUNCHER = '''
import asyncio
import sys

import uvloop_like
from granian.constants import Interfaces, Loops
from granian.server import Server

# Before granian starts a worker: its "asyncio" loop is asyncio.new_event_loop(),
# which asks the policy (inherited through fork, or set again when a spawned
# worker re-imports this module).
uvloop_like.install()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    loop_type = type(asyncio.get_running_loop())
    body = (loop_type.__module__ + "." + loop_type.__qualname__).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    Server("launcher:app", address="127.0.0.1", port=int(sys.argv[1]), interface=Interfaces.ASGI,
           loop=Loops.asyncio, workers=1).serve()
'''


def _free_port():
    # granian binds by itself: a port free a moment ago (not a timing
    # assertion: a taken port fails the start, visibly).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(90)
def test_granian_server_after_install(tmp_path):
    """granian's Server(..., loop=Loops.asyncio) started by a script that called uvloop_like.install()."""
    pytest.importorskip("granian")
    (tmp_path / "launcher.py").write_text(textwrap.dedent(GRANIAN_LAUNCHER))
    port = _free_port()
    log = tmp_path / "granian.log"
    with open(str(log), "wb") as out:
        proc = subprocess.Popen([sys.executable, "launcher.py", str(port)], cwd=str(tmp_path),
                                stdout=out, stderr=out)
    try:
        body = asyncio.run(http_get(port))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert body == LOOP_NAME, log.read_text()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_granian_embedded_server(runner):
    """uvloop_like.run(granian.server.embed.Server(app, ...).serve()) (granian's embedded server)"""
    pytest.importorskip("granian.server.embed")
    from granian.constants import Interfaces
    from granian.server.embed import Server

    port = _free_port()

    async def main():
        server = Server(asgi_app, address="127.0.0.1", port=port, interface=Interfaces.ASGI)
        serving = asyncio.ensure_future(server.serve())
        try:
            return [await http_get(port) for _ in range(3)]
        finally:
            server.stop()
            await asyncio.wait_for(serving, 30)

    bodies = RUNNERS[runner](main())
    expected = LOOP_NAME if runner == "uvloop_like" else "asyncio."
    assert all(body.startswith(expected) for body in bodies), bodies

