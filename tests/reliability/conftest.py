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


@pytest.fixture(scope="session")
def tls_ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca):
    return tls_ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def server_ctx(tls_server_cert):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(tls_ca):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls_ca.configure_trust(ctx)
    return ctx
