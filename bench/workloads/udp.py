"""UDP workloads: an echo server on the loop under test, over IPv4 loopback.

The server runs in the workload's process (pinned to ``ctx.cpus[0]``) on the loop under
test: an ``asyncio.DatagramProtocol`` whose ``datagram_received(data, addr)`` calls
``transport.sendto(data, addr)``.  The load generator is this module run as a script
(``python -m bench.workloads.udp client ...``), the same fixed client for every loop, in
a second process pinned to ``ctx.cpus[1]``: one UDP socket that keeps ``WINDOW``
datagrams in flight; each reply it reads lets it send the next.  One op is one round
trip of one datagram.  The client is a small C loop (blocking ``send``/``recv``)
compiled once with cffi into ``bench/_build``; where no C compiler works the same
logic runs in Python (``client`` in the result says which).  A datagram lost on
loopback fails the run (no reply for 5 s) rather than skewing it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from bench import loadgen
from bench.registry import Context, Measurement, spawn_pinned, workload
from bench.workloads.streams import helper_result, measurement, wait_helper

SIZE = 256  # bytes per datagram
WINDOW = 8  # datagrams in flight
REPEAT = 3  # fresh processes per cell by default (each run starts two processes)
TIMEOUT_S = 5  # the client gives up when no reply comes for this long

_C_CDEF = "long udp_echo_run(int fd, long size, long window, long n);"
_C_SOURCE = r"""
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static char sendbuf[65536];
static char recvbuf[65536];

/* n round trips of `size`-byte datagrams over the connected, blocking UDP
   socket fd, `window` of them in flight.  Returns n, or -errno (-EAGAIN when
   no reply came within the socket's receive timeout: a datagram was lost). */
long udp_echo_run(int fd, long size, long window, long n) {
    long started = 0, done = 0;
    if (size < 0 || size > (long)sizeof(sendbuf) || window < 1) return -EINVAL;
    memset(sendbuf, 'u', (size_t)size);
    while (started < window && started < n) {
        if (send(fd, sendbuf, (size_t)size, 0) < 0) return -errno;
        started++;
    }
    while (done < n) {
        ssize_t r = recv(fd, recvbuf, sizeof(recvbuf), 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r != size) return -EPROTO;
        done++;
        if (started < n) {
            if (send(fd, sendbuf, (size_t)size, 0) < 0) return -errno;
            started++;
        }
    }
    return done;
}
"""


# --- the server -------------------------------------------------------------------


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    transport: Any = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def _echo(ctx: Context) -> Measurement:
    loop = ctx.new_event_loop()
    asyncio.set_event_loop(loop)
    proc = None
    transport = None
    try:
        transport, _ = loop.run_until_complete(
            loop.create_datagram_endpoint(EchoDatagramProtocol, local_addr=("127.0.0.1", 0)))
        host, port = transport.get_extra_info("sockname")[:2]
        cpu = ctx.cpus[1] if ctx.cpus and len(ctx.cpus) > 1 else None
        warmup = max(WINDOW, ctx.n // 10)
        argv = ["-m", "bench.workloads.udp", "client", "--addr", f"{host}:{port}", "--size", str(SIZE),
                "--window", str(WINDOW), "--n", str(ctx.n), "--warmup", str(warmup),
                "--server-pid", str(os.getpid())]
        proc = spawn_pinned(argv, cpu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        output = loop.run_until_complete(wait_helper(proc))
        return measurement(helper_result(proc, output))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            if transport is not None:
                transport.close()
                loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@workload("udp_echo_256", n=60_000, group="udp", unit="round trip", processes=2, timeout=60.0,
          repeat=REPEAT)
def udp_echo_256(ctx: Context) -> Measurement:
    """UDP echo server (``DatagramProtocol.datagram_received`` -> ``transport.sendto``) on
    the loop under test, over 127.0.0.1; the load generator is the same for every loop (a
    C client in its own process pinned to the other core) and keeps 8 datagrams of 256
    bytes in flight.  One op is one round trip of one datagram."""
    return _echo(ctx)


# --- the load generator (run as a script) -------------------------------------------


def _native():
    """The compiled C client, or None (no compiler: the Python client is used)."""
    return loadgen.build_native("_udpgen", _C_CDEF, _C_SOURCE, "udp client: C client")


def _echo_python(sock: socket.socket, size: int, window: int, n: int) -> None:
    payload = b"u" * size
    started = done = 0
    while started < window and started < n:
        sock.send(payload)
        started += 1
    while done < n:
        data = sock.recv(65536)
        if len(data) != size:
            raise OSError(f"reply of {len(data)} bytes, expected {size}")
        done += 1
        if started < n:
            sock.send(payload)
            started += 1


def client(args) -> dict:
    host, port = args.addr.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, int(port)))
    # Blocking, with a kernel receive timeout, for the C client.
    sock.setblocking(True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    (TIMEOUT_S).to_bytes(8, sys.byteorder) + (0).to_bytes(8, sys.byteorder))
    native = None if args.python else _native()
    if native is not None:
        def run(n):
            rc = native.lib.udp_echo_run(sock.fileno(), args.size, args.window, n)
            if rc < 0:
                raise OSError(-rc, os.strerror(-rc))

        kind = "C"
    else:
        sock.settimeout(TIMEOUT_S)

        def run(n):
            _echo_python(sock, args.size, args.window, n)

        kind = "Python"
    if args.warmup:
        run(args.warmup)
    with loadgen._ServerCPU(args.server_pid) as cpu:
        t0 = time.perf_counter()
        run(args.n)
        seconds = time.perf_counter() - t0
    sock.close()
    return {"ops": args.n, "seconds": seconds, "client": kind, "server_cpu_s": cpu.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workloads.udp")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--addr", required=True, metavar="HOST:PORT")
    c.add_argument("--size", type=int, default=SIZE)
    c.add_argument("--window", type=int, default=WINDOW)
    c.add_argument("--n", type=int, required=True)
    c.add_argument("--warmup", type=int, default=0)
    c.add_argument("--python", action="store_true", help="use the Python client, not the C one")
    c.add_argument("--server-pid", type=int, default=0, help="report this process's CPU time")
    args = parser.parse_args(argv)
    result = client(args)
    sys.stdout.write(loadgen.RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
