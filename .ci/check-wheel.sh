#!/usr/bin/env bash
# `make check-wheel`: the manylinux wheel installs and works with no compiler.
#
# 1. Builds it (.ci/build-wheel.sh) unless WHEEL names one.
# 2. Checks it: manylinux_2_28 or older by auditwheel, uvloop_like's and
#    libuv's licences in .dist-info/licenses, py.typed, no C source needed.
# 3. Installs it into a fresh venv with no C compiler on PATH and CC=/bin/false
#    (cffi comes as a wheel too: --only-binary), then, from outside the tree,
#    runs a smoke test on the installed copy: TCP echo, TLS echo, a
#    subprocess (with a cwd of its own), DNS, an executor call.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ -z "${WHEEL:-}" ]; then
    pathfile=$(mktemp /tmp/uvloop_like-wheel-path.XXXXXX)
    WHEEL_PATH_FILE=$pathfile bash .ci/build-wheel.sh
    WHEEL=$(cat "$pathfile")
    rm -f "$pathfile"
fi
work=$(mktemp -d /tmp/uvloop_like-check-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==== check-wheel: $WHEEL"
AUDIT_BIN=$(bash .ci/auditwheel-venv.sh)
tag=$(PATH="$AUDIT_BIN:$PATH" "$AUDIT_BIN/python" -m auditwheel show "$WHEEL" 2>/dev/null \
      | tr -s ' \n' ' ' | grep -oE 'consistent with the following platform tag: "[^"]+"' | grep -oE '"[^"]+"' | tr -d '"')
echo "auditwheel: $tag"
"$AUDIT_BIN/python" - "$WHEEL" "$tag" <<'PYEOF'
import re, sys, zipfile

wheel, tag = sys.argv[1], sys.argv[2]
m = re.match(r"manylinux_(\d+)_(\d+)_", tag) or re.match(r"manylinux(2014)_", tag)
if m is None:
    sys.exit("check-wheel: auditwheel gives %r, not a manylinux tag" % tag)
glibc = (2, 17) if m.group(1) == "2014" else (int(m.group(1)), int(m.group(2)))
if glibc > (2, 28):
    sys.exit("check-wheel: needs glibc %d.%d, more than manylinux_2_28" % glibc)
names = zipfile.ZipFile(wheel).namelist()
need = ["licenses/LICENSE", "licenses/vendor/libuv/LICENSE", "licenses/vendor/libuv/LICENSE-extra"]
for suffix in need:
    if not any(n.endswith(".dist-info/" + suffix) for n in names):
        sys.exit("check-wheel: the wheel lacks .dist-info/%s" % suffix)
for n in ("uvloop_like/py.typed", "uvloop_like/loop.pyi", "uvloop_like/gunicorn.py"):
    if n not in names:
        sys.exit("check-wheel: the wheel lacks %s" % n)
if not any(re.match(r"uvloop_like/_uv\..*\.so$", n) for n in names):
    sys.exit("check-wheel: the wheel has no compiled module")
print("wheel: needs glibc %d.%d, has both licences, py.typed, %d files" % (glibc + (len(names),)))
PYEOF

# A certificate for the TLS echo, made here (trustme, in the auditwheel venv).
"$AUDIT_BIN/python" -m pip install -q 'trustme>=1.0'
"$AUDIT_BIN/python" - "$work" <<'PYEOF'
import sys, trustme

ca = trustme.CA()
cert = ca.issue_cert("localhost", "127.0.0.1")
cert.private_key_and_cert_chain_pem.write_to_path(sys.argv[1] + "/server.pem")
ca.cert_pem.write_to_path(sys.argv[1] + "/ca.pem")
PYEOF

echo "==== check-wheel: fresh venv, no compiler on PATH, CC=/bin/false"
"$PYTHON" -m venv "$work/venv"
mkdir -p "$work/empty"
nocc_env=(env PATH="$work/venv/bin:$work/empty" CC=/bin/false CXX=/bin/false)
for tool in cc gcc clang; do
    if "${nocc_env[@]}" bash -c "command -v $tool" >/dev/null 2>&1; then
        echo "check-wheel: $tool is still on PATH"; exit 1
    fi
done
(cd "$work" && "${nocc_env[@]}" "$work/venv/bin/python" -m pip install -q --only-binary=:all: "$OLDPWD/$WHEEL") \
    || { echo "check-wheel: the wheel did not install without a compiler"; exit 1; }

echo "==== check-wheel: smoke test of the installed wheel"
(cd "$work" && "${nocc_env[@]}" "$work/venv/bin/python" - "$work" <<'PYEOF'
import asyncio, os, socket, ssl, sys

import uvloop_like
from uvloop_like.handles import process

work = os.path.realpath(sys.argv[1])
# Descriptors inherited from the caller (a CI runner's) would send the child
# down the Popen path (close_fds is honoured exactly): the smoke test wants
# uvloop_like's own spawn.
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        if fd > 2 and os.get_inheritable(fd):
            os.set_inheritable(fd, False)
    except OSError:
        pass
where = os.path.realpath(uvloop_like.__file__)
assert where.startswith(os.path.join(work, "venv")), "imported %s, not the installed wheel" % where


async def echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def round_trip(ssl_server=None, ssl_client=None):
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ssl_server)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_client, server_hostname="localhost" if ssl_client else None)
        writer.write(b"ping\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
    return line


async def main():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop_like.Loop)
    results = []
    assert await round_trip() == b"ping\n"
    results.append("TCP echo")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(os.path.join(work, "server.pem"))
    client_ctx = ssl.create_default_context(cafile=os.path.join(work, "ca.pem"))
    assert await round_trip(server_ctx, client_ctx) == b"ping\n"
    results.append("TLS echo")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os, sys; print(os.getcwd()); sys.exit(3)",
        cwd=work, stdout=asyncio.subprocess.PIPE)
    kind = type(getattr(proc._transport._proc, "_handle", proc._transport._proc)).__name__
    out, _ = await proc.communicate()
    assert (proc.returncode, out.decode().strip()) == (3, work), (proc.returncode, out)
    results.append("subprocess (%s)" % kind)
    infos = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert infos, infos
    assert await loop.run_in_executor(None, sum, [1, 2]) == 3
    results.append("DNS, executor")
    return ", ".join(results)


# The wheel carries the native core, and CPython runs it by default.
if sys.implementation.name == "cpython":
    assert uvloop_like.core() == "native", uvloop_like.core()
print("smoke test on", sys.implementation.name, sys.version.split()[0], "libuv", uvloop_like.libuv_version(),
      uvloop_like.core(), "core,",
      "posix_spawn" if process.POSIX_SPAWN else "uv_spawn only",
      "(cwd too)" if process.POSIX_SPAWN_CHDIR else "", ":", uvloop_like.run(main()))
PYEOF
)
echo "check-wheel: ok"
