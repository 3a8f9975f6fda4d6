"""Fetch the pinned libuv source tree into vendor/libuv/ (never committed).

libuv 1.52.1 is taken from a registry package: the uvloop 0.23.0 source
distribution on PyPI carries libuv's release tree under
``uvloop-0.23.0/vendor/libuv/``.  Only that tree is extracted, after the
archive's sha256 has been checked.

Other sources:
  LIBUV_SOURCE=/path/to/libuv            a libuv source directory
  LIBUV_SOURCE=/path/to/libuv-v1.52.1.tar.gz   a libuv release tarball
  LIBUV_SDIST=/path/to/uvloop-0.23.0.tar.gz    the sdist, already downloaded

Run as a script (``python vendor/fetch_libuv.py``) or call ``ensure()``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

LIBUV_VERSION = "1.52.1"
SDIST_NAME = "uvloop-0.23.0.tar.gz"
SDIST_SHA256 = "28d160f51ab4da3b187063652e643dea6831072add4adc1e6d62afbe73b6be27"
SDIST_PREFIX = "uvloop-0.23.0/vendor/libuv/"

HERE = os.path.dirname(os.path.abspath(__file__))
DEST = os.path.join(HERE, "libuv")
CACHE = os.path.join(HERE, ".cache")


class FetchError(RuntimeError):
    pass


def tree_version(path: str) -> str | None:
    """Return "X.Y.Z" from a libuv tree's include/uv/version.h, or None."""
    header = os.path.join(path, "include", "uv", "version.h")
    try:
        with open(header) as f:
            text = f.read()
    except OSError:
        return None
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"#define UV_VERSION_%s (\d+)" % part, text)
        if m is None:
            return None
        parts.append(m.group(1))
    return ".".join(parts)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _index_urls() -> list[str]:
    urls = []
    for var in ("PIP_INDEX_URL", "UV_INDEX_URL"):
        if os.environ.get(var):
            urls.append(os.environ[var].rstrip("/"))
    urls.append("https://pypi.org/simple")
    return urls


def _download_from_index(target: str) -> bool:
    """Find the sdist in a PEP 503 simple index and download it."""
    for base in _index_urls():
        if not base.startswith(("http://", "https://")):
            continue
        try:
            with urllib.request.urlopen(base + "/uvloop/", timeout=60) as r:
                page = r.read().decode("utf-8", "replace")
            hrefs = re.findall(r'href="([^"]+)"', page)
            hrefs = [h for h in hrefs if h.split("#")[0].endswith("/" + SDIST_NAME) or h.split("#")[0] == SDIST_NAME]
            if not hrefs:
                continue
            url = urllib.parse.urljoin(base + "/uvloop/", hrefs[0].split("#")[0])
            print("fetch_libuv: downloading %s" % url, file=sys.stderr)
            with urllib.request.urlopen(url, timeout=300) as r, open(target + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(target + ".part", target)
            return True
        except OSError as exc:
            print("fetch_libuv: %s: %s" % (base, exc), file=sys.stderr)
    return False


def _download_with_pip(target: str) -> bool:
    tmp = tempfile.mkdtemp(prefix="uvl-sdist-")
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "uvloop==0.23.0", "-d", tmp]
        print("fetch_libuv: " + " ".join(cmd), file=sys.stderr)
        if subprocess.call(cmd) != 0:
            return False
        src = os.path.join(tmp, SDIST_NAME)
        if not os.path.exists(src):
            return False
        shutil.move(src, target)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _obtain_sdist() -> str:
    given = os.environ.get("LIBUV_SDIST")
    if given:
        if not os.path.isfile(given):
            raise FetchError("LIBUV_SDIST=%s is not a file" % given)
        path = given
    else:
        os.makedirs(CACHE, exist_ok=True)
        path = os.path.join(CACHE, SDIST_NAME)
        if not os.path.exists(path) and not (_download_from_index(path) or _download_with_pip(path)):
            raise FetchError(
                "could not download %s (libuv %s source). Download it yourself with\n"
                "  pip download --no-deps --no-binary :all: uvloop==0.23.0\n"
                "and set LIBUV_SDIST=<path>, or set LIBUV_SOURCE=<libuv source directory or release "
                "tarball>." % (SDIST_NAME, LIBUV_VERSION))
    digest = _sha256(path)
    if digest != SDIST_SHA256:
        raise FetchError(
            "checksum mismatch for %s:\n  expected %s\n  got      %s\n"
            "Delete the file and run again, or point LIBUV_SDIST at a good copy."
            % (path, SDIST_SHA256, digest))
    return path


def _safe_members(tar: tarfile.TarFile, prefix: str):
    for member in tar.getmembers():
        name = member.name
        if not name.startswith(prefix) or name == prefix.rstrip("/"):
            continue
        rel = name[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        top = rel.split("/")[0]
        if top in (".git", ".github", "docs", "test", "autom4te.cache"):
            continue
        if not (member.isfile() or member.isdir()):
            continue
        member.name = rel
        yield member


def _extract(tar_path: str, prefix: str | None, dest: str) -> None:
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tar_path) as tar:
        if prefix is None:
            # A libuv release tarball: one top-level directory holding the tree.
            tops = {m.name.split("/")[0] for m in tar.getmembers() if m.name}
            if len(tops) != 1:
                raise FetchError("%s is not a libuv release tarball" % tar_path)
            prefix = tops.pop() + "/"
        tar.extractall(tmp, members=list(_safe_members(tar, prefix)))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def ensure(verbose: bool = True) -> str:
    """Make sure vendor/libuv holds libuv LIBUV_VERSION; return its path."""
    if tree_version(DEST) == LIBUV_VERSION and os.path.isdir(os.path.join(DEST, "src")):
        return DEST
    source = os.environ.get("LIBUV_SOURCE")
    if source:
        if os.path.isdir(source) and os.path.realpath(source) == os.path.realpath(DEST):
            pass  # already in place: only the version check below applies
        elif os.path.isdir(source):
            shutil.rmtree(DEST, ignore_errors=True)
            shutil.copytree(source, DEST, ignore=shutil.ignore_patterns(".git", "test", "docs"))
        elif os.path.isfile(source):
            _extract(source, None, DEST)
        else:
            raise FetchError("LIBUV_SOURCE=%s is neither a directory nor a file" % source)
    else:
        _extract(_obtain_sdist(), SDIST_PREFIX, DEST)
    found = tree_version(DEST)
    if found != LIBUV_VERSION:
        raise FetchError("vendor/libuv holds libuv %s, expected %s" % (found, LIBUV_VERSION))
    if verbose:
        print("fetch_libuv: libuv %s ready in %s" % (found, DEST), file=sys.stderr)
    return DEST


if __name__ == "__main__":
    try:
        ensure()
    except FetchError as exc:
        sys.exit("fetch_libuv: error: %s" % exc)
