"""Types of uvloop_like.loop (PEP 561 stub): what type checkers see.

Loop implements every AbstractEventLoop method with asyncio's semantics, so
each one here is an alias of AbstractEventLoop's own: the type checker uses
typeshed's signature for the Python version it checks against, and Loop is
concrete (not abstract) to it.  Keep the list to AbstractEventLoop's public
methods plus Loop's own public API.
"""

import asyncio
from typing import Any, Callable, Optional

from .stats import LoopStats

_A = asyncio.AbstractEventLoop

class Loop(asyncio.AbstractEventLoop):
    """An asyncio event loop on libuv."""

    slow_callback_duration: float

    def __init__(self) -> None: ...
    # Loop's own (docs/api.md, "Observability").
    def stats(self) -> LoopStats: ...
    def set_slow_callback_hook(self, hook: Optional[Callable[[Any, float], object]],
                               threshold: float = 0.1) -> None: ...
    add_reader = _A.add_reader
    add_signal_handler = _A.add_signal_handler
    add_writer = _A.add_writer
    call_at = _A.call_at
    call_exception_handler = _A.call_exception_handler
    call_later = _A.call_later
    call_soon = _A.call_soon
    call_soon_threadsafe = _A.call_soon_threadsafe
    close = _A.close
    connect_accepted_socket = _A.connect_accepted_socket
    connect_read_pipe = _A.connect_read_pipe
    connect_write_pipe = _A.connect_write_pipe
    create_connection = _A.create_connection
    create_datagram_endpoint = _A.create_datagram_endpoint
    create_future = _A.create_future
    create_server = _A.create_server
    create_task = _A.create_task
    create_unix_connection = _A.create_unix_connection
    create_unix_server = _A.create_unix_server
    default_exception_handler = _A.default_exception_handler
    get_debug = _A.get_debug
    get_exception_handler = _A.get_exception_handler
    get_task_factory = _A.get_task_factory
    getaddrinfo = _A.getaddrinfo
    getnameinfo = _A.getnameinfo
    is_closed = _A.is_closed
    is_running = _A.is_running
    remove_reader = _A.remove_reader
    remove_signal_handler = _A.remove_signal_handler
    remove_writer = _A.remove_writer
    run_forever = _A.run_forever
    run_in_executor = _A.run_in_executor
    run_until_complete = _A.run_until_complete
    sendfile = _A.sendfile
    set_debug = _A.set_debug
    set_default_executor = _A.set_default_executor
    set_exception_handler = _A.set_exception_handler
    set_task_factory = _A.set_task_factory
    shutdown_asyncgens = _A.shutdown_asyncgens
    shutdown_default_executor = _A.shutdown_default_executor
    sock_accept = _A.sock_accept
    sock_connect = _A.sock_connect
    sock_recv = _A.sock_recv
    sock_recv_into = _A.sock_recv_into
    sock_recvfrom = _A.sock_recvfrom
    sock_recvfrom_into = _A.sock_recvfrom_into
    sock_sendall = _A.sock_sendall
    sock_sendfile = _A.sock_sendfile
    sock_sendto = _A.sock_sendto
    start_tls = _A.start_tls
    stop = _A.stop
    subprocess_exec = _A.subprocess_exec
    subprocess_shell = _A.subprocess_shell
    time = _A.time
