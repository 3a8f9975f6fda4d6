"""pytest-asyncio running its tests on uvloop_like, the way a user configures it.

pytest-asyncio 1.4+ takes loop factories from the ``pytest_asyncio_loop_factories``
hook (and deprecates overriding ``event_loop_policy``); older versions (the ones
Python 3.9 gets) take an ``event_loop_policy`` fixture.  Either way every
``@pytest.mark.asyncio`` test here runs once on stdlib's loop and once on
uvloop_like's.
"""
from __future__ import annotations

import asyncio

import pytest

pytest_asyncio = pytest.importorskip("pytest_asyncio")
import uvloop_like  # noqa: E402

HAS_LOOP_FACTORIES = hasattr(pytest_asyncio.plugin, "PytestAsyncioSpecs")

LOOP_FACTORIES = {"asyncio": asyncio.new_event_loop, "uvloop_like": uvloop_like.new_event_loop}

if HAS_LOOP_FACTORIES:
    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(config, item):
        return LOOP_FACTORIES
else:
    @pytest.fixture(scope="module", params=sorted(LOOP_FACTORIES))
    def event_loop_policy(request):
        if request.param == "asyncio":
            return asyncio.DefaultEventLoopPolicy()
        return uvloop_like.EventLoopPolicy()
