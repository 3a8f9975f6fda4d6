"""The libuv loop itself, with its wake timer (uv_timer) and wake-up (uv_async).

Both of those handles live inside the C struct ``uvl_loop_t`` and use C
callbacks that do nothing: the timer only bounds how long ``uv_run`` may block
(the timer heap itself is Python's, so a patched ``loop.time()`` moves it),
and ``uv_async_send`` only makes a sleeping ``uv_run`` return.  Every other
libuv callback the core uses records a completion in ``uvl_loop_t.events``;
``run_once`` copies them out and ``dispatch`` hands each to its owner.
"""
from __future__ import annotations

import collections

from .._ffi import LOOP_P, UVL_LOOP_P, ffi, lib
from .base import bind_first
from .errors import convert_error

EV_POLL = lib.UVL_EV_POLL
EV_CLOSE = lib.UVL_EV_CLOSE
EV_READ = lib.UVL_EV_READ
EV_WRITE = lib.UVL_EV_WRITE
EV_SHUTDOWN = lib.UVL_EV_SHUTDOWN
EV_CONNECTION = lib.UVL_EV_CONNECTION
EV_RECV = lib.UVL_EV_RECV
EV_SEND = lib.UVL_EV_SEND
UDP_BATCH_HEAD = lib.UVL_UDP_BATCH_HEAD  # where a datagram's data is (see uvl.c, udp section)
EV_EXIT = lib.UVL_EV_EXIT

# Loops whose libuv teardown failed keep their memory here for the life of the
# process: freeing a struct that libuv may still touch would be a crash.
_leaked = []


def libuv_version() -> str:
    """The linked libuv's version string, e.g. "1.52.1"."""
    return ffi.string(lib.uv_version_string()).decode("ascii")


def run_arg(timeout_ms, ran):
    """LoopCore.run's argument for a wait of at most timeout_ms (-1: no limit,
    0: none) after an iteration that ran ``ran`` handles (uvl_run_counted)."""
    if timeout_ms == 0:
        return ran
    return -((timeout_ms + 1) << 32 | ran) - 1


