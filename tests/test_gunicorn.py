"""uvloop_like.gunicorn: real gunicorn processes serving with our worker classes.

Each test starts ``gunicorn -k uvloop_like.gunicorn.<Worker>`` on a listening
socket bound here to 127.0.0.1:0 and passed down (``--bind fd://N``, so the
port is known and nobody can take it meanwhile), makes real HTTP requests,
checks which loop class the handler ran on, and stops the master by its pid
(SIGTERM, a bounded wait, then SIGKILL).
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

pytest.importorskip("gunicorn", reason="gunicorn is a test dependency (make dev installs it)")

pytestmark = pytest.mark.frameworks

LOOP_NAME = "uvloop_like.loop.Loop"

AIOHTTP_APP = '''
import asyncio

from aiohttp import web


def loop_name():
    loop_type = type(asyncio.get_running_loop())
    return loop_type.__module__ + "." + loop_type.__qualname__


async def where(request):
    return web.Response(text=loop_name())


async def echo(request):
    return web.Response(body=await request.read())


async def slow(request):
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slow " + loop_name())


async def make_app():
    app = web.Application()
    app.add_routes([web.get("/", where), web.post("/echo", echo), web.get("/slow", slow)])
    return app
'''

ASGI_APP = '''
import asyncio


def loop_name():
    loop_type = type(asyncio.get_running_loop())
    return loop_type.__module__ + "." + loop_type.__qualname__


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/echo":
        out = body
    elif scope["path"] == "/slow":
        await asyncio.sleep(1.0)
        out = ("slow " + loop_name()).encode()
    else:
        out = loop_name().encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
'''


class Gunicorn:
    """A gunicorn master on 127.0.0.1:<ephemeral port>, stopped by its pid."""

    def __init__(self, tmp_path, worker, app, source, workers=1):
        module = app.split(":")[0]
        (tmp_path / (module + ".py")).write_text(textwrap.dedent(source))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.log = tmp_path / "gunicorn.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
        with open(str(self.log), "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-k", "uvloop_like.gunicorn." + worker,
                 "--bind", "fd://%d" % self.sock.fileno(), "--workers", str(workers),
                 "--graceful-timeout", "10", "--timeout", "30", "--log-level", "info", app],
                pass_fds=[self.sock.fileno()], env=env, cwd=str(tmp_path), stdout=log, stderr=log)
        self.sock.close()  # the master has its own copy

    def output(self):
        with open(str(self.log), "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=b"", timeout=30.0):
        """(status, body) of one HTTP/1.1 request on a new connection."""
        deadline = time.monotonic() + timeout
        while True:
            # Until a worker has booted, the master's backlog holds the
            # connection, so connecting succeeds at once; the answer waits.
            assert self.proc.poll() is None, "gunicorn exited early:\n" + self.output()
            try:
                conn = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with conn:
            conn.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                          "Content-Length: %d\r\n\r\n" % (method, path, len(body))).encode() + body)
            chunks = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
        assert head, "no response:\n" + self.output()
        status = int(head.split(b" ", 2)[1])
        return status, payload

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signal the master; return its exit code (SIGKILL if it overstays)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail("gunicorn did not stop within %ss of %s:\n%s" % (timeout, sig, self.output()))


@pytest.fixture
def gunicorn_server(tmp_path):
    servers = []

    def start(*args, **kwargs):
        server = Gunicorn(tmp_path, *args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)


CASES = [
    ("AiohttpWorker", "aioapp:make_app", AIOHTTP_APP),
    ("UvicornWorker", "asgiapp:asgi", ASGI_APP),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker,app,source", CASES, ids=[c[0] for c in CASES])
def test_worker_serves_on_uvloop_like(gunicorn_server, worker, app, source):
    pytest.importorskip("aiohttp" if worker == "AiohttpWorker" else "uvicorn")
    server = gunicorn_server(worker, app, source, workers=2)
    for _ in range(6):
        assert server.request("GET", "/") == (200, LOOP_NAME.encode())
    body = os.urandom(256 * 1024)
    assert server.request("POST", "/echo", body) == (200, body)
    code = server.stop()
    out = server.output()
    assert code == 0, out
    assert "Traceback" not in out, out
    assert "Booting worker" in out and "Shutting down: Master" in out, out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker,app,source", CASES, ids=[c[0] for c in CASES])
def test_sigterm_lets_the_request_in_flight_finish(gunicorn_server, worker, app, source):
    pytest.importorskip("aiohttp" if worker == "AiohttpWorker" else "uvicorn")
    server = gunicorn_server(worker, app, source)
    assert server.request("GET", "/")[0] == 200  # the worker is up
    result = {}
    thread = threading.Thread(target=lambda: result.update(answer=server.request("GET", "/slow?s=1")))
    thread.start()
    time.sleep(0.3)  # the request is in the handler's sleep (1 s) by now, not a timing assertion
    code = server.stop(signal.SIGTERM)
    thread.join(30)
    assert not thread.is_alive()
    assert code == 0, server.output()
    assert result.get("answer") == (200, ("slow " + LOOP_NAME).encode()), server.output()


def _python(code):
    return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def test_import_needs_gunicorn_and_says_so():
    proc = _python("import sys; sys.modules['gunicorn'] = None; import uvloop_like.gunicorn")
    assert proc.returncode != 0
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("ImportError: uvloop_like.gunicorn needs gunicorn, which is not installed "
                           "(pip install gunicorn)"), last


def test_import_does_not_pull_in_the_frameworks():
    proc = _python("import sys, uvloop_like.gunicorn as g; "
                   "print(g.AiohttpWorker.__name__, g.UvicornWorker.__name__, "
                   "[m for m in ('aiohttp', 'uvicorn') if m in sys.modules])")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["AiohttpWorker", "UvicornWorker", "[]"]


@pytest.mark.parametrize("worker,module", [("AiohttpWorker", "aiohttp"), ("UvicornWorker", "uvicorn")])
def test_worker_without_its_framework_says_so(worker, module):
    # What init_process() checks first in the worker process.
    proc = _python("import sys; sys.modules[%r] = None; import uvloop_like.gunicorn as g; "
                   "g._require(%r, %r)" % (module, module, worker))
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("ImportError: uvloop_like.gunicorn.%s needs %s, which is not installed "
                           "(pip install %s)" % (worker, module, module)), last
