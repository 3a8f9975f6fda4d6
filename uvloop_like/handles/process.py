"""uv_process_t: one child started with ``uv_spawn``.

libuv reaps the child itself (its SIGCHLD watcher calls ``waitpid`` for the
pids of this loop's process handles only), so nothing else may wait for it:
the exit arrives as one ``UVL_EV_EXIT`` completion (exit status, terminating
signal), dispatched to ``on_exit(returncode)`` after uv_run returns, and the
handle closes itself then.  Every stdio slot is a descriptor the child
inherits (``UV_INHERIT_FD``) or nothing (``UV_IGNORE``); the caller creates
and closes the descriptors (transports/subprocess.py).

``SpawnedChild`` starts the same kind of child with glibc's
``posix_spawn`` instead, where that is usable (glibc, Linux 5.3+): uv_spawn
``fork()``s and so copies the page tables of the whole Python process,
posix_spawn does not (``clone(CLONE_VM | CLONE_VFORK)``).  Its exit is seen
through a pidfd watched by a ``uv_poll_t``, and it reaps its own child.
transports/subprocess.py picks one of the two per child.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import threading

from .._ffi import CHAR_ARRAY, CHARP_ARRAY, INT_ARRAY, INT_P, LOOP_P, PROCESS_P, ffi, lib
from .base import UVHandle
from .errors import convert_error
from .poll import READABLE, PollHandle

DETACHED = lib.UV_PROCESS_DETACHED
SETUID = lib.UV_PROCESS_SETUID
SETGID = lib.UV_PROCESS_SETGID
UV_EINTR = -errno.EINTR

# Children can start with posix_spawn and be watched by pidfd here.
logger = logging.getLogger("asyncio")

_SPAWN = lib.uvl_posix_spawn_usable()
POSIX_SPAWN = bool(_SPAWN & lib.UVL_SPAWN_USABLE)
# ... with a cwd of its own: glibc 2.29+ (looked up at run time by uvl.c).
POSIX_SPAWN_CHDIR = bool(_SPAWN & lib.UVL_SPAWN_CHDIR)


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


def _peek(handle, block):
    """``handle``'s child's return code if it has exited, without reaping
    it (its owner will), else None; ``block``: wait for the exit."""
    if handle.returncode is not None or handle.pid is None:
        return handle.returncode
    out = ffi.new(INT_P)
    while True:
        status = lib.uvl_child_peek(handle.pid, 1 if block else 0, out)
        if status == 1:
            return out[0]
        if status == 0:
            return None
        if status != UV_EINTR:
            # Reaped meanwhile (by its owner, or by a waitpid(-1) elsewhere).
            return handle.returncode


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
        return _peek(self, block)

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


class SpawnedChild(PollHandle):
    """A child started with ``posix_spawn`` (see the module docstring), its
    exit watched through a pidfd; the same face as ProcessHandle: ``pid``,
    ``returncode``, ``spawn``, ``kill``, ``peek``, ``close`` and
    ``on_exit(returncode)`` once the child has exited and been reaped."""

    __slots__ = ("pid", "returncode", "_on_exit_cb")

    def __init__(self, loop, on_exit):
        # The poll handle is made once the pidfd exists (spawn).
        UVHandle.__init__(self, loop)
        self.fd = -1
        self.events = 0
        self.on_event = None
        self.pid = None
        self.returncode = None
        self._on_exit_cb = on_exit

    def spawn(self, file, search, args, env, cwd, setsid, fds):
        """Start the child: ``file`` (bytes) looked up in this process's PATH
        when ``search``; the other arguments as ProcessHandle.spawn's (``fds``
        a list of descriptors, -1: none).  Raises the OSError of a failed
        exec; the child then never ran."""
        argv, keep_args = _cstrings(args)
        if env is None:
            envp, keep_env = ffi.NULL, None
        else:
            envp, keep_env = _cstrings(env)
        out = ffi.new(INT_ARRAY, 2)
        status = lib.uvl_posix_spawn(file, 1 if search else 0, argv, envp,
                                     ffi.NULL if cwd is None else cwd, 1 if setsid else 0,
                                     fds, len(fds), out, out + 1)
        del keep_args, keep_env
        if status < 0:
            self._state = UVHandle.CLOSED
            raise convert_error(status)
        self.pid = pid = out[0]
        pidfd = out[1]
        try:
            if pidfd < 0:
                raise convert_error(pidfd)  # out of descriptors, say
            self.fd = pidfd
            status = lib.uvl_poll_init(ffi.cast(LOOP_P, self._loop._core.ptr), self._ptr, pidfd)
            if status < 0:
                os.close(pidfd)
                raise convert_error(status)
        except BaseException:
            # Without a watch nobody would reap it: undo the start.
            self._state = UVHandle.CLOSED
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        self._activated()
        self.start(READABLE)

    def kill(self, signum):
        """Send ``signum``; ProcessLookupError once the child is reaped
        (its pid may name another process by then)."""
        if self.returncode is not None:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
        os.kill(self.pid, signum)

    def peek(self, block=False):
        """The child's return code if it has exited (without reaping it),
        else None; ``block``: wait for the exit."""
        return _peek(self, block)

    def close(self):
        if self._state == UVHandle.ACTIVE:
            if self.returncode is None:
                _reap_in_thread(self)
            super().close()  # stops the poll: only then may the pidfd close
            os.close(self.fd)
        else:
            super().close()

    def _on_poll(self, status, events):
        # The pidfd is readable once the child has exited.
        if self._state != UVHandle.ACTIVE:
            return  # closed earlier in this batch of completions: a thread reaps it
        out = ffi.new(INT_P)
        reaped = lib.uvl_child_reap(self.pid, out)
        if reaped == 0:
            return  # not yet (cannot happen with a pidfd; keep watching)
        if reaped == 1:
            self.returncode = out[0]
        else:
            # Reaped elsewhere (a waitpid(-1) of someone else's): lost.
            self.returncode = 255
            logger.warning("child process pid %d exit status already read: "
                           " will report returncode 255", self.pid)
        callback, self._on_exit_cb = self._on_exit_cb, None
        self.close()
        if callback is not None:
            callback(self.returncode)