class LoopCore:
    """Owns one ``uvl_loop_t`` (a ``uv_loop_t`` plus the core's handles)."""

    __slots__ = ("ptr", "uv", "run", "pending", "closed", "arena", "_scratch")

    def __init__(self):
        self.ptr = ffi.new(UVL_LOOP_P)
        status = lib.uvl_loop_init(self.ptr)
        if status < 0:
            raise convert_error(status)
        self.uv = ffi.cast(LOOP_P, self.ptr)
        # run(timeout_ms): one libuv iteration; polls for I/O at most
        # timeout_ms (-1: no limit, 0: don't block) and returns how many
        # completions it recorded (-1: some were lost for lack of memory).
        # The C function bound to our loop: this is the per-iteration hot path.
        # run(arg) also keeps loop.stats()'s scheduler counters; arg carries
        # the timeout and the number of handles the previous iteration ran
        # (see run_arg; a plain count ran >= 0 means "don't wait").
        self.run = bind_first(lib.uvl_run_counted, self.ptr)
        self.pending = collections.deque()
        self.closed = False
        # The reads of the last run, by offset (see collect).
        self.arena = ffi.buffer(self.ptr.arena, lib.UVL_ARENA_SIZE)
        self._scratch = {}                     # name -> (bytearray, memoryview): see scratch()

    def scratch(self, name, size):
        """This loop's reusable buffer ``name`` of ``size`` bytes, as
        (bytearray, memoryview of it), made on first use: the unix datagram
        transports' receive buffer, the TLS plaintext buffer.  One of each
        per loop is enough: its user copies the content out before any
        other code runs, and the loop runs one callback at a time."""
        buf = self._scratch.get(name)
        if buf is None:
            data = bytearray(size)
            buf = self._scratch[name] = (data, memoryview(data))
        return buf

    def process_timed(self, n, clock, threshold, report):
        """process(n) one completion at a time, each timed with ``clock``: the
        loop's slow-callback hook is set.  ``report(wrapper, kind, seconds)``
        for each that took at least ``threshold``."""
        if n < 0:
            self.process(n)  # raises what process() raises for it
        events = self.ptr.events
        from_handle = ffi.from_handle
        for i in range(n):
            ev = events[i]
            wrapper = from_handle(ev.owner)
            kind = ev.kind
            t0 = clock()
            try:
                self.process(i + 1, i)
                dt = clock() - t0
                if dt >= threshold:
                    report(wrapper, kind, dt)
            except BaseException:
                self._save(i + 1, n)  # (process saved nothing: its range ended at i + 1)
                raise

    def process(self, n, start=0):
        """Dispatch the ``n`` completions of the last run, in libuv's order,
        straight from the C array (no intermediate objects: this runs for
        every read and write).

        A read into the arena becomes, once, the bytes data_received gets.
        If an owner raises (KeyboardInterrupt, say), the completions not yet
        dispatched are saved, their data copied out of the arena (which the
        next run reuses), and ``dispatch_pending`` delivers them later."""
        if n < 0:
            if n == -1:
                raise MemoryError("uvloop_like: cannot record libuv completions")
            raise convert_error(n)  # the loop is closed (uvl_run refused)
        events = self.ptr.events
        from_handle = ffi.from_handle
        arena = self.arena
        i = start
        try:
            while i < n:
                ev = events[i]
                i += 1
                kind = ev.kind
                if kind == EV_READ:
                    nread = ev.status
                    offset = ev.events
                    from_handle(ev.owner)._on_read(
                        nread, arena[offset:offset + nread] if nread > 0 and offset >= 0 else None)
                elif kind == EV_RECV:
                    # A datagram: (its bytes, its sender's sockaddr as bytes);
                    # an error: (status, None).
                    offset = ev.events
                    if offset >= 0:
                        # The header of chunk k is at base + 32 k, its data at
                        # base + 1 KiB + 64 KiB k (base: 1 KiB aligned).
                        start = offset + UDP_BATCH_HEAD + (offset & 1023) * 2047
                        from_handle(ev.owner)._on_recv(arena[start:start + ev.status], arena[offset:offset + 32])
                    else:
                        from_handle(ev.owner)._on_recv(ev.status, None)
                else:
                    self._dispatch(from_handle(ev.owner), kind, ev.status, ev.events)
        except BaseException:
            self._save(i, n)
            raise

    def _save(self, start, n):
        events = self.ptr.events
        from_handle = ffi.from_handle
        arena = self.arena
        append = self.pending.append
        for i in range(start, n):
            ev = events[i]
            status = ev.status
            data = ev.events
            if ev.kind == EV_READ:
                data = arena[data:data + status] if status > 0 and data >= 0 else None
            elif ev.kind == EV_RECV:
                if data >= 0:
                    start = data + UDP_BATCH_HEAD + (data & 1023) * 2047
                    data = (arena[start:start + status], arena[data:data + 32])
                else:
                    data = None
            append((from_handle(ev.owner), ev.kind, status, data))

    @staticmethod
    def _dispatch(owner, kind, status, events):
        if kind == EV_READ:
            owner._on_read(status, events)
        elif kind == EV_WRITE:
            owner._on_write(status)
        elif kind == EV_POLL:
            owner._on_poll(status, events)
        elif kind == EV_SHUTDOWN:
            owner._on_shutdown(status)
        elif kind == EV_CONNECTION:
            owner._on_connection(status)
        elif kind == EV_CLOSE:
            owner._on_close()
        elif kind == EV_RECV:
            if events is None:
                owner._on_recv(status, None)
            else:
                owner._on_recv(*events)
        elif kind == EV_SEND:
            owner._on_send(status)
        elif kind == EV_EXIT:
            owner._on_exit(status, events)  # exit status, terminating signal
        else:
            owner._on_complete(status)

    def dispatch_pending(self):
        """Deliver completions saved by process() when an owner raised."""
        pending = self.pending
        while pending:
            self._dispatch(*pending.popleft())

    def run_once(self, timeout_ms):
        """run() then process(): for the paths that are not hot."""
        self.dispatch_pending()
        n = lib.uvl_run(self.ptr, timeout_ms)  # not a loop iteration: not counted
        if n:
            self.process(n)

    # --- loop.stats() (observe): the C counters of uvl.c's stats section ---

    def stats_start(self):
        """run_forever starts: busy time accrues from now."""
        lib.uvl_stats_start(self.ptr)

    def stats_stop(self):
        """run_forever ends: close the busy interval under way."""
        lib.uvl_stats_stop(self.ptr)

    def count_callbacks(self, n):
        """Handles the scheduler ran outside ``run(timeout_ms, ran)``'s count."""
        self.ptr.stats.callbacks += n

    def count_received(self, n):
        """Bytes a transport received without passing through uvl.c."""
        self.ptr.stats.bytes_received += n

    def count_sent(self, n):
        """Bytes a transport sent without passing through uvl.c."""
        self.ptr.stats.bytes_sent += n

    def count_accepted(self):
        self.ptr.stats.connections_accepted += 1

    def stats(self):
        """The raw counters: (iterations, callbacks, idle_ns, busy_ns,
        max_busy_ns, bytes_received, bytes_sent, connections_accepted), the
        busy interval under way included in busy_ns and max_busy_ns."""
        st = self.ptr.stats
        now = lib.uvl_stats_busy_now(self.ptr)
        return (st.iterations, st.callbacks, st.idle_ns, st.busy_ns + now, max(st.max_busy_ns, now),
                st.bytes_received, st.bytes_sent, st.connections_accepted)

    def wakeup(self):
        """Make a sleeping ``uv_run`` return; safe from any thread, also
        after close() (libuv then ignores it; see uvl_wakeup)."""
        lib.uvl_wakeup(self.ptr)

    def close(self):
        """Free the libuv loop.  Every Python-owned handle must be closed and
        its close callback dispatched before this is called."""
        if self.closed:
            return
        self.closed = True
        status = lib.uvl_loop_close(self.ptr)
        if status < 0:
            # libuv still has something open on this loop: never free it.
            _leaked.append(self.ptr)
