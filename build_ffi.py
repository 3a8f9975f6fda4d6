"""cffi build script (API / out-of-line mode) for uvloop_like._uv.

libuv is compiled from the vendored, pinned source tree (vendor/libuv/,
fetched by vendor/fetch_libuv.py) into a static archive that is linked into
the extension module: there is no runtime dependency on a system libuv.

Distro packagers may opt into a system libuv instead:
    UVLOOP_LIKE_SYSTEM_LIBUV=1 pip install .
which uses pkg-config and needs libuv >= SYSTEM_LIBUV_MIN.

The cdef below is declarations only, grouped by libuv area.  The C helpers it
declares live in uvloop_like/_native/uvl.c.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "vendor"))
import fetch_libuv  # noqa: E402

# 1.45.0 ("unix: remove busy loop from uv_async_send"): closing a uv_async_t
# leaves its pending flag set, which uvl_wakeup() relies on to be safe after
# the loop is closed.  With 1.44.2 (Debian 12's libuv1-dev) a
# call_soon_threadsafe() racing close() aborts in uv__async_send.
# 1.52.0: uv_udp_open_ex (adopting a UDP socket without setting SO_REUSEADDR
# on it, transports/datagram.py) first appears there.
SYSTEM_LIBUV_MIN = "1.52.0"

# --- cdef: libuv, grouped by area ------------------------------------------

CDEF_VERSION_ERRORS = """
unsigned int uv_version(void);
const char* uv_version_string(void);
const char* uv_err_name(int err);
const char* uv_strerror(int err);

#define UV_EOF ...
#define UV_EAGAIN ...
#define UV_ECANCELED ...
#define UV_ENOBUFS ...
"""

CDEF_LOOP_HANDLES = """
typedef struct uv_loop_s uv_loop_t;

typedef struct {
    void *data;
    uv_loop_t *loop;
    ...;
} uv_handle_t;

typedef struct {
    void *data;
    ...;
} uv_req_t;

int uv_cancel(uv_req_t *req);
int uv_is_active(const uv_handle_t *handle);
int uv_is_closing(const uv_handle_t *handle);
void uv_ref(uv_handle_t *handle);
void uv_unref(uv_handle_t *handle);
int uv_has_ref(const uv_handle_t *handle);
uint64_t uv_now(const uv_loop_t *loop);
void uv_update_time(uv_loop_t *loop);
"""

CDEF_POLL = """
typedef struct {
    void *data;
    uv_loop_t *loop;
    ...;
} uv_poll_t;

#define UV_READABLE ...
#define UV_WRITABLE ...
#define UV_DISCONNECT ...
#define UV_PRIORITIZED ...

int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);
int uv_poll_stop(uv_poll_t *handle);
"""

CDEF_STREAM = """
typedef struct {
    char *base;
    size_t len;
} uv_buf_t;

typedef struct {
    void *data;
    ...;
} uv_write_t;

typedef struct {
    void *data;
    ...;
} uv_shutdown_t;
"""

CDEF_DNS = """
typedef int... socklen_t;
struct sockaddr { ...; };
struct addrinfo {
    int ai_flags;
    int ai_family;
    int ai_socktype;
    int ai_protocol;
    socklen_t ai_addrlen;
    struct sockaddr *ai_addr;
    char *ai_canonname;
    struct addrinfo *ai_next;
    ...;
};

typedef struct {
    void *data;
    uv_loop_t *loop;
    struct addrinfo *addrinfo;
    ...;
} uv_getaddrinfo_t;

typedef struct {
    void *data;
    uv_loop_t *loop;
    char host[...];
    char service[...];
    ...;
} uv_getnameinfo_t;

void uv_freeaddrinfo(struct addrinfo *ai);
const char *gai_strerror(int errcode);
char *if_indextoname(unsigned int ifindex, char *ifname);
#define IF_NAMESIZE ...

#define INET6_ADDRSTRLEN ...
"""

# uvloop_like's own helpers (uvloop_like/_native/uvl.c).
CDEF_HELPERS = """
#define UVL_EV_POLL ...
#define UVL_EV_CLOSE ...
#define UVL_EV_GETADDRINFO ...
#define UVL_EV_GETNAMEINFO ...
#define UVL_EV_READ ...
#define UVL_EV_WRITE ...
#define UVL_EV_SHUTDOWN ...
#define UVL_EV_CONNECTION ...
#define UVL_ARENA_SIZE ...
#define UVL_WRITE_CHUNK ...

