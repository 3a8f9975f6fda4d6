"""SubprocessTransport: a child process and its pipes.

The protocol's state machine is stdlib's, because the transport builds on
stdlib's: asyncio.base_subprocess.BaseSubprocessTransport orders
connection_made, pipe_data_received*, pipe_connection_lost per fd,
process_exited and connection_lost (after every pipe has closed) exactly as
with the stdlib loop, and connects the pipes with the loop's own pipe
transports (transports/pipe.py).  Only starting the child is ours, on one of
two paths:

* ``uv_spawn`` (handles/process.py) whenever libuv does exactly what
  subprocess.Popen would do with the arguments given: stdin/stdout/stderr
  each PIPE, DEVNULL, STDOUT (stderr), a descriptor, a file object or None;
  cwd, env, executable, start_new_session, pass_fds, close_fds, and user /
  group when not running as root.  The pipes are os.pipe()s, as stdlib's;
  the child inherits its ends (``UV_INHERIT_FD``), the parent's ends become
  the pipe transports.  libuv reaps the child and reports its exit.
* ``subprocess.Popen`` for everything else (preexec_fn, extra_groups, umask,
  process_group, pipesize, restore_signals=False, a descriptor the child
  would inherit although close_fds=True asks otherwise, ...; see
  ``_spawn_plan``), reaped by subprocess.py.

So every Popen argument works as with stdlib; docs/limits.md lists which
path takes which argument.
"""
from __future__ import annotations

import errno
import inspect
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from asyncio import base_subprocess as _base_subprocess

from ..handles.process import (
    DETACHED,
    POSIX_SPAWN,
    POSIX_SPAWN_CHDIR,
    SETGID,
    SETUID,
    ProcessHandle,
    SpawnedChild,
    find_inheritable,
)

# A patched subprocess.Popen (tests, instrumentation) is honoured: such
# calls take the Popen path.
_POPEN = subprocess.Popen
_POPEN_ARGS = frozenset(inspect.signature(subprocess.Popen.__init__).parameters)

# Popen arguments uv_spawn expresses (handled by _spawn_plan) ...
_SPAWN_ARGS = frozenset(("executable", "close_fds", "cwd", "env", "restore_signals",
                         "start_new_session", "pass_fds", "user", "group"))
# ... and the others, which uv_spawn can take only at their default value.
_DEFAULTS = {"preexec_fn": None, "startupinfo": None, "creationflags": 0, "extra_groups": None,
             "umask": -1, "pipesize": -1, "process_group": None}

# libuv's child resets the handlers of signals 1-31 to SIG_DFL and unblocks
# every signal; Popen(restore_signals=True) resets only SIGPIPE and SIGXFSZ
# (exec resets caught ones) and keeps the signal mask.  The two agree unless
# another signal is ignored here or a signal is blocked in this thread.
_IGNORABLE = tuple(sorted(
    s for s in signal.valid_signals()
    if 0 < s < 32 and s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE,
                                getattr(signal, "SIGXFSZ", signal.SIGPIPE))))
_pthread_sigmask = getattr(signal, "pthread_sigmask", None)

# exec errors that are not about the program (fork failed, bad pass_fds):
# Popen raises those without a filename.
_NO_FILENAME = frozenset((errno.EAGAIN, errno.ENOMEM, errno.EBADF, errno.EPIPE))

_audit = getattr(sys, "audit", None)

logger = logging.getLogger("asyncio")


class _Fallback(Exception):
    """The arguments need subprocess.Popen."""


def _cbytes(value):
    data = os.fsencode(value)
    if b"\0" in data:
        raise _Fallback("a NUL character")  # Popen raises its ValueError
    return data


def _inherited_fd(fd):
    """A descriptor the child gets as 0/1/2: libuv makes it blocking (the
    flag is shared with ours), Popen does not, so only blocking ones."""
    if fd < 0 or not os.get_blocking(fd):
        raise _Fallback(f"stdio descriptor {fd} is non-blocking")
    return fd


