"""connect_read_pipe / connect_write_pipe: the Loop's pipe entry points.

The transports live in transports/pipe.py (libuv's uv_pipe_t through
handles/stream.py); see there for who owns which descriptor."""
from __future__ import annotations

import logging

from .transports.pipe import ReadPipeTransport, WritePipeTransport

logger = logging.getLogger("asyncio")


class PipeMixin:
    """Loop methods for pipes, FIFOs, sockets and character devices."""

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return WritePipeTransport(self, pipe, protocol, waiter, extra)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Register the read end of ``pipe`` (a file-like object with
        fileno()); return (transport, protocol) once connection_made has run."""
        return await self._connect_pipe(self._make_read_pipe_transport, "Read", protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Register the write end of ``pipe``; return (transport, protocol)
        once connection_made has run."""
        return await self._connect_pipe(self._make_write_pipe_transport, "Write", protocol_factory, pipe)

    async def _connect_pipe(self, make_transport, direction, protocol_factory, pipe):
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = make_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self._debug:
            logger.debug("%s pipe %r connected: (%r, %r)", direction, pipe.fileno(), transport, protocol)
        return transport, protocol
