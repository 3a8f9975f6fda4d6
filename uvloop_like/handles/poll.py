"""uv_poll_t: readiness of a file descriptor (add_reader/add_writer, signals)."""
from __future__ import annotations

from .._ffi import LOOP_P, POLL_P, ffi, lib
from .base import UVHandle
from .errors import convert_error

READABLE = lib.UV_READABLE
WRITABLE = lib.UV_WRITABLE
DISCONNECT = lib.UV_DISCONNECT


class PollHandle(UVHandle):
    """Watches one descriptor; the owner's ``on_event(status, events)`` runs
    (after uv_run returns) for every readiness libuv reports."""

    __slots__ = ("fd", "events", "on_event")

    _ctype = POLL_P

    def __init__(self, loop, fd, on_event):
        super().__init__(loop)
        self.fd = fd
        self.events = 0
        self.on_event = on_event
        status = lib.uvl_poll_init(ffi.cast(LOOP_P, loop._core.ptr), self._ptr, fd)
        if status < 0:
            raise convert_error(status)
        self._activated()

    def start(self, events):
        """Watch for ``events`` (READABLE | WRITABLE); 0 stops watching."""
        if events == self.events:
            return
        if events:
            status = lib.uvl_poll_start(self._ptr, events)
            if status < 0:
                raise convert_error(status)
        else:
            lib.uvl_poll_stop(self._ptr)
        self.events = events

    def _on_poll(self, status, events):
        self.on_event(status, events)

    def _on_close(self):
        super()._on_close()
        self.on_event = None  # often a bound method of the loop: no cycle once closed
