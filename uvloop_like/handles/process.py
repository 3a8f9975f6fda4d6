"""uv_process_t: one child started with ``uv_spawn``.

libuv reaps the child itself (its SIGCHLD watcher calls ``waitpid`` for the
pids of this loop's process handles only), so nothing else may wait for it:
the exit arrives as one ``UVL_EV_EXIT`` completion (exit status, terminating
signal), dispatched to ``on_exit(returncode)`` after uv_run returns, and the
handle closes itself then.  Every stdio slot is a descriptor the child
inherits (``UV_INHERIT_FD``) or nothing (``UV_IGNORE``); the caller creates
and closes the descriptors (transports/subprocess.py).
"""
from __future__ import annotations

import errno
import os
import threading

from .._ffi import CHAR_ARRAY, CHARP_ARRAY, INT_ARRAY, INT_P, PROCESS_P, ffi, lib
from ..errors import convert_error
from .base import UVHandle

DETACHED = lib.UV_PROCESS_DETACHED
SETUID = lib.UV_PROCESS_SETUID
SETGID = lib.UV_PROCESS_SETGID
UV_EINTR = -errno.EINTR


def find_inheritable(skip):
    """The lowest descriptor >= 3 a child would inherit although it is not
    in ``skip``: None when there is none, -1 when /proc cannot tell."""
    fd = lib.uvl_find_inheritable(ffi.new(INT_ARRAY, list(skip)) if skip else ffi.NULL, len(skip))
    if fd == -1:
        return None
    return -1 if fd == -2 else fd


def _cstrings(items):
    """A NULL-terminated ``char *[]`` and the ``char[]`` buffers it points to
    (which must stay referenced while libuv reads them)."""
    bufs = [ffi.new(CHAR_ARRAY, item) for item in items]
    return ffi.new(CHARP_ARRAY, bufs + [ffi.NULL]), bufs


def _reap_in_thread(handle):
    # The handle closed while its child still ran (the loop closed, say):
    # libuv no longer waits for it, so someone else must, or it stays a
    # zombie.  The return code it leaves tells kill() that the pid is gone.
    pid = handle.pid

    def wait():
        try:
            _, status = os.waitpid(pid, 0)
        except OSError:
            handle.returncode = 255  # reaped elsewhere: the status is lost
        else:
            handle.returncode = os.waitstatus_to_exitcode(status)
    threading.Thread(target=wait, name=f"uvloop_like-waitpid-{pid}", daemon=True).start()


class ProcessHandle(UVHandle):
    """A child process; ``on_exit(returncode)`` runs once when it exits
    (returncode: the exit status, or minus the signal that killed it)."""

    __slots__ = ("pid", "returncode", "_on_exit_cb")

    _ctype = PROCESS_P

    def __init__(self, loop, on_exit):
        super().__init__(loop)
        self.pid = None
        self.returncode = None
        self._on_exit_cb = on_exit

    def spawn(self, file, args, env, cwd, flags, uid, gid, fds):
        """Start the child: ``file`` (bytes) is looked up in PATH as execvp
        does, ``args``/``env`` are lists of bytes (``env`` None: this
        process's environment), ``fds[i]`` the descriptor the child gets as
        descriptor i (-1: none).  Raises the OSError of a failed exec."""
        argv, keep_args = _cstrings(args)
        if env is None:
            envp, keep_env = ffi.NULL, None
        else:
            envp, keep_env = _cstrings(env)
        linked = ffi.new(INT_P)
        status = lib.uvl_spawn(self._loop._core.uv, self._ptr, file, argv, envp,
                               ffi.NULL if cwd is None else cwd, flags, uid, gid,
                               fds, len(fds), linked)
        del keep_args, keep_env  # uv_spawn has returned: libuv is done with them
        if status < 0:
            if linked[0]:
                # libuv keeps a handle whose exec failed on the loop until
                # it is closed.
                self._activated()
                self.close()
            else:
                self._state = UVHandle.CLOSED
            raise convert_error(status)
        self.pid = self._ptr.pid
        self._activated()

    def kill(self, signum):
        """Send ``signum``; ProcessLookupError once the child is reaped
        (its pid may name another process by then)."""
        if self.returncode is not None:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
        status = lib.uv_process_kill(self._ptr, signum)
        if status < 0:
            raise convert_error(status)

    def peek(self, block=False):
        """The child's return code if it has exited (without reaping it:
        libuv will), else None; ``block``: wait for the exit."""
        if self.returncode is not None or self.pid is None:
            return self.returncode
        out = ffi.new(INT_P)
        while True:
            status = lib.uvl_child_peek(self.pid, 1 if block else 0, out)
            if status == 1:
                return out[0]
            if status == 0:
                return None
            if status != UV_EINTR:
                # Reaped meanwhile (by libuv, or by a waitpid(-1) elsewhere).
                return self.returncode

    def close(self):
        if self._state == UVHandle.ACTIVE and self.pid is not None and self.returncode is None:
            _reap_in_thread(self)
        super().close()

    def _on_exit(self, exit_status, term_signal):
        self.returncode = -term_signal if term_signal else exit_status
        callback, self._on_exit_cb = self._on_exit_cb, None
        self.close()
        if callback is not None:
            callback(self.returncode)
