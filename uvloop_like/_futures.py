"""Future helpers every part of the loop shares (one copy, not one per module)."""
from __future__ import annotations


def set_result_unless_cancelled(fut, result):
    """Resolve ``fut`` unless its waiter gave up (a cancelled future
    refuses set_result)."""
    if not fut.cancelled():
        fut.set_result(result)
