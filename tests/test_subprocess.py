"""subprocess_exec / subprocess_shell and asyncio.create_subprocess_*, on both loops."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from conftest import loop_fixture
from loop_testutil import full_gc, is_uvloop_like, run

PY = sys.executable
TRUE = "/bin/true"


def _inheritable_fds():
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd >= 3 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            pass  # listdir's own descriptor, closed by now
    return found


@pytest.fixture(params=["asyncio", "uvloop_like", "uvloop_like+uv_spawn"])
def loop(request, _exception_recorder, monkeypatch):
    """conftest's loop, plus a second uvloop_like run: a child starts with
    posix_spawn where it can, else with libuv's uv_spawn (no pidfd here,
    user/group, a PATH of the child's own), so every test runs on the
    uv_spawn path too."""
    if request.param == "uvloop_like+uv_spawn":
        import uvloop_like.transports.subprocess

        monkeypatch.setattr(uvloop_like.transports.subprocess, "POSIX_SPAWN", False)
    yield from loop_fixture(request.param, _exception_recorder)


@pytest.fixture(autouse=True)
def _no_stray_inheritable_fds():
    """Descriptors this process inherited without close-on-exec (a CI
    runner's, a shell's) would send every close_fds=True child down the Popen
    path (uvloop_like honours close_fds exactly): hide them for the test."""
    stray = _inheritable_fds()
    for fd in stray:
        os.set_inheritable(fd, False)
    try:
        yield
    finally:
        for fd in stray:
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass


def wait_zombie(pid, timeout=20):
    """Block until child ``pid`` has exited, without reaping it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (FileNotFoundError, ProcessLookupError):
            # Reaped already (stdlib's ThreadedChildWatcher does it in a
            # thread): before the open, or between the open and the read
            # (ESRCH).
            return
        time.sleep(0.001)
    raise AssertionError(f"child {pid} did not exit")


def assert_path(loop, transport, uv_spawn):
    """On uvloop_like, check which path started the child (uv_spawn or
    subprocess.Popen); stdlib has only one."""
    if is_uvloop_like(loop):
        assert transport._spawned is uv_spawn
        if uv_spawn and transport._proc is not None:  # (None: closed already)
            # uv_spawn or posix_spawn: the one this run asked for.
            import uvloop_like.transports.subprocess as spawning

            kind = type(transport._proc._handle).__name__
            assert kind == ("SpawnedChild" if spawning.POSIX_SPAWN else "ProcessHandle"), kind


def zombies_of_ours():
    """Children of this process that exited and were never reaped."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and fields[1] == me:
            found.append(int(name))
    return found


async def no_zombies_left(timeout=10.0):
    """Assert that no child of ours stays a zombie.  Its reaper may still be
    on the way (stdlib's watcher thread, a pidfd seen on the next
    iteration; slower on a loaded machine), so give it up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        await asyncio.sleep(0.05)
        left = zombies_of_ours()
        if not left or time.monotonic() > deadline:
            break
    assert left == []


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


@pytest.mark.once
def test_thousand_children(loop):
    """The issue's test: 1,000 short children, concurrently in batches;
    afterwards no zombie of ours and no descriptor more or less."""
    def fds():
        return set(os.listdir("/proc/self/fd"))

    async def one():
        proc = await asyncio.create_subprocess_exec(TRUE)
        assert_path(loop, proc._transport, True)
        return await proc.wait()

    async def main():
        await one()  # warm-up: libuv's signal pipes, opened once per loop / process
        before = fds()
        for _ in range(20):
            codes = await asyncio.gather(*[one() for _ in range(50)])
            assert codes == [0] * 50
        await no_zombies_left()
        assert fds() == before
    run(loop, main(), timeout=120)


