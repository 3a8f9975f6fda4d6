"""uvloop_like: a drop-in asyncio event loop on libuv, through cffi.

    import uvloop_like
    uvloop_like.run(main())                                   # like asyncio.run
    asyncio.Runner(loop_factory=uvloop_like.new_event_loop)   # 3.11+
    uvloop_like.install()                                     # set the policy
"""
from __future__ import annotations

import asyncio
import sys
from asyncio import events as _events
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Optional, TypeVar

from ._coresel import core
from .handles.core import libuv_version as _libuv_version
from .loop import Loop
from .stats import LoopStats

__version__ = "0.1.0"
__all__ = ["Loop", "new_event_loop", "EventLoopPolicy", "install", "run", "libuv_version", "core", "LoopStats"]


def libuv_version() -> str:
    """The version of the libuv linked into uvloop_like, e.g. "1.52.1"."""
    version: str = _libuv_version()
    return version


def new_event_loop() -> Loop:
    """Return a new uvloop_like event loop."""
    return Loop()


# The platform's default policy (on Unix, with the child-watcher API that
# code written for stdlib still calls: get/set_child_watcher).  Our loop's
# subprocesses do not need a watcher; one that is set is simply not used.
if TYPE_CHECKING:
    _BasePolicy = asyncio.DefaultEventLoopPolicy
else:
    _BasePolicy = getattr(asyncio, "DefaultEventLoopPolicy", _events.BaseDefaultEventLoopPolicy)

_T = TypeVar("_T")


class EventLoopPolicy(_BasePolicy):
    """An asyncio event loop policy whose loops are uvloop_like loops.

        asyncio.set_event_loop_policy(uvloop_like.EventLoopPolicy())
    """

    _loop_factory = Loop

    def __repr__(self) -> str:
        return "<uvloop_like.EventLoopPolicy>"


def install() -> None:
    """Make uvloop_like the loop asyncio creates (sets the event loop policy)."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception during asyncio.run() shutdown",
                "exception": task.exception(),
                "task": task,
            })


def run(
    main: Coroutine[Any, Any, _T],
    *,
    loop_factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = new_event_loop,
    debug: Optional[bool] = None,
    **run_kwargs: Any,
) -> _T:
    """Run coroutine ``main`` on a new uvloop_like loop and return its result,
    as ``asyncio.run`` does (it cancels leftover tasks, finalizes async
    generators, shuts the default executor down, then closes the loop)."""
    # sys.version_info, not _compat's flags: type checkers narrow on it.
    if sys.version_info >= (3, 12):
        return asyncio.run(main, loop_factory=loop_factory, debug=debug, **run_kwargs)
    if run_kwargs:
        raise TypeError("run() got an unexpected keyword argument %r" % next(iter(run_kwargs)))
    # Checked first, as asyncio.run does: Runner would create a loop and then
    # fail in its cleanup with a less helpful error.
    if _events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            return runner.run(main)
    # 3.9 / 3.10: asyncio.run has no loop_factory; do what it does.
    if not asyncio.iscoroutine(main):
        raise ValueError("a coroutine was expected, got {!r}".format(main))
    loop = loop_factory() if loop_factory is not None else asyncio.new_event_loop()
    try:
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
