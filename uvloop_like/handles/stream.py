"""uv_tcp_t / uv_pipe_t streams, behind one ``uvl_stream_t`` (see uvl.c).

Reads: libuv reads into the loop's arena (or, for a BufferedProtocol, into
the buffer posted with ``post_buffer``); each read is one ``UVL_EV_READ``
completion, dispatched to ``on_read(nread, offset)`` after uv_run returns.
Writes: ``try_write`` first; what the kernel did not take goes to
``write``, whose completions (``on_write(status)``) arrive in FIFO order.
"""
from __future__ import annotations

from .._ffi import BUF_ARRAY, CHAR_ARRAY, SHUTDOWN_P, UVL_STREAM_P, WRITE_P, ffi, lib
from ..errors import convert_error
from .base import UVHandle

ARENA_SIZE = lib.UVL_ARENA_SIZE
UV_EAGAIN = lib.UV_EAGAIN
UV_EOF = lib.UV_EOF
UV_ECANCELED = lib.UV_ECANCELED


def _ignore(*args):
    pass


class StreamHandle(UVHandle):
    """One libuv stream.  ``on_read``, ``on_write``, ``on_shutdown`` and
    ``on_connection`` are set by the owner (a transport or a server)."""

    __slots__ = ("_on_read", "_on_write", "_on_shutdown", "_on_connection", "_posted", "_posted_obj",
                 "_reqs", "tcp")

    _ctype = UVL_STREAM_P

    def __init__(self, loop, tcp=True):
        super().__init__(loop)
        self.tcp = tcp
        self._on_read = self._on_write = self._on_shutdown = self._on_connection = _ignore
        self._posted = None   # the cdata keeping the posted buffer alive
        self._posted_obj = None  # the object it was made from (reused while get_buffer returns it)
        self._reqs = []       # uv_write_t / uv_shutdown_t structs libuv still points to
        if tcp:
            status = lib.uvl_tcp_init(loop._core.uv, self._ptr)
        else:
            status = lib.uvl_pipe_init(loop._core.uv, self._ptr, 0)
        if status < 0:
            raise convert_error(status)
        self._activated()

    def set_callbacks(self, on_read=None, on_write=None, on_shutdown=None, on_connection=None):
        if on_read is not None:
            self._on_read = on_read
        if on_write is not None:
            self._on_write = on_write
        if on_shutdown is not None:
            self._on_shutdown = on_shutdown
        if on_connection is not None:
            self._on_connection = on_connection

    def open(self, fd):
        """Adopt ``fd``: from now on libuv owns it and closes it."""
        if self.tcp:
            status = lib.uvl_tcp_open(self._ptr, fd)
        else:
            status = lib.uvl_pipe_open(self._ptr, fd)
        if status < 0:
            raise convert_error(status)

    def fileno(self):
        fd = lib.uvl_stream_fileno(self._ptr)
        return fd if fd >= 0 else -1

    def set_nodelay(self, enable):
        if self.tcp:
            status = lib.uvl_tcp_nodelay(self._ptr, 1 if enable else 0)
            if status < 0:
                raise convert_error(status)

    # --- reading -------------------------------------------------------------

    def set_buffered(self, buffered):
        """BufferedProtocol mode: read only into posted buffers."""
        self._ptr.buffered = 1 if buffered else 0
        if not buffered:
            self.unpost()

    def post_buffer(self, buf):
        """Let libuv's next read of this stream land in ``buf`` (writable)."""
        if buf is self._posted_obj and self._posted is not None:
            # The same buffer as last time (the common BufferedProtocol): our
            # cdata still holds its buffer export, so it cannot have moved,
            # and posted_len is still its length.
            self._ptr.posted = self._posted
            return
        posted = ffi.from_buffer(CHAR_ARRAY, buf, require_writable=True)
        self._posted = posted
        self._posted_obj = buf
        ptr = self._ptr
        ptr.posted = posted
        ptr.posted_len = len(posted)

    def has_posted(self):
        """A posted buffer no read has used yet?"""
        return self._ptr.posted != ffi.NULL

    def unpost(self):
        self._ptr.posted = ffi.NULL
        self._ptr.posted_len = 0
        self._posted = self._posted_obj = None

    def read_start(self):
        status = lib.uvl_read_start(self._ptr)
        if status < 0:
            raise convert_error(status)

    def read_stop(self):
        if self._state == UVHandle.ACTIVE:
            lib.uvl_read_stop(self._ptr)

    # --- writing -------------------------------------------------------------

    def try_write(self, data):
        """Write what the kernel takes now, without blocking; return its size."""
        # bytes go straight to the ``const char *`` (the call is synchronous);
        # other buffers need from_buffer.
        n = lib.uvl_try_write(self._ptr, data if type(data) is bytes else ffi.from_buffer(CHAR_ARRAY, data), len(data))
        if n < 0:
            if n == UV_EAGAIN:
                return 0
            raise convert_error(n)
        return n

    def try_writev(self, pieces):
        """try_write() of several buffers in one call (writev)."""
        n = len(pieces)
        bufs = ffi.new(BUF_ARRAY, n)
        keep = []
        for i, data in enumerate(pieces):
            cdata = ffi.from_buffer(CHAR_ARRAY, data)
            keep.append(cdata)
            bufs[i].base = cdata
            bufs[i].len = len(cdata)
        written = lib.uvl_try_writev(self._ptr, bufs, n)
        if written < 0:
            if written == UV_EAGAIN:
                return 0
            raise convert_error(written)
        return written

    def write(self, pieces):
        """Queue the buffers in ``pieces`` as one write; the caller keeps them
        alive (and unchanged) until on_write."""
        req = ffi.new(WRITE_P)
        # The from_buffer() cdata stay referenced with the request until its
        # completion: on PyPy the pointer is only valid while they live (the
        # object could otherwise move); on CPython it costs nothing.
        if len(pieces) == 1:
            data = pieces[0]
            keep = ffi.from_buffer(CHAR_ARRAY, data)
            status = lib.uvl_write(req, self._ptr, keep, len(data))
        else:
            n = len(pieces)
            bufs = ffi.new(BUF_ARRAY, n)
            keep = []
            for i, data in enumerate(pieces):
                cdata = ffi.from_buffer(CHAR_ARRAY, data)
                keep.append(cdata)
                bufs[i].base = cdata
                bufs[i].len = len(data)
            status = lib.uvl_writev(req, self._ptr, bufs, n)  # libuv copies the array
        if status < 0:
            raise convert_error(status)
        self._reqs.append((req, keep))

    def write_done(self):
        """Release the oldest write request (its completion arrived)."""
        del self._reqs[0]

    def shutdown(self):
        """Send EOF after the queued writes (half-close)."""
        req = ffi.new(SHUTDOWN_P)
        status = lib.uvl_shutdown(req, self._ptr)
        if status < 0:
            raise convert_error(status)
        self._reqs.append(req)

    # --- listening -----------------------------------------------------------

    def listen(self, backlog):
        status = lib.uvl_listen(self._ptr, backlog)
        if status < 0:
            raise convert_error(status)

    def accept(self, client):
        status = lib.uvl_accept(self._ptr, client._ptr)
        if status < 0:
            raise convert_error(status)

    def _on_close(self):
        super()._on_close()
        # The owner's bound methods refer back to it: no cycle once closed.
        self._on_read = self._on_write = self._on_shutdown = self._on_connection = _ignore
        self._reqs = []
        self._posted = self._posted_obj = None
