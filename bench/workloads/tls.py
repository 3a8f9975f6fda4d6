"""TLS workloads: an echo server over TLS on the loop under test, TCP loopback.

The server is an ``asyncio.Protocol`` (``data_received(data)`` ->
``transport.write(data)``) behind ``loop.create_server(..., ssl=context)``, in the
workload's process (pinned to ``ctx.cpus[0]``); so each loop's own TLS layer does the
work (stdlib's ``asyncio.sslproto``, uvloop's, ours).  The load generator is
``bench.tls_loadgen``, the same for every loop: a C epoll client on OpenSSL in a second
process pinned to ``ctx.cpus[1]``, ``CONNS`` connections each with one message in
flight.  One op is one round trip.  The certificate is made at start (trustme when
installed, else ``openssl req``); TLS 1.3 with OpenSSL's default cipher.
"""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from typing import Any, List, Tuple

from bench.registry import Context, Measurement, workload
from bench.workloads.streams import EchoProtocol, _stop_server, measurement, serve_with_loadgen

CONNS = 4
REPEAT = 3


def _server_context(tmpdir: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        import trustme
    except ImportError:
        trustme = None
    if trustme is not None:
        trustme.CA().issue_cert("localhost", "127.0.0.1").configure_cert(context)
        return context
    key, cert = os.path.join(tmpdir, "key.pem"), os.path.join(tmpdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    context.load_cert_chain(cert, key)
    return context


def _echo(ctx: Context, size: int) -> Measurement:
    tmpdir = tempfile.mkdtemp(prefix="bench-tls-")
    try:
        context = _server_context(tmpdir)

        async def start(loop) -> Tuple[Any, List[str]]:
            server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=context)
            host, port = server.sockets[0].getsockname()[:2]
            return server, ["--tcp", f"{host}:{port}"]

        warmup = max(CONNS, ctx.n // 10)
        result = serve_with_loadgen(
            ctx, start,
            lambda addr: [*addr, "--size", str(size), "--n", str(ctx.n), "--warmup", str(warmup),
                          "--conns", str(CONNS)],
            stop=_stop_server, module="bench.tls_loadgen")
        return measurement(result)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# (label, bytes, round trips per run): a few tenths of a second to a second here.
_SIZES = [("1k", 1024, 10_000), ("100k", 100 * 1024, 1_500)]


def _register(label: str, size: int, n: int) -> None:
    def run(ctx: Context) -> Measurement:
        return _echo(ctx, size)

    run.__doc__ = (
        f"TLS echo server written with an ``asyncio.Protocol`` (``data_received`` -> "
        f"``transport.write``) behind ``create_server(ssl=...)`` on the loop under test, over "
        f"TCP loopback; the load generator is the same for every loop (a C epoll + OpenSSL "
        f"client in its own process pinned to the other core) and keeps {CONNS} TLS connections "
        f"each with one {size // 1024} KiB message in flight.  One op is one round trip."
    )
    run.__name__ = f"tls_echo_protocol_{label}"
    workload(run.__name__, n=n, group="tls", unit="round trip", processes=2, timeout=60.0,
             repeat=REPEAT, in_quick=label == "1k")(run)


for _label, _size, _n in _SIZES:
    _register(_label, _size, _n)
