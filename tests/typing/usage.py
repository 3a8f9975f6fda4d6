"""Checked with ``mypy --strict`` (make lint, tests/test_packaging.py): the
public API as typed users call it.  Not collected by pytest (no test_ name)."""
from __future__ import annotations

import asyncio
import sys

import uvloop_like


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def main() -> int:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop_like.Loop)
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    when: float = loop.time()
    loop.call_later(0.0, print, when)
    return port


def use_loop() -> str:
    loop: uvloop_like.Loop = uvloop_like.new_event_loop()
    try:
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_result, "done")
        result: str = loop.run_until_complete(future)
        threshold: float = loop.slow_callback_duration
        assert threshold >= 0
    finally:
        loop.close()
    return result


def entry() -> None:
    port: int = uvloop_like.run(main())
    print(port, uvloop_like.run(main(), debug=True), use_loop())
    version: str = uvloop_like.libuv_version()
    policy: asyncio.AbstractEventLoopPolicy = uvloop_like.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    uvloop_like.install()
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop_like.new_event_loop) as runner:
            runner.run(main())
    print(version)


def gunicorn_workers() -> list[str]:
    from uvloop_like.gunicorn import AiohttpWorker, UvicornWorker

    class H11Worker(UvicornWorker):
        CONFIG_KWARGS = {"http": "h11"}

    return [AiohttpWorker.__name__, H11Worker.__name__]