typedef struct {
    void *owner;
    int kind;
    int status;
    int events;
    void *target;
} uvl_event_t;

/* loop.stats() counters (observe; uvl.c's stats section). */
typedef struct {
    uint64_t iterations;
    uint64_t callbacks;
    uint64_t idle_ns;
    uint64_t busy_ns;
    uint64_t max_busy_ns;
    uint64_t mark_ns;
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t connections_accepted;
} uvl_stats_t;

/* Starts with a uv_loop_t: ffi.cast("uv_loop_t *", l) is the libuv loop. */
typedef struct {
    uvl_event_t *events;
    size_t nevents;
    int overflow;
    char *arena;
    uvl_stats_t stats;
    ...;
} uvl_loop_t;

/* Starts with the uv_tcp_t / uv_pipe_t (a union): castable to uv_handle_t *. */
typedef struct {
    char *posted;
    size_t posted_len;
    int buffered;
    ...;
} uvl_stream_t;

int uvl_loop_init(uvl_loop_t *l);
int uvl_run(uvl_loop_t *l, int64_t timeout_ms);
int uvl_wakeup(uvl_loop_t *l);
int uvl_loop_close(uvl_loop_t *l);
int uvl_run_counted(uvl_loop_t *l, int64_t arg);
void uvl_stats_start(uvl_loop_t *l);
void uvl_stats_stop(uvl_loop_t *l);
uint64_t uvl_stats_busy_now(uvl_loop_t *l);

int uvl_poll_start(uv_poll_t *handle, int events);
void uvl_close(uv_handle_t *handle);
int uvl_fileno(uv_handle_t *handle);

int uvl_tcp_init(uv_loop_t *loop, uvl_stream_t *s);
int uvl_pipe_init(uv_loop_t *loop, uvl_stream_t *s, int ipc);
int uvl_tcp_open(uvl_stream_t *s, int fd);
int uvl_pipe_open(uvl_stream_t *s, int fd);
int uvl_tcp_nodelay(uvl_stream_t *s, int enable);
int uvl_read_start(uvl_stream_t *s);
int uvl_read_stop(uvl_stream_t *s);
int uvl_try_write(uvl_stream_t *s, const char *data, size_t len);
int uvl_try_writev(uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs);
int uvl_write(uv_write_t *req, uvl_stream_t *s, const char *data, size_t len);
int uvl_writev(uv_write_t *req, uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs);
int uvl_shutdown(uv_shutdown_t *req, uvl_stream_t *s);
int uvl_listen(uvl_stream_t *s, int backlog);
int uvl_accept(uvl_stream_t *server, uvl_stream_t *client);
size_t uvl_write_queue_size(uvl_stream_t *s);

int uvl_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req,
                    const char *node, const char *service,
                    int family, int socktype, int protocol, int flags);
int uvl_sockaddr_info(const struct sockaddr *sa, char *host, size_t hostlen,
                      int *port, unsigned int *flowinfo, unsigned int *scope_id);
int uvl_getnameinfo(uv_loop_t *loop, uv_getnameinfo_t *req, int family,
                    const char *host, int port, unsigned int flowinfo,
                    unsigned int scope_id, int flags);
"""

# Processes (uv_spawn): the uvl_* helpers are in uvl.c's "process" section.
CDEF_PROCESS = """
typedef struct {
    void *data;
    uv_loop_t *loop;
    int pid;
    ...;
} uv_process_t;

#define UV_PROCESS_DETACHED ...
#define UV_PROCESS_SETUID ...
#define UV_PROCESS_SETGID ...
#define UVL_EV_EXIT ...

int uv_process_kill(uv_process_t *process, int signum);
int uvl_spawn(uv_loop_t *loop, uv_process_t *p, const char *file,
              char **args, char **env, const char *cwd, unsigned int flags,
              unsigned int uid, unsigned int gid,
              const int *fds, int nfds, int *linked);
int uvl_find_inheritable(const int *skip, int nskip);
int uvl_child_peek(int pid, int block, int *returncode);
#define UVL_SPAWN_USABLE ...
#define UVL_SPAWN_CHDIR ...
int uvl_posix_spawn_usable(void);
int uvl_posix_spawn(const char *file, int search, char **args, char **env,
                    const char *cwd, int setsid, const int *fds, int nfds,
                    int *pid, int *pidfd);
