# cffi's setuptools integration is configured here; metadata is in pyproject.toml.
#
# Producing metadata (pip's metadata step, `python -m build --sdist`,
# `setup.py egg_info`) compiles nothing: build_ffi.py only names the libuv
# archive, and build_ext below builds it.  It does need vendor/libuv's
# licence files, which pyproject's license-files lists: an sdist carries the
# tree; a checkout fetches it first (vendor/fetch_libuv.py; nothing of
# libuv's is committed).
import os
import platform
import shlex
import shutil
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.errors import PlatformError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "vendor"))
import fetch_libuv  # noqa: E402

# One line, no traceback: what to install to build from source.
NO_COMPILER = (
    "uvloop_like: building from source needs a C compiler and the Python headers, "
    "and {missing} is missing: install them (Debian/Ubuntu: apt-get install gcc python3-dev; "
    "Fedora/RHEL: dnf install gcc python3-devel; Alpine: apk add build-base python3-dev), "
    "or install a prebuilt uvloop_like wheel"
)


def _check_toolchain():
    """Raise PlatformError (setuptools prints it as one "error:" line) when
    the compilers this build runs, or Python.h, are not there."""
    commands = [os.environ.get("CC") or "cc"]  # libuv's (build_ffi.build_static_libuv)
    if not os.environ.get("CC"):
        commands.append(sysconfig.get_config_var("CC") or "cc")  # the extension's
    for command in commands:
        words = shlex.split(command)
        if not words or shutil.which(words[0]) is None:
            raise PlatformError(NO_COMPILER.format(missing="the C compiler %r" % (words[0] if words else command)))
    include = sysconfig.get_paths().get("include") or ""
    if not os.path.exists(os.path.join(include, "Python.h")):
        raise PlatformError(NO_COMPILER.format(missing="Python.h (in %s)" % include))


class build_ext(_build_ext):
    """build_ext that first checks the toolchain and compiles libuv, and
    whose in-place copy (``pip install -e .``) replaces the module with a
    rename instead of rewriting the file: several venvs build in one tree
    (``make test-all``), and rewriting a shared object that a running
    process has mapped changes code under its feet."""

    def run(self):
        _check_toolchain()
        if os.environ.get("UVLOOP_LIKE_SYSTEM_LIBUV") != "1":
            sys.path.insert(0, HERE)
            import build_ffi

            build_ffi.build_static_libuv()
        super().run()

    def copy_file(self, infile, outfile, *args, **kwargs):
        if os.path.isdir(outfile):
            outfile = os.path.join(outfile, os.path.basename(infile))
        tmp = "%s.tmp-%d" % (outfile, os.getpid())
        try:
            result = super().copy_file(infile, tmp, *args, **kwargs)
            if os.path.exists(tmp):
                os.replace(tmp, outfile)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return outfile, result[1] if isinstance(result, tuple) else result


# The licence files pyproject lists are vendor/libuv's: fetch the tree (no
# compiling) before setuptools looks for them.
try:
    fetch_libuv.ensure(verbose=False)
except (fetch_libuv.FetchError, OSError) as exc:
    sys.exit("error: uvloop_like: cannot get libuv's source into vendor/libuv (%s); "
             "set LIBUV_SOURCE to a libuv %s tree or tarball, or build from the sdist"
             % (exc, fetch_libuv.LIBUV_VERSION))

# The optional native core (uvloop_like/_core.c, issue 9): CPython only, and
# optional: if it fails to compile, the package installs and runs on the
# Python core.
# A sanitizer build (make sanitize: UVLOOP_LIKE_SANITIZE) instruments it
# as it does libuv and uvl.c (build_ffi.sanitize_flags).
ext_modules = []
if platform.python_implementation() == "CPython":
    sanitize = []
    if os.environ.get("UVLOOP_LIKE_SANITIZE", "").strip():
        sys.path.insert(0, HERE)
        import build_ffi

        sanitize = build_ffi.sanitize_flags()
    ext_modules.append(Extension(
        "uvloop_like._core", ["uvloop_like/_core.c"], optional=True,
        extra_compile_args=["-Wall", "-Wextra", "-Wno-unused-parameter",
                            "-Wno-missing-field-initializers"] + sanitize,
        extra_link_args=sanitize))

setup(cmdclass={"build_ext": build_ext}, cffi_modules=["build_ffi.py:ffibuilder"],
      ext_modules=ext_modules)
