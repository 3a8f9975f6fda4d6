"""gunicorn worker classes that serve on a uvloop_like loop.

    gunicorn -k uvloop_like.gunicorn.AiohttpWorker app:make_app   # aiohttp.web
    gunicorn -k uvloop_like.gunicorn.UvicornWorker app:asgi       # any ASGI app, via uvicorn

Each worker process runs one uvloop_like loop, made by the worker itself (no
event loop policy is consulted, so nothing can swap it for another loop).
gunicorn is imported with this module; aiohttp and uvicorn only when a worker
of theirs starts, so neither is a dependency of uvloop_like.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from typing import Any, Dict, Optional

import uvloop_like

try:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "uvloop_like.gunicorn needs gunicorn, which is not installed (pip install gunicorn): %s" % exc,
        name=exc.name,
    ) from exc

__all__ = ["AiohttpWorker", "UvicornWorker"]


def _require(module: str, worker: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise ImportError(
            "uvloop_like.gunicorn.%s needs %s, which is not installed (pip install %s): %s"
            % (worker, module, module, exc),
            name=exc.name,
        ) from exc


def _ssl_context(worker: Worker) -> Optional[ssl.SSLContext]:
    """The server-side SSLContext that gunicorn's --certfile/--keyfile/... describe."""
    if not worker.cfg.is_ssl:
        return None
    options = worker.cfg.ssl_options
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options["certfile"], options.get("keyfile"), options.get("password"))
    context.verify_mode = options.get("cert_reqs", ssl.CERT_NONE)
    if options.get("ca_certs"):
        context.load_verify_locations(cafile=options["ca_certs"])
    if options.get("ciphers"):
        context.set_ciphers(options["ciphers"])
    return context


class AiohttpWorker(Worker):  # type: ignore[misc]
    """Serves an ``aiohttp.web.Application`` on a uvloop_like loop.

    The gunicorn app may be an Application, an AppRunner, or a function or
    coroutine function returning one (``app:make_app``).  SIGTERM stops
    gracefully (in-flight requests get up to 95% of --graceful-timeout);
    SIGINT/SIGQUIT stop at once, as gunicorn's own workers do.
    """

    loop: uvloop_like.Loop

    def init_process(self) -> None:
        _require("aiohttp", "AiohttpWorker")
        # After fork: whatever loop the master had is not ours to use.
        self.loop = uvloop_like.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.exit_code = 0
        self._wakeup: Optional[asyncio.Event] = None
        super().init_process()

    def run(self) -> None:
        # Booted once the sockets serve: a failure before that is a boot
        # error to the arbiter, not a worker to respawn forever.
        self.booted = False
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()
        sys.exit(self.exit_code)

    async def _app_runner(self) -> Any:
        from aiohttp import web
        from aiohttp.web_log import AccessLogger

        app = self.wsgi
        if not isinstance(app, (web.Application, web.AppRunner)) and callable(app):
            app = app()
            if asyncio.iscoroutine(app):
                app = await app
        if isinstance(app, web.AppRunner):
            return app
        if not isinstance(app, web.Application):
            raise RuntimeError("AiohttpWorker serves an aiohttp.web.Application, an AppRunner, or a "
                               "(coroutine) function returning one; got %r" % (self.wsgi,))
        access_log_format = self.cfg.access_log_format
        if access_log_format == self.cfg.settings["access_log_format"].default:
            access_log_format = AccessLogger.LOG_FORMAT  # aiohttp's own syntax, not gunicorn's
        return web.AppRunner(
            app,
            logger=self.log,
            access_log=self.log.access_log if self.cfg.accesslog else None,
            access_log_format=access_log_format,
            keepalive_timeout=self.cfg.keepalive,
            shutdown_timeout=self.cfg.graceful_timeout / 100 * 95,
        )

    def _on_stop_signal(self, quick: bool) -> None:
        self.alive = False
        if quick:
            self.cfg.worker_int(self)
        if self._wakeup is not None:
            self._wakeup.set()

    async def _serve(self) -> None:
        from aiohttp import web

        self._wakeup = asyncio.Event()
        self.loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, False)
        self.loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, True)
        self.loop.add_signal_handler(signal.SIGQUIT, self._on_stop_signal, True)
        runner = await self._app_runner()
        await runner.setup()
        context = _ssl_context(self)
        for sock in self.sockets:
            await web.SockSite(runner, sock, ssl_context=context).start()
        self.booted = True
        try:
            while self.alive:
                self.notify()
                if runner.server is not None and runner.server.requests_count > self.max_requests:
                    self.alive = False
                    self.log.info("Max requests, shutting down: %s", self)
                elif self.ppid != os.getppid():
                    self.alive = False
                    self.log.info("Parent changed, shutting down: %s", self)
                else:
                    # Woken at once by a stop signal; else notify the arbiter
                    # well within its timeout.
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), min(1.0, self.timeout / 2 or 1.0))
                    except asyncio.TimeoutError:
                        pass
        finally:
            await runner.cleanup()


