"""SubprocessTransport: a child process started with subprocess.Popen, its
pipes on libuv pipe transports (transports/pipe.py), its exit seen through a
pidfd on the loop (or a waiting thread where pidfds are missing).

The protocol's state machine is stdlib's, because the transport *is*
stdlib's: asyncio.base_subprocess.BaseSubprocessTransport orders
connection_made, pipe_data_received*, pipe_connection_lost per fd,
process_exited and connection_lost (after every pipe has closed) exactly as
with the stdlib loop; only process start (``_start``) and child reaping are
ours.  uv_spawn is not used yet (see docs: differences), so every Popen
argument (cwd, env, pass_fds, close_fds, start_new_session, restore_signals,
user, group, extra_groups, umask, process_group, preexec_fn) works as with
stdlib.
"""
from __future__ import annotations

import subprocess
from asyncio import base_subprocess as _base_subprocess


class SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    """asyncio.SubprocessTransport over a Popen child (see module doc)."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)
