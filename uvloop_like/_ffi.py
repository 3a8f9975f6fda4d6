"""The compiled module's ``ffi``/``lib``, with every type realized up front.

cffi realizes C types lazily, the first time a function, constant or type
string is used, and that realization is not safe against two threads doing
it at once on every interpreter: PyPy, with several loops being created in
threads at the same moment, once handed ``ffi.new("uv_poll_t *")`` back as
a ``uv_handle_t *`` (tests/test_crash_safety.py, scenario
``loop_in_thread_closed_there``).  So everything is realized here, while
the import lock is held, and the rest of the package uses the ctype objects
below instead of type strings (which also skips a string lookup per call).
"""

from __future__ import annotations

import os
import sys

try:
    from ._uv import ffi, lib
except ImportError as _exc:
    # A source checkout on sys.path (the current directory, for ``python x.py``
    # or pytest run at its root) hides the installed package; say so, since
    # "No module named 'uvloop_like._uv'" does not.
    from ._missing import missing_extension_error

    _error = missing_extension_error(os.path.dirname(os.path.abspath(__file__)), sys.path)
    if _error is None:
        raise
    raise _error from _exc

for _name in dir(lib):
    getattr(lib, _name)
del _name

_t = ffi.typeof

HANDLE_P = _t("uv_handle_t *")
LOOP_P = _t("uv_loop_t *")
UVL_LOOP_P = _t("uvl_loop_t *")
UVL_STREAM_P = _t("uvl_stream_t *")
POLL_P = _t("uv_poll_t *")
REQ_P = _t("uv_req_t *")
WRITE_P = _t("uv_write_t *")
SHUTDOWN_P = _t("uv_shutdown_t *")
GETADDRINFO_P = _t("uv_getaddrinfo_t *")
GETNAMEINFO_P = _t("uv_getnameinfo_t *")
BUF_ARRAY = _t("uv_buf_t[]")
CHAR_ARRAY = _t("char[]")
INT_P = _t("int *")
UINT_P = _t("unsigned int *")
UDP_P = _t("uvl_udp_t *")
UDP_SEND_P = _t("uv_udp_send_t *")
PROCESS_P = _t("uv_process_t *")
CHARP_ARRAY = _t("char *[]")
UINTPTR = _t("uintptr_t")  # addresses handed to the native core (_coresel.py)
INT_ARRAY = _t("int[]")
FS_P = _t("uv_fs_t *")
SENDFILE_P = _t("uvl_sendfile_t *")
UINT64_P = _t("uint64_t *")

# Complete the structs now too (cffi fills in a struct's layout on first use).
for _ct in (
    HANDLE_P,
    UVL_LOOP_P,
    UVL_STREAM_P,
    POLL_P,
    REQ_P,
    WRITE_P,
    SHUTDOWN_P,
    GETADDRINFO_P,
    GETNAMEINFO_P,
    UDP_P,
    UDP_SEND_P,
    PROCESS_P,
    FS_P,
    SENDFILE_P,
):
    ffi.sizeof(_ct.item)
ffi.sizeof("uv_buf_t")
ffi.sizeof("uvl_event_t")
del _ct, _t

__all__ = ["ffi", "lib"]
