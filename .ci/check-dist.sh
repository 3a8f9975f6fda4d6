#!/usr/bin/env bash
# `make check-dist`: the sdist is complete and installs with no network.
#
# 1. Copies the tree (committed and new files, as git sees them) to a
#    temporary directory, with vendor/libuv (fetched if needed).
# 2. Builds the sdist there and checks that it holds libuv's source, the C
#    helpers, the build scripts and every uvloop_like subpackage.
# 3. Installs the sdist into a fresh venv with the network fetch disabled: no
#    package index, LIBUV_SDIST pointing nowhere, and a dead proxy for urllib.
#    Before that, with no C compiler on PATH: `pip install --dry-run` of the
#    sdist works (metadata compiles nothing) and `pip install` stops with
#    setup.py's one-line "needs a C compiler" error, no traceback.
# 4. From outside the source tree, imports every module of the installed
#    package and runs a short smoke test on the installed copy.
# The sdist is built with no compiler on PATH either.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
TOOLS_VENV=${TOOLS_VENV:-.venv}

if [ ! -x "$TOOLS_VENV/bin/python" ]; then
    "$PYTHON" -m venv "$TOOLS_VENV"
fi
TOOLS_PY="$(cd "$TOOLS_VENV" && pwd)/bin/python"
"$TOOLS_PY" -m pip install -q 'setuptools>=77' wheel 'cffi>=1.15' build
"$PYTHON" vendor/fetch_libuv.py

work=$(mktemp -d /tmp/uvloop_like-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/dist"

echo "==== check-dist: copy of the tree in $work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | grep -zv '^\.venv' \
        | tar --null -cf - -T - | tar -xf - -C "$work/src"
else
    tar --exclude='./.venv*' --exclude=./build --exclude=./vendor/libuv -cf - . | tar -xf - -C "$work/src"
fi
cp -r vendor/libuv "$work/src/vendor/libuv"

# A PATH with no C compiler (nor anything else): what a user without one has.
mkdir -p "$work/no-compiler-bin"
NOCC_PATH="$work/no-compiler-bin"

echo "==== check-dist: python -m build --sdist (no compiler on PATH)"
(cd "$work/src" && env PATH="$NOCC_PATH" "$TOOLS_PY" -m build --sdist --no-isolation --outdir "$work/dist" >"$work/sdist.log" 2>&1) \
    || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/dist/uvloop_like-*.tar.gz)
echo "built $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB)"

"$TOOLS_PY" - "$sdist" "$ROOT" <<'EOF'
import os, sys, tarfile

sdist, root = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
required = {
    "pyproject.toml", "setup.py", "build_ffi.py", "README.md", "MANIFEST.in", "LICENSE", "PKG-INFO",
    "vendor/libuv/LICENSE-extra", "uvloop_like/py.typed", "uvloop_like/loop.pyi", "uvloop_like/_uv.pyi",
    "vendor/fetch_libuv.py", "uvloop_like/_native/uvl.c", "uvloop_like/_core.c",
    "uvloop_like/_native/uvl_core_api.h",
    "vendor/libuv/LICENSE", "vendor/libuv/include/uv.h", "vendor/libuv/include/uv/version.h",
    "vendor/libuv/src/unix/core.c", "vendor/libuv/src/unix/linux.c", "vendor/libuv/src/uv-common.c",
}
# Every Python file of the package, as it is in the tree.
for dirpath, dirnames, filenames in os.walk(os.path.join(root, "uvloop_like")):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for f in filenames:
        if f.endswith(".py"):
            required.add(os.path.relpath(os.path.join(dirpath, f), root))
missing = sorted(required - names)
if missing:
    sys.exit("check-dist: the sdist lacks:\n  " + "\n  ".join(missing))
stray = sorted(n for n in names if n.endswith((".so", ".o", ".a")))
if stray:
    sys.exit("check-dist: the sdist holds build products:\n  " + "\n  ".join(stray))
