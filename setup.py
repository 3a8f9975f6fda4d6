# cffi's setuptools integration is configured here; metadata is in pyproject.toml.
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext as _build_ext


class build_ext(_build_ext):
    """build_ext whose in-place copy (``pip install -e .``) replaces the
    module with a rename instead of rewriting the file: several venvs build in
    one tree (``make test-all``), and rewriting a shared object that a running
    process has mapped changes code under its feet."""

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


setup(cmdclass={"build_ext": build_ext}, cffi_modules=["build_ffi.py:ffibuilder"])
