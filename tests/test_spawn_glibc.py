"""The posix_spawn path is chosen at run time, not at build time.

A wheel built on a new glibc runs on older ones (manylinux_2_28): uvl.c looks
up posix_spawn_file_actions_addchdir_np (glibc 2.29) with dlsym instead of
linking it, and a child that needs its own cwd where it is missing starts
through uv_spawn instead.
"""

import asyncio
import os
import subprocess
import sys

import pytest
from loop_testutil import is_uvloop_like, run
from test_subprocess import _no_stray_inheritable_fds  # noqa: F401 (autouse: inherited fds would mean Popen)


def _glibc():
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (ValueError, OSError, AttributeError):
        return None
    return tuple(int(part) for part in version.split(".")[:2]) if name == "glibc" else None


def test_chdir_support_is_found_at_run_time():
    from uvloop_like.handles import process

    glibc = _glibc()
    if not process.POSIX_SPAWN:
        pytest.skip("posix_spawn + pidfd are not usable here (no pidfd_open)")
    assert glibc is not None
    assert process.POSIX_SPAWN_CHDIR == (glibc >= (2, 29))


@pytest.mark.parametrize("cwd_given", [True, False], ids=["cwd", "no-cwd"])
def test_child_cwd_without_addchdir_takes_uv_spawn(loop, monkeypatch, tmp_path, cwd_given):
    import uvloop_like.transports.subprocess as spawning

    # As on a glibc older than 2.29.
    monkeypatch.setattr(spawning, "POSIX_SPAWN_CHDIR", False)

    async def main():
        kwargs = {"cwd": str(tmp_path)} if cwd_given else {}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os; print(os.getcwd())",
            stdout=subprocess.PIPE, **kwargs)
        kind = None
        if is_uvloop_like(loop):
            kind = type(proc._transport._proc._handle).__name__
        out, _ = await proc.communicate()
        return proc.returncode, out.decode().strip(), kind

    code, cwd, kind = run(loop, main(), timeout=30)
    assert code == 0
    assert cwd == (str(tmp_path) if cwd_given else os.getcwd())
    if is_uvloop_like(loop):
        if cwd_given or not spawning.POSIX_SPAWN:
            assert kind == "ProcessHandle"
        else:
            assert kind == "SpawnedChild"
