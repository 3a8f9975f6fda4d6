# The cffi extension module built from build_ffi.py (PEP 561 stub): cffi's
# objects are dynamic, so they are typed as such.
from typing import Any

ffi: Any
lib: Any
