"""Fixtures of the reliability suite (the ``loop`` fixture comes from
tests/conftest.py: every test here runs on stdlib asyncio and on uvloop_like)."""
from __future__ import annotations

import os

import pytest

from ._util import FAMILIES, short_tmpdir


@pytest.fixture(params=FAMILIES)
def family(request):
    """"tcp" (127.0.0.1) or "unix"."""
    return request.param


@pytest.fixture
def sock_path():
    """A path for a unix socket, in a directory removed afterwards."""
    with short_tmpdir() as tmp:
        yield os.path.join(tmp, "s")