def test_exec_failure_errors(loop):
    """As Popen: the errno of the failed exec, the program (or the cwd) as
    filename."""
    async def failure(*args, **kwargs):
        with pytest.raises(OSError) as info:
            await asyncio.create_subprocess_exec(*args, **kwargs)
        return type(info.value), info.value.errno, info.value.filename

    async def main():
        with tempfile.TemporaryDirectory() as d:
            missing = os.path.join(d, "missing")
            noexec = os.path.join(d, "noexec")
            with open(noexec, "w") as f:
                f.write("#!/bin/sh\n")
            assert await failure(missing) == (FileNotFoundError, errno.ENOENT, missing)
            assert await failure(noexec) == (PermissionError, errno.EACCES, noexec)
            assert await failure(d) == (PermissionError, errno.EACCES, d)
            assert await failure("uvl-no-such-program", env={"PATH": d}) == (
                FileNotFoundError, errno.ENOENT, "uvl-no-such-program")
            assert await failure(TRUE, cwd=missing) == (FileNotFoundError, errno.ENOENT, missing)
            assert await failure(TRUE, cwd=noexec) == (NotADirectoryError, errno.ENOTDIR, noexec)
            assert await failure(TRUE, pass_fds=(1000,)) == (OSError, errno.EBADF, None)
            with pytest.raises(ValueError):
                await asyncio.create_subprocess_exec(TRUE, "a\0b")
            with pytest.raises(TypeError):
                await asyncio.create_subprocess_exec(TRUE, 5)
            # Nothing left behind by the failures.
            await no_zombies_left()
    run(loop, main())


def test_pass_fds_high_and_many(loop):
    async def main():
        r, w = os.pipe()
        high = os.dup2(w, 60, inheritable=False)
        os.close(w)
        try:
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import os; os.write(60, b'hi'); print(sorted(int(f) for f in os.listdir('/proc/self/fd')))",
                stdout=subprocess.PIPE, pass_fds=[high])
            assert_path(loop, proc._transport, True)
            out, _ = await proc.communicate()
        finally:
            os.close(high)
        assert os.read(r, 10) == b"hi"
        os.close(r)
        # listdir's own descriptor is the 4th.
        assert eval(out)[:3] == [0, 1, 2] and 60 in eval(out) and len(eval(out)) == 5
    run(loop, main())


def test_start_new_session_and_env(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getsid(0) == os.getpid(), sorted(os.environ))",
            stdout=subprocess.PIPE, start_new_session=True, env={"UVL_A": "1", b"UVL_B": b"2"})
        assert_path(loop, proc._transport, True)
        out, _ = await proc.communicate()
        session, names = out.decode().split(" ", 1)
        assert session == "True"
        assert "'UVL_A'" in names and "'UVL_B'" in names and "'HOME'" not in names
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getsid(0) == os.getsid(os.getppid()))", stdout=subprocess.PIPE)
        assert (await proc.communicate())[0] == b"True\n"
    run(loop, main())


def test_each_stdio_kind(loop):
    code = ("import sys, os; data = sys.stdin.buffer.read(); "
            "os.write(1, b'out:' + data); os.write(2, b'err:' + data)")

    async def main():
        with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout:
            fin.write(b"F")
            fin.seek(0)
            # stdin: a file object; stdout: a descriptor; stderr: STDOUT
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", code, stdin=fin, stdout=fout.fileno(), stderr=subprocess.STDOUT)
            assert_path(loop, proc._transport, True)
            assert await proc.wait() == 0
            fout.seek(0)
            assert fout.read() == b"out:Ferr:F"
        # stdin: DEVNULL; stdout: PIPE; stderr: DEVNULL
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert_path(loop, proc._transport, True)
        assert await proc.communicate() == (b"out:", None)
        # stdin: PIPE; stdout: DEVNULL; stderr: PIPE
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert await proc.communicate(b"P") == (None, b"err:P")
        # None: inherited (the child's stdout is our stdout, a pipe here)
        r, w = os.pipe()
        saved = os.dup(1)
        os.dup2(w, 1)
        try:
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", code, stdin=subprocess.DEVNULL, stdout=None, stderr=subprocess.STDOUT)
            assert_path(loop, proc._transport, True)
            assert await proc.wait() == 0
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(w)
        assert os.read(r, 100) == b"out:err:"
        os.close(r)
    run(loop, main())


