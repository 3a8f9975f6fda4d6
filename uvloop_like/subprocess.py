"""subprocess_exec / subprocess_shell and child reaping for the Loop.

Children are started by libuv's uv_spawn, which also reaps them
(transports/subprocess.py, handles/process.py), or, for the arguments
uv_spawn cannot express, by subprocess.Popen; those are reaped here: on Linux 5.3+ a pidfd (os.pidfd_open) becomes readable when the
child exits and is watched on the loop's own selector, so no thread, no
SIGCHLD handler and no main-thread requirement; elsewhere one thread per
child blocks in waitpid() and reports through call_soon_threadsafe (stdlib's
ThreadedChildWatcher).  Either way the exit reaches the transport two loop
iterations later, as with stdlib's watchers, so pipe data that was already
readable is usually delivered first.
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import warnings

from .transports.subprocess import SubprocessTransport

logger = logging.getLogger("asyncio")

_HAS_PIDFD = hasattr(os, "pidfd_open")


def _format_pipe(fd):
    if fd == subprocess.PIPE:
        return "<pipe>"
    if fd == subprocess.STDOUT:
        return "<stdout>"
    return repr(fd)


def _exit_code(status):
    return os.waitstatus_to_exitcode(status)


class SubprocessMixin:
    """Loop methods for child processes."""

    def _check_popen_args(self, universal_newlines, bufsize, text, encoding, errors):
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")

    def _log_subprocess(self, msg, stdin, stdout, stderr):
        info = [msg]
        if stdin is not None:
            info.append(f"stdin={_format_pipe(stdin)}")
        if stdout is not None and stderr == subprocess.STDOUT:
            info.append(f"stdout=stderr={_format_pipe(stdout)}")
        else:
            if stdout is not None:
                info.append(f"stdout={_format_pipe(stdout)}")
            if stderr is not None:
                info.append(f"stderr={_format_pipe(stderr)}")
        logger.debug(" ".join(info))

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0,
                               encoding=None, errors=None, text=None, **kwargs):
        """Run ``cmd`` through the shell; return (transport, protocol)."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        self._check_popen_args(universal_newlines, bufsize, text, encoding, errors)
        return await self._start_subprocess(protocol_factory, cmd, True, "run shell command %r" % (cmd,),
                                            stdin, stdout, stderr, bufsize, kwargs)

    async def subprocess_exec(self, protocol_factory, program, *args, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=False, shell=False, bufsize=0,
                              encoding=None, errors=None, text=None, **kwargs):
        """Run ``program`` with ``args``; return (transport, protocol)."""
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        self._check_popen_args(universal_newlines, bufsize, text, encoding, errors)
        return await self._start_subprocess(protocol_factory, (program,) + args, False,
                                            f"execute program {program!r}",
                                            stdin, stdout, stderr, bufsize, kwargs)

    async def _start_subprocess(self, protocol_factory, args, shell, what, stdin, stdout, stderr,
                                bufsize, kwargs):
        """subprocess_shell/exec after their argument checks: the protocol,
        the transport, and in debug mode stdlib's log lines (``what`` names
        the command, never its arguments: they may be secrets)."""
        protocol = protocol_factory()
        debug_log = None
        if self._debug:
            debug_log = what
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, args, shell, stdin, stdout, stderr, bufsize, **kwargs)
        if debug_log is not None:
            logger.info("%s: %r", debug_log, transport)
        return transport, protocol

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, **kwargs):
        # Before the child starts: stdlib notices the closed loop only after
        # spawning it, and leaves it and its pipes behind.
        self._check_closed()
        waiter = self.create_future()
        transp = SubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                                     waiter=waiter, extra=extra, **kwargs)
        if not transp._spawned:
            self._watch_child(transp.get_pid(), transp)  # libuv reaps its own
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    # --- reaping -------------------------------------------------------------

    def _watch_child(self, pid, transp):
        if _HAS_PIDFD:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pass  # kernel too old, or seccomp: use a thread
            else:
                self._add_reader(pidfd, self._on_child_pidfd, pidfd, pid, transp)
                return
        thread = threading.Thread(target=self._wait_child_thread, args=(pid, transp),
                                  name=f"uvloop_like-waitpid-{pid}", daemon=True)
        thread.start()

    def _reap(self, pid, transp):
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            # Reaped elsewhere (Popen.poll() in transport.close(), say).
            returncode = transp._proc.returncode if transp._proc is not None else None
            if returncode is None:
                returncode = 255
                logger.warning("child process pid %d exit status already read: "
                               " will report returncode 255", pid)
            return returncode
        return _exit_code(status)

    def _on_child_pidfd(self, pidfd, pid, transp):
        self._remove_reader(pidfd)
        os.close(pidfd)
        returncode = self._reap(pid, transp)
        # Two hops, as stdlib's watchers: pipe data already readable comes first.
        self.call_soon(self.call_soon, transp._process_exited, returncode)

    def _wait_child_thread(self, pid, transp):
        returncode = self._reap(pid, transp)
        try:
            self.call_soon_threadsafe(self.call_soon, transp._process_exited, returncode)
        except RuntimeError:
            # The loop was closed meanwhile: nobody is waiting any more.
            warnings.warn(f"Loop {self!r} that handles pid {pid} is closed", RuntimeWarning)
