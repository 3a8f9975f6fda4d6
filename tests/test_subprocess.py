"""subprocess_exec / subprocess_shell and asyncio.create_subprocess_*, on both loops."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading

import pytest
from loop_testutil import run

PY = sys.executable


class Proto(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append("exited")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.done.set_result(None)


def test_communicate(loop):
    async def main():
        code = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]); " \
               "sys.stderr.write('e'); sys.exit(7)"
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(b"abc" * 100000)
        assert out == (b"abc" * 100000)[::-1]
        assert err == b"e"
        assert proc.returncode == 7
    run(loop, main())


def test_shell_and_stderr_to_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err 1>&2; exit 3", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert sorted(out.split()) == [b"err", b"out"]
        assert await proc.wait() == 3
    run(loop, main())


def test_protocol_order(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", "import sys; print('x'); sys.stderr.write('y')",
            stdin=subprocess.PIPE)
        assert isinstance(tr, asyncio.SubprocessTransport)
        assert tr.get_pid() > 0
        assert tr.get_pipe_transport(0) is not None
        tr.get_pipe_transport(0).close()
        await proto.done
        assert proto.events[0] == "made"
        assert proto.events[-1] == ("lost", None)
        lost = [e for e in proto.events if isinstance(e, tuple) and e[0] == "pipe_lost"]
        assert sorted(e[1] for e in lost) == [0, 1, 2]
        assert "exited" in proto.events
        assert bytes(proto.data[1]).strip() == b"x" and bytes(proto.data[2]) == b"y"
        assert tr.get_returncode() == 0
        tr.close()
    run(loop, main())


def test_kill_terminate_send_signal(loop):
    async def main():
        for action, expected in (("kill", -signal.SIGKILL), ("terminate", -signal.SIGTERM),
                                 ("send_signal", -signal.SIGINT)):
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import time, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                          "print('ready', flush=True); time.sleep(60)",
                stdout=subprocess.PIPE)
            assert await proc.stdout.readline() == b"ready\n"
            if action == "send_signal":
                proc.send_signal(signal.SIGINT)
            else:
                getattr(proc, action)()
            assert await proc.wait() == expected
    run(loop, main())


def test_stdio_variants(loop):
    async def main():
        with tempfile.TemporaryFile() as f:
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import sys; print('to file'); print(sys.stdin.read() == '')",
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
            assert await proc.wait() == 0
            f.seek(0)
            assert f.read() == b"to file\nTrue\n"
        r, w = os.pipe()
        proc = await asyncio.create_subprocess_exec(PY, "-c", "print('to fd')", stdout=w)
        os.close(w)
        assert await proc.wait() == 0
        assert os.read(r, 100) == b"to fd\n"
        os.close(r)
    run(loop, main())


def test_cwd_env_pass_fds(loop):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            r, w = os.pipe()
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", f"import os; print(os.getcwd()); print(os.environ['UVL_T']); os.write({w}, b'p')",
                stdout=subprocess.PIPE, cwd=d, env={"UVL_T": "yes"}, pass_fds=(w,),
                start_new_session=True)
            out, _ = await proc.communicate()
            os.close(w)
            assert out.split() == [os.path.realpath(d).encode(), b"yes"]
            assert os.read(r, 1) == b"p"
            os.close(r)
    run(loop, main())


def test_rejected_arguments(loop):
    async def main():
        for kw, msg in (({"universal_newlines": True}, "universal_newlines must be False"),
                        ({"bufsize": 1}, "bufsize must be 0"),
                        ({"text": True}, "text must be False"),
                        ({"encoding": "utf-8"}, "encoding must be None"),
                        ({"errors": "strict"}, "errors must be None")):
            with pytest.raises(ValueError, match=msg):
                await loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass", **kw)
            with pytest.raises(ValueError, match=msg):
                await loop.subprocess_shell(asyncio.SubprocessProtocol, "true", **kw)
        with pytest.raises(ValueError, match="shell must be False"):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", shell=True)
        with pytest.raises(ValueError, match="shell must be True"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, "true", shell=False)
        with pytest.raises(ValueError, match="cmd must be a string"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"])
    run(loop, main())


def test_exec_failures(loop):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            with pytest.raises(FileNotFoundError):
                await asyncio.create_subprocess_exec(os.path.join(d, "missing"))
            path = os.path.join(d, "noexec")
            with open(path, "w") as f:
                f.write("#!/bin/sh\n")
            with pytest.raises(PermissionError):
                await asyncio.create_subprocess_exec(path)
    run(loop, main())


def test_many_children_no_leaks(loop):
    def fds():
        return set(os.listdir("/proc/self/fd"))

    async def main():
        async def one():
            proc = await asyncio.create_subprocess_exec("true", stdout=subprocess.PIPE)
            await proc.communicate()
            return proc.returncode

        # Warm up: libuv opens one spare descriptor per loop with its first
        # stream (its EMFILE reserve, closed with the loop).
        await one()
        before = fds()

        codes = await asyncio.gather(*[one() for _ in range(50)])
        assert codes == [0] * 50
        await asyncio.sleep(0.05)
        assert fds() - before == set()
        with pytest.raises(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)  # no zombie (and no child) left
    run(loop, main())


def test_transport_close_kills_child(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(lambda: Proto(loop), PY, "-c", "import time; time.sleep(60)")
        tr.close()
        await proto.done
        assert tr.get_returncode() == -signal.SIGKILL
    run(loop, main())


def test_loop_in_thread(loop):
    result = []

    def target():
        async def main():
            proc = await asyncio.create_subprocess_exec(PY, "-c", "print(42)", stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            return out
        result.append(run(loop, main()))

    t = threading.Thread(target=target)
    t.start()
    t.join(30)
    assert result == [b"42\n"]
