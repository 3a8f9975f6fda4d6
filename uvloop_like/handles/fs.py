"""File work on libuv's thread pool: ``uv_fs_t`` stat/unlink requests and
the ``uvl_sendfile_t`` work item (uvl.c's "fs" section).

Nothing here does file I/O on the loop thread (DESIGN.md rule 11).  Each
request object owns its C struct and stays in ``loop._uv_requests`` from the
moment libuv has it until its completion (a ``UVL_EV_FS`` event, delivered
to ``_on_complete``) has run, so the struct outlives libuv's use of it, and
``loop.close()`` cancels and drains it like a DNS request.
"""
from __future__ import annotations

import os

from .._ffi import FS_P, REQ_P, SENDFILE_P, UINT64_P, ffi, lib
from .._futures import settler
from .dns import _Request as _PoolRequest
from .errors import convert_error

SF_DONE = lib.UVL_SF_DONE          # the requested count is sent
SF_EOF = lib.UVL_SF_EOF            # end of file (or an empty file without a count)
SF_AGAIN = lib.UVL_SF_AGAIN        # the socket is full: wait until writable, step again
SF_ERROR = lib.UVL_SF_ERROR        # sendfile(2) failed: ``error`` is its errno
SF_NOTREG = lib.UVL_SF_NOTREG      # fstat(2) of the file failed: ``error`` is its errno
SF_STOPPED = lib.UVL_SF_STOPPED    # stop() was called while it ran
ECANCELED = lib.UV_ECANCELED       # the step was cancelled before a pool thread took it


class FsRequest(_PoolRequest):
    """One ``uv_fs_t`` request (the thread-pool request lifecycle of
    handles/dns.py); ``callback(result)`` gets the result or the exception
    (the OSError subclass ``os.*`` raises for that errno), once."""

    __slots__ = ("_path",)

    _ctype = FS_P

    def __init__(self, loop, path, callback):
        super().__init__(loop, callback)
        self._path = os.fsencode(path)

    def _start(self, status):
        if status < 0:
            lib.uv_fs_req_cleanup(self._ptr)
        self._started(status)

    def _result(self):
        return None

    def _release(self):
        lib.uv_fs_req_cleanup(self._ptr)


class StatRequest(FsRequest):
    """``os.stat`` (``follow``) or ``os.lstat`` of ``path``; the result is
    ``(st_mode, st_ino, st_dev)``."""

    __slots__ = ()

    def __init__(self, loop, path, callback, follow=True):
        super().__init__(loop, path, callback)
        self._start(lib.uvl_fs_stat(loop._core.uv, self._ptr, self._path, 1 if follow else 0))

    def _result(self):
        mode = ffi.new(UINT64_P)
        ino = ffi.new(UINT64_P)
        dev = ffi.new(UINT64_P)
        lib.uvl_fs_statinfo(self._ptr, mode, ino, dev)
        return mode[0], ino[0], dev[0]


class UnlinkRequest(FsRequest):
    """``os.unlink(path)``; the result is None."""

    __slots__ = ()

    def __init__(self, loop, path, callback):
        super().__init__(loop, path, callback)
        self._start(lib.uvl_fs_unlink(loop._core.uv, self._ptr, self._path))


def unlink_if_same(path, ino):
    """Unlink ``path`` only if its inode is still ``ino``: True (unlinked)
    or False (another file is there now); raises the OSError.  At once, in
    the native layer (uvl.c's uvl_unlink_if_same): 3.13's cleanup_socket,
    which stdlib runs inside Server.close()."""
    encoded = os.fsencode(path)
    result = lib.uvl_unlink_if_same(encoded, ino)
    if result < 0:
        raise OSError(-result, os.strerror(-result), os.fsdecode(encoded))
    return result == 0


class SendfileRequest:
    """sendfile(2) from the file ``in_fd`` to a dup of the socket ``out_fd``,
    in steps on the thread pool (see uvl.c).  ``callback(status)`` runs after
    each step: read ``outcome``, ``sent``, ``error``.  One step at a time.

    It is in ``loop._uv_requests`` from the dup to ``release()``, which
    closes the dup once no step is in flight: loop.close() then releases an
    idle one at once, and stops and drains a busy one (its owner releases it
    when that completion finds the loop closed)."""

    __slots__ = ("_loop", "_ptr", "_data", "_callback", "busy", "_released")

    def __init__(self, loop, out_fd, in_fd, offset, count, callback):
        self._loop = loop
        self._ptr = ffi.new(SENDFILE_P)
        self._data = ffi.new_handle(self)
        self._ptr.work.data = self._data
        self._callback = callback
        self.busy = False
        self._released = True
        status = lib.uvl_sendfile_init(self._ptr, out_fd, in_fd)
        if status < 0:
            raise convert_error(status)
        self._released = False
        self._ptr.offset = offset
        self._ptr.limit = -1 if count is None else count
        loop._uv_requests.add(self)

    def step(self):
        """Queue the next step (the first one fstat()s the file too)."""
        if self._released:
            raise RuntimeError("sendfile request already released")
        status = lib.uvl_sendfile_step(self._loop._core.uv, self._ptr)
        if status < 0:
            raise convert_error(status)
        self.busy = True

    @property
    def outcome(self):
        return self._ptr.outcome

    @property
    def sent(self):
        return self._ptr.sent

    @property
    def error(self):
        return self._ptr.error

    def stop(self):
        """Make an in-flight step return after its current syscall, or never
        start (it then completes with ECANCELED)."""
        if self.busy:
            lib.uvl_sendfile_stop(self._ptr)
            lib.uvl_cancel(ffi.cast(REQ_P, self._ptr))

    def cancel(self):
        """loop.close(): stop the step in flight, or let go at once."""
        if self.busy:
            self.stop()
        else:
            self.release()

    def release(self):
        """Close our dup of the socket, unless a step in flight may still be
        writing to it (then call again after its completion)."""
        if not self._released and not self.busy:
            self._released = True
            lib.uvl_sendfile_release(self._ptr)
            self._loop._uv_requests.discard(self)

    def _on_complete(self, status):
        self.busy = False
        self._callback(status)


def _to_future(loop, cls, args):
    fut = loop.create_future()
    cls(loop, *args, settler(loop, fut))
    return fut


def stat(loop, path):
    """A future of ``os.stat(path)``'s ``(st_mode, st_ino, st_dev)``, or its
    exception, computed on the thread pool."""
    return _to_future(loop, StatRequest, (path,))


def unlink(loop, path):
    """A future of ``os.unlink(path)`` done on the thread pool."""
    return _to_future(loop, UnlinkRequest, (path,))