int uvl_child_reap(int pid, int *returncode);
"""

CDEF = "".join([CDEF_VERSION_ERRORS, CDEF_LOOP_HANDLES, CDEF_POLL, CDEF_STREAM, CDEF_DNS, CDEF_HELPERS, CDEF_PROCESS])

# --- udp: uv_udp_t datagram endpoints (handles/udp.py; uvl.c's udp section) ---
CDEF_UDP = """
#define UVL_EV_RECV ...
#define UVL_EV_SEND ...
#define UVL_UDP_HEADER ...
#define UVL_UDP_DGRAM_MAX ...
#define UVL_UDP_BATCH_HEAD ...

/* Starts with the uv_udp_t: castable to uv_handle_t *. */
typedef struct {
    ...;
} uvl_udp_t;

typedef struct {
    void *data;
    ...;
} uv_udp_send_t;

int uvl_udp_init(uv_loop_t *loop, uvl_udp_t *u);
int uvl_udp_open(uvl_udp_t *u, int fd);
int uvl_udp_recv_start(uvl_udp_t *u);
int uvl_udp_recv_stop(uvl_udp_t *u);
int uvl_udp_try_send(uvl_udp_t *u, const char *data, size_t len, const char *addr);
int uvl_udp_send(uv_udp_send_t *req, uvl_udp_t *u, const char *data, size_t len,
                 const char *addr);
int uvl_udp_sockaddr(int family, const char *host, int port, unsigned int flowinfo,
                     unsigned int scope_id, char *out);
int uvl_udp_addr_parts(const char *sa, char *host, size_t hostlen, int *port,
                       unsigned int *flowinfo, unsigned int *scope_id);
"""
CDEF += CDEF_UDP

# --- closed loop: the guarded entry points (uvl.c's "closed loop" section) ---
CDEF_CLOSED_LOOP = """
#define UVL_ECLOSED ...

int uvl_loop_is_closed(uvl_loop_t *l);
int uvl_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);
int uvl_poll_stop(uv_poll_t *handle);
int uvl_cancel(uv_req_t *req);
"""
CDEF += CDEF_CLOSED_LOOP

# File work on libuv's thread pool (stat, unlink, sendfile): uvl.c's "fs"
# section, owned by handles/fs.py.
CDEF_FS = """
#define UVL_EV_FS ...
#define UVL_SF_DONE ...
#define UVL_SF_EOF ...
#define UVL_SF_AGAIN ...
#define UVL_SF_ERROR ...
#define UVL_SF_NOTREG ...
#define UVL_SF_STOPPED ...

typedef struct {
    void *data;
    ...;
} uv_fs_t;

typedef struct {
    void *data;
    ...;
} uv_work_t;

typedef struct {
    uv_work_t work;
    int out_fd;
    int in_fd;
    int want_size;
    int stop;
    int64_t offset;
    int64_t limit;
    int64_t block;
    int64_t sent;
    int outcome;
    int error;
} uvl_sendfile_t;

