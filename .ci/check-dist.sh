#!/usr/bin/env bash
# `make check-dist`: the sdist is complete and installs with no network.
#
# 1. Copies the tree (committed and new files, as git sees them) to a
#    temporary directory, with vendor/libuv (fetched if needed).
# 2. Builds the sdist there and checks that it holds libuv's source, the C
#    helpers, the build scripts and every uvloop_like subpackage.
# 3. Installs the sdist into a fresh venv with the network fetch disabled: no
#    package index, LIBUV_SDIST pointing nowhere, and a dead proxy for urllib.
# 4. From outside the source tree, imports every module of the installed
#    package and runs a short smoke test on the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
TOOLS_VENV=${TOOLS_VENV:-.venv}

if [ ! -x "$TOOLS_VENV/bin/python" ]; then
    "$PYTHON" -m venv "$TOOLS_VENV"
fi
TOOLS_PY="$(cd "$TOOLS_VENV" && pwd)/bin/python"
"$TOOLS_PY" -m pip install -q 'setuptools>=64' wheel 'cffi>=1.15' build
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

echo "==== check-dist: python -m build --sdist"
(cd "$work/src" && "$TOOLS_PY" -m build --sdist --no-isolation --outdir "$work/dist" >"$work/sdist.log" 2>&1) \
    || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/dist/uvloop_like-*.tar.gz)
echo "built $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB)"

"$TOOLS_PY" - "$sdist" "$ROOT" <<'EOF'
import os, sys, tarfile

sdist, root = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
required = {
    "pyproject.toml", "setup.py", "build_ffi.py", "README.md", "MANIFEST.in",
    "vendor/fetch_libuv.py", "uvloop_like/_native/uvl.c",
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
print("sdist holds %d files, libuv's source among them" % len(names))
EOF

echo "==== check-dist: install the sdist into a fresh venv, with no network"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q 'setuptools>=64' wheel 'cffi>=1.15'
dead=http://127.0.0.1:9
(cd "$work" && env LIBUV_SDIST=/nonexistent/uvloop-0.23.0.tar.gz LIBUV_SOURCE= \
    http_proxy=$dead https_proxy=$dead HTTP_PROXY=$dead HTTPS_PROXY=$dead \
    "$work/venv/bin/python" -m pip install --no-index --no-build-isolation --no-deps "$sdist" \
    >"$work/install.log" 2>&1) || { cat "$work/install.log"; exit 1; }
echo "installed"

echo "==== check-dist: smoke test of the installed package"
(cd "$work" && "$work/venv/bin/python" - "$work/venv" <<'EOF'
import asyncio, importlib, os, pkgutil, socket, sys

import uvloop_like

venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(uvloop_like.__file__)
assert where.startswith(venv), "imported %s, not the installed copy" % where
for mod in pkgutil.walk_packages(uvloop_like.__path__, "uvloop_like."):
    importlib.import_module(mod.name)


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


print("smoke test on", sys.implementation.name, sys.version.split()[0], "libuv",
      uvloop_like.libuv_version() + ":", uvloop_like.run(main()))
EOF
)
echo "check-dist: ok"
