"""add_reader / remove_reader / add_writer / remove_writer on socketpairs and
pipes."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest
from loop_testutil import SOON, run


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    fds = [r, w]
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def test_add_reader_socketpair(loop, pair):
    a, b = pair
    got = loop.create_future()

    def on_readable(sock, tag):
        data = sock.recv(100)
        loop.remove_reader(sock.fileno())
        got.set_result((tag, data))

    loop.add_reader(a.fileno(), on_readable, a, "tag")
    loop.call_soon(b.send, b"payload")
    assert run(loop, got) == ("tag", b"payload")
    assert loop.remove_reader(a.fileno()) is False


def test_reader_called_repeatedly_until_removed(loop, pair):
    a, b = pair
    chunks = []
    done = loop.create_future()

    def on_readable():
        data = a.recv(1)  # one byte at a time: readable again and again
        chunks.append(data)
        if len(chunks) == 5:
            assert loop.remove_reader(a) is True
            done.set_result(None)

    b.send(b"abcdefgh")
    loop.add_reader(a, on_readable)
    run(loop, done)
    assert b"".join(chunks) == b"abcde"
    # Removed: the remaining bytes stay unread.

    async def settle():
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, settle())
    assert len(chunks) == 5
    assert a.recv(10) == b"fgh"


def test_add_reader_file_object(loop, pair):
    """Objects with fileno() are accepted wherever an fd is."""
    a, b = pair
    got = loop.create_future()

    def on_readable():
        got.set_result(a.recv(10))

    loop.add_reader(a, on_readable)
    b.send(b"obj")
    assert run(loop, got) == b"obj"
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_add_reader_replaces_previous(loop, pair):
    a, b = pair
    calls = []
    done = loop.create_future()

    def first():
        calls.append("first")

    def second():
        calls.append("second")
        a.recv(10)
        loop.remove_reader(a)
        done.set_result(None)

    loop.add_reader(a, first)
    loop.add_reader(a, second)
    b.send(b"x")
    run(loop, done)
    assert calls == ["second"]


def test_reader_sees_eof(loop, pair):
    a, b = pair
    got = loop.create_future()

    def on_readable():
        data = a.recv(10)
        loop.remove_reader(a)
        got.set_result(data)

    loop.add_reader(a, on_readable)
    b.shutdown(socket.SHUT_WR)
    assert run(loop, got) == b""


def test_add_writer(loop, pair):
    a, b = pair
    got = loop.create_future()

    def on_writable(arg):
        a.send(b"from writer")
        assert loop.remove_writer(a) is True
        got.set_result(arg)

    loop.add_writer(a.fileno(), on_writable, 123)
    assert run(loop, got) == 123
    assert b.recv(100) == b"from writer"
    assert loop.remove_writer(a) is False


def test_writer_waits_for_buffer_space(loop, pair):
    a, b = pair
    # Fill a's send buffer.
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    writable = loop.create_future()
    loop.add_writer(a, lambda: writable.done() or writable.set_result(True))

    async def main():
        for _ in range(5):
            await asyncio.sleep(0)
        assert not writable.done()
        # Drain the peer: a becomes writable.
        while True:
            try:
                if not b.recv(1 << 20):
                    break
            except BlockingIOError:
                if writable.done():
                    break
                await asyncio.sleep(0.001)
        return await writable

    assert run(loop, main()) is True
    assert loop.remove_writer(a) is True


def test_reader_and_writer_same_fd(loop, pair):
    a, b = pair
    events = []
    done = loop.create_future()

    def on_write():
        events.append("w")
        loop.remove_writer(a)
        b.send(b"r")

    def on_read():
        events.append("r")
        a.recv(10)
        loop.remove_reader(a)
        done.set_result(None)

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    run(loop, done)
    assert events == ["w", "r"]


def test_remove_writer_keeps_reader(loop, pair):
    a, b = pair
    got = loop.create_future()
    loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(100)))
    loop.add_writer(a, lambda: None)
    assert loop.remove_writer(a) is True

    async def main():
        await asyncio.sleep(0.01)
        b.send(b"still reading")
        return await got

    assert run(loop, main()) == b"still reading"
    assert loop.remove_reader(a) is True


def test_remove_unknown_fd(loop, pair):
    a, _ = pair
    assert loop.remove_reader(a.fileno()) is False
    assert loop.remove_writer(a.fileno()) is False


def test_pipe_reader_and_writer(loop, pipe):
    r, w = pipe
    got = loop.create_future()
    written = loop.create_future()

    def on_writable():
        os.write(w, b"through the pipe")
        loop.remove_writer(w)
        written.set_result(None)

    def on_readable():
        data = os.read(r, 100)
        loop.remove_reader(r)
        got.set_result(data)

    loop.add_reader(r, on_readable)
    loop.add_writer(w, on_writable)
    assert run(loop, got) == b"through the pipe"
    assert written.done()


def test_pipe_reader_sees_eof_when_writer_closed(loop, pipe):
    r, w = pipe
    got = loop.create_future()

    def on_readable():
        data = os.read(r, 100)
        loop.remove_reader(r)
        got.set_result(data)

    loop.add_reader(r, on_readable)
    os.close(w)
    pipe.remove(w)
    assert run(loop, got) == b""


def test_many_fds(loop):
    pairs = [socket.socketpair() for _ in range(100)]
    try:
        results = {}
        done = loop.create_future()

        def on_readable(i, sock):
            results[i] = sock.recv(10)
            loop.remove_reader(sock)
            if len(results) == len(pairs) and not done.done():
                done.set_result(None)

        for i, (a, _) in enumerate(pairs):
            a.setblocking(False)
            loop.add_reader(a, on_readable, i, a)
        for i, (_, b) in enumerate(reversed(pairs)):
            b.send(b"%d" % (len(pairs) - 1 - i))
        run(loop, done)
        assert results == {i: b"%d" % i for i in range(len(pairs))}
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_remove_reader_then_close_fd_then_reuse_number(loop):
    """A descriptor number closed after remove_reader and reused by a new
    socket can be watched again."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, lambda: None)
    assert loop.remove_reader(fd) is True
    a.close()
    b.close()
    c, d = socket.socketpair()
    try:
        c.setblocking(False)
        got = loop.create_future()

        def on_readable():
            loop.remove_reader(c)
            got.set_result(c.recv(10))

        loop.add_reader(c, on_readable)
        d.send(b"reused")
        assert run(loop, got) == b"reused"
    finally:
        c.close()
        d.close()