void uv_fs_req_cleanup(uv_fs_t *req);
int uvl_unlink_if_same(const char *path, uint64_t ino);
int uvl_fs_stat(uv_loop_t *loop, uv_fs_t *req, const char *path, int follow);
int uvl_fs_unlink(uv_loop_t *loop, uv_fs_t *req, const char *path);
void uvl_fs_statinfo(uv_fs_t *req, uint64_t *mode, uint64_t *ino, uint64_t *dev);
int uvl_sendfile_init(uvl_sendfile_t *r, int out_fd, int in_fd);
void uvl_sendfile_release(uvl_sendfile_t *r);
int uvl_sendfile_step(uv_loop_t *loop, uvl_sendfile_t *r);
void uvl_sendfile_stop(uvl_sendfile_t *r);
"""
CDEF += CDEF_FS

# --- native core (issue 9): the table of libuv entry points uvloop_like._core
# calls (one libuv per process; uvl.c's "native core" section).
CDEF_CORE_API = """
const void *uvl_core_api(void);
"""
CDEF += CDEF_CORE_API


# --- libuv sources ---------------------------------------------------------

LIBUV_COMMON = [
    "fs-poll.c", "idna.c", "inet.c", "random.c", "strscpy.c", "strtok.c",
    "thread-common.c", "threadpool.c", "timer.c", "uv-common.c",
    "uv-data-getter-setters.c", "version.c",
]
LIBUV_UNIX = [
    "unix/async.c", "unix/core.c", "unix/dl.c", "unix/fs.c", "unix/getaddrinfo.c",
    "unix/getnameinfo.c", "unix/loop-watcher.c", "unix/loop.c", "unix/pipe.c",
    "unix/poll.c", "unix/process.c", "unix/random-devurandom.c", "unix/signal.c",
    "unix/stream.c", "unix/tcp.c", "unix/thread.c", "unix/tty.c", "unix/udp.c",
]
LIBUV_PLATFORM = {
    "linux": (
        ["unix/linux.c", "unix/procfs-exepath.c", "unix/proctitle.c",
         "unix/random-getrandom.c", "unix/random-sysctl-linux.c"],
        ["_GNU_SOURCE", "_POSIX_C_SOURCE=200112"],
        ["pthread", "dl", "rt"],
    ),
    "darwin": (
        ["unix/proctitle.c", "unix/bsd-ifaddrs.c", "unix/kqueue.c",
         "unix/random-getentropy.c", "unix/darwin-proctitle.c", "unix/darwin.c",
         "unix/fsevents.c"],
        ["_DARWIN_UNLIMITED_SELECT=1", "_DARWIN_USE_64_BIT_INODE=1"],
        ["pthread"],
    ),
    "freebsd": (
        ["unix/freebsd.c", "unix/posix-hrtime.c", "unix/bsd-proctitle.c",
         "unix/bsd-ifaddrs.c", "unix/kqueue.c", "unix/random-getrandom.c"],
        [],
        ["pthread"],
    ),
}


# --- sanitizer builds (make sanitize, docs/sanitize.md) ----------------------
# UVLOOP_LIKE_SANITIZE=address,undefined compiles libuv and uvl.c with those
# -fsanitize= checks, frame pointers and debug info (readable reports), and
# gives libuv an archive of its own so a normal build never links a sanitized
# one.  The interpreter is not instrumented: the tests run with the runtime
# preloaded (LD_PRELOAD), see .ci/sanitize.sh.
SANITIZE = os.environ.get("UVLOOP_LIKE_SANITIZE", "").strip()


def sanitize_flags():
    """Extra compile (and link) flags for a sanitizer build; [] otherwise."""
    if not SANITIZE:
        return []
    return ["-fsanitize=" + SANITIZE, "-fno-omit-frame-pointer", "-g", "-O1"]


def _platform():
    for name in LIBUV_PLATFORM:
        if sys.platform.startswith(name):
            return name
    raise RuntimeError("uvloop_like does not know how to build libuv on %s" % sys.platform)


def _run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError("command failed: %s\n%s" % (" ".join(cmd), proc.stdout.decode(errors="replace")))


def static_libuv():
    """(source tree, archive, libraries) of the static libuv this build links.

    Nothing is fetched or compiled here: cffi's setuptools hook runs this file
    whenever setup.py runs, metadata only (``pip install --dry-run``,
    ``python -m build --sdist``, ``setup.py egg_info``) included.
    build_static_libuv() makes the archive, from setup.py's build_ext."""
    plat = _platform()
    libraries = LIBUV_PLATFORM[plat][2]
    name = "libuv-%s-%s" % (fetch_libuv.LIBUV_VERSION, sysconfig.get_platform())
    if SANITIZE:
        name += "-sanitize-" + SANITIZE.replace(",", "-")
    if manylinux():
        name += "-manylinux_%d_%d" % MANYLINUX_GLIBC
    out_dir = os.path.join(HERE, "build", name)
    return fetch_libuv.DEST, os.path.join(out_dir, "libuv.a"), libraries