class UvicornWorker(Worker):  # type: ignore[misc]
    """Serves an ASGI application with uvicorn, on a uvloop_like loop.

    uvicorn's own ``uvicorn.workers.UvicornWorker`` picks uvloop or the stdlib
    loop by itself; this one always runs ``uvicorn.Server`` on a uvloop_like
    loop.  uvicorn.Config options go in ``CONFIG_KWARGS`` of a subclass (e.g.
    ``{"http": "h11"}``); gunicorn's settings (keepalive, timeout,
    max_requests, forwarded_allow_ips, backlog, TLS) carry over.
    """

    CONFIG_KWARGS: Dict[str, Any] = {}

    def init_process(self) -> None:
        _require("uvicorn", "UvicornWorker")
        import logging

        # uvicorn logs through gunicorn's handlers.
        for name, source in (("uvicorn.error", self.log.error_log), ("uvicorn.access", self.log.access_log)):
            logger = logging.getLogger(name)
            logger.handlers = source.handlers
            logger.setLevel(source.level)
            logger.propagate = False
        super().init_process()

    def init_signals(self) -> None:
        # uvicorn.Server handles SIGINT/SIGTERM itself (graceful stop); only
        # gunicorn's log reopening stays.  Default actions elsewhere, so
        # subprocesses of the app do not inherit gunicorn's handlers.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)

    def _config(self) -> Any:
        from uvicorn.config import Config

        kwargs: Dict[str, Any] = {
            "app": self.wsgi,
            "loop": "none",  # the loop is ours (run() below): uvicorn sets none up
            "log_config": None,
            "timeout_keep_alive": self.cfg.keepalive,
            "timeout_notify": self.timeout,
            "callback_notify": self._notify,
            "limit_max_requests": self.max_requests,
            "forwarded_allow_ips": self.cfg.forwarded_allow_ips,
        }
        if self.cfg.is_ssl:
            options = self.cfg.ssl_options
            kwargs.update(
                ssl_keyfile=options.get("keyfile"),
                ssl_certfile=options.get("certfile"),
                ssl_keyfile_password=options.get("password"),
                ssl_version=options.get("ssl_version"),
                ssl_cert_reqs=options.get("cert_reqs"),
                ssl_ca_certs=options.get("ca_certs"),
                ssl_ciphers=options.get("ciphers"),
            )
        if self.cfg.settings["backlog"].value:
            kwargs["backlog"] = self.cfg.settings["backlog"].value
        kwargs.update(self.CONFIG_KWARGS)
        return Config(**kwargs)

    async def _notify(self) -> None:
        self.notify()

    async def _serve(self) -> None:
        from uvicorn.server import Server

        server = Server(config=self._config())
        # SIGQUIT (gunicorn's quick stop) stops the server as SIGINT does.
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, server.handle_exit, signal.SIGQUIT, None)
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def run(self) -> None:
        uvloop_like.run(self._serve())