def test_nonblocking_stdio_descriptor_stays_nonblocking(loop):
    """libuv would make an inherited stdio descriptor blocking (the flag is
    shared with ours): such a child goes through Popen, which leaves it be."""
    async def main():
        r, w = os.pipe()
        os.set_blocking(w, False)
        proc = await asyncio.create_subprocess_exec(PY, "-c", "print('x')", stdout=w)
        assert_path(loop, proc._transport, False)
        assert await proc.wait() == 0
        assert os.get_blocking(w) is False
        assert os.read(r, 10) == b"x\n"
        os.close(r)
        os.close(w)
    run(loop, main())


def test_close_fds_and_inheritable_descriptors(loop, caplog):
    listing = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"

    async def child_fds(**kwargs):
        proc = await asyncio.create_subprocess_exec(PY, "-c", listing, stdout=subprocess.PIPE, **kwargs)
        out, _ = await proc.communicate()
        return proc._transport, set(eval(out))

    async def main():
        r, w = os.pipe()  # not inheritable: never reaches a child
        tr, fds = await child_fds()
        assert_path(loop, tr, True)
        assert r not in fds and w not in fds
        os.set_inheritable(w, True)
        try:
            # close_fds=True (the default) closes it in the child: Popen's job here.
            loop.set_debug(True)
            with caplog.at_level(logging.DEBUG, logger="asyncio"):
                tr, fds = await child_fds()
            loop.set_debug(False)
            assert_path(loop, tr, False)
            assert w not in fds
            if is_uvloop_like(loop):  # debug mode says why
                assert f"close_fds=True and descriptor {w} is inheritable" in caplog.text
            # close_fds=False lets it through, on either path.
            tr, fds = await child_fds(close_fds=False)
            assert_path(loop, tr, True)
            assert w in fds and r not in fds
            # pass_fds names it: uv_spawn again.
            tr, fds = await child_fds(pass_fds=[w])
            assert_path(loop, tr, True)
            assert w in fds and r not in fds
        finally:
            os.close(r)
            os.close(w)
    run(loop, main())


def test_signal_results_and_after_exit(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", "import time; time.sleep(60)",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert_path(loop, tr, True)
        tr.terminate()
        await proto.done
        assert tr.get_returncode() == -signal.SIGTERM
        assert proto.events == ["made", "exited", ("lost", None)]
        for action in (tr.kill, tr.terminate, lambda: tr.send_signal(signal.SIGINT)):
            with pytest.raises(ProcessLookupError):
                action()
        tr.close()
        # Exited, not yet seen by the transport: signals are a no-op, close() kills nothing.
        # The child exits when told, once subprocess_exec has returned.
        r, w = os.pipe()
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", f"import os; os.read({r}, 1)",
            stdin=None, stdout=None, stderr=None, pass_fds=[r])
        os.close(r)
        os.write(w, b"x")
        os.close(w)
        wait_zombie(tr.get_pid())  # blocks the loop: it cannot notice the exit
        assert tr.get_returncode() is None
        tr.kill()
        tr.send_signal(signal.SIGTERM)
        tr.close()
        await proto.done
        # stdlib's Popen.poll() (in kill) reaps it first and its watcher
        # then reports 255; libuv reaps it, so uvloop_like knows.
        assert tr.get_returncode() == 0 if is_uvloop_like(loop) else tr.get_returncode() in (0, 255)
        await no_zombies_left()
    run(loop, main())