def build_static_libuv():
    """Compile vendor/libuv into build/libuv-<version>-<platform>/libuv.a (cached)."""
    src_root = fetch_libuv.ensure(verbose=False)
    _, archive, libraries = static_libuv()
    if manylinux():
        write_glibc_compat_header()  # the extension's objects include it too
    if os.path.exists(archive):
        return src_root, archive, libraries
    out_dir = os.path.dirname(archive)
    extra_sources, defines, _ = LIBUV_PLATFORM[_platform()]
    defines = ["_FILE_OFFSET_BITS=64", "_LARGEFILE_SOURCE"] + defines
    os.makedirs(out_dir, exist_ok=True)
    cc = os.environ.get("CC", "cc").split()
    cflags = ["-O2", "-g0", "-fPIC", "-fno-strict-aliasing", "-std=gnu11", "-w"]
    cflags += sanitize_flags()
    cflags += ["-D" + d for d in defines]
    cflags += ["-I" + os.path.join(src_root, "include"), "-I" + os.path.join(src_root, "src")]
    sources = [os.path.join(src_root, "src", rel) for rel in LIBUV_COMMON + LIBUV_UNIX + extra_sources]
    if manylinux():
        cflags += ["-include", GLIBC_COMPAT_HEADER]
        sources.append(GLIBC_COMPAT_SHIM)
    # The archive is shared by every interpreter's build in this tree (libuv does
    # not depend on Python).  Build in a private directory and publish with one
    # rename, so two builds at once (two venvs) never see a half-written archive.
    work = tempfile.mkdtemp(prefix="tmp-", dir=out_dir)
    try:
        def compile_one(path):
            rel = os.path.relpath(path, os.path.join(src_root, "src"))
            obj = os.path.join(work, rel.replace(os.sep, "_").replace(".", "_")[:-2] + ".o")
            _run(cc + cflags + ["-c", path, "-o", obj])
            return obj

        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            objects = list(pool.map(compile_one, sources))
        tmp = os.path.join(work, "libuv.a")
        _run([os.environ.get("AR", "ar"), "rcs", tmp] + objects)
        os.replace(tmp, archive)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return src_root, archive, libraries


# --- manylinux: a wheel that loads on glibc 2.28 when built on a newer one ---
#
# `make wheel` sets UVLOOP_LIKE_MANYLINUX=1.  A module linked on glibc 2.34+
# binds pthread_*, sem_* and dl* to the versions those functions got when
# libpthread/libdl merged into libc (GLIBC_2.34), pthread_sigmask to 2.32,
# and stat64/fstat64/lstat64 to 2.33, where they became functions; so it
# needs glibc 2.34 to load.  Every such symbol but the stat family is still
# exported under its older version, for programs linked before: a header
# force-included into every object (generated from the build host's libc
# by write_glibc_compat_header) binds each one there with .symver, and the
# module names libpthread.so.0 and libdl.so.2, which hold them before 2.34
# (stubs after).  The stat family had no symbol before 2.33 (the headers
# called __xstat64 & co, still exported): glibc_compat.c defines them so.
# What remains newer than 2.28 (posix_spawn_file_actions_addchdir_np, 2.29)
# is looked up at run time (uvl.c).  `auditwheel repair --plat
# manylinux_2_28_<arch>` then checks the result.

MANYLINUX_GLIBC = (2, 28)
GLIBC_COMPAT_SHIM = os.path.join(HERE, "uvloop_like", "_native", "glibc_compat.c")
GLIBC_COMPAT_HEADER = os.path.join(HERE, "build", "glibc-compat-%d_%d" % MANYLINUX_GLIBC, "glibc_compat.h")


def manylinux():
    return os.environ.get("UVLOOP_LIKE_MANYLINUX") == "1" and sys.platform.startswith("linux")


def _glibc_version(text):
    return tuple(int(part) for part in text.split("_", 1)[1].split("."))


def write_glibc_compat_header():
    """Write GLIBC_COMPAT_HEADER: one .symver per libc function whose default
    version is newer than MANYLINUX_GLIBC and that libc still exports under
    an older one (the newest such), taken from the build host's libc.so.6."""
    import re

    cc = os.environ.get("CC", "cc").split()
    libc = subprocess.check_output(cc + ["-print-file-name=libc.so.6"]).decode().strip()
    table = subprocess.check_output([os.environ.get("OBJDUMP", "objdump"), "-T", libc]).decode()
    versions = {}   # name -> {version tuple: version name}
    default = {}    # name -> default version tuple
    pattern = re.compile(r"\sDF\s+(\S+)\s+\S+\s+(\(?)(GLIBC_[0-9.]+)\)?\s+(\S+)$")
    for line in table.splitlines():
        m = pattern.search(line)
        if m is None or m.group(1) == "*UND*":
            continue
        hidden, version, name = m.group(2), m.group(3), m.group(4)
        number = _glibc_version(version)
        versions.setdefault(name, {})[number] = version
        if not hidden:
            default[name] = number
    lines = [
        "/* Generated by build_ffi.write_glibc_compat_header() from %s:" % libc,
        " * binds libc functions newer than glibc %d.%d to their older versions. */" % MANYLINUX_GLIBC,
    ]
    for name in sorted(default):
        if default[name] <= MANYLINUX_GLIBC:
            continue
        older = [v for v in versions[name] if v <= MANYLINUX_GLIBC]
        if older:
            lines.append('__asm__(".symver %s,%s@%s");' % (name, name, versions[name][max(older)]))
    os.makedirs(os.path.dirname(GLIBC_COMPAT_HEADER), exist_ok=True)
    tmp = GLIBC_COMPAT_HEADER + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, GLIBC_COMPAT_HEADER)
    return GLIBC_COMPAT_HEADER