def _stdio_fd(value, slot):
    """The descriptor for ``value`` (None, DEVNULL, an int, a file object)
    in stdio ``slot``; PIPE and STDOUT are the caller's."""
    if value is None:
        # Popen leaves the slot alone: a non-inheritable descriptor closes at exec.
        if not os.get_inheritable(slot):
            raise _Fallback(f"descriptor {slot} is close-on-exec")
        return _inherited_fd(slot)
    if isinstance(value, int):
        return _inherited_fd(value)
    return _inherited_fd(value.fileno())


def _uid(value, lookup):
    if isinstance(value, str):
        value = lookup(value)
    elif not isinstance(value, int):
        raise _Fallback("user/group type")
    if not 0 <= value < 2 ** 32 - 1:
        raise _Fallback("user/group out of range")
    return value


try:
    # The C module's getsignal: the same table, without building an enum
    # per signal.
    from _signal import SIG_DFL as _SIG_DFL
    from _signal import SIG_IGN as _SIG_IGN
    from _signal import getsignal as _getsignal
except ImportError:  # pragma: no cover
    _getsignal, _SIG_DFL, _SIG_IGN = signal.getsignal, signal.SIG_DFL, signal.SIG_IGN


def _signals_match():
    getsignal = _getsignal
    ignore = _SIG_IGN
    for sig in _IGNORABLE:
        if getsignal(sig) == ignore:
            return False
    if getsignal(signal.SIGCHLD) not in (_SIG_DFL, None):
        # A Python SIGCHLD handler: libuv's own (installed with the first
        # child) would replace it.
        return False
    if _pthread_sigmask is not None and _pthread_sigmask(signal.SIG_BLOCK, ()):
        return False
    return True


class _Plan:
    """uv_spawn's arguments for one child (see _spawn_plan)."""

    __slots__ = ("args", "orig_executable", "file", "argv", "env", "cwd", "cwd_orig", "flags",
                 "uid", "gid", "stdio", "pass_fds", "posix_spawn")


def _spawn_plan(args, shell, stdin, stdout, stderr, kwargs):
    """A _Plan when uv_spawn does what Popen would with these arguments,
    else why not (a str).  Anything unusual goes to Popen, which also raises
    stdlib's errors for bad arguments."""
    if subprocess.Popen is not _POPEN:
        return "subprocess.Popen is patched"
    for key, value in kwargs.items():
        if key not in _POPEN_ARGS:
            return f"unknown argument {key}"  # Popen raises the TypeError
        if key not in _SPAWN_ARGS and not (key in _DEFAULTS and value == _DEFAULTS[key]
                                           and type(value) is type(_DEFAULTS[key])):
            return key
    if not kwargs.get("restore_signals", True):
        return "restore_signals=False"
    if not _signals_match():
        return "an ignored or blocked signal, or a Python SIGCHLD handler"
    try:
        return _make_plan(args, shell, stdin, stdout, stderr, kwargs)
    except (SystemExit, KeyboardInterrupt):
        raise
    except _Fallback as exc:
        return str(exc)
    except BaseException:
        return "bad arguments"  # Popen raises stdlib's error


