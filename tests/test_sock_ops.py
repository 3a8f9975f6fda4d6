"""loop.sock_* on real loopback sockets (TCP and UDP on 127.0.0.1, ::1)."""
from __future__ import annotations

import asyncio
import io
import platform
import socket
import sys

import pytest
from loop_testutil import run

PY311 = sys.version_info >= (3, 11)


def _ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_available()


@pytest.fixture
def sockets():
    """A list the test appends sockets to; all are closed afterwards."""
    socks = []
    yield socks
    for s in socks:
        s.close()


def _listener(sockets, family=socket.AF_INET, host="127.0.0.1"):
    srv = socket.socket(family, socket.SOCK_STREAM)
    sockets.append(srv)
    srv.bind((host, 0))
    srv.listen(128)
    srv.setblocking(False)
    return srv


def _tcp_pair(sockets):
    """Two connected, non-blocking TCP sockets on 127.0.0.1."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    srv.close()
    for s in (a, b):
        s.setblocking(False)
        sockets.append(s)
    return a, b


def _udp_pair(sockets):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        sockets.append(s)
    return a, b


def _unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _recv_exactly(loop, sock, n):
    chunks = []
    got = 0
    while got < n:
        data = await loop.sock_recv(sock, min(65536, n - got))
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


async def _recv_all(loop, sock):
    chunks = []
    while True:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


# --- recv / send ---------------------------------------------------------------

def test_sock_recv_waits_for_data(loop, sockets):
    a, b = _tcp_pair(sockets)

    async def main():
        task = loop.create_task(loop.sock_recv(a, 100))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        b.send(b"hello")
        return await task

    assert run(loop, main()) == b"hello"


def test_sock_recv_data_already_there(loop, sockets):
    a, b = _tcp_pair(sockets)
    b.sendall(b"ready")

    async def main():
        return await _recv_exactly(loop, a, 5)

    assert run(loop, main()) == b"ready"


def test_sock_recv_eof(loop, sockets):
    a, b = _tcp_pair(sockets)

    async def main():
        task = loop.create_task(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.shutdown(socket.SHUT_WR)
        return await task

    assert run(loop, main()) == b""


def test_sock_recv_into(loop, sockets):
    a, b = _tcp_pair(sockets)
    buf = bytearray(10)

    async def main():
        task = loop.create_task(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        b.send(b"abc")
        return await task

    n = run(loop, main())
    assert n == 3
    assert buf[:3] == b"abc"


def test_sock_recv_into_memoryview_slice(loop, sockets):
    a, b = _tcp_pair(sockets)
    buf = bytearray(b"." * 8)
    b.send(b"xyz")

    async def main():
        return await loop.sock_recv_into(a, memoryview(buf)[2:5])

    assert run(loop, main()) == 3
    assert buf == bytearray(b"..xyz...")


def test_sock_recv_connection_reset(loop, sockets):
    a, b = _tcp_pair(sockets)
    # SO_LINGER 0: close() sends RST.
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    async def main():
        task = loop.create_task(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        sockets.remove(b)
        b.close()
        return await task

    with pytest.raises(ConnectionResetError):
        run(loop, main())


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_sock_sendall_large_payload(loop, sockets, kind):
    """A payload far larger than the socket buffers: sendall must finish
    after many partial writes, in order."""
    a, b = _tcp_pair(sockets)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB
    data = kind(payload)

    async def main():
        reader = loop.create_task(_recv_exactly(loop, b, len(payload)))
        result = await loop.sock_sendall(a, data)
        return result, await reader

    result, received = run(loop, main())
    assert result is None
    assert len(received) == len(payload)
    assert received == payload


def test_sock_sendall_concurrent_reader_slow(loop, sockets):
    """The reader starts late: sendall has to wait for the buffer to drain."""
    a, b = _tcp_pair(sockets)
    payload = b"z" * (32 * 1024 * 1024)  # more than any loopback buffer autotuning

    async def main():
        sender = loop.create_task(loop.sock_sendall(a, payload))
        await asyncio.sleep(0.05)
        assert not sender.done()
        received = await _recv_exactly(loop, b, len(payload))
        await sender
        return received

    assert run(loop, main()) == payload


def test_sock_sendall_empty(loop, sockets):
    a, b = _tcp_pair(sockets)
    assert run(loop, loop.sock_sendall(a, b"")) is None


def test_sock_sendall_then_close_gives_eof(loop, sockets):
    a, b = _tcp_pair(sockets)

    async def main():
        await loop.sock_sendall(a, b"last words")
        a.shutdown(socket.SHUT_WR)
        return await _recv_all(loop, b)

    assert run(loop, main()) == b"last words"


def test_sock_sendall_broken_pipe(loop, sockets):
    a, b = _tcp_pair(sockets)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sockets.remove(b)
    b.close()

    async def main():
        for _ in range(100):
            await loop.sock_sendall(a, b"x" * 65536)
            await asyncio.sleep(0.001)

    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        run(loop, main())


# --- connect / accept ----------------------------------------------------------

def test_sock_connect_and_accept(loop, sockets):
    srv = _listener(sockets)
    client = socket.socket()
    client.setblocking(False)
    sockets.append(client)

    async def main():
        accept = loop.create_task(loop.sock_accept(srv))
        await loop.sock_connect(client, srv.getsockname())
        conn, addr = await accept
        sockets.append(conn)
        return conn, addr

    conn, addr = run(loop, main())
    assert conn.gettimeout() == 0  # accepted sockets are non-blocking
    assert addr == client.getsockname()
    assert conn.getpeername() == client.getsockname()

    async def talk():
        await loop.sock_sendall(client, b"ping")
        assert await _recv_exactly(loop, conn, 4) == b"ping"
        await loop.sock_sendall(conn, b"pong")
        return await _recv_exactly(loop, client, 4)

    assert run(loop, talk()) == b"pong"


def test_sock_accept_waits(loop, sockets):
    srv = _listener(sockets)

    async def main():
        accept = loop.create_task(loop.sock_accept(srv))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not accept.done()
        client = socket.socket()
        sockets.append(client)
        client.setblocking(False)
        await loop.sock_connect(client, srv.getsockname())
        conn, addr = await accept
        sockets.append(conn)
        return addr == client.getsockname()

    assert run(loop, main())


def test_sock_connect_resolves_localhost(loop, sockets):
    srv = _listener(sockets)
    port = srv.getsockname()[1]
    client = socket.socket()
    client.setblocking(False)
    sockets.append(client)

    async def main():
        accept = loop.create_task(loop.sock_accept(srv))
        await loop.sock_connect(client, ("localhost", port))
        conn, _ = await accept
        sockets.append(conn)

    run(loop, main())
    assert client.getpeername() == ("127.0.0.1", port)


def test_sock_connect_refused(loop, sockets):
    client = socket.socket()
    client.setblocking(False)
    sockets.append(client)
    port = _unused_port()
    with pytest.raises(ConnectionRefusedError):
        run(loop, loop.sock_connect(client, ("127.0.0.1", port)))


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on loopback")
def test_sock_connect_ipv6(loop, sockets):
    srv = _listener(sockets, socket.AF_INET6, "::1")
    client = socket.socket(socket.AF_INET6)
    client.setblocking(False)
    sockets.append(client)

    async def main():
        accept = loop.create_task(loop.sock_accept(srv))
        await loop.sock_connect(client, srv.getsockname()[:2])
        conn, addr = await accept
        sockets.append(conn)
        await loop.sock_sendall(client, b"six")
        return await _recv_exactly(loop, conn, 3)

    assert run(loop, main()) == b"six"


def test_sock_connect_unix(loop, sockets, tmp_path):
    path = str(tmp_path / "sock")
    srv = socket.socket(socket.AF_UNIX)
    sockets.append(srv)
    srv.bind(path)
    srv.listen(1)
    srv.setblocking(False)
    client = socket.socket(socket.AF_UNIX)
    client.setblocking(False)
    sockets.append(client)

    async def main():
        accept = loop.create_task(loop.sock_accept(srv))
        await loop.sock_connect(client, path)
        conn, _ = await accept
        sockets.append(conn)
        await loop.sock_sendall(conn, b"unix")
        return await _recv_exactly(loop, client, 4)

    assert run(loop, main()) == b"unix"


# --- UDP -----------------------------------------------------------------------

@pytest.mark.skipif(not PY311, reason="sock_recvfrom/sock_sendto are 3.11+")
def test_sock_sendto_recvfrom(loop, sockets):
    a, b = _udp_pair(sockets)

    async def main():
        task = loop.create_task(loop.sock_recvfrom(b, 1024))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        sent = await loop.sock_sendto(a, b"datagram", b.getsockname())
        data, addr = await task
        return sent, data, addr

    sent, data, addr = run(loop, main())
    assert sent == len(b"datagram")
    assert data == b"datagram"
    assert addr == a.getsockname()


@pytest.mark.skipif(not PY311, reason="sock_recvfrom_into is 3.11+")
def test_sock_recvfrom_into(loop, sockets):
    a, b = _udp_pair(sockets)
    buf = bytearray(16)

    async def main():
        task = loop.create_task(loop.sock_recvfrom_into(b, buf))
        await asyncio.sleep(0)
        await loop.sock_sendto(a, b"into", b.getsockname())
        return await task

    nbytes, addr = run(loop, main())
    assert nbytes == 4
    assert buf[:4] == b"into"
    assert addr == a.getsockname()


@pytest.mark.skipif(not PY311, reason="sock_recvfrom_into is 3.11+")
def test_sock_recvfrom_into_nbytes(loop, sockets):
    a, b = _udp_pair(sockets)
    buf = bytearray(16)
    a.sendto(b"0123456789", b.getsockname())

    async def main():
        return await loop.sock_recvfrom_into(b, buf, 4)

    nbytes, _ = run(loop, main())
    assert nbytes == 4
    assert buf[:4] == b"0123"
    assert buf[4:] == bytearray(12)


@pytest.mark.skipif(not PY311, reason="sock_recvfrom is 3.11+")
def test_sock_recvfrom_many_datagrams(loop, sockets):
    a, b = _udp_pair(sockets)

    async def main():
        got = []
        for i in range(50):
            await loop.sock_sendto(a, b"%d" % i, b.getsockname())
            data, _ = await loop.sock_recvfrom(b, 100)
            got.append(data)
        return got

    assert run(loop, main()) == [b"%d" % i for i in range(50)]


@pytest.mark.skipif(not PY311, reason="sock_recv on UDP with sock_sendto is 3.11+")
def test_sock_recv_on_connected_udp(loop, sockets):
    a, b = _udp_pair(sockets)
    a.connect(b.getsockname())

    async def main():
        task = loop.create_task(loop.sock_recv(b, 100))
        await asyncio.sleep(0)
        await loop.sock_sendall(a, b"connected-udp")
        return await task

    assert run(loop, main()) == b"connected-udp"


# --- sendfile ------------------------------------------------------------------

@pytest.fixture
def data_file(tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        yield f, data


@pytest.mark.parametrize("fallback", [False, True], ids=["native", "fallback-allowed"])
def test_sock_sendfile_whole_file(loop, sockets, data_file, fallback):
    f, data = data_file
    a, b = _tcp_pair(sockets)

    async def main():
        reader = loop.create_task(_recv_exactly(loop, b, len(data)))
        sent = await loop.sock_sendfile(a, f, fallback=fallback)
        return sent, await reader

    sent, received = run(loop, main())
    assert sent == len(data)
    assert received == data
    assert f.tell() == len(data)


@pytest.mark.parametrize("fallback", [False, True], ids=["native", "fallback-allowed"])
def test_sock_sendfile_offset_count(loop, sockets, data_file, fallback):
    f, data = data_file
    a, b = _tcp_pair(sockets)

    async def main():
        reader = loop.create_task(_recv_exactly(loop, b, 5000))
        sent = await loop.sock_sendfile(a, f, 100, 5000, fallback=fallback)
        return sent, await reader

    sent, received = run(loop, main())
    assert sent == 5000
    assert received == data[100:5100]
    assert f.tell() == 5100


def test_sock_sendfile_count_past_end(loop, sockets, data_file):
    f, data = data_file
    a, b = _tcp_pair(sockets)

    async def main():
        sent = await loop.sock_sendfile(a, f, len(data) - 10, 1000)
        a.shutdown(socket.SHUT_WR)
        return sent, await _recv_all(loop, b)

    sent, received = run(loop, main())
    assert sent == 10
    assert received == data[-10:]


def test_sock_sendfile_empty_file(loop, sockets, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    a, b = _tcp_pair(sockets)
    with open(path, "rb") as f:
        assert run(loop, loop.sock_sendfile(a, f)) == 0


def test_sock_sendfile_not_regular_file_uses_fallback(loop, sockets):
    a, b = _tcp_pair(sockets)
    data = b"in memory" * 1000
    f = io.BytesIO(data)

    async def main():
        reader = loop.create_task(_recv_exactly(loop, b, len(data)))
        sent = await loop.sock_sendfile(a, f)
        return sent, await reader

    sent, received = run(loop, main())
    assert sent == len(data)
    assert received == data


def test_sock_sendfile_not_regular_file_no_fallback(loop, sockets):
    a, b = _tcp_pair(sockets)
    f = io.BytesIO(b"data")
    with pytest.raises(asyncio.SendfileNotAvailableError):
        run(loop, loop.sock_sendfile(a, f, fallback=False))


# --- cancellation --------------------------------------------------------------

async def _start_and_cancel(loop, coro):
    task = loop.create_task(coro)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_cancel_pending_sock_recv(loop, sockets):
    a, b = _tcp_pair(sockets)

    async def main():
        await _start_and_cancel(loop, loop.sock_recv(a, 100))
        # The reader is gone ...
        assert loop.remove_reader(a) is False
        # ... and the socket can be read again, nothing lost.
        b.send(b"after cancel")
        return await _recv_exactly(loop, a, len(b"after cancel"))

    assert run(loop, main()) == b"after cancel"


def test_cancel_pending_sock_recv_into(loop, sockets):
    a, b = _tcp_pair(sockets)
    buf = bytearray(10)

    async def main():
        await _start_and_cancel(loop, loop.sock_recv_into(a, buf))
        assert loop.remove_reader(a) is False
        b.send(b"x")
        return await loop.sock_recv_into(a, buf)

    assert run(loop, main()) == 1
    assert buf[:1] == b"x"


def test_cancel_pending_sock_accept(loop, sockets):
    srv = _listener(sockets)

    async def main():
        await _start_and_cancel(loop, loop.sock_accept(srv))
        assert loop.remove_reader(srv) is False
        client = socket.socket()
        client.setblocking(False)
        sockets.append(client)
        accept = loop.create_task(loop.sock_accept(srv))
        await loop.sock_connect(client, srv.getsockname())
        conn, _ = await accept
        sockets.append(conn)
        return conn.getpeername() == client.getsockname()

    assert run(loop, main())


@pytest.mark.skipif(not PY311, reason="sock_recvfrom is 3.11+")
def test_cancel_pending_sock_recvfrom(loop, sockets):
    a, b = _udp_pair(sockets)

    async def main():
        await _start_and_cancel(loop, loop.sock_recvfrom(b, 100))
        assert loop.remove_reader(b) is False
        a.sendto(b"dgram", b.getsockname())
        return await loop.sock_recvfrom(b, 100)

    data, addr = run(loop, main())
    assert data == b"dgram"
    assert addr == a.getsockname()


def test_cancel_pending_sock_sendall(loop, sockets):
    a, b = _tcp_pair(sockets)
    payload = b"q" * (64 * 1024 * 1024)

    async def main():
        await _start_and_cancel(loop, loop.sock_sendall(a, payload))
        assert loop.remove_writer(a) is False

    run(loop, main())


def test_wait_for_timeout_on_sock_recv(loop, sockets):
    a, b = _tcp_pair(sockets)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_recv(a, 10), 0.01)
        assert loop.remove_reader(a) is False
        b.send(b"late")
        return await _recv_exactly(loop, a, 4)

    assert run(loop, main()) == b"late"


def test_many_concurrent_connections(loop, sockets):
    srv = _listener(sockets)
    n = 50

    async def server():
        conns = []
        for _ in range(n):
            conn, _ = await loop.sock_accept(srv)
            sockets.append(conn)
            conns.append(conn)

        async def echo(conn):
            data = await _recv_exactly(loop, conn, 8)
            await loop.sock_sendall(conn, data)

        await asyncio.gather(*[echo(c) for c in conns])

    async def client(i):
        s = socket.socket()
        s.setblocking(False)
        sockets.append(s)
        await loop.sock_connect(s, srv.getsockname())
        msg = b"%08d" % i
        await loop.sock_sendall(s, msg)
        return await _recv_exactly(loop, s, 8) == msg

    async def main():
        srv_task = loop.create_task(server())
        results = await asyncio.gather(*[client(i) for i in range(n)])
        await srv_task
        return results

    assert run(loop, main()) == [True] * n


def test_cancel_pending_sock_connect(loop, sockets):
    """A connect that cannot complete (the listener's backlog is full) is
    cancelled: the writer is removed and nothing is reported."""
    srv = socket.socket()
    sockets.append(srv)
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    for _ in range(3):  # fill the accept queue; these stay unaccepted
        c = socket.socket()
        c.setblocking(False)
        sockets.append(c)
        c.connect_ex(srv.getsockname())
    client = socket.socket()
    client.setblocking(False)
    sockets.append(client)

    async def main():
        task = loop.create_task(loop.sock_connect(client, srv.getsockname()))
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
            pytest.skip("this kernel completed a connect to a full backlog")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.remove_writer(client) is False

    run(loop, main())


@pytest.mark.skipif(platform.python_implementation() == "PyPy",
                    reason="PyPy's socket.recv(0) on a non-blocking socket raises BlockingIOError "
                           "instead of returning b'': both loops then wait for data")
def test_sock_recv_zero_bytes(loop, sockets):
    a, b = _tcp_pair(sockets)
    assert run(loop, loop.sock_recv(a, 0)) == b""
    assert run(loop, loop.sock_recv_into(a, bytearray())) == 0


def test_sock_connect_udp(loop, sockets):
    a, b = _udp_pair(sockets)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setblocking(False)
    sockets.append(c)
    run(loop, loop.sock_connect(c, b.getsockname()))
    assert c.getpeername() == b.getsockname()


def test_two_readers_on_two_sockets_concurrently(loop, sockets):
    a1, b1 = _tcp_pair(sockets)
    a2, b2 = _tcp_pair(sockets)

    async def main():
        t1 = loop.create_task(loop.sock_recv(a1, 10))
        t2 = loop.create_task(loop.sock_recv(a2, 10))
        await asyncio.sleep(0)
        b2.send(b"second")
        r2 = await t2
        assert not t1.done()
        b1.send(b"first")
        return await t1, r2

    assert run(loop, main()) == (b"first", b"second")