with tarfile.open(sdist) as tar:
    top = tar.getnames()[0].split("/", 1)[0]
    pkg_info = tar.extractfile(top + "/PKG-INFO").read().decode()
for line in ("License-Expression: MIT AND ISC AND BSD-2-Clause", "License-File: LICENSE",
             "License-File: vendor/libuv/LICENSE", "License-File: vendor/libuv/LICENSE-extra",
             "Classifier: Typing :: Typed"):
    if line not in pkg_info.splitlines():
        sys.exit("check-dist: PKG-INFO lacks %r" % line)
print("sdist holds %d files, libuv's source and both licences among them" % len(names))
EOF

echo "==== check-dist: install the sdist into a fresh venv, with no network"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q 'setuptools>=77' wheel 'cffi>=1.15'
dead=http://127.0.0.1:9

echo "---- no compiler on PATH: metadata works, the build stops with one line"
(cd "$work" && env PATH="$NOCC_PATH" "$work/venv/bin/python" -m pip install --dry-run --no-index \
    --no-build-isolation --no-deps "$sdist" >"$work/dry-run.log" 2>&1) \
    || { cat "$work/dry-run.log"; echo "check-dist: pip install --dry-run failed with no compiler"; exit 1; }
if (cd "$work" && env PATH="$NOCC_PATH" "$work/venv/bin/python" -m pip install --no-index \
        --no-build-isolation --no-deps "$sdist" >"$work/nocc.log" 2>&1); then
    echo "check-dist: the sdist installed with no compiler on PATH?"; exit 1
fi
if ! grep -q "error: uvloop_like: building from source needs a C compiler" "$work/nocc.log" \
        || grep -q "Traceback" "$work/nocc.log"; then
    cat "$work/nocc.log"; echo "check-dist: no one-line compiler error (or a traceback) above"; exit 1
fi
grep -o "error: uvloop_like: building from source needs a C compiler.*" "$work/nocc.log" | head -n 1
(cd "$work" && env LIBUV_SDIST=/nonexistent/uvloop-0.23.0.tar.gz LIBUV_SOURCE= \
    http_proxy=$dead https_proxy=$dead HTTP_PROXY=$dead HTTPS_PROXY=$dead \
    "$work/venv/bin/python" -m pip install --no-index --no-build-isolation --no-deps "$sdist" \
    >"$work/install.log" 2>&1) || { cat "$work/install.log"; exit 1; }
echo "installed"

echo "==== check-dist: smoke test of the installed package"
(cd "$work" && "$work/venv/bin/python" - "$work/venv" <<'EOF'
import asyncio, importlib, importlib.util, os, pkgutil, socket, sys

import uvloop_like

venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(uvloop_like.__file__)
assert where.startswith(venv), "imported %s, not the installed copy" % where
# Optional integrations need their framework: without it, a clear ImportError.
OPTIONAL = {"uvloop_like.gunicorn": "gunicorn"}
for mod in pkgutil.walk_packages(uvloop_like.__path__, "uvloop_like."):
    try:
        importlib.import_module(mod.name)
    except ImportError as exc:
        needs = OPTIONAL.get(mod.name)
        if needs is None or importlib.util.find_spec(needs) is not None or "pip install %s" % needs not in str(exc):
            raise


async def main():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop_like.Loop)
    await asyncio.sleep(0.01)
    assert await loop.run_in_executor(None, sum, [1, 2]) == 3
    infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert infos[0][4] == ("127.0.0.1", 80), infos

    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    try:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
    except NotImplementedError:
        return "no TCP servers yet"
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
        await writer.wait_closed()
    return "TCP echo ok"


# Built from the sdist, CPython gets the native core (the default there).
if sys.implementation.name == "cpython":
    assert uvloop_like.core() == "native", uvloop_like.core()
print("smoke test on", sys.implementation.name, sys.version.split()[0], "libuv",
      uvloop_like.libuv_version() + ",", uvloop_like.core(), "core:", uvloop_like.run(main()))
EOF
)
echo "check-dist: ok"