def _make_plan(args, shell, stdin, stdout, stderr, kwargs):
    plan = _Plan()
    if isinstance(args, (str, bytes)):
        args = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise _Fallback("path-like args with shell")
        args = [args]
    else:
        args = list(args)
    executable = kwargs.get("executable")
    if shell:
        args = ["/bin/sh", "-c"] + args
        if executable:
            args[0] = executable
    if executable is None:
        executable = args[0]
    plan.args = args
    plan.orig_executable = executable
    plan.file = _cbytes(executable)
    plan.argv = [_cbytes(a) for a in args]

    env = kwargs.get("env")
    # posix_spawnp looks the program up in this process's PATH; Popen (and
    # uv_spawn's execvp) in the child's: they differ only if env changes it.
    same_path = True
    if env is not None:
        env_list = []
        path = None
        for key, value in env.items():
            key = os.fsencode(key)
            if b"=" in key:
                raise _Fallback("'=' in an environment variable name")
            value = os.fsencode(value)
            if key == b"PATH":
                path = value
            env_list.append(_cbytes(key + b"=" + value))
        env = env_list
        same_path = path == os.environb.get(b"PATH") if os.supports_bytes_environ else False
    plan.env = env
    cwd = kwargs.get("cwd")
    plan.cwd_orig = cwd
    plan.cwd = None if cwd is None else _cbytes(cwd)

    flags = 0
    if kwargs.get("start_new_session"):
        flags |= DETACHED
    plan.uid = plan.gid = 0
    user = kwargs.get("user")
    group = kwargs.get("group")
    if user is not None or group is not None:
        # libuv's child also calls setgroups(0, NULL), which only root can,
        # and Popen does not: as root, only Popen gives stdlib's result.
        if os.geteuid() == 0:
            raise _Fallback("user/group as root")
        if user is not None:
            import pwd

            plan.uid = _uid(user, lambda name: pwd.getpwnam(name).pw_uid)
            flags |= SETUID
        if group is not None:
            import grp

            plan.gid = _uid(group, lambda name: grp.getgrnam(name).gr_gid)
            flags |= SETGID
    plan.flags = flags
    # posix_spawn (no fork: see handles/process.py) unless the child must
    # change its user or group, which only uv_spawn's child does, or its
    # directory on a glibc older than 2.29.
    plan.posix_spawn = (POSIX_SPAWN and not flags & (SETUID | SETGID)
                        and (plan.cwd is None or POSIX_SPAWN_CHDIR)
                        and (same_path or b"/" in plan.file))

    pass_fds = kwargs.get("pass_fds", ())
    close_fds = kwargs.get("close_fds", True)
    if pass_fds:
        if not close_fds:
            raise _Fallback("pass_fds with close_fds=False")  # Popen warns, then closes them anyway
        pass_fds = sorted({int(fd) for fd in pass_fds})
        if pass_fds[0] < 0:
            raise _Fallback("a negative pass_fds")
    else:
        pass_fds = []
    if close_fds:
        stray = find_inheritable(pass_fds)
        if stray is not None:
            # Popen closes every descriptor but the stdio and pass_fds; libuv
            # closes only the non-inheritable ones (all Python creates).
            raise _Fallback(f"close_fds=True and descriptor {stray} is inheritable"
                            if stray >= 0 else "close_fds=True and /proc/self/fd unreadable")
    plan.pass_fds = pass_fds

    if stdin == subprocess.STDOUT or stdout == subprocess.STDOUT:
        raise _Fallback("STDOUT for stdin or stdout")
    stdio = [stdin, stdout, stderr]
    for slot, value in enumerate(stdio):
        if value in (subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT):
            continue
        stdio[slot] = _stdio_fd(value, slot)
    if stderr == subprocess.STDOUT and stdout is None:
        stdio[2] = _inherited_fd(sys.__stdout__.fileno())  # as Popen
    plan.stdio = stdio
    return plan


def _dir_unusable(path):
    try:
        st = os.stat(path)
    except OSError:
        return True
    return not stat.S_ISDIR(st.st_mode) or not os.access(path, os.X_OK)


def _spawn_error(exc, plan):
    """Popen's exception for a failed exec: with the program (or cwd) as
    filename."""
    code = getattr(exc, "errno", None)
    if not isinstance(exc, OSError) or code is None or code in _NO_FILENAME:
        return exc
    if plan.flags & (SETUID | SETGID) and code == errno.EPERM:
        return exc
    if plan.cwd_orig is not None and _dir_unusable(plan.cwd):
        filename = plan.cwd_orig
    else:
        filename = plan.orig_executable
    return OSError(code, os.strerror(code), filename)


