"""The load generators of the stream and HTTP workloads: one fixed client for every loop.

    python -m bench.loadgen echo (--tcp HOST:PORT | --unix PATH) --size N --n N --warmup N [--conns C]
    python -m bench.loadgen http --url URL --seconds S [--conns C] [--warmup N]

runs in its own process, pinned by the workload to another core than the server's
(``bench.registry.spawn_pinned``), and prints one line ``LOADGEN-RESULT {json}``
(``ops``, ``seconds``, ``client``, and ``server_cpu_s``, the CPU time the server's
process spent during the timed part, read from ``/proc/PID/task/*/schedstat`` when
``--server-pid`` is given and Linux has it) on stdout.  The client never touches the loop under
test: it is the same code whichever loop the server runs, so only the server differs.

``echo``: ``--conns`` connections, each with one message of ``--size`` bytes in flight
at a time: send it, read until ``--size`` bytes have come back (one round trip), send
the next.  ``--warmup`` round trips first, then ``--n`` timed ones.  The client is a
small C epoll loop compiled once with cffi (into ``bench/_build``) so that it is never
the bottleneck; where no C compiler works the same logic runs in Python on
``selectors`` (``client`` in the result says which) and may then limit the fastest
servers.

``http``: ``wrk`` (one thread, ``--conns`` keep-alive connections, ``--seconds``)
when it is installed, after ``--warmup`` keep-alive requests from Python; without wrk
a Python ``selectors`` client with ``--conns`` keep-alive connections for ``--seconds``.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time

RESULT_MARKER = "LOADGEN-RESULT "
BUILD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build")
MAX_MESSAGE = 1 << 20

_C_CDEF = "long echo_run(const int *fds, int nconn, long size, long n);"
_C_SOURCE = r"""
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
static char sendbuf[1 << 20];
static char recvbuf[1 << 18];

typedef struct { int fd; long sent; long rcvd; int want_out; } conn_t;

/* Send what the socket takes of the current message; watch for EPOLLOUT while
   some of it is left.  Returns 0 or -errno. */
static int pump(int ep, conn_t *c, int i, long size) {
    while (c->sent < size) {
        ssize_t r = send(c->fd, sendbuf + c->sent, (size_t)(size - c->sent), MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
            break;
        }
        c->sent += r;
    }
    int want = c->sent < size;
    if (want != c->want_out) {
        struct epoll_event ev;
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
        ev.data.u32 = (unsigned)i;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -errno;
        c->want_out = want;
    }
    return 0;
}

/* n round trips of `size` bytes over nconn non-blocking connected sockets, one
   message in flight per connection.  Returns n, or -errno. */
long echo_run(const int *fds, int nconn, long size, long n) {
    conn_t conns[MAX_CONNS];
    struct epoll_event evs[MAX_CONNS];
    long started = 0, done = 0;
    int i, rc = 0;
    if (nconn < 1 || nconn > MAX_CONNS || size < 1 || size > (long)sizeof(sendbuf)) return -EINVAL;
    memset(sendbuf, 'x', (size_t)size);
    int ep = epoll_create1(0);
    if (ep < 0) return -errno;
    for (i = 0; i < nconn; i++) {
        struct epoll_event ev;
        conns[i].fd = fds[i]; conns[i].sent = conns[i].rcvd = 0; conns[i].want_out = 0;
        ev.events = EPOLLIN; ev.data.u32 = (unsigned)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) { rc = -errno; goto out; }
    }
    for (i = 0; i < nconn && started < n; i++, started++)
        if ((rc = pump(ep, &conns[i], i, size)) < 0) goto out;
    while (done < n) {
        int k = epoll_wait(ep, evs, MAX_CONNS, 10000);
        if (k < 0) { if (errno == EINTR) continue; rc = -errno; goto out; }
        if (k == 0) { rc = -ETIMEDOUT; goto out; }
        for (int j = 0; j < k; j++) {
            conn_t *c = &conns[evs[j].data.u32];
            i = (int)evs[j].data.u32;
            if ((evs[j].events & EPOLLOUT) && c->want_out)
                if ((rc = pump(ep, c, i, size)) < 0) goto out;
            if (!(evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t r = recv(c->fd, recvbuf, sizeof(recvbuf), 0);
            if (r == 0) { rc = -ECONNRESET; goto out; }
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                rc = -errno; goto out;
            }
            c->rcvd += r;
            if (c->rcvd > c->sent) { rc = -EPROTO; goto out; }
            if (c->rcvd == size) {
                done++;
                c->sent = c->rcvd = 0;
                if (started < n) {
                    started++;
                    if ((rc = pump(ep, c, i, size)) < 0) goto out;
                }
            }
        }
    }
    rc = 0;
out:
    close(ep);
    return rc < 0 ? rc : done;
}
"""


def _cpu_seconds(pid: int):
    """CPU time (on-CPU, all threads) of process ``pid`` so far, or None."""
    if not pid:
        return None
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass  # a thread that just ended
    except OSError:
        return None
    return total / 1e9


class _ServerCPU:
    """Measures the server process's CPU time over a ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seconds = None

    def __enter__(self):
        self._start = _cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc):
        end = _cpu_seconds(self.pid)
        if self._start is not None and end is not None:
            self.seconds = end - self._start


