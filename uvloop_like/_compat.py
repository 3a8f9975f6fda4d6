"""Version differences between CPython 3.9-3.13 and PyPy, in one place."""
from __future__ import annotations

import asyncio
import platform
import sys

PY310 = sys.version_info >= (3, 10)
PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PYPY = platform.python_implementation() == "PyPy"

# Task(..., context=) exists from 3.11.
TASK_HAS_CONTEXT = PY311

if PY311:
    TimeoutError = TimeoutError  # noqa: A001 - asyncio.TimeoutError is the builtin from 3.11
else:  # pragma: no cover - 3.9/3.10
    TimeoutError = asyncio.TimeoutError  # noqa: A001

try:
    from asyncio import exceptions as _aio_exceptions

    SendfileNotAvailableError = _aio_exceptions.SendfileNotAvailableError
except (ImportError, AttributeError):  # pragma: no cover
    SendfileNotAvailableError = asyncio.SendfileNotAvailableError