def _system_libuv():
    def pkg(*args):
        return subprocess.check_output(["pkg-config"] + list(args) + ["libuv"]).decode().split()
    try:
        subprocess.check_call(["pkg-config", "--atleast-version=" + SYSTEM_LIBUV_MIN, "libuv"])
    except (OSError, subprocess.CalledProcessError):
        try:
            found = "libuv " + " ".join(pkg("--modversion"))
        except (OSError, subprocess.CalledProcessError):
            found = "no libuv known to pkg-config"
        raise RuntimeError("UVLOOP_LIKE_SYSTEM_LIBUV=1 needs pkg-config and libuv >= %s (found: %s)"
                           % (SYSTEM_LIBUV_MIN, found)) from None
    include_dirs = [f[2:] for f in pkg("--cflags-only-I")]
    library_dirs = [f[2:] for f in pkg("--libs-only-L")]
    libraries = [f[2:] for f in pkg("--libs-only-l")]
    return dict(include_dirs=include_dirs, library_dirs=library_dirs, libraries=libraries)


def _make_ffi():
    ffi = FFI()
    ffi.cdef(CDEF)
    with open(os.path.join(HERE, "uvloop_like", "_native", "uvl.c")) as f:
        helpers = f.read()
    # uvl.c includes uvl_core_api.h, which sits next to it (and _core.c
    # includes it too: one declaration of what the two share).
    native_dir = os.path.join(HERE, "uvloop_like", "_native")
    if os.environ.get("UVLOOP_LIKE_SYSTEM_LIBUV") == "1":
        kwargs = _system_libuv()
    else:
        src_root, archive, libraries = static_libuv()
        kwargs = dict(
            include_dirs=[os.path.join(src_root, "include")],
            extra_objects=[archive],
            libraries=libraries,
        )
        if sys.platform.startswith("linux"):
            # Keep libuv's symbols private to this module, so another libuv in
            # the process (uvloop's, a system one) never interposes.
            kwargs["extra_link_args"] = ["-Wl,--exclude-libs,ALL"]
    # Not the stable ABI (cffi's default on CPython): each interpreter gets its
    # own _uv.cpython-3XX-*.so / _uv.pypy39-*.so, so several venvs can build in
    # one tree without overwriting the module another one has loaded, and a
    # module never meets a _cffi_backend of another cffi version.
    if sys.platform.startswith("linux"):
        # uvl.c's posix_spawn path uses GNU extensions (POSIX_SPAWN_SETSID,
        # posix_spawn_file_actions_addchdir_np).  "1": as CPython's pyconfig.h
        # defines it, so the two definitions agree.
        kwargs["define_macros"] = [("_GNU_SOURCE", "1")]
    if manylinux():
        # The header exists by the time the module compiles: build_ext writes
        # it with libuv's archive (build_static_libuv) first.
        kwargs["extra_compile_args"] = ["-include", GLIBC_COMPAT_HEADER]
        kwargs["extra_link_args"] = kwargs.get("extra_link_args", []) + [
            "-Wl,--no-as-needed", "-l:libpthread.so.0", "-l:libdl.so.2", "-Wl,--as-needed"]
    kwargs["include_dirs"] = [native_dir] + kwargs.get("include_dirs", [])
    kwargs["py_limited_api"] = False
    if SANITIZE:
        kwargs["extra_compile_args"] = kwargs.get("extra_compile_args", []) + sanitize_flags()
        kwargs["extra_link_args"] = kwargs.get("extra_link_args", []) + sanitize_flags()
    ffi.set_source("uvloop_like._uv", helpers, **kwargs)
    return ffi


ffibuilder = _make_ffi()

if __name__ == "__main__":
    # Build in place: python build_ffi.py
    if os.environ.get("UVLOOP_LIKE_SYSTEM_LIBUV") != "1":
        build_static_libuv()
    built = ffibuilder.compile(tmpdir=os.path.join(HERE, "build", "cffi"), verbose=False)
    target = os.path.join(HERE, "uvloop_like", os.path.basename(built))
    # Copy then rename: a process that has the old module loaded keeps it intact.
    shutil.copy(built, target + ".tmp")
    os.replace(target + ".tmp", target)
    print("built", target)
