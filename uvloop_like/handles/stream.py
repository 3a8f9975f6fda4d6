"""uv_tcp_t / uv_pipe_t streams, behind one ``uvl_stream_t`` (see uvl.c).

Reads: libuv reads into the loop's arena (or, for a BufferedProtocol, into
the buffer posted with ``post_buffer``); each read is one ``UVL_EV_READ``
completion, dispatched after uv_run returns: by ``LoopCore.process`` to
the owner's ``_on_read(nread, data)`` (data: the read's bytes, or None for
a read into the posted buffer), or on the native core by _core.c's
completions section, which does StreamReading._on_read's work itself when
it can reproduce it exactly.
Writes: ``try_write`` first; what the kernel did not take goes to
``write``, which makes one ``WriteRequest`` per uv_write: the request, the
data libuv points at and its size live together until libuv completes it
(``req->data`` leads the completion to its record), then the owner hears
``on_write(status, size)``.  Writes of any size: see UVL_WRITE_CHUNK in uvl.c.
"""
from __future__ import annotations

import functools
import weakref

from .._ffi import BUF_ARRAY, CHAR_ARRAY, SHUTDOWN_P, UVL_STREAM_P, WRITE_P, ffi, lib
from .base import UVHandle, bind_first
from .errors import convert_error

ARENA_SIZE = lib.UVL_ARENA_SIZE
WRITE_CHUNK = lib.UVL_WRITE_CHUNK
UV_EAGAIN = lib.UV_EAGAIN
UV_EOF = lib.UV_EOF
UV_ECANCELED = lib.UV_ECANCELED


def _ignore(*args):
    pass


# posted_obj while no buffer is kept exported: nothing a protocol can return
# (not None, which get_buffer() may return by mistake).
NOTHING_KEPT = object()


_new = ffi.new
_new_handle = ffi.new_handle
_from_buffer = ffi.from_buffer
_release = ffi.release
_uvl_try_write = lib.uvl_try_write
_uvl_write = lib.uvl_write


# export_buffer(obj): a ``char[]`` over a bytes-like object's memory, which
# try_write_bytes also takes (the write fast path for a bytearray or a view:
# no Python frame; the export lasts as long as the cdata, i.e. the call).
export_buffer = bind_first(_from_buffer, CHAR_ARRAY)


