"""The TLS echo load generator: one fixed client for every loop under test.

    python -m bench.tls_loadgen --tcp HOST:PORT --size N --n N --warmup N [--conns C] [--server-pid PID]

Like ``bench.loadgen echo`` (same protocol, same ``LOADGEN-RESULT {json}`` line), but
every connection speaks TLS: ``--conns`` connections, each with one ``--size``-byte
message in flight (send it, read until all of it is back: one round trip).  The client
is a small C epoll loop on OpenSSL's non-blocking ``SSL_read``/``SSL_write``, compiled
once with cffi into ``bench/_build`` so that it is never the bottleneck (its cost per
round trip is a fraction of any Python server's); without a C compiler or OpenSSL
headers the same logic runs in Python on non-blocking ``ssl`` sockets and
``selectors`` (``client`` in the result says which) and may then limit the servers.
It does not verify the server's certificate: it measures, it does not authenticate.
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import ssl
import sys
import time

from bench.loadgen import MAX_MESSAGE, RESULT_MARKER, _ServerCPU, build_native

_C_CDEF = """
void *tls_new_ctx(void);
int tls_connect(void *ctx, int fd, void **ssl_out);
long tls_echo_run(void **ssls, const int *fds, int nconn, long size, long n);
void tls_free(void *ctx, void **ssls, int nconn);
"""
_C_SOURCE = r"""
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <openssl/err.h>

#define MAX_CONNS 256
static char sendbuf[1 << 20];
static char recvbuf[1 << 18];

typedef struct { SSL *ssl; int fd; long sent; long rcvd; int want_out; } conn_t;

void *tls_new_ctx(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

/* The handshake, on a blocking socket (the caller makes it non-blocking after). */
int tls_connect(void *ctx, int fd, void **ssl_out) {
    SSL *ssl = SSL_new((SSL_CTX *)ctx);
    if (ssl == NULL) return -ENOMEM;
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) { SSL_free(ssl); return -EPROTO; }
    *ssl_out = ssl;
    return 0;
}

void tls_free(void *ctx, void **ssls, int nconn) {
    for (int i = 0; i < nconn; i++) if (ssls[i]) SSL_free((SSL *)ssls[i]);
    SSL_CTX_free((SSL_CTX *)ctx);
}

static int watch(int ep, conn_t *c, int i, int want) {
    if (want == c->want_out) return 0;
    struct epoll_event ev;
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.u32 = (unsigned)i;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -errno;
    c->want_out = want;
    return 0;
}

/* Encrypt and send what the socket takes of the current message. */
static int pump(int ep, conn_t *c, int i, long size) {
    while (c->sent < size) {
        int r = SSL_write(c->ssl, sendbuf + c->sent, (int)(size - c->sent));
        if (r <= 0) {
            int err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) break;
            return -EPROTO;
        }
        c->sent += r;
    }
    return watch(ep, c, i, c->sent < size);
}

long tls_echo_run(void **ssls, const int *fds, int nconn, long size, long n) {
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
        conns[i].ssl = (SSL *)ssls[i]; conns[i].fd = fds[i];
        conns[i].sent = conns[i].rcvd = 0; conns[i].want_out = 0;
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
            i = (int)evs[j].data.u32;
            conn_t *c = &conns[i];
            if ((evs[j].events & EPOLLOUT) && c->want_out)
                if ((rc = pump(ep, c, i, size)) < 0) goto out;
            if (!(evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            for (;;) {  /* drain what is decryptable now (records may be buffered) */
                int r = SSL_read(c->ssl, recvbuf, (int)sizeof(recvbuf));
                if (r <= 0) {
                    int err = SSL_get_error(c->ssl, r);
                    if (err == SSL_ERROR_WANT_READ) break;
                    if (err == SSL_ERROR_WANT_WRITE) { if ((rc = watch(ep, c, i, 1)) < 0) goto out; break; }
                    rc = err == SSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EPROTO;
                    goto out;
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
    }
    rc = 0;
out:
    close(ep);
    return rc < 0 ? rc : done;
}
"""


def _native():
    """The compiled C TLS client, or None (no compiler or no OpenSSL headers)."""
    return build_native("_tls_loadgen", _C_CDEF, _C_SOURCE, "C TLS client", libraries=["ssl", "crypto"])


def _echo_python(socks, size: int, n: int) -> None:
    """The same protocol as tls_echo_run, on non-blocking ssl sockets."""
    payload = b"x" * size
    sel = selectors.DefaultSelector()
    state = {}
    started = done = 0

    def pump(sock):
        st = state[sock]
        while st[0] < size:
            try:
                st[0] += sock.send(payload[st[0]:] if st[0] else payload)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                break
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st[0] < size else 0)
        if want != st[2]:
            sel.modify(sock, want)
            st[2] = want

    for sock in socks:
        state[sock] = [0, 0, selectors.EVENT_READ]
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
            while True:
                try:
                    data = sock.recv(262144)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    break
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


def echo(args) -> dict:
    if args.size > MAX_MESSAGE:
        raise SystemExit(f"--size at most {MAX_MESSAGE}")
    host, port = args.tcp.rsplit(":", 1)
    socks = []
    for _ in range(args.conns):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    native = None if args.python else _native()
    if native is not None:
        ctx = native.lib.tls_new_ctx()
        if ctx == native.ffi.NULL:
            raise SystemExit("SSL_CTX_new failed")
        ssls = native.ffi.new("void *[]", len(socks))
        for i, sock in enumerate(socks):
            sock.setblocking(True)
            if native.lib.tls_connect(ctx, sock.fileno(), ssls + i) < 0:
                raise SystemExit("TLS handshake failed")
            sock.setblocking(False)
        fds = native.ffi.new("int[]", [s.fileno() for s in socks])

        def run(n):
            rc = native.lib.tls_echo_run(ssls, fds, len(socks), args.size, n)
            if rc < 0:
                raise OSError(-rc, os.strerror(-rc))

        client = "C epoll + OpenSSL"
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        socks = [context.wrap_socket(s, server_hostname="localhost") for s in socks]
        for sock in socks:
            sock.setblocking(False)

        def run(n):
            _echo_python(socks, args.size, n)

        client = "Python ssl + selectors"
    if args.warmup:
        run(args.warmup)
    with _ServerCPU(args.server_pid) as cpu:
        t0 = time.perf_counter()
        run(args.n)
        seconds = time.perf_counter() - t0
    for sock in socks:
        sock.close()
    if native is not None:
        native.lib.tls_free(ctx, ssls, len(socks))
    return {"ops": args.n, "seconds": seconds, "client": client, "server_cpu_s": cpu.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_loadgen")
    parser.add_argument("--tcp", metavar="HOST:PORT", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--python", action="store_true", help="use the Python client, not the C one")
    parser.add_argument("--server-pid", type=int, default=0, help="report this process's CPU time")
    args = parser.parse_args(argv)
    result = echo(args)
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
