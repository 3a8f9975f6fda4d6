"""Out of descriptors while accepting: the server reports it, stops accepting
for a second, then serves the waiting client, as stdlib does (libuv's own
accept would take the connection and drop it instead).  Run in a child
process, since it lowers RLIMIT_NOFILE."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import asyncio, os, resource, socket, sys
    if sys.argv[1] == "uvloop_like":
        import uvloop_like
        loop = uvloop_like.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(ctx.get("message")))

    class Echo(asyncio.Protocol):
        def connection_made(self, t):
            self.t = t
        def data_received(self, d):
            self.t.write(d)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = socket.socket()
        client.setblocking(False)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        hog = []
        try:
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        await asyncio.sleep(0.3)      # accept() fails with EMFILE meanwhile
        # stdlib reports every failed accept() of the batch (up to backlog
        # times); uvloop_like stops at the first and reports once.
        assert errors and set(errors) == {"socket.accept() out of system resource"}, errors
        if sys.argv[1] == "uvloop_like":
            assert len(errors) == 1, errors
        reported = len(errors)
        for fd in hog:
            os.close(fd)
        await asyncio.sleep(1.3)      # the retry after the one-second back-off
        await loop.sock_sendall(client, b"ping")
        assert await asyncio.wait_for(loop.sock_recv(client, 4), 5) == b"ping"
        client.close()
        server.close()
        await server.wait_closed()
        assert len(errors) == reported, errors   # nothing more after the back-off

    loop.run_until_complete(main())
    loop.close()
    print("OK")
''')


@pytest.mark.parametrize("which", ["asyncio", "uvloop_like"])
def test_accept_backs_off_when_out_of_descriptors(which):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, which], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