def test_extra_info_subprocess_poll_wait(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", "import sys; sys.stdin.read(); sys.exit(3)", stdout=None, stderr=None)
        popen = tr.get_extra_info("subprocess")
        assert popen.pid == tr.get_pid()
        assert popen.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            popen.wait(0.01)
        tr.get_pipe_transport(0).close()
        while ("pipe_lost", 0, None) not in proto.events:
            await asyncio.sleep(0.001)  # the pipe closes in a callback
        if is_uvloop_like(loop):
            assert popen.wait() == 3 and popen.poll() == 3
            await proto.done
            assert tr.get_returncode() == 3
        else:
            # stdlib's Popen races its own child watcher for the exit status
            # (the loser sees 0 or 255): only check that it returns.
            popen.wait()
            await proto.done
        tr.close()
    run(loop, main())


def test_close_kills_and_reaps(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", "import sys, time; print('up', flush=True); time.sleep(60)",
            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert_path(loop, tr, True)
        while not proto.data[1]:
            await asyncio.sleep(0.01)
        tr.close()
        await proto.done
        assert tr.get_returncode() == -signal.SIGKILL
        assert [e for e in proto.events if e[0] == "pipe_lost"] == [("pipe_lost", 0, None), ("pipe_lost", 1, None)]
        await no_zombies_left()
    run(loop, main())


def test_unclosed_transport_warns(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), TRUE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        await proto.done
        return tr

    tr = run(loop, main())
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del tr
        full_gc()


def test_loops_in_several_threads(loop):
    """Each thread's loop gets its own children's exits (libuv's SIGCHLD
    handler is process-wide, its waitpid() per loop)."""
    if not is_uvloop_like(loop):
        make = asyncio.new_event_loop
    else:
        import uvloop_like

        make = uvloop_like.new_event_loop
    results = {}

    def target(index):
        async def main():
            procs = [await asyncio.create_subprocess_exec(
                PY, "-c", f"import sys; sys.exit({index * 10 + k})") for k in range(5)]
            return [await p.wait() for p in procs]

        lp = make()
        try:
            results[index] = run(lp, main())
        finally:
            lp.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: [i * 10 + k for k in range(5)] for i in range(3)}
    deadline = time.monotonic() + 10  # the loops are closed: only threads still reap
    while zombies_of_ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zombies_of_ours() == []


def test_popen_path_arguments(loop):
    """What uv_spawn cannot express goes through subprocess.Popen."""
    async def output(*args, program=(PY, "-c"), **kwargs):
        proc = await asyncio.create_subprocess_exec(*program, *args, stdout=subprocess.PIPE, **kwargs)
        assert_path(loop, proc._transport, False)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out.decode().strip()

    async def main():
        assert await output("import os; print(os.getsid(0) == os.getpid())", preexec_fn=os.setsid) == "True"
        assert await output("import os; print(oct(os.umask(0)))", umask=0o027) == "0o27"
        async def ignored(**kwargs):
            # Not a Python child: Python ignores SIGPIPE itself.
            status = await output("/proc/self/status", program=("/bin/cat",), **kwargs)
            return int([line for line in status.splitlines() if line.startswith("SigIgn")][0].split()[1], 16)

        assert await ignored(restore_signals=False) & (1 << (signal.SIGPIPE - 1))
        if os.geteuid() == 0:
            # As root libuv would also drop supplementary groups; Popen does not.
            assert await output("import os; print(os.getuid())", user=os.getuid()) == str(os.getuid())
            assert await output("import os; print(os.getgroups())", extra_groups=[]) == "[]"
        if sys.version_info >= (3, 11):
            assert await output("import os; print(os.getpgid(0) == os.getpid())", process_group=0) == "True"
        # A signal ignored here stays ignored in the child (as with Popen).
        old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        try:
            assert await ignored() & (1 << (signal.SIGUSR1 - 1))
        finally:
            signal.signal(signal.SIGUSR1, old)
    run(loop, main())


def test_shell_and_executable(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell("echo $0 $UVL_X", stdout=subprocess.PIPE,
                                                     env={"UVL_X": "y"})
        assert_path(loop, proc._transport, True)
        assert (await proc.communicate())[0] == b"/bin/sh y\n"
        proc = await asyncio.create_subprocess_exec(
            "argv0", "-c", "import sys; print(sys.argv[0])", executable=PY, stdout=subprocess.PIPE)
        assert_path(loop, proc._transport, True)
        assert (await proc.communicate())[0] == b"-c\n"
    run(loop, main())


def test_restore_signals_default(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("/bin/cat", "/proc/self/status", stdout=subprocess.PIPE)
        assert_path(loop, proc._transport, True)
        status = (await proc.communicate())[0].decode()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        pipe_bit = 1 << (signal.SIGPIPE - 1)
        assert not int(fields["SigIgn"], 16) & pipe_bit  # Python ignores SIGPIPE; the child must not
        assert int(fields["SigBlk"], 16) == 0
    run(loop, main())


def test_child_reopens_its_pipes(loop):
    """The pipes are pipes (as stdlib's), so a child can reopen them through
    /dev/stdin and /proc/self/fd/1 (a socketpair would refuse: ENXIO)."""
    # stdlib's own loop gave stdin a socketpair until 3.10 (CPython gh-90522).
    stdin = "/dev/stdin" if is_uvloop_like(loop) or sys.version_info >= (3, 10) else 0

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", f"data = open({stdin!r}, 'rb').read(); open('/proc/self/fd/1', 'wb').write(data[::-1])",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert_path(loop, proc._transport, True)
        assert await proc.communicate(b"abc") == (b"cba", None)
    run(loop, main())


def test_python_sigchld_handler_is_kept(loop):
    """A SIGCHLD handler of the application's keeps working: such children go
    through Popen (libuv's own SIGCHLD handler would replace it)."""
    seen = []
    old = signal.signal(signal.SIGCHLD, lambda *args: seen.append(args[0]))
    try:
        async def main():
            proc = await asyncio.create_subprocess_exec(TRUE)
            assert_path(loop, proc._transport, False)
            assert await proc.wait() == 0
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
        run(loop, main())
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert seen and seen[0] == signal.SIGCHLD


def test_loop_closed_before_the_exit_is_seen(loop):
    """A child whose exit the loop never saw (it closed first) is still
    reaped, and its transport's late close() signals nobody."""
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: Proto(loop), PY, "-c", "import time; time.sleep(60)",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return tr

    tr = run(loop, main())
    pid = tr.get_pid()
    tr.close()  # SIGKILL; the loop will not run again to see the exit
    loop.close()
    tr.kill()  # reaped or about to be: no error, no stray signal
    deadline = time.monotonic() + 20
    while pid in zombies_of_ours() and time.monotonic() < deadline:
        time.sleep(0.01)
    if is_uvloop_like(loop):
        assert pid not in zombies_of_ours()
    else:
        # stdlib's pidfd watcher (3.12+) stops with its loop: reap by hand.
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def test_script_without_shebang(loop):
    """An executable file with no ``#!`` line: Popen raises ENOEXEC, and so
    does uvloop_like's posix_spawn path.  Where posix_spawn is not usable
    (no pidfd), the uv_spawn path runs it through /bin/sh (glibc's execvp):
    a documented difference (docs/limits.md), pinned here."""
    async def main():
        import uvloop_like.transports.subprocess as spawning

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "script")
            with open(path, "w") as f:
                f.write("echo from-sh\n")
            os.chmod(path, 0o755)
            if is_uvloop_like(loop) and not spawning.POSIX_SPAWN:
                proc = await asyncio.create_subprocess_exec(path, stdout=subprocess.PIPE)
                assert_path(loop, proc._transport, True)
                assert await proc.communicate() == (b"from-sh\n", None)
            else:
                with pytest.raises(OSError) as info:
                    await asyncio.create_subprocess_exec(path, stdout=subprocess.PIPE)
                assert info.value.errno == errno.ENOEXEC and info.value.filename == path
    run(loop, main())
