"""aiohttp's unix-socket client and server, and a TCPSite on the default
host (every address family), leave nothing for the garbage collector to
report (issue 8, A13): no ResourceWarning for an unclosed socket or
transport once the session and the runner are cleaned up, with every
warning an error, on both loops."""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import warnings

import pytest
from loop_testutil import full_gc, run

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

# Run once per CI (make test-unit), not in every interpreter column: see the Makefile.
pytestmark = pytest.mark.frameworks


def _app():
    app = web.Application()

    async def hello(request):
        return web.Response(text="hi " + request.match_info.get("n", ""))

    app.router.add_get("/{n}", hello)
    return app


class _Unraisable:
    """Collects what the GC's finalizers report (ResourceWarning raised as an
    error inside __del__ becomes an unraisable exception)."""

    def __init__(self):
        self.reports = []

    def __call__(self, unraisable):
        self.reports.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")


def _check_clean(loop, main):
    reports = _Unraisable()
    old_hook = sys.unraisablehook
    sys.unraisablehook = reports
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            run(loop, main())
            full_gc()
    finally:
        sys.unraisablehook = old_hook
    assert reports.reports == []


def test_unix_connector_and_unix_site_leave_nothing(loop):
    async def main():
        runner = web.AppRunner(_app())
        await runner.setup()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "web.sock")
            await web.UnixSite(runner, path).start()
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
                for n in range(5):
                    async with session.get(f"http://unix/{n}") as resp:
                        assert await resp.text() == f"hi {n}"
                # A fresh connection per request too.
                async with session.get("http://unix/x", headers={"Connection": "close"}) as resp:
                    assert await resp.text() == "hi x"
            await runner.cleanup()

    _check_clean(loop, main)


def test_tcp_site_default_host_leaves_nothing(loop):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main():
        runner = web.AppRunner(_app())
        await runner.setup()
        await web.TCPSite(runner, port=port).start()  # host None: every family
        async with aiohttp.ClientSession() as session:
            for n in range(3):
                async with session.get(f"http://127.0.0.1:{port}/{n}") as resp:
                    assert await resp.text() == f"hi {n}"
        await runner.cleanup()

    _check_clean(loop, main)