def _fill_bufs(pieces):
    """A uv_buf_t array over ``pieces`` (each cut in WRITE_CHUNK slices) and
    the from_buffer() cdata that must live as long as libuv uses it."""
    keep = [_from_buffer(CHAR_ARRAY, data) for data in pieces]
    count = sum((len(cdata) + WRITE_CHUNK - 1) // WRITE_CHUNK for cdata in keep)
    bufs = _new(BUF_ARRAY, count)
    i = 0
    for cdata in keep:
        size = len(cdata)
        off = 0
        while off < size:
            bufs[i].base = cdata + off
            bufs[i].len = min(size - off, WRITE_CHUNK)
            off += WRITE_CHUNK
            i += 1
    return bufs, count, keep


class WriteRequest:
    """One queued uv_write: the request, what it points to and its size,
    kept together (and referenced from the stream) until libuv completes
    it.  The completion event's owner is this record (``req->data``)."""

    __slots__ = ("_stream", "_req", "_keep", "size", "_data")

    def __init__(self, stream, req, keep, size):
        self._stream = stream     # the StreamHandle; it keeps us until the completion
        self._req = req           # the uv_write_t libuv points at
        self._keep = keep         # the from_buffer() cdata (and objects) libuv reads from
        self.size = size          # bytes this write carries, for flow control
        self._data = _new_handle(self)
        req.data = self._data

    def _on_write(self, status):
        stream = self._stream
        writes = stream._writes
        writes.discard(self)
        self._keep = self._data = None  # (_data -> self: no cycle left behind)
        on_write = stream._on_write
        if not writes:
            stream._update_owner()  # may now hold its owner weakly only
        on_write(status, self.size)


class StreamHandle(UVHandle):
    """One libuv stream, owned by a transport (``set_owner``), or by whoever
    sets ``on_read``, ``on_write``, ``on_shutdown`` and ``on_connection``.

    The loop keeps every open handle (rule 1), so a handle that held its
    transport strongly would keep it alive forever.  It does so only while
    libuv may report to it on its own: reading, a write or a shutdown in
    flight.  Otherwise it holds a weak reference, so a transport that only
    the loop still knows (its protocol kept a half-open connection, say)
    is collected, warns ResourceWarning and closes this handle, as
    stdlib's transports are (rule 12)."""

    __slots__ = ("_on_read", "_on_write", "_shutdown_cb", "_on_connection", "_posted", "posted_obj",
                 "release_after_read", "repost",
                 "_writes", "queued", "try_write_bytes", "_shutdown_req", "tcp", "_reading", "_owner", "_owner_ref",
                 "_fileobj")

    _ctype = UVL_STREAM_P

    def __init__(self, loop, tcp=True):
        super().__init__(loop)
        self.tcp = tcp
        self._on_read = self._on_write = self._shutdown_cb = self._on_connection = _ignore
        self._posted = None   # the cdata keeping the posted buffer exported
        self.posted_obj = NOTHING_KEPT  # the object it was made from
        self.release_after_read = False  # give the export back once a read used it
        self._writes = set()  # WriteRequests libuv has not completed
        self.queued = self._writes  # (the same set, read by the transports' write fast path)
        self._shutdown_req = None  # the uv_shutdown_t libuv points to, until it completes
        self._reading = False  # uv_read_start in effect
        self._owner = None     # the owning transport, while reading/writing/shutting down
        self._owner_ref = None  # a weak reference to it, always (see set_owner)
        self._fileobj = None   # the caller's socket object over our descriptor (keep_socket)
        if tcp:
            status = lib.uvl_tcp_init(loop._core.uv, self._ptr)
        else:
            status = lib.uvl_pipe_init(loop._core.uv, self._ptr, 0)
        if status < 0:
            raise convert_error(status)
        # try_write() of a bytes object, straight to C (no Python frame: the
        # write fast path); a negative status goes to try_write_error().
        self.try_write_bytes = bind_first(_uvl_try_write, self._ptr)
        # repost(): post the kept buffer again, when get_buffer() returned
        # the same object (see post_buffer; None while nothing is kept).
        self.repost = None
        self._activated()
        # The native core dispatches this stream's reads in C (_core.c,
        # "completions"): it records the handle in the C struct.
        native = getattr(loop, "_native", None)
        if native is not None:
            native.bind(self)

    def set_callbacks(self, on_read=None, on_write=None, on_shutdown=None, on_connection=None):
        if on_read is not None:
            self._on_read = on_read
        if on_write is not None:
            self._on_write = on_write
        if on_shutdown is not None:
            self._shutdown_cb = on_shutdown
        if on_connection is not None:
            self._on_connection = on_connection

    def set_owner(self, owner):
        """Report reads, writes and shutdowns to ``owner._on_read``,
        ``_on_write`` and ``_on_shutdown``, holding ``owner`` strongly only
        while one of them is in flight (see the class docstring)."""
        self._owner_ref = weakref.ref(owner)
        self._owner = None
        self._update_owner()

    def _update_owner(self):
        if self._owner_ref is None:
            return
        if self._reading or self._writes or self._shutdown_req is not None:
            if self._owner is None:
                owner = self._owner_ref()
                if owner is not None:
                    self._owner = owner
                    # (a pipe transport has only the half it needs)
                    self._on_read = getattr(owner, "_on_read", _ignore)
                    self._on_write = getattr(owner, "_on_write", _ignore)
                    self._shutdown_cb = getattr(owner, "_on_shutdown", _ignore)
        elif self._owner is not None or self._on_read is _ignore:
            self._owner = None
            # Bound methods of the handle itself: they reach the owner
            # through the weak reference (a completion recorded just before
            # read_stop, say), and keep nothing alive.
            self._on_read = self._weak_read
            self._on_write = self._weak_write
            self._shutdown_cb = self._weak_shutdown

    def _weak_read(self, nread, data):
        owner = self._owner_ref()
        if owner is not None:
            getattr(owner, "_on_read", _ignore)(nread, data)

    def _weak_write(self, status, size):
        owner = self._owner_ref()
        if owner is not None:
            getattr(owner, "_on_write", _ignore)(status, size)

    def _weak_shutdown(self, status):
        owner = self._owner_ref()
        if owner is not None:
            getattr(owner, "_on_shutdown", _ignore)(status)

    def open(self, fd):
        """Adopt ``fd``: from now on libuv owns it and closes it."""
        if self.tcp:
            status = lib.uvl_tcp_open(self._ptr, fd)
        else:
            status = lib.uvl_pipe_open(self._ptr, fd)
        if status < 0:
            raise convert_error(status)

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
        """Let libuv's next read of this stream land in ``buf`` (writable).
        The buffer stays exported (pinned) until a read has used it (see
        ``release_posted``), or, for a memoryview, until another buffer is
        posted (see ``repost``)."""
        if buf is self.posted_obj:
            self.repost()
            return
        if not len(buf):
            raise RuntimeError("get_buffer() returned an empty buffer")
        if self._posted is not None:
            self.drop_posted()
        # (require_writable passed by position: as a keyword it costs a dict
        # and a string per call, and this runs for every read)
        posted = _from_buffer(CHAR_ARRAY, buf, True)
        ptr = self._ptr
        ptr.posted = posted
        ptr.posted_len = len(posted)
        self._posted = posted
        self.posted_obj = buf
        if type(buf) is memoryview:
            # Kept across reads (see release_posted): the protocol's next
            # get_buffer() most likely returns it again; repost() is then a
            # single store into the C struct, no Python frame (a cffi
            # function would cost more: every call releases the GIL).
            self.repost = functools.partial(setattr, ptr, "posted", posted)
        else:
            self.release_after_read = True

    def release_posted(self):
        """A read used the posted buffer: give its export back at once, so
        the protocol may resize or replace it (uvloop does the same).  The
        reader calls this only when ``release_after_read`` is set: not for a
        memoryview, which cannot be resized and already pins the memory it
        views, so our export changes nothing for the protocol (short of the
        protocol calling its release()); keeping it lets the common "return
        the same view" protocol ``repost`` it."""
        posted = self._posted
        self.release_after_read = False
        self._posted = None
        self.posted_obj = NOTHING_KEPT
        _release(posted)

    def drop_posted(self):
        """Release the posted buffer's export, whatever it is (a new
        protocol, or the handle closed)."""
        posted = self._posted
        if posted is not None:
            self._posted = self.repost = None
            self.posted_obj = NOTHING_KEPT
            self.release_after_read = False
            _release(posted)

    def has_posted(self):
        """A posted buffer no read has used yet?"""
        return self._ptr.posted != ffi.NULL

    def unpost(self):
        self._ptr.posted = ffi.NULL
        self._ptr.posted_len = 0
        self.drop_posted()

    def read_start(self):
        status = lib.uvl_read_start(self._ptr)
        if status < 0:
            raise convert_error(status)
        self._reading = True
        self._update_owner()

    def read_stop(self):
        if self._state == UVHandle.ACTIVE:
            lib.uvl_read_stop(self._ptr)
        self._reading = False
        self._update_owner()

    # --- writing -------------------------------------------------------------

    def try_write(self, data):
        """Write what the kernel takes now, without blocking; return its size
        (at most WRITE_CHUNK bytes: the caller queues the rest)."""
        # bytes go straight to the ``const char *`` (the call is synchronous);
        # other buffers need from_buffer.
        n = _uvl_try_write(self._ptr, data if type(data) is bytes else _from_buffer(CHAR_ARRAY, data), len(data))
        if n < 0:
            if n == UV_EAGAIN:
                return 0
            raise convert_error(n)
        return n

    def try_writev(self, pieces):
        """try_write() of several buffers in one call (writev)."""
        bufs, count, keep = _fill_bufs(pieces)
        written = lib.uvl_try_writev(self._ptr, bufs, count)
        if written < 0:
            if written == UV_EAGAIN:
                return 0
            raise convert_error(written)
        return written

    def write(self, pieces, size=None):
        """Queue the buffers in ``pieces`` (``size`` bytes in all, counted
        when not given) as one write; they must not change until
        on_write(status, size)."""
        if size is None:
            size = sum(len(memoryview(data).cast("B")) for data in pieces)
        req = _new(WRITE_P)
        # The from_buffer() cdata stay referenced with the request until its
        # completion: on PyPy the pointer is only valid while they live (the
        # object could otherwise move); on CPython it costs nothing.
        if len(pieces) == 1:
            data = pieces[0]
            keep = _from_buffer(CHAR_ARRAY, data)
            status = _uvl_write(req, self._ptr, keep, len(data))  # C splits it in WRITE_CHUNKs
        else:
            bufs, count, keep = _fill_bufs(pieces)
            status = lib.uvl_writev(req, self._ptr, bufs, count)  # libuv copies the array
        if status < 0:
            raise convert_error(status)
        writes = self._writes
        writes.add(WriteRequest(self, req, (keep, pieces), size))
        if self._owner is None and len(writes) == 1:
            self._update_owner()

    @property
    def writing(self):
        """Writes queued in libuv, not yet completed?"""
        return bool(self._writes)

    def try_write_error(self, status):
        """What a negative ``try_write_bytes`` status means: 0 bytes written
        (EAGAIN), or the exception to raise."""
        if status == UV_EAGAIN:
            return 0
        raise convert_error(status)

    def shutdown(self):
        """Send EOF after the queued writes (half-close)."""
        req = ffi.new(SHUTDOWN_P)
        status = lib.uvl_shutdown(req, self._ptr)
        if status < 0:
            raise convert_error(status)
        self._shutdown_req = req
        self._update_owner()

    # --- listening -----------------------------------------------------------

    def listen(self, backlog):
        status = lib.uvl_listen(self._ptr, backlog)
        if status < 0:
            raise convert_error(status)

    def accept(self, client):
        status = lib.uvl_accept(self._ptr, client._ptr)
        if status < 0:
            raise convert_error(status)

    def _on_shutdown(self, status):
        self._shutdown_req = None
        callback = self._shutdown_cb
        self._update_owner()
        callback(status)

    def keep_socket(self, sock):
        """Keep ``sock``, the socket object whose descriptor ``open()``
        adopted, usable while the handle lives (setsockopt, fileno, as with
        stdlib), and detach it when the handle closes: libuv closes the
        descriptor, once.  The handle (which the loop keeps until libuv's
        close callback) holds it, so the object cannot be collected, and its
        finalizer close the descriptor, while libuv still has it.  A
        ``close()`` by its owner meanwhile only marks it closed (the io
        reference that socket.makefile() uses to defer the real close)."""
        if hasattr(sock, "_io_refs"):
            sock._io_refs += 1
        self._fileobj = sock

    def close(self):
        sock = self._fileobj
        if sock is not None:
            self._fileobj = None
            sock.detach()  # ignores the io reference; the descriptor is libuv's to close
        super().close()

    def _on_close(self):
        super()._on_close()
        self._owner = None
        self._reading = False
        # The owner's bound methods refer back to it: no cycle once closed.
        self._on_read = self._on_write = self._shutdown_cb = self._on_connection = _ignore
        self._writes.clear()  # (completed before the close callback: normally empty)
        self._shutdown_req = None
        self.drop_posted()
