/* The stat family for manylinux builds (build_ffi.py, UVLOOP_LIKE_MANYLINUX=1).
 *
 * glibc 2.33 made stat64/fstat64/lstat64/fstatat64 exported functions;
 * before, <sys/stat.h> turned each call into __xstat64(_STAT_VER, ...) & co,
 * which every glibc still exports.  Built on 2.33+, libuv's calls bind to
 * the new symbols and the module would need glibc 2.33 to load: these
 * definitions, linked from libuv's archive (and so kept local to the module
 * by --exclude-libs), make the calls as the old headers did. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <sys/stat.h>

#if defined(__x86_64__)
#define UVL_STAT_VER 1   /* _STAT_VER_LINUX */
#elif defined(__aarch64__) || defined(__riscv)
#define UVL_STAT_VER 0   /* the generic 64-bit ABI's */
#else
#error "glibc_compat.c: _STAT_VER unknown for this architecture"
#endif

extern int __xstat64(int ver, const char *path, struct stat64 *buf);
extern int __lxstat64(int ver, const char *path, struct stat64 *buf);
extern int __fxstat64(int ver, int fd, struct stat64 *buf);
extern int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags);

int stat64(const char *path, struct stat64 *buf)
{
    return __xstat64(UVL_STAT_VER, path, buf);
}

int lstat64(const char *path, struct stat64 *buf)
{
    return __lxstat64(UVL_STAT_VER, path, buf);
}

int fstat64(int fd, struct stat64 *buf)
{
    return __fxstat64(UVL_STAT_VER, fd, buf);
}

int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags)
{
    return __fxstatat64(UVL_STAT_VER, dirfd, path, buf, flags);
}
