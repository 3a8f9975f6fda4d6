"""uvloop_like.Loop: an asyncio event loop driven by libuv's ``uv_run``.

One iteration (``_run_once``), in the order asyncio's own loop uses:

1. block in ``uv_run`` (one ``UV_RUN_ONCE``/``UV_RUN_NOWAIT``) for at most the
   time until the earliest Python timer; not at all if callbacks are ready;
2. hand the completions libuv recorded (readiness of the selector that backs
   add_reader/add_writer, DNS results, handle closes) to their owners, which
   append callbacks to the ready queue;
3. move every timer that is due by ``self.time()`` to the ready queue;
4. run the callbacks that were ready at that point, FIFO; callbacks they
   schedule run in the next iteration.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import errno
import functools
import heapq
import logging
import math
import os
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import warnings
import weakref
from asyncio import events as _events
from asyncio import format_helpers as _format_helpers
from asyncio import futures as _futures
from asyncio import tasks as _tasks

from . import _compat, _coresel, dns
from . import stats as _stats
from ._futures import set_result_unless_cancelled
from .datagram import DatagramMixin
from .handles.core import LoopCore
from .handles.poll import READABLE, PollHandle
from .pipes import PipeMixin
from .server import ServerMixin
from .sockets import SocketOpsMixin
from .sslproto import SSLProtocol
from .streams import StreamConnectMixin
from .subprocess import SubprocessMixin
from .transports.stream import adopt_socket

logger = logging.getLogger("asyncio")

Handle = _events.Handle
TimerHandle = _events.TimerHandle

# call_soon() builds its Handle without running Handle.__init__ (a Python
# frame and a get_debug() call), setting the slots __init__ sets.  Only while
# Handle's slots are the ones known here (CPython 3.9-3.13, PyPy).
_FAST_HANDLES = set(getattr(Handle, "__slots__", ())) == {
    "_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr",
    "__weakref__", "_context"}
_new_handle = functools.partial(object.__new__, Handle)
_copy_context = contextvars.copy_context
_perf_counter = time.perf_counter

# Longest single wait in uv_run, in ms (as stdlib's MAXIMUM_SELECT_TIMEOUT).
_MAX_WAIT_MS = 24 * 3600 * 1000
# Rebuild the timer heap when more than this many (and more than half) of its
# entries are cancelled.
_MIN_CANCELLED_TIMERS = 100
# loop.time()'s resolution (time.monotonic), read once: it is fixed for the
# process, and each loop would otherwise pay a system call for it.
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution
_DEBUG_STACK_DEPTH = 10


def _is_debug_mode():
    # Looked up at call time, as BaseEventLoop.__init__ does, so code that patches
    # asyncio.coroutines._is_debug_mode (CPython's test_runners) sees the same default.
    return asyncio.coroutines._is_debug_mode()


def _format_handle(handle):
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, _tasks.Task):
        return repr(owner)
    return str(handle)


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The exception propagates out of run_forever by itself.
            return
    _futures._get_loop(fut).stop()


# How stdlib's create_task names a task factory's task (gone in 3.13, which
# calls task.set_name).
_set_task_name = getattr(_tasks, "_set_task_name", None)


def _check_callback(callback, method):
    if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


def _check_signal(sig):
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


def _sighandler_noop(signum, frame):
    """Dummy signal handler: the real work happens in the loop."""


class _FdCallbacks:
    """The reader and writer Handle registered for one descriptor."""

    __slots__ = ("reader", "writer")

    def __init__(self):
        self.reader = None
        self.writer = None


class Loop(StreamConnectMixin, ServerMixin, SocketOpsMixin, DatagramMixin, PipeMixin,
           SubprocessMixin, asyncio.AbstractEventLoop):
    """An asyncio event loop on libuv.  Use it as any asyncio loop:
    ``uvloop_like.run(main())`` or ``asyncio.Runner(loop_factory=uvloop_like.new_event_loop)``."""

    # The state the native core (_core.c) reads on every iteration or call
    # lives in slots, which it reads at a fixed offset (a few instructions; a
    # look-up in the instance dict costs about a hundred).  Python code reads
    # and sets them as before (loop._debug = True, loop._ready = deque(), ...),
    # and the native core sees each change at its next read.
    __slots__ = ("_closed", "_stopping", "_debug", "_timed", "_slow_handles", "_ready",
                 "_scheduled", "_timer_cancelled_count", "_task_factory", "_clock_resolution",
                 "_slow_callback_hook", "_slow_hook_threshold")

    def __init__(self):
        self._native = None                    # the native core (_coresel), if selected
        self._closed = False
        self._stopping = False
        self._ready = collections.deque()      # Handles to run, FIFO
        self._scheduled = []                   # heap of TimerHandles, by _when
        self._timer_cancelled_count = 0        # cancelled TimerHandles still in the heap
        self._thread_id = None                 # thread running run_forever, or None
        self._clock_resolution = _CLOCK_RESOLUTION
        self._exception_handler = None
        self._slow_callback_hook = None        # set_slow_callback_hook(): hook(handle, seconds); the native core reads this name
        self._slow_hook_threshold = 0.1
        self._slow_callbacks = 0               # reported to the hook (stats())
        self._debug = False
        self._timed = False                    # time each callback: debug mode or a slow hook (the native core reads it)
        self.set_debug(_is_debug_mode())
        self.slow_callback_duration = 0.1
        self._current_handle = None            # the Handle being run, in debug mode
        self._task_factory = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._asyncgens = weakref.WeakSet()    # live async generators (for shutdown_asyncgens)
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self._default_executor = None
        self._transports = weakref.WeakValueDictionary()  # fd -> transport owning it
        self._signal_handlers = {}             # signum -> Handle
        self._old_wakeup_fd = None             # what set_wakeup_fd replaced, while running
        self._uv_handles = set()               # wrappers of open libuv handles (handles/base.py)
        self._uv_requests = set()              # in-flight libuv requests (handles/dns.py)
        self._unix_server_sockets = {}         # listening unix socket -> its file's inode (3.13)

        self._core = LoopCore()
        try:
            # add_reader/add_writer register with a selector right away, as
            # stdlib does; libuv watches the selector's own descriptor.  (libuv's
            # per-fd uv_poll defers epoll_ctl to the next uv_run and aborts the
            # process when the fd was closed meanwhile: see docs/design.md.)
            self._selector = selectors.DefaultSelector()
            self._selector_poll = PollHandle(self, self._selector.fileno(), self._on_selector_ready)
            self._selector_poll.start(READABLE)
            # The self-pipe: signal.set_wakeup_fd writes signal numbers here.
            self._ssock, self._csock = socket.socketpair()
            self._ssock.setblocking(False)
            self._csock.setblocking(False)
            self._add_reader(self._ssock.fileno(), self._read_from_self)
            self._native = _coresel.attach(self, Loop)
        except BaseException:
            self._close_uv()
            raise

    def __repr__(self):
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    # --- running and stopping ------------------------------------------------

    def _check_closed(self):
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if _events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            _events._set_running_loop(self)
            self._install_wakeup_fd()
            self._core.stats_start()
            if "_run_once" in self.__dict__:
                # _run_once replaced on the instance (tests count iterations
                # this way): call it once per iteration, as stdlib does.
                while True:
                    self._run_once()
                    if self._stopping:
                        break
            else:
                self._run_once(until_stopped=True)
        finally:
            self._core.stats_stop()
            self._stopping = False
            self._thread_id = None
            _events._set_running_loop(None)
            self._restore_wakeup_fd()
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def run_until_complete(self, future):
        """Run until the future (a Future, Task or coroutine) is done; return
        its result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not _futures.isfuture(future)
        future = _tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception raised by the coroutine is re-raised here: the
            # task's "exception was never retrieved" log would be noise.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # Mark the exception retrieved: it propagates from here.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def stop(self):
        """Stop after the callbacks that are ready now have run."""
        self._stopping = True

    def is_running(self):
        return self._thread_id is not None

    def is_closed(self):
        return self._closed

    def time(self):
        """The loop's clock: time.monotonic(), as stdlib."""
        return time.monotonic()

    def close(self):
        """Close the loop: drop pending callbacks, shut the default executor
        down without waiting, close every libuv handle.  Idempotent."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        if self._signal_handlers:
            if sys.is_finalizing():
                warnings.warn(f"Closing the loop {self!r} on interpreter shutdown "
                              f"stage, skipping signal handlers removal",
                              ResourceWarning, source=self)
                self._signal_handlers.clear()
            else:
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
        self._closed = True
        native = self._native
        if native is not None:
            self._native = None
            _coresel.detach(self, native)
        self._ready.clear()
        self._scheduled.clear()
        self._timer_cancelled_count = 0
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        self._close_uv()

    def _close_uv(self):
        """Close every libuv handle, wait for libuv to confirm, free the loop."""
        core = getattr(self, "_core", None)
        if core is None or core.closed:
            return
        selector = getattr(self, "_selector", None)
        if selector is not None:
            selector.close()
        for sock in (getattr(self, "_ssock", None), getattr(self, "_csock", None)):
            if sock is not None:
                sock.close()
        for handle in list(self._uv_handles):
            handle.close()
        for req in list(self._uv_requests):
            req.cancel()
        # Close callbacks arrive on the next iteration; thread-pool requests
        # (DNS) that already started must finish before libuv can be freed.
        while self._uv_handles or self._uv_requests:
            core.run_once(-1)
        core.close()
        # The selector's poll handle refers back to the loop (its _loop and its
        # callback, a bound method): drop it, so a closed loop dies by
        # reference counting as stdlib's does, not only by the cyclic GC.
        self._selector_poll = None

    def __del__(self, _warn=warnings.warn):
        if not getattr(self, "_closed", True):
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    def _purge_cancelled_timers(self):
        scheduled = self._scheduled
        if (self._timer_cancelled_count > _MIN_CANCELLED_TIMERS
                and self._timer_cancelled_count * 2 > len(scheduled)):
            live = []
            for timer in scheduled:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    live.append(timer)
            heapq.heapify(live)
            scheduled[:] = live
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)._scheduled = False

    def _run_once(self, until_stopped=False):
        """One iteration; with until_stopped, iterate until stop() was called
        (run_forever's loop, kept in one frame so the locals below are looked
        up once, not once per iteration)."""
        native = self._native
        if native is not None and native.run(until_stopped):
            return
        ready = self._ready
        popleft = ready.popleft
        core = self._core
        uv_run = core.run
        ran = 0  # handles the last iteration ran: the next uv_run counts them (stats())
        while True:
            if self._ready is not ready:
                # Replaced by a callback (as stdlib, which reads it each time).
                ready = self._ready
                popleft = ready.popleft
            scheduled = self._scheduled
            if scheduled and self._timer_cancelled_count:
                self._purge_cancelled_timers()

            # uv_run's one argument: how long it may wait, and how many handles
            # the last iteration ran, for stats(); ``ran`` alone means "don't
            # wait" (the hot path: no arithmetic; see handles/core.py, run_arg).
            if ready or self._stopping:
                arg = ran
            elif scheduled:
                delay = scheduled[0]._when - self.time()
                if delay > 0:
                    # Round up: waking early only costs an iteration, but
                    # never fire a timer early.  NaN and negatives mean 0.
                    # run_arg(timeout_ms, ran), inlined: a call per waiting
                    # iteration is about 1% of a TCP echo round trip.
                    timeout_ms = _MAX_WAIT_MS if delay * 1000 >= _MAX_WAIT_MS else math.ceil(delay * 1000)
                    arg = -((timeout_ms + 1) << 32 | ran) - 1
                else:
                    arg = ran
            else:
                arg = -1 - ran  # run_arg(-1, ran): wait for I/O, no limit

            if core.pending:
                # Completions an exception interrupted: before the next run
                # reuses the arena they came from.
                core.dispatch_pending()
            n = uv_run(arg)
            if n:
                if self._timed and self._slow_callback_hook is not None:
                    core.process_timed(n, _perf_counter, self._slow_hook_threshold, self._report_slow_dispatch)
                else:
                    core.process(n)

            if scheduled:
                end_time = self.time() + self._clock_resolution
                while scheduled:
                    timer = scheduled[0]
                    if timer._when >= end_time:
                        break
                    # What heappop returns runs, as in stdlib (a comparison
                    # that reordered the heap makes it another timer).
                    timer = heapq.heappop(scheduled)
                    timer._scheduled = False
                    ready.append(timer)

            # Run only what is ready now; what these schedule waits a turn.
            ntodo = len(ready)
            if self._timed:
                ran = 0  # counted by _run_ready_timed itself
                self._run_ready_timed(ntodo)
            else:
                ran = ntodo
                # Handle._run() inlined: one Python frame less per callback.
                while ntodo:
                    ntodo -= 1
                    handle = popleft()
                    if handle._cancelled:
                        ran -= 1
                        continue
                    try:
                        handle._context.run(handle._callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        core.count_callbacks(ran - ntodo)  # the ones run so far, this one included
                        raise
                    except BaseException as exc:
                        self._report_callback_error(handle, exc)
            if not until_stopped or self._stopping:
                core.count_callbacks(ran)
                return

    def _run_ready_timed(self, ntodo):
        """Debug mode or a slow-callback hook: each callback is timed on its own
        (debug mode's warning uses loop.time(), as stdlib; the hook perf_counter)."""
        popleft = self._ready.popleft
        ran = 0
        try:
            for _ in range(ntodo):
                handle = popleft()
                if handle._cancelled:
                    continue
                ran += 1
                try:
                    self._current_handle = handle
                    debug = self._debug
                    if debug:
                        t0 = self.time()
                    p0 = _perf_counter()
                    handle._run()
                    dt = _perf_counter() - p0
                    if debug:
                        elapsed = self.time() - t0
                        if elapsed >= self.slow_callback_duration:
                            logger.warning("Executing %s took %.3f seconds", _format_handle(handle), elapsed)
                    if self._slow_callback_hook is not None and dt >= self._slow_hook_threshold:
                        self._call_slow_hook(handle, dt)
                finally:
                    self._current_handle = None
        finally:
            self._core.count_callbacks(ran)

    # The native core (_core.c) hands an iteration's ready callbacks over by
    # this name when debug mode turns on mid-iteration.
    _run_ready_debug = _run_ready_timed

    def _report_slow_dispatch(self, wrapper, kind, seconds):
        """process_timed: one libuv completion's dispatch (protocol code such as
        data_received) took at least the hook's threshold."""
        if self._slow_callback_hook is not None:
            self._call_slow_hook(_stats.dispatch_target(wrapper), seconds)

    def _call_slow_hook(self, handle, seconds):
        self._slow_callbacks += 1
        hook = self._slow_callback_hook
        try:
            hook(handle, seconds)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            context = {"message": f"Exception in the slow callback hook {hook!r}", "exception": exc}
            if isinstance(handle, _events.Handle):
                context["handle"] = handle
            elif _stats.is_transport(handle):
                context["transport"] = handle
            self.call_exception_handler(context)

    # --- observability (loop.stats(), set_slow_callback_hook) ------------------

    def stats(self):
        """A snapshot of the loop's counters (cumulative since it was created)
        and gauges: see docs/api.md, "Observability"."""
        (iterations, callbacks, idle_ns, busy_ns, max_busy_ns, received, sent,
         accepted) = self._core.stats()
        return _stats.LoopStats(
            iterations=iterations,
            callbacks=callbacks,
            idle_time=idle_ns / 1e9,
            busy_time=busy_ns / 1e9,
            slow_callbacks=self._slow_callbacks,
            max_callback_time=max_busy_ns / 1e9,
            bytes_received=received,
            bytes_sent=sent,
            connections_accepted=accepted,
            ready=len(self._ready),
            timers=len(self._scheduled) - self._timer_cancelled_count,
            handles=len(self._uv_handles),
            transports=self._count_transports(),
        )

    def _count_transports(self):
        """Transports that own an open (or closing) libuv handle, or a socket
        registered in _transports (the unix datagram transport has no handle)."""
        found = {id(t): t for t in list(self._transports.values()) if not t.is_closing()}
        for wrapper in list(self._uv_handles):
            owner = _stats.dispatch_target(wrapper)
            if _stats.is_transport(owner):
                found[id(owner)] = owner
        return len(found)

    def set_slow_callback_hook(self, hook, threshold=0.1):
        """Call ``hook(handle, seconds)`` after every callback (and every libuv
        completion's dispatch to a protocol) that ran for at least ``threshold``
        seconds, in any mode; ``None`` removes the hook.  What the hook raises
        goes to the exception handler.  While a hook is set, each callback is
        timed (one clock read per callback, as in debug mode)."""
        if hook is not None and not callable(hook):
            raise TypeError(f"hook must be a callable or None, not {type(hook).__name__}")
        threshold = _stats.check_threshold(threshold)
        self._slow_callback_hook = hook
        self._slow_hook_threshold = threshold
        self._timed = bool(self._debug) or hook is not None

    def _report_callback_error(self, handle, exc):
        """What Handle._run() reports when its callback raises."""
        try:
            callback = _format_helpers._format_callback_source(
                handle._callback, handle._args, debug=self._debug)
        except TypeError:  # 3.9-3.12: no debug argument
            callback = _format_helpers._format_callback_source(handle._callback, handle._args)
        context = {
            "message": f"Exception in callback {callback}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    # --- scheduling ----------------------------------------------------------

    def _check_thread(self):
        """In debug mode: the non-thread-safe API is used from the loop's thread."""
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError("Non-thread-safe operation invoked on an event loop other "
                               "than the current one")

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to run on the next iteration, after the
        callbacks already scheduled (FIFO).  Returns an asyncio.Handle."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._slow_handles:
            return self._call_soon_debug(callback, args, context)
        handle = _new_handle()
        handle._callback = callback
        handle._args = args
        handle._loop = self
        handle._context = _copy_context() if context is None else context
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle

    def _call_soon_debug(self, callback, args, context):
        self._check_thread()
        _check_callback(callback, "call_soon")
        handle = Handle(callback, args, self, context)
        if handle._source_traceback:
            # Drop this frame and call_soon's, so the traceback ends at the caller of
            # call_soon, as stdlib's (call_soon -> _call_soon -> Handle) does.
            del handle._source_traceback[-2:]
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), from any thread: wakes the loop if it sleeps."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            _check_callback(callback, "call_soon_threadsafe")
        if self._slow_handles:
            handle = Handle(callback, args, self, context)
            if handle._source_traceback:
                del handle._source_traceback[-1]
            self._ready.append(handle)
        else:
            # call_soon's fast path (it checks threads only in debug mode).
            handle = self.call_soon(callback, *args, context=context)
        self._core.wakeup()
        return handle

    def _write_to_self(self):
        # Name kept from asyncio: some libraries call it to wake the loop.
        self._core.wakeup()

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to run after ``delay`` seconds (by
        loop.time()).  Returns an asyncio.TimerHandle."""
        if delay is None and _compat.PY311:
            raise TypeError("delay must not be None")
        timer = self.call_at(self.time() + delay, callback, *args, context=context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        return timer

    def call_at(self, when, callback, *args, context=None):
        """Arrange for callback(*args) to run at loop time ``when``."""
        if when is None and _compat.PY311:
            # (Before 3.11, TimerHandle's own assertion rejects it.)
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            _check_callback(callback, "call_at")
        timer = TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _timer_handle_cancelled(self, handle):
        """TimerHandle.cancel() reports here; the heap is cleaned lazily."""
        if handle._scheduled:
            self._timer_cancelled_count += 1

    def _add_callback(self, handle):
        """Queue an existing Handle (readers, writers, signals)."""
        if not handle._cancelled:
            self._ready.append(handle)

    # --- futures and tasks ---------------------------------------------------

    def create_future(self):
        return _futures.Future(loop=self)

    def create_task(self, coro, *, name=None, context=None):
        """Schedule the execution of a coroutine; return a Task."""
        self._check_closed()
        if self._task_factory is None:
            if context is None:
                task = _tasks.Task(coro, loop=self, name=name)
            elif _compat.TASK_HAS_CONTEXT:
                task = _tasks.Task(coro, loop=self, name=name, context=context)
            else:
                raise TypeError("create_task() got an unexpected keyword argument 'context'")
            if task._source_traceback:
                del task._source_traceback[-1]
        else:
            if context is None:
                task = self._task_factory(self, coro)
            else:
                task = self._task_factory(self, coro, context=context)
            if name is not None:
                if _set_task_name is not None:
                    _set_task_name(task, name)  # 3.9-3.12: warns if the task has no set_name
                else:
                    task.set_name(name)
        return task

    def set_task_factory(self, factory):
        """Set the factory create_task() uses: factory(loop, coro[, context=])."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # --- debug ---------------------------------------------------------------

    def get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = enabled
        self._timed = bool(enabled) or self._slow_callback_hook is not None
        # call_soon's one check: debug mode, or Handle's slots not the known ones.
        self._slow_handles = bool(enabled) or not _FAST_HANDLES
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # --- exception handling --------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set handler(loop, context) as the loop's exception handler; None
        restores the default."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context with the 'asyncio' logger, as stdlib does."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        if ("source_traceback" not in context and self._current_handle is not None
                and self._current_handle._source_traceback):
            context["handle_traceback"] = self._current_handle._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in ("message", "exception"):
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n" + tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n" + tb.rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass ``context`` to the exception handler; never raises (but for
        SystemExit and KeyboardInterrupt)."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            ctx = None
            # 3.12+ runs the handler in the context of the failing task,
            # future or handle; 3.11 and older pass ``context`` on untouched.
            if _compat.PY312:
                thing = context.get("task")
                if thing is None:
                    thing = context.get("future")
                if thing is None:
                    thing = context.get("handle")
                if thing is not None and hasattr(thing, "get_context"):
                    ctx = thing.get_context()
            if ctx is not None and hasattr(ctx, "run"):
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler while handling an "
                             "unexpected error in custom exception handler", exc_info=True)

    # --- async generators and executors --------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(f"asynchronous generator {agen!r} was scheduled after "
                          f"loop.shutdown_asyncgens() call", ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every async generator still open on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[ag.aclose() for ag in closing], return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    "message": f"an error occurred during closing of asynchronous generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                })

    async def shutdown_default_executor(self, timeout=None):
        """Wait for the default executor's threads to finish (at most
        ``timeout`` seconds, Python 3.12+'s argument, accepted everywhere)."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            if timeout is None:
                await future
            else:
                await asyncio.wait_for(asyncio.shield(future), timeout)
        except _compat.TimeoutError:
            warnings.warn("The executor did not finishing joining "
                          f"its threads within {timeout} seconds.",
                          RuntimeWarning, stacklevel=2)
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in ``executor`` (default: a ThreadPoolExecutor)."""
        self._check_closed()
        if self._debug:
            _check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return _futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            if _compat.PY311:
                raise TypeError("executor must be ThreadPoolExecutor instance")
            warnings.warn("Using the default executor that is not an instance of "
                          "ThreadPoolExecutor is deprecated and will be prohibited "
                          "in Python 3.9", DeprecationWarning, 2)
        self._default_executor = executor

    # --- DNS -----------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo() on libuv's thread pool."""
        return await dns.getaddrinfo(self, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        """socket.getnameinfo() on libuv's thread pool."""
        return await dns.getnameinfo(self, sockaddr, flags)

    # --- file descriptor watching --------------------------------------------

    def _on_selector_ready(self, status, events):
        """libuv saw the selector readable: collect and queue the callbacks."""
        if self._closed:
            return
        for key, mask in self._selector.select(0):
            callbacks = key.data
            if mask & selectors.EVENT_READ and callbacks.reader is not None:
                if callbacks.reader._cancelled:
                    self._remove_reader(key.fd)
                else:
                    self._ready.append(callbacks.reader)
            if mask & selectors.EVENT_WRITE and callbacks.writer is not None:
                if callbacks.writer._cancelled:
                    self._remove_writer(key.fd)
                else:
                    self._ready.append(callbacks.writer)

    def _ensure_fd_no_transport(self, fd):
        fileno = fd
        if not isinstance(fileno, int):
            try:
                fileno = int(fileno.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fd!r}") from None
        transport = self._transports.get(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _add_watch(self, fd, callback, args, slot):
        self._check_closed()
        handle = Handle(callback, args, self, None)
        selector = self._selector
        try:
            key = selector.get_key(fd)
        except KeyError:
            callbacks = _FdCallbacks()
            setattr(callbacks, slot, handle)
            mask = selectors.EVENT_READ if slot == "reader" else selectors.EVENT_WRITE
            selector.register(fd, mask, callbacks)
        else:
            callbacks = key.data
            old = getattr(callbacks, slot)
            mask = selectors.EVENT_READ if slot == "reader" else selectors.EVENT_WRITE
            selector.modify(fd, key.events | mask, callbacks)
            setattr(callbacks, slot, handle)
            if old is not None:
                old.cancel()
        return handle

    def _remove_watch(self, fd, slot):
        if self.is_closed():
            return False
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            return False
        callbacks = key.data
        mask = selectors.EVENT_READ if slot == "reader" else selectors.EVENT_WRITE
        remaining = key.events & ~mask
        old = getattr(callbacks, slot)
        setattr(callbacks, slot, None)
        if remaining:
            self._selector.modify(fd, remaining, callbacks)
        else:
            self._selector.unregister(fd)
        if old is not None:
            old.cancel()
            return True
        return False

    def _add_reader(self, fd, callback, *args):
        return self._add_watch(fd, callback, args, "reader")

    def _remove_reader(self, fd):
        return self._remove_watch(fd, "reader")

    def _add_writer(self, fd, callback, *args):
        return self._add_watch(fd, callback, args, "writer")

    def _remove_writer(self, fd):
        return self._remove_watch(fd, "writer")

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever ``fd`` (int or object with fileno())
        is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd):
        """Stop watching ``fd`` for reading; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever ``fd`` is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd):
        """Stop watching ``fd`` for writing; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # --- signals -------------------------------------------------------------

    def _install_wakeup_fd(self):
        """While running in the main thread, signals write to our self-pipe, so
        a Ctrl-C wakes uv_run and Python's handler raises KeyboardInterrupt
        out of run_forever, as with stdlib."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            old = signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError):
            return
        if old != self._csock.fileno():
            self._old_wakeup_fd = old

    def _restore_wakeup_fd(self):
        old = self._old_wakeup_fd
        if old is None:
            return
        self._old_wakeup_fd = None
        if self._signal_handlers:
            # add_signal_handler() needs ours to stay.
            return
        try:
            signal.set_wakeup_fd(old)
        except (ValueError, OSError):
            pass

    def _read_from_self(self):
        while True:
            try:
                data = self._ssock.recv(4096)
                if not data:
                    break
            except InterruptedError:
                continue
            except BlockingIOError:
                break
            unhandled = bytearray()
            for signum in data:
                if signum:
                    if signum in self._signal_handlers:
                        self._handle_signal(signum)
                    else:
                        unhandled.append(signum)
            if unhandled:
                self._forward_signals(unhandled)

    def _forward_signals(self, signums):
        """Signal numbers that are not ours arrived on the wakeup fd we took
        over for this run: pass them on to the fd we replaced (another loop
        with handlers, say), so they are not lost."""
        old = self._old_wakeup_fd
        if old is None or old < 0:
            return
        try:
            os.write(old, bytes(signums))
        except OSError:
            pass

    def _handle_signal(self, sig):
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            self._ready.append(handle)

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) on the loop when signal ``sig`` arrives.  Main
        thread only; raises RuntimeError if the signal cannot be caught."""
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        try:
            # Raises ValueError outside the main thread.
            signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc)) from exc
        self._old_wakeup_fd = None  # ours stays while handlers exist
        handle = Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            # A no-op Python handler: the C-level handler writes the signal
            # number to the wakeup fd and the loop dispatches it.
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info("set_wakeup_fd(-1) failed: %s", nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from exc
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for ``sig``; True if there was one."""
        _check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from exc
            raise
        if not self._signal_handlers and not self.is_running():
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                logger.info("set_wakeup_fd(-1) failed: %s", exc)
        return True

    # --- stream transports and serving --------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        """A transport for a connected stream socket (TCP or unix); libuv
        adopts the descriptor and ``sock`` is detached."""
        return adopt_socket(self, sock, protocol, waiter, extra, server)

    # --- TLS upgrade ---------------------------------------------------------

    async def _start_tls(self, transport, protocol, sslcontext, server_side, server_hostname,
                         ssl_handshake_timeout, ssl_shutdown_timeout):
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        ssl_protocol = SSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname,
                                   ssl_handshake_timeout=ssl_handshake_timeout,
                                   ssl_shutdown_timeout=ssl_shutdown_timeout,
                                   call_connection_made=False)
        # Paused first, so no data reaches the TLS layer before its connection_made.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport

    if _compat.PY311:
        async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                            server_hostname=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None):
            """Upgrade ``transport`` to TLS; return the new transport, which
            ``protocol`` should use from now on."""
            return await self._start_tls(transport, protocol, sslcontext, server_side,
                                         server_hostname, ssl_handshake_timeout,
                                         ssl_shutdown_timeout)
    else:
        async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                            server_hostname=None, ssl_handshake_timeout=None):
            """Upgrade ``transport`` to TLS; return the new transport, which
            ``protocol`` should use from now on."""
            return await self._start_tls(transport, protocol, sslcontext, server_side,
                                         server_hostname, ssl_handshake_timeout, None)

