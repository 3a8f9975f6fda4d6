"""Future helpers every part of the loop shares (one copy, not one per module)."""
from __future__ import annotations


def settler(loop, fut):
    """The callback of a request that ends with one result: settle ``fut``
    with it (an exception instance is set as its exception), unless the
    loop closed or the awaiting coroutine gave up (cancelled) meanwhile."""
    def settle(result):
        if fut.done() or loop.is_closed():
            return
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
    return settle


def set_result_unless_cancelled(fut, result):
    """Resolve ``fut`` unless its waiter gave up (a cancelled future
    refuses set_result)."""
    if not fut.cancelled():
        fut.set_result(result)
