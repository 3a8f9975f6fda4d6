"""Tests of asyncio frameworks' plugins (pytest-asyncio) on uvloop_like."""
