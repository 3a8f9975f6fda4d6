"""One module per libuv handle kind; the only code that calls ``lib.uv_*``."""
