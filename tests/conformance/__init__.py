"""Runs CPython's own Lib/test/test_asyncio against uvloop_like (see README.md)."""