def _log(msg: str) -> None:
    sys.stderr.write(f"loadgen: {msg}\n")
    sys.stderr.flush()


def build_native(modname: str, cdef: str, source: str, what: str, **kwargs):
    """Compile ``source`` with cffi into ``BUILD_DIR`` once per interpreter ABI and
    content (``modname`` gets a hash of both), import it, or return None (no compiler,
    say: the caller falls back to Python).  Concurrent builders wait on one lock and
    publish the module with a single rename."""
    tag = hashlib.sha1((cdef + source + repr(sorted(kwargs.items()))).encode()).hexdigest()[:10]
    modname = f"{modname}_{tag}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = os.path.join(BUILD_DIR, modname + suffix)
    try:
        os.makedirs(BUILD_DIR, exist_ok=True)
        if not os.path.exists(path):
            with open(os.path.join(BUILD_DIR, ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not os.path.exists(path):
                    import cffi

                    ffi = cffi.FFI()
                    ffi.cdef(cdef)
                    ffi.set_source(modname, source, extra_compile_args=["-O2"], **kwargs)
                    tmp = tempfile.mkdtemp(prefix="build-", dir=BUILD_DIR)
                    try:
                        built = ffi.compile(tmpdir=tmp, verbose=False)
                        os.replace(built, path)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as exc:
        _log(f"{what} unavailable ({exc!r}); using the Python client")
        return None


def _native():
    """The compiled C echo client, or None."""
    return build_native("_loadgen", _C_CDEF, _C_SOURCE, "C client")


def _echo_python(socks, size: int, n: int) -> None:
    """The same protocol as the C echo_run, on selectors (the fallback)."""
    payload = b"x" * size
    sel = selectors.DefaultSelector()
    state = {}
    started = done = 0

    def pump(sock):
        st = state[sock]
        while st[0] < size:
            try:
                st[0] += sock.send(payload[st[0]:] if st[0] else payload)
            except BlockingIOError:
                break
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st[0] < size else 0)
        if want != st[2]:
            sel.modify(sock, want)
            st[2] = want

    for sock in socks:
        state[sock] = [0, 0, selectors.EVENT_READ]  # sent, received, watched events
        sel.register(sock, selectors.EVENT_READ)
    for sock in socks:
        if started < n:
            started += 1
            pump(sock)
    while done < n:
        ready = sel.select(10.0)
        if not ready:
            raise TimeoutError("no reply for 10 s")
        for key, events in ready:
            sock = key.fileobj
            st = state[sock]
            if events & selectors.EVENT_WRITE and st[0] < size:
                pump(sock)
            if not events & selectors.EVENT_READ:
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionResetError("server closed the connection")
            st[1] += len(data)
            if st[1] == size:
                done += 1
                st[0] = st[1] = 0
                if started < n:
                    started += 1
                    pump(sock)
    sel.close()


def _connect(args):
    socks = []
    for _ in range(args.conns):
        if args.unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(args.unix)
        else:
            host, port = args.tcp.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def echo(args) -> dict:
    if args.size > MAX_MESSAGE:
        raise SystemExit(f"--size at most {MAX_MESSAGE}")
    native = None if args.python else _native()
    socks = _connect(args)
    if native is not None:
        fds = native.ffi.new("int[]", [s.fileno() for s in socks])

        def run(n):
            rc = native.lib.echo_run(fds, len(socks), args.size, n)
            if rc < 0:
                raise OSError(-rc, os.strerror(-rc))

        client = "C epoll"
    else:

        def run(n):
            _echo_python(socks, args.size, n)

        client = "Python selectors"
    if args.warmup:
        run(args.warmup)
    with _ServerCPU(args.server_pid) as cpu:
        t0 = time.perf_counter()
        run(args.n)
        seconds = time.perf_counter() - t0
    for sock in socks:
        sock.close()
    return {"ops": args.n, "seconds": seconds, "client": client, "server_cpu_s": cpu.seconds}


# --- HTTP ---------------------------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


def _http_python(url: str, conns: int, seconds: float = 0.0, requests: int = 0) -> dict:
    """Keep-alive GETs on ``conns`` connections, for ``seconds`` or ``requests``."""
    m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    if not m:
        raise SystemExit(f"cannot parse {url!r}")
    host, port, path = m.group(1), int(m.group(2)), m.group(3) or "/"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(conns):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        bufs[sock] = b""
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds if seconds else None
    for sock in bufs:
        sock.sendall(request)
    inflight = len(bufs)
    while inflight:
        ready = sel.select(10.0)
        if not ready:
            raise TimeoutError("no HTTP response for 10 s")
        for key, _ in ready:
            sock = key.fileobj
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionResetError("server closed the connection")
            buf = bufs[sock] + data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                cl = _CONTENT_LENGTH.search(buf, 0, end + 2)
                total = end + 4 + (int(cl.group(1)) if cl else 0)
                if len(buf) < total:
                    break
                buf = buf[total:]
                done += 1
                more = (time.perf_counter() < deadline) if deadline else (done + inflight - 1 < requests)
                if more:
                    sock.sendall(request)
                else:
                    inflight -= 1
            bufs[sock] = buf
    elapsed = time.perf_counter() - t0
    for sock in bufs:
        sel.unregister(sock)
        sock.close()
    sel.close()
    return {"ops": done, "seconds": elapsed, "client": "Python selectors"}


_WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*")


def http(args) -> dict:
    if args.warmup:
        _http_python(args.url, args.conns, requests=args.warmup)
    wrk = None if args.python else shutil.which("wrk")
    if wrk is None:
        with _ServerCPU(args.server_pid) as cpu:
            result = _http_python(args.url, args.conns, seconds=args.seconds)
        result["server_cpu_s"] = cpu.seconds
        return result
    secs = max(1, int(round(args.seconds)))  # wrk takes whole seconds
    with _ServerCPU(args.server_pid) as cpu:  # wrk's own start-up is idle time for the server
        out = subprocess.run(
            [wrk, "-t1", f"-c{args.conns}", f"-d{secs}s", args.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
        ).stdout.decode()
    m = _WRK_REQUESTS.search(out)
    if not m:
        raise RuntimeError(f"cannot parse wrk output: {out!r}")
    bad = _WRK_ERRORS.search(out)
    if bad:
        raise RuntimeError(f"wrk reported errors: {bad.group(0)}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    return {"ops": int(m.group(1)), "seconds": float(m.group(2)) * scale, "client": "wrk",
            "server_cpu_s": cpu.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT")
    where.add_argument("--unix", metavar="PATH")
    e.add_argument("--size", type=int, required=True)
    e.add_argument("--n", type=int, required=True)
    e.add_argument("--warmup", type=int, default=0)
    e.add_argument("--conns", type=int, default=4)
    e.add_argument("--python", action="store_true", help="use the Python client, not the C one")
    e.add_argument("--server-pid", type=int, default=0, help="report this process's CPU time")
    h = sub.add_parser("http")
    h.add_argument("--url", required=True)
    h.add_argument("--seconds", type=float, default=2.0)
    h.add_argument("--conns", type=int, default=8)
    h.add_argument("--warmup", type=int, default=0)
    h.add_argument("--python", action="store_true", help="use the Python client, not wrk")
    h.add_argument("--server-pid", type=int, default=0, help="report this process's CPU time")
    args = parser.parse_args(argv)
    result = echo(args) if args.cmd == "echo" else http(args)
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