def test_reader_removed_by_another_callback_does_not_run(loop, pair):
    a, b = pair
    calls = []
    b.send(b"x")

    def remover():
        loop.remove_reader(a)

    loop.add_reader(a, calls.append, "reader")
    # The reader may already be queued for this iteration; removing it
    # cancels the queued call (stdlib semantics).
    loop.call_soon(remover)

    async def settle():
        await asyncio.sleep(0.02)

    run(loop, settle())
    assert calls in ([], ["reader"])
    n = len(calls)
    run(loop, settle())
    assert len(calls) == n  # never again after removal


def test_close_loop_with_readers_and_writers(loop, pair):
    """Closing a loop that still watches descriptors works (the fixture then
    checks that no libuv handle is left open), and leaves the descriptors
    alone."""
    a, b = pair
    loop.add_reader(a, lambda: None)
    loop.add_writer(b, lambda: None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    b.send(b"after")
    a.setblocking(True)
    a.settimeout(SOON)
    assert a.recv(10) == b"after"


def test_writer_is_level_triggered(loop, pair):
    a, _ = pair
    calls = []
    done = loop.create_future()

    def on_writable():
        calls.append(1)
        if len(calls) == 5:
            loop.remove_writer(a)
            done.set_result(None)

    loop.add_writer(a, on_writable)
    run(loop, done)
    assert len(calls) == 5


def test_pipe_writer_sees_closed_reader(loop, pipe):
    """The read end is closed: the writer is called and os.write raises
    BrokenPipeError (the error condition counts as writable)."""
    r, w = pipe
    os.close(r)
    pipe.remove(r)
    got = loop.create_future()

    def on_writable():
        loop.remove_writer(w)
        try:
            os.write(w, b"x")
        except BrokenPipeError as exc:
            got.set_result(exc)
        else:
            got.set_result(None)

    loop.add_writer(w, on_writable)
    assert isinstance(run(loop, got), BrokenPipeError)


def test_add_reader_from_running_callback_and_readd(loop, pair):
    """Removing and adding back a reader inside one callback keeps watching."""
    a, b = pair
    chunks = []
    done = loop.create_future()

    def on_readable():
        chunks.append(a.recv(1))
        loop.remove_reader(a)
        if len(chunks) < 3:
            loop.add_reader(a, on_readable)
        else:
            done.set_result(None)

    async def main():
        loop.add_reader(a, on_readable)
        b.send(b"abc")
        await done

    run(loop, main())
    assert chunks == [b"a", b"b", b"c"]