class SpawnedProcess:
    """What ``get_extra_info('subprocess')`` is for a child started with
    uv_spawn: the parts of subprocess.Popen that apply (no blocking wait)."""

    def __init__(self, args, handle, stdin, stdout, stderr):
        self.args = args
        self.pid = handle.pid
        self.returncode = None
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._handle = handle

    def __repr__(self):
        return f"<{self.__class__.__name__}: returncode: {self.returncode} args: {self.args!r}>"

    def poll(self):
        """The return code once the child has exited, else None (also
        before the loop has seen the exit)."""
        if self.returncode is None:
            self.returncode = self._handle.peek()
        return self.returncode

    def wait(self, timeout=None):
        """Block until the child exits (as Popen.wait; the loop still gets
        the exit)."""
        if self.returncode is None:
            if timeout is None:
                self.returncode = self._handle.peek(block=True)
            else:
                deadline = time.monotonic() + timeout
                delay = 0.0005
                while self.poll() is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise subprocess.TimeoutExpired(self.args, timeout)
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 0.05)
        return self.returncode

    def send_signal(self, sig):
        """Send ``sig`` unless the child has exited (then: nothing, as Popen)."""
        if self.poll() is not None:
            return  # reaped: the pid may belong to another process by now
        try:
            self._handle.kill(sig)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    """asyncio.SubprocessTransport over a uv_spawn or Popen child (see module doc)."""

    _spawned = False  # True: started with uv_spawn, libuv reaps it

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        plan = _spawn_plan(args, shell, stdin, stdout, stderr, kwargs)
        if isinstance(plan, str):
            if self._loop.get_debug():
                logger.debug("subprocess.Popen, not uv_spawn, starts %r: %s", args, plan)
            self._proc = subprocess.Popen(
                args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                universal_newlines=False, bufsize=bufsize, **kwargs)
            return
        if _audit is not None:
            _audit("subprocess.Popen", plan.orig_executable, plan.args, plan.cwd_orig,
                   kwargs.get("env"))
        self._proc = self._spawn(plan)
        self._spawned = True

    def _spawn(self, plan):
        loop = self._loop
        child_ends = []             # closed here once uv_spawn has returned
        parent_ends = [None] * 3    # our ends of the PIPEs
        fds = list(plan.stdio)
        try:
            devnull = None
            for slot in range(3):
                value = fds[slot]
                if value == subprocess.PIPE:
                    r, w = os.pipe()
                    if slot == 0:
                        parent_ends[0] = w
                        child_ends.append(r)
                        fds[0] = r
                    else:
                        parent_ends[slot] = r
                        child_ends.append(w)
                        fds[slot] = w
                elif value == subprocess.DEVNULL:
                    if devnull is None:
                        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                        child_ends.append(devnull)
                    fds[slot] = devnull
                elif value == subprocess.STDOUT:
                    fds[2] = fds[1]
            if plan.pass_fds:
                top = plan.pass_fds[-1]
                if top >= 3:
                    fds.extend([-1] * (top - 2))
                    for fd in plan.pass_fds:
                        if fd >= 3:
                            fds[fd] = fd
            try:
                if plan.posix_spawn:
                    handle = SpawnedChild(loop, self._on_child_exit)
                    handle.spawn(plan.file, b"/" not in plan.file, plan.argv, plan.env,
                                 plan.cwd, plan.flags & DETACHED, fds)
                else:
                    handle = ProcessHandle(loop, self._on_child_exit)
                    handle.spawn(plan.file, plan.argv, plan.env, plan.cwd, plan.flags,
                                 plan.uid, plan.gid, fds)
            except OSError as exc:
                raise _spawn_error(exc, plan) from None
        except BaseException:
            for fd in parent_ends:
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        stdin, stdout, stderr = (
            None if fd is None else open(fd, "wb" if slot == 0 else "rb", buffering=0)
            for slot, fd in enumerate(parent_ends))
        return SpawnedProcess(plan.args, handle, stdin, stdout, stderr)

    def _on_child_exit(self, returncode):
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.returncode = returncode
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # Two hops, as the Popen path: pipe data already read comes first.
            loop.call_soon(loop.call_soon, self._process_exited, returncode)

    # Signals go through the child's handle, which knows whether libuv has
    # reaped the pid already (then it may name another process).
    def send_signal(self, signal):
        if not self._spawned:
            return super().send_signal(signal)
        self._check_proc()
        self._proc.send_signal(signal)

    def terminate(self):
        if not self._spawned:
            return super().terminate()
        self._check_proc()
        self._proc.terminate()

    def kill(self):
        if not self._spawned:
            return super().kill()
        self._check_proc()
        self._proc.kill()
