/* uvloop_like's C helpers, compiled into the cffi module with libuv.
 *
 * The loop core never calls into Python from inside uv_run.  Every libuv
 * callback the core uses is one of the small C functions below: it records a
 * completion (owner, kind, status, events) in a growable array on the loop,
 * and Python drains that array once uv_run returns.  One C -> Python crossing
 * per loop iteration instead of one per event (see docs/design.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>
/* The completion record, the kinds the native core reads and its table of
 * entry points (shared with _core.c). */
#include "uvl_core_api.h"

#define UVL_EV_POLL 1
#define UVL_EV_GETADDRINFO 3
#define UVL_EV_GETNAMEINFO 4
#define UVL_EV_WRITE 6         /* owner: the stream's owner; writes complete in FIFO order */
#define UVL_EV_SHUTDOWN 7
#define UVL_EV_CONNECTION 8    /* a listening stream has a connection to accept */

/* Reads land in one loop-wide arena (1 MiB; one read takes at most 256 KiB),
 * reset by every uvl_run(): each read takes the next free slice, so every read of one iteration stays intact
 * until Python has copied it out (once, into the bytes for data_received).
 * When the arena is full, alloc returns no buffer: libuv reports UV_ENOBUFS,
 * which is ignored, and the still-readable descriptor is read next time. */
#define UVL_ARENA_SIZE (1024 * 1024)
#define UVL_READ_CHUNK (256 * 1024)

/* ---- stats: counters behind loop.stats() (observe; docs/design.md, "Observability") ----
 * Every transport's bytes pass one of the C functions below exactly once; each
 * counts them with one line (UVL_STAT_ADD).  The scheduler counters are
 * maintained by uvl_run_counted (end of this file) for the Python core, and
 * by uvl_run_stats, which it wraps, for the native core (uvl_core_api()). */
typedef struct {
    uint64_t iterations;         /* uvl_run_counted calls (loop iterations) */
    uint64_t callbacks;          /* handles run: the scheduler adds each iteration's count */
    uint64_t idle_ns;            /* time in uv_run calls allowed to wait (nothing was ready) */
    uint64_t busy_ns;            /* the rest of the time the loop ran */
    uint64_t max_busy_ns;        /* the longest busy interval of one iteration */
    uint64_t mark_ns;            /* start of the busy interval under way; 0: not running */
    uint64_t bytes_received;     /* stream/pipe reads, datagrams received */
    uint64_t bytes_sent;         /* written at once, or accepted into libuv's write queue */
    uint64_t connections_accepted;
} uvl_stats_t;
static size_t uvl_bufs_size(const uv_buf_t *bufs, unsigned int nbufs)
{
    size_t total = 0;
    while (nbufs--)
        total += bufs[nbufs].len;
    return total;
}
#define UVL_STAT_ADD(uvloop, field, n) (((uvl_loop_t *)(uvloop))->stats.field += (uint64_t)(n))

typedef struct uvl_loop_s {
    uv_loop_t uv;           /* first member: a handle's ->loop is this struct */
    uv_timer_t wake_timer;  /* bounds the poll wait by the earliest Python timer */
    uv_async_t wakeup;      /* call_soon_threadsafe() wakes a sleeping loop */
    uvl_event_t *events;
    size_t nevents;
    size_t capacity;
    int overflow;           /* set when the events array could not grow */
    char *arena;            /* UVL_ARENA_SIZE bytes for reads (see above) */
    size_t arena_used;
    int closed;             /* set by uvl_loop_close(): see "closed loop" below */
    uvl_stats_t stats;      /* loop.stats() (stats section above); zeroed by uvl_loop_init */
} uvl_loop_t;

/* ---- closed loop ---- (DESIGN.md rule 10) ------------------------------
 *
 * Once uvl_loop_close() has run, libuv has torn the uv_loop_t down (and a
 * debug build of libuv overwrites it): initialising a handle or a request
 * on it, or starting anything on a handle of it, would write through
 * freed pointers or trip a libuv assertion.  Python refuses first
 * (handles/base.py, handles/dns.py); as a second line of defence, every
 * helper below that takes a loop, a handle or a request checks the loop's
 * `closed` flag (it lives outside the uv_loop_t, so libuv never clobbers
 * it) and returns UVL_ECLOSED without touching libuv.  errors.py turns that
 * code into RuntimeError('Event loop is closed').  A handle's ->loop stays
 * valid after close: the Python wrapper keeps the loop's memory alive. */
#define UVL_ECLOSED (-30000)   /* far from every UV_E* and UV_EAI_* code */

/* 0 when `loop` is open; UVL_ECLOSED when closed; UV_EINVAL for no loop
 * (a handle whose init never ran). */
static int uvl_loop_check(const uv_loop_t *loop)
{
    if (loop == NULL)
        return UV_EINVAL;
    return ((const uvl_loop_t *)loop)->closed ? UVL_ECLOSED : 0;
}

#define UVL_CHECK_LOOP(loop) do { int uvl_chk_ = uvl_loop_check(loop); \
                                  if (uvl_chk_ != 0) return uvl_chk_; } while (0)
#define UVL_CHECK_HANDLE(h) UVL_CHECK_LOOP(((const uv_handle_t *)(h))->loop)

static int uvl_loop_is_closed(uvl_loop_t *l)
{
    return l->closed;
}

static int uvl_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd)
{
    UVL_CHECK_LOOP(loop);
    return uv_poll_init(loop, handle, fd);
}

static int uvl_poll_stop(uv_poll_t *handle)
{
    UVL_CHECK_HANDLE(handle);
    return uv_poll_stop(handle);
}

/* uv_cancel for the requests that know their loop (the thread-pool ones). */
static int uvl_cancel(uv_req_t *req)
{
    uv_loop_t *loop;
    if (req->type == UV_GETADDRINFO)
        loop = ((uv_getaddrinfo_t *)req)->loop;
    else if (req->type == UV_GETNAMEINFO)
        loop = ((uv_getnameinfo_t *)req)->loop;
    else if (req->type == UV_FS)
        loop = ((uv_fs_t *)req)->loop;
    else if (req->type == UV_WORK)
        loop = ((uv_work_t *)req)->loop;
    else
        return UV_EINVAL;
    UVL_CHECK_LOOP(loop);
    return uv_cancel(req);
}

/* (uv_process_kill needs no check: it only kill(2)s the pid, which
 * stdlib's transports also do after their loop has closed.) */

/* A stream handle (TCP or pipe) and the BufferedProtocol buffer Python has
 * posted for its next read. */
typedef struct uvl_stream_s {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    char *posted;        /* memory from get_buffer(); NULL once a read used it */
    size_t posted_len;
    int buffered;        /* 1: read only into the posted buffer, never the arena */
    void *target;        /* the native core's: recorded with each read (uvl_core_api.h) */
} uvl_stream_t;

static void uvl_push_target(uv_loop_t *loop, void *owner, int kind, int status, int events,
                            void *target);

static void uvl_push(uv_loop_t *loop, void *owner, int kind, int status, int events)
{
    uvl_push_target(loop, owner, kind, status, events, NULL);
}

static void uvl_push_target(uv_loop_t *loop, void *owner, int kind, int status, int events,
                            void *target)
{
    uvl_loop_t *l = (uvl_loop_t *)loop;
    if (l->nevents == l->capacity) {
        size_t cap = l->capacity ? l->capacity * 2 : 64;
        uvl_event_t *grown = (uvl_event_t *)realloc(l->events, cap * sizeof(uvl_event_t));
        if (grown == NULL) {
            l->overflow = 1;
            uv_stop(loop);
            return;
        }
        l->events = grown;
        l->capacity = cap;
    }
    l->events[l->nevents].owner = owner;
    l->events[l->nevents].kind = kind;
    l->events[l->nevents].status = status;
    l->events[l->nevents].events = events;
    l->events[l->nevents].target = target;
    l->nevents++;
}

static void uvl_noop_timer_cb(uv_timer_t *handle) { (void)handle; }
static void uvl_noop_async_cb(uv_async_t *handle) { (void)handle; }

static void uvl_poll_cb(uv_poll_t *handle, int status, int events)
{
    uvl_push(handle->loop, handle->data, UVL_EV_POLL, status, events);
}

static void uvl_close_cb(uv_handle_t *handle)
{
    uvl_push(handle->loop, handle->data, UVL_EV_CLOSE, 0, 0);
}

static void uvl_getaddrinfo_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    (void)res;  /* libuv also keeps it in req->addrinfo */
    uvl_push(req->loop, req->data, UVL_EV_GETADDRINFO, status, 0);
}

static void uvl_getnameinfo_cb(uv_getnameinfo_t *req, int status,
                               const char *hostname, const char *service)
{
    (void)hostname; (void)service;  /* both live in req->host / req->service */
    uvl_push(req->loop, req->data, UVL_EV_GETNAMEINFO, status, 0);
}

static int uvl_loop_init(uvl_loop_t *l)
{
    int r = uv_loop_init(&l->uv);
    if (r != 0)
        return r;
    r = uv_timer_init(&l->uv, &l->wake_timer);
    if (r == 0)
        r = uv_async_init(&l->uv, &l->wakeup, uvl_noop_async_cb);
    if (r != 0) {
        uv_loop_close(&l->uv);
        return r;
    }
    l->events = NULL;
    l->nevents = 0;
    l->capacity = 0;
    l->overflow = 0;
    l->arena = (char *)malloc(UVL_ARENA_SIZE);
    l->arena_used = 0;
    l->closed = 0;
    memset(&l->stats, 0, sizeof(l->stats));
    if (l->arena == NULL) {
        uv_close((uv_handle_t *)&l->wake_timer, NULL);
        uv_close((uv_handle_t *)&l->wakeup, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        uv_loop_close(&l->uv);
        return UV_ENOMEM;
    }
    return 0;
}

/* One loop iteration.  timeout_ms < 0: block until an event; 0: poll without
 * blocking; > 0: block at most that long (the earliest Python timer).
 * Returns the number of completions recorded, or -1 if some were lost for
 * lack of memory. */
static int uvl_run(uvl_loop_t *l, int64_t timeout_ms)
{
    if (l->closed)
        return UVL_ECLOSED;
    l->nevents = 0;
    l->arena_used = 0;
    if (timeout_ms == 0) {
        uv_run(&l->uv, UV_RUN_NOWAIT);
    } else {
        if (timeout_ms > 0) {
            uv_update_time(&l->uv);
            uv_timer_start(&l->wake_timer, uvl_noop_timer_cb, (uint64_t)timeout_ms, 0);
        }
        uv_run(&l->uv, UV_RUN_ONCE);
        if (timeout_ms > 0)
            uv_timer_stop(&l->wake_timer);
    }
    return l->overflow ? -1 : (int)l->nevents;
}

/* Safe from any thread, even after uvl_loop_close(): closing the async
 * handle leaves its pending flag set, and uv_async_send() returns at once
 * when it is set, so a late wake-up never writes to a reused descriptor.
 * The struct's memory outlives every caller (Python owns it). */
static int uvl_wakeup(uvl_loop_t *l)
{
    return uv_async_send(&l->wakeup);
}

/* Closes the core's own handles, lets libuv finish every close, and frees the
 * loop.  Python has closed (and seen the close of) every handle it owns. */
static int uvl_loop_close(uvl_loop_t *l)
{
    int r;
    if (l->closed)
        return 0;
    l->closed = 1;
    if (!uv_is_closing((uv_handle_t *)&l->wake_timer))
        uv_close((uv_handle_t *)&l->wake_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&l->wakeup))
        uv_close((uv_handle_t *)&l->wakeup, NULL);
    uv_run(&l->uv, UV_RUN_DEFAULT);
    r = uv_loop_close(&l->uv);
    free(l->events);
    l->events = NULL;
    free(l->arena);
    l->arena = NULL;
    l->nevents = 0;
    l->capacity = 0;
    return r;
}

static int uvl_poll_start(uv_poll_t *handle, int events)
{
    UVL_CHECK_HANDLE(handle);
    return uv_poll_start(handle, events, uvl_poll_cb);
}

/* The descriptor of any handle that has one (a stream, a UDP socket, a
 * poll), or a libuv error (UV_EBADF: none, or closed). */
static int uvl_fileno(uv_handle_t *handle)
{
    uv_os_fd_t fd;
    int r;
    UVL_CHECK_HANDLE(handle);
    r = uv_fileno(handle, &fd);
    return r < 0 ? r : (int)fd;
}

static void uvl_close(uv_handle_t *handle)
{
    if (uvl_loop_check(handle->loop) != 0)
        return;  /* closed with its loop (or never initialised) */
    if (!uv_is_closing(handle))
        uv_close(handle, uvl_close_cb);
}

static int uvl_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req,
                           const char *node, const char *service,
                           int family, int socktype, int protocol, int flags)
{
    struct addrinfo hints;
    UVL_CHECK_LOOP(loop);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = socktype;
    hints.ai_protocol = protocol;
    hints.ai_flags = flags;
    return uv_getaddrinfo(loop, req, uvl_getaddrinfo_cb, node, service, &hints);
}

/* Writes the numeric host of an AF_INET/AF_INET6 sockaddr into host and
 * returns its family; 0 for other families. */
static int uvl_sockaddr_info(const struct sockaddr *sa, char *host, size_t hostlen,
                             int *port, unsigned int *flowinfo, unsigned int *scope_id)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in4->sin_addr, host, (socklen_t)hostlen) == NULL)
            return -1;
        *port = ntohs(in4->sin_port);
        *flowinfo = 0;
        *scope_id = 0;
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)hostlen) == NULL)
            return -1;
        *port = ntohs(in6->sin6_port);
        *flowinfo = ntohl(in6->sin6_flowinfo);
        *scope_id = in6->sin6_scope_id;
        return AF_INET6;
    }
    return 0;
}

static int uvl_getnameinfo(uv_loop_t *loop, uv_getnameinfo_t *req, int family,
                           const char *host, int port, unsigned int flowinfo,
                           unsigned int scope_id, int flags)
{
    struct sockaddr_storage ss;
    UVL_CHECK_LOOP(loop);
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
            return UV_EINVAL;
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        in6->sin6_scope_id = scope_id;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return UV_EINVAL;
    } else {
        return UV_EAFNOSUPPORT;
    }
    return uv_getnameinfo(loop, req, uvl_getnameinfo_cb, (const struct sockaddr *)&ss, flags);
}


/* --- streams (TCP, pipes) ---------------------------------------------- */

static void uvl_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    uvl_stream_t *s = (uvl_stream_t *)handle;
    uvl_loop_t *l = (uvl_loop_t *)handle->loop;
    size_t avail;
    (void)suggested;
    if (s->posted != NULL) {
        buf->base = s->posted;
        buf->len = s->posted_len;
        return;
    }
    avail = UVL_ARENA_SIZE - l->arena_used;
    if (s->buffered || avail == 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = l->arena + l->arena_used;
    buf->len = avail < UVL_READ_CHUNK ? avail : UVL_READ_CHUNK;
}

static void uvl_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    uvl_stream_t *s = (uvl_stream_t *)stream;
    uvl_loop_t *l = (uvl_loop_t *)stream->loop;
    if (nread == 0 || nread == UV_ENOBUFS)
        return;  /* EAGAIN, or no buffer this time: try again next iteration */
    if (nread < 0) {
        uvl_push_target(stream->loop, stream->data, UVL_EV_READ, (int)nread, 0, s->target);
        return;
    }
    UVL_STAT_ADD(l, bytes_received, nread);
    if (s->posted != NULL && buf->base == s->posted) {
        s->posted = NULL;  /* Python posts the next buffer after buffer_updated() */
        uvl_push_target(stream->loop, stream->data, UVL_EV_READ, (int)nread, -1, s->target);
    } else {
        int offset = (int)(buf->base - l->arena);
        l->arena_used += (size_t)nread;
        uvl_push_target(stream->loop, stream->data, UVL_EV_READ, (int)nread, offset, s->target);
    }
}

/* A write's completion goes to its own record (req->data: the Python
 * WriteRequest holding the request, the data it points to and its size),
 * not to the stream: nothing has to mirror libuv's write queue. */
static void uvl_write_cb(uv_write_t *req, int status)
{
    uvl_push(req->handle->loop, req->data, UVL_EV_WRITE, status, 0);
}

static void uvl_shutdown_cb(uv_shutdown_t *req, int status)
{
    uvl_push(req->handle->loop, req->handle->data, UVL_EV_SHUTDOWN, status, 0);
}

static void uvl_connection_cb(uv_stream_t *server, int status)
{
    uvl_push(server->loop, server->data, UVL_EV_CONNECTION, status, 0);
}

static int uvl_tcp_init(uv_loop_t *loop, uvl_stream_t *s)
{
    UVL_CHECK_LOOP(loop);
    s->target = NULL;
    return uv_tcp_init(loop, &s->u.tcp);
}

static int uvl_pipe_init(uv_loop_t *loop, uvl_stream_t *s, int ipc)
{
    UVL_CHECK_LOOP(loop);
    s->target = NULL;
    return uv_pipe_init(loop, &s->u.pipe, ipc);
}

static int uvl_tcp_open(uvl_stream_t *s, int fd)
{
    UVL_CHECK_HANDLE(s);
    return uv_tcp_open(&s->u.tcp, (uv_os_sock_t)fd);
}

static int uvl_pipe_open(uvl_stream_t *s, int fd)
{
    UVL_CHECK_HANDLE(s);
    return uv_pipe_open(&s->u.pipe, (uv_file)fd);
}

static int uvl_tcp_nodelay(uvl_stream_t *s, int enable)
{
    UVL_CHECK_HANDLE(s);
    return uv_tcp_nodelay(&s->u.tcp, enable);
}

static int uvl_read_start(uvl_stream_t *s)
{
    UVL_CHECK_HANDLE(s);
    return uv_read_start(&s->u.stream, uvl_alloc_cb, uvl_read_cb);
}

static int uvl_read_stop(uvl_stream_t *s)
{
    UVL_CHECK_HANDLE(s);
    return uv_read_stop(&s->u.stream);
}

/* Writes of any size: uv_buf_init() takes an unsigned int (a 4 GiB + 16
 * byte write would become 16 bytes), and uv_try_write() returns its count
 * as an int.  So uv_buf_t.len (a size_t) is filled directly, a try-write
 * takes at most UVL_WRITE_CHUNK bytes (the caller queues the rest), and a
 * queued write is split into UVL_WRITE_CHUNK pieces (Python splits the
 * buffers it hands to uvl_writev the same way). */
#define UVL_WRITE_CHUNK ((size_t)1 << 30)

static int uvl_try_write(uvl_stream_t *s, const char *data, size_t len)
{
    uv_buf_t buf;
    UVL_CHECK_HANDLE(s);
    buf.base = (char *)data;
    buf.len = len < UVL_WRITE_CHUNK ? len : UVL_WRITE_CHUNK;
    {
        int r = uv_try_write(&s->u.stream, &buf, 1);
        if (r > 0) UVL_STAT_ADD(s->u.stream.loop, bytes_sent, r);
        return r;
    }
}

static int uvl_try_writev(uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs)
{
    size_t total = 0;
    unsigned int i;
    UVL_CHECK_HANDLE(s);
    for (i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total > UVL_WRITE_CHUNK)
        return UV_EAGAIN;  /* too large for one try: the caller queues it all */
    {
        int r = uv_try_write(&s->u.stream, bufs, nbufs);
        if (r > 0) UVL_STAT_ADD(s->u.stream.loop, bytes_sent, r);
        return r;
    }
}

static int uvl_write(uv_write_t *req, uvl_stream_t *s, const char *data, size_t len)
{
    uv_buf_t one;
    uv_buf_t *bufs = &one;
    unsigned int n = 1, i;
    int r;
    UVL_CHECK_HANDLE(s);
    if (len > UVL_WRITE_CHUNK) {
        n = (unsigned int)((len + UVL_WRITE_CHUNK - 1) / UVL_WRITE_CHUNK);
        bufs = (uv_buf_t *)malloc(n * sizeof(uv_buf_t));
        if (bufs == NULL)
            return UV_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        size_t off = (size_t)i * UVL_WRITE_CHUNK;
        bufs[i].base = (char *)data + off;
        bufs[i].len = len - off < UVL_WRITE_CHUNK ? len - off : UVL_WRITE_CHUNK;
    }
    r = uv_write(req, &s->u.stream, bufs, n, uvl_write_cb);  /* libuv copies the array */
    if (bufs != &one)
        free(bufs);
    if (r == 0) UVL_STAT_ADD(s->u.stream.loop, bytes_sent, len);
    return r;
}

static int uvl_writev(uv_write_t *req, uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs)
{
    int r;
    UVL_CHECK_HANDLE(s);
    r = uv_write(req, &s->u.stream, bufs, nbufs, uvl_write_cb);
    if (r == 0) UVL_STAT_ADD(s->u.stream.loop, bytes_sent, uvl_bufs_size(bufs, nbufs));
    return r;
}

static int uvl_shutdown(uv_shutdown_t *req, uvl_stream_t *s)
{
    UVL_CHECK_HANDLE(s);
    return uv_shutdown(req, &s->u.stream, uvl_shutdown_cb);
}

static int uvl_listen(uvl_stream_t *s, int backlog)
{
    UVL_CHECK_HANDLE(s);
    return uv_listen(&s->u.stream, backlog, uvl_connection_cb);
}

static int uvl_accept(uvl_stream_t *server, uvl_stream_t *client)
{
    UVL_CHECK_HANDLE(server);
    UVL_CHECK_HANDLE(client);
    return uv_accept(&server->u.stream, &client->u.stream);
}

static size_t uvl_write_queue_size(uvl_stream_t *s)
{
    return s->u.stream.write_queue_size;
}



/* ---- process ---- (uv_spawn; handles/process.py) ------------------------ */

#include <dirent.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

/* status: the exit status; events: the terminating signal (0: none).  A
 * kind number far from the others: other areas add theirs without clashing. */
#define UVL_EV_EXIT 40

static void uvl_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    uvl_push(p->loop, p->data, UVL_EV_EXIT, (int)exit_status, term_signal);
}

/* uv_spawn with every stdio slot either inherited from a descriptor
 * (fds[i] >= 0: UV_INHERIT_FD) or left alone (-1: UV_IGNORE; libuv gives
 * slots 0-2 /dev/null, higher slots stay closed).  *linked tells Python
 * whether libuv still lists the handle on the loop after a failure (an exec
 * failure: it must be uv_close()d) or had already dropped it (a setup
 * failure: it must not be). */
static int uvl_spawn(uv_loop_t *loop, uv_process_t *p, const char *file,
                     char **args, char **env, const char *cwd, unsigned int flags,
                     unsigned int uid, unsigned int gid,
                     const int *fds, int nfds, int *linked)
{
    uv_process_options_t o;
    uv_stdio_container_t storage[16];
    uv_stdio_container_t *stdio = storage;
    int i, r;

    *linked = 0;
    UVL_CHECK_LOOP(loop);
    if (nfds > (int)(sizeof(storage) / sizeof(storage[0]))) {
        stdio = (uv_stdio_container_t *)malloc((size_t)nfds * sizeof(*stdio));
        if (stdio == NULL) {
            *linked = 0;
            return UV_ENOMEM;
        }
    }
    for (i = 0; i < nfds; i++) {
        if (fds[i] >= 0) {
            stdio[i].flags = UV_INHERIT_FD;
            stdio[i].data.fd = fds[i];
        } else {
            stdio[i].flags = UV_IGNORE;
            stdio[i].data.fd = -1;
        }
    }
    memset(&o, 0, sizeof(o));
    o.exit_cb = uvl_exit_cb;
    o.file = file;
    o.args = args;
    o.env = env;
    o.cwd = cwd;
    o.flags = flags;
    o.stdio_count = nfds;
    o.stdio = stdio;
    o.uid = (uv_uid_t)uid;
    o.gid = (uv_gid_t)gid;
    r = uv_spawn(loop, p, &o);
    /* A node removed from libuv's handle queue no longer has its
     * neighbour pointing back at it. */
    *linked = r == 0 || p->handle_queue.next->prev == &p->handle_queue;
    if (stdio != storage)
        free(stdio);
    return r;
}

/* The lowest open descriptor >= 3 without FD_CLOEXEC that is not in
 * skip[0..nskip); -1 when there is none, -2 when it cannot be told. */
static int uvl_find_inheritable(const int *skip, int nskip)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1, dfd, fd, flags, i;

    if (d == NULL)
        return -2;
    dfd = dirfd(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        fd = atoi(e->d_name);
        if (fd < 3 || fd == dfd || (found >= 0 && fd > found))
            continue;
        flags = fcntl(fd, F_GETFD);
        if (flags == -1 || (flags & FD_CLOEXEC))
            continue;
        for (i = 0; i < nskip; i++)
            if (skip[i] == fd)
                break;
        if (i == nskip)
            found = fd;
    }
    closedir(d);
    return found;
}

/* Whether child `pid` has exited, without reaping it (libuv does that):
 * 1 and *returncode (the exit status, or minus the killing signal) if it
 * has, 0 if it runs (block: wait until it exits), else a UV_E* code. */
static int uvl_child_peek(int pid, int block, int *returncode)
{
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) == -1)
        return -errno;  /* libuv's codes are -errno on unix */
    if (info.si_pid == 0)
        return 0;
    *returncode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    return 1;
}


/* ---- posix_spawn children ---- (handles/process.py: SpawnedChild) --------
 *
 * uv_spawn() fork()s, which copies the page tables of the whole (large)
 * Python process: about 0.8 ms per child here, more than stdlib's Popen
 * (vfork).  glibc's posix_spawn() is clone(CLONE_VM | CLONE_VFORK) with a
 * separate stack: no copy, and safe (the child only runs glibc's own
 * async-signal-safe code).  A child started so is not a uv_process_t (libuv's
 * SIGCHLD handler waits only for its own handles' pids, so it never steals
 * it): its exit is watched through a pidfd on a uv_poll_t. */

#include <spawn.h>
#include <signal.h>
#include <sys/syscall.h>
#include <dlfcn.h>

/* Built against any glibc, the path is chosen at run time: a wheel built on
 * one glibc runs on older ones (manylinux_2_28), where what it needs may be
 * missing.  pidfd_open is the same syscall number on every architecture of
 * the unified table (Linux 5.3+); older kernels answer ENOSYS at run time. */
#if defined(__linux__) && !defined(SYS_pidfd_open) \
    && (defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__arm__) \
        || defined(__powerpc64__) || defined(__s390x__) || defined(__riscv))
#define SYS_pidfd_open 434
#endif
#if defined(__linux__) && !defined(POSIX_SPAWN_SETSID)
#define POSIX_SPAWN_SETSID 0x80   /* glibc 2.26; older ones refuse it with EINVAL */
#endif

#if defined(__linux__) && defined(__GLIBC__) && defined(SYS_pidfd_open)
#define UVL_HAVE_POSIX_SPAWN 1
#else
#define UVL_HAVE_POSIX_SPAWN 0
#endif

extern char **environ;

#if UVL_HAVE_POSIX_SPAWN
/* posix_spawn_file_actions_addchdir_np (glibc 2.29), looked up at run time
 * rather than linked: linking it would make the module need glibc 2.29 to
 * load at all.  NULL where the running glibc lacks it: children with a cwd
 * then go through uv_spawn (uvl_posix_spawn_usable() says so). */
typedef int (*uvl_addchdir_fn)(posix_spawn_file_actions_t *, const char *);
static uvl_addchdir_fn uvl_addchdir;
#endif

/* A pidfd for `pid` (close-on-exec), or a UV_E* code. */
static int uvl_pidfd_open(int pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
    return fd < 0 ? -errno : (int)fd;
#else
    (void)pid;
    return UV_ENOSYS;
#endif
}

#define UVL_SPAWN_USABLE 1   /* posix_spawn + pidfd work here */
#define UVL_SPAWN_CHDIR 2    /* ... and a child can get its own cwd */

/* UVL_SPAWN_USABLE when children can be started with posix_spawn and watched
 * by pidfd here (glibc, Linux >= 5.3, no seccomp filter refusing
 * pidfd_open), with UVL_SPAWN_CHDIR when the running glibc (2.29+) has
 * posix_spawn_file_actions_addchdir_np; 0 otherwise.  Called once, at
 * import (handles/process.py). */
static int uvl_posix_spawn_usable(void)
{
#if UVL_HAVE_POSIX_SPAWN
    int fd;
    void *sym;
    fd = uvl_pidfd_open((int)getpid());
    if (fd < 0)
        return 0;
    close(fd);
    sym = dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addchdir_np");
    /* dlsym hands back a data pointer; copy it into the function pointer
     * (ISO C has no cast between the two). */
    memcpy(&uvl_addchdir, &sym, sizeof(uvl_addchdir));
    return UVL_SPAWN_USABLE | (uvl_addchdir != NULL ? UVL_SPAWN_CHDIR : 0);
#else
    return 0;
#endif
}

/* Start `file` (PATH search when `search`) as uvl_spawn does: fds[i] >= 0
 * becomes the child's descriptor i; fds[i] == -1 leaves slot i closed, but
 * 0-2 get /dev/null (as libuv's UV_IGNORE).  Signals 1-31 get their
 * default action and none is blocked (as libuv's child); `setsid`: a new
 * session.  On success *pid is the child and *pidfd a pidfd for it, or a
 * UV_E* code if none could be opened (the child runs anyway).  Returns 0,
 * or a UV_E* code (the exec error: glibc reports it and reaps the child). */
static int uvl_posix_spawn(const char *file, int search, char **args, char **env,
                           const char *cwd, int setsid, const int *fds, int nfds,
                           int *pid, int *pidfd)
{
#if UVL_HAVE_POSIX_SPAWN
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t sigdefault, sigmask;
    int tmp_storage[16];
    int *tmp = tmp_storage;
    int i, r = 0, s;
    pid_t child;

    if (nfds > (int)(sizeof(tmp_storage) / sizeof(tmp_storage[0]))) {
        tmp = (int *)malloc((size_t)nfds * sizeof(int));
        if (tmp == NULL)
            return UV_ENOMEM;
    }
    for (i = 0; i < nfds; i++)
        tmp[i] = -1;
    if ((r = posix_spawn_file_actions_init(&actions)) != 0) {
        if (tmp != tmp_storage)
            free(tmp);
        return -r;
    }
    if ((r = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&actions);
        if (tmp != tmp_storage)
            free(tmp);
        return -r;
    }
    /* Every source first gets a close-on-exec copy above 2 that is not a
     * target (targets are 0-2, or open here, so never picked): the child's
     * dup2()s then cannot clobber a source another slot still needs, and a
     * target equal to its source still loses FD_CLOEXEC (dup2 clears it). */
    for (i = 0; i < nfds && r == 0; i++) {
        if (fds[i] >= 0) {
            tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (tmp[i] < 0)
                r = errno;
            else
                r = posix_spawn_file_actions_adddup2(&actions, tmp[i], i);
        } else if (i < 3) {
            r = posix_spawn_file_actions_addopen(&actions, i, "/dev/null", O_RDWR, 0);
        }
    }
    if (r == 0 && cwd != NULL)
        r = uvl_addchdir != NULL ? uvl_addchdir(&actions, cwd) : ENOSYS;
    if (r == 0) {
        sigemptyset(&sigdefault);
        for (s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaddset(&sigdefault, s);
        sigemptyset(&sigmask);
        r = posix_spawnattr_setsigdefault(&attr, &sigdefault);
    }
    if (r == 0)
        r = posix_spawnattr_setsigmask(&attr, &sigmask);
    if (r == 0)
        r = posix_spawnattr_setflags(&attr, (short)(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
                                                     | (setsid ? POSIX_SPAWN_SETSID : 0)));
    if (r == 0) {
        if (search)
            r = posix_spawnp(&child, file, &actions, &attr, args, env != NULL ? env : environ);
        else
            r = posix_spawn(&child, file, &actions, &attr, args, env != NULL ? env : environ);
    }
    for (i = 0; i < nfds; i++)
        if (tmp[i] >= 0)
            close(tmp[i]);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (tmp != tmp_storage)
        free(tmp);
    if (r != 0)
        return -r;
    *pid = (int)child;
    *pidfd = uvl_pidfd_open((int)child);
    return 0;
#else
    (void)file; (void)search; (void)args; (void)env; (void)cwd; (void)setsid;
    (void)fds; (void)nfds; (void)pid; (void)pidfd;
    return UV_ENOSYS;
#endif
}

/* Reap child `pid` if it has exited: 1 and *returncode (the exit status,
 * or minus the killing signal), 0 if it still runs, else a UV_E* code. */
static int uvl_child_reap(int pid, int *returncode)
{
    int status;
    pid_t r;
    do
        r = waitpid((pid_t)pid, &status, WNOHANG);
    while (r == -1 && errno == EINTR);
    if (r == -1)
        return -errno;
    if (r == 0)
        return 0;
    *returncode = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    return 1;
}

/* ---- udp ---- */
/* uv_udp_t datagram endpoints (handles/udp.py).  Event kinds of their own
 * range, so other sections can add kinds without colliding. */

/* UVL_EV_RECV 20 (uvl_core_api.h): status: datagram size or error; events:
 * arena offset of its header, -1 on error */
#define UVL_EV_SEND 21   /* a queued uv_udp_send finished; they finish in FIFO order */

/* Datagrams are read with recvmmsg (UV_UDP_RECVMMSG): one system call takes
 * up to 20 of them.  libuv splits the buffer alloc gives it into 64 KiB
 * chunks, one datagram each, so a batch in the arena is laid out as
 *
 *     base (1 KiB aligned): UVL_UDP_HEADER bytes per chunk, the sender's
 *                           sockaddr (zero-padded sockaddr_in/sockaddr_in6)
 *     base + 1 KiB:         chunk 0, chunk 1, ... (64 KiB apart)
 *
 * The event records the header's offset H = base + 32 k; the data of chunk
 * k starts at base + 1 KiB + 64 KiB k = H + 1024 + (H % 1024) * 2047, which
 * is how LoopCore.process finds it.  The header doubles as the key of
 * Python's address cache and as the sockaddr a reply is sent to. */
/* UVL_UDP_HEADER 32 and UVL_UDP_BATCH_HEAD 1024 (room for the 20 headers,
 * and the alignment): uvl_core_api.h, with UVL_UDP_DATA_OFFSET. */
#define UVL_UDP_DGRAM_MAX 65536   /* libuv's chunk (UV__UDP_DGRAM_MAXSIZE) */
#define UVL_UDP_BATCH_MAX 20      /* libuv's recvmmsg takes at most 20 */

typedef struct uvl_udp_s {
    uv_udp_t udp;   /* first member: castable to uv_handle_t * */
    char *batch;    /* base of the batch alloc last handed out */
    int got;        /* the last batch had datagrams: read no more this time */
    void *target;   /* the native core's: recorded with each datagram (uvl_core_api.h) */
} uvl_udp_t;

static void uvl_udp_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    uvl_udp_t *u = (uvl_udp_t *)handle;
    uvl_loop_t *l = (uvl_loop_t *)handle->loop;
    size_t start = (l->arena_used + UVL_UDP_BATCH_HEAD - 1) & ~(size_t)(UVL_UDP_BATCH_HEAD - 1);
    size_t chunks;
    (void)suggested;
    /* One recvmmsg per readiness event: libuv would try another right away,
     * and it would almost always find nothing (EAGAIN); a datagram that did
     * arrive is read on the next iteration (the descriptor stays readable). */
    if (u->got) {
        u->got = 0;
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    /* Never less than a whole datagram's room: a smaller chunk would
     * truncate, and libuv's recvmmsg loop needs at least one.  A full arena
     * gives no buffer (UV_ENOBUFS, ignored): the socket stays readable and
     * is read on the next iteration. */
    if (start + UVL_UDP_BATCH_HEAD + UVL_UDP_DGRAM_MAX > UVL_ARENA_SIZE) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    chunks = (UVL_ARENA_SIZE - start - UVL_UDP_BATCH_HEAD) / UVL_UDP_DGRAM_MAX;
    if (chunks > UVL_UDP_BATCH_MAX)
        chunks = UVL_UDP_BATCH_MAX;
    u->batch = l->arena + start;
    buf->base = u->batch + UVL_UDP_BATCH_HEAD;
    buf->len = chunks * UVL_UDP_DGRAM_MAX;
}

static void uvl_udp_recv_cb(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                            const struct sockaddr *addr, unsigned flags)
{
    uvl_udp_t *u = (uvl_udp_t *)handle;
    uvl_loop_t *l = (uvl_loop_t *)handle->loop;
    char *header;
    size_t k, addrlen;
    /* UV_UDP_PARTIAL (cannot happen with 64 KiB chunks): delivered
     * truncated, as socket.recvfrom does.  UV_UDP_MMSG_FREE: the batch is
     * done (nread 0, no address). */
    if (nread == UV_ENOBUFS)
        return;
    if (nread < 0) {
        /* An error the socket reported (ECONNREFUSED after an ICMP port
         * unreachable on a connected socket): for error_received(). */
        uvl_push_target(handle->loop, handle->data, UVL_EV_RECV, (int)nread, -1, u->target);
        return;
    }
    if (addr == NULL)
        return;  /* nread == 0 without an address: nothing (more) to read */
    /* nread == 0 with an address is an empty datagram. */
    k = (size_t)(buf->base - (u->batch + UVL_UDP_BATCH_HEAD)) / UVL_UDP_DGRAM_MAX;
    header = u->batch + k * UVL_UDP_HEADER;
    memset(header, 0, UVL_UDP_HEADER);
    if (addr->sa_family == AF_INET6)
        addrlen = sizeof(struct sockaddr_in6);
    else if (addr->sa_family == AF_INET)
        addrlen = sizeof(struct sockaddr_in);
    else
        addrlen = 0;
    memcpy(header, addr, addrlen);
    /* Chunks arrive in order: the arena is used up to this one's end. */
    l->arena_used = (size_t)(buf->base - l->arena) + (size_t)nread;
    u->got = 1;
    UVL_STAT_ADD(l, bytes_received, nread);
    uvl_push_target(handle->loop, handle->data, UVL_EV_RECV, (int)nread, (int)(header - l->arena),
                    u->target);
}

static void uvl_udp_send_cb(uv_udp_send_t *req, int status)
{
    uvl_push(req->handle->loop, req->handle->data, UVL_EV_SEND, status, 0);
}

static int uvl_udp_init(uv_loop_t *loop, uvl_udp_t *u)
{
    UVL_CHECK_LOOP(loop);
    u->batch = NULL;
    u->got = 0;
    u->target = NULL;
    return uv_udp_init_ex(loop, &u->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
}

/* Adopt fd.  uv_udp_open() would also set SO_REUSEADDR on it (kept for
 * compatibility, libuv issue 4551); asyncio never does that to a UDP socket,
 * so no flags. */
static int uvl_udp_open(uvl_udp_t *u, int fd)
{
    UVL_CHECK_HANDLE(u);
    return uv_udp_open_ex(&u->udp, (uv_os_sock_t)fd, 0);
}

static int uvl_udp_recv_start(uvl_udp_t *u)
{
    UVL_CHECK_HANDLE(u);
    return uv_udp_recv_start(&u->udp, uvl_udp_alloc_cb, uvl_udp_recv_cb);
}

static int uvl_udp_recv_stop(uvl_udp_t *u)
{
    UVL_CHECK_HANDLE(u);
    return uv_udp_recv_stop(&u->udp);
}

/* addr: a sockaddr (a received header, or one from uvl_udp_sockaddr), or
 * NULL on a connected handle.  Returns the bytes sent, UV_EAGAIN, or an error. */
static int uvl_udp_try_send(uvl_udp_t *u, const char *data, size_t len, const char *addr)
{
    uv_buf_t buf;
    int r;
    /* Not uv_buf_init(), whose length is an unsigned int: a datagram of
     * 4 GiB + n would become one of n bytes.  With its true size the kernel
     * refuses it (EMSGSIZE), as stdlib's sendto() reports. */
    buf.base = (char *)data;
    buf.len = len;
    UVL_CHECK_HANDLE(u);
    r = uv_udp_try_send(&u->udp, &buf, 1, (const struct sockaddr *)addr);
    if (r >= 0) UVL_STAT_ADD(u->udp.loop, bytes_sent, r);
    return r;
}

/* libuv copies addr and the buffer descriptor; the data must live until the
 * UVL_EV_SEND completion. */
static int uvl_udp_send(uv_udp_send_t *req, uvl_udp_t *u, const char *data, size_t len,
                        const char *addr)
{
    uv_buf_t buf;
    int r;
    buf.base = (char *)data;
    buf.len = len;  /* (as in uvl_udp_try_send) */
    UVL_CHECK_HANDLE(u);
    r = uv_udp_send(req, &u->udp, &buf, 1, (const struct sockaddr *)addr, uvl_udp_send_cb);
    if (r == 0) UVL_STAT_ADD(u->udp.loop, bytes_sent, len);
    return r;
}


/* Fills out (UVL_UDP_HEADER bytes) with the sockaddr of a numeric address,
 * as the socket module builds it: "" is the any address, "<broadcast>" the
 * IPv4 broadcast one.  Returns 0, 1 when host is not numeric (Python then
 * resolves it), or UV_EAFNOSUPPORT. */
static int uvl_udp_sockaddr(int family, const char *host, int port, unsigned int flowinfo,
                            unsigned int scope_id, char *out)
{
    memset(out, 0, UVL_UDP_HEADER);
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)out;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        if (host[0] == '\0')
            in4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "<broadcast>") == 0)
            in4->sin_addr.s_addr = htonl(INADDR_BROADCAST);
        else if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
            return 1;
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        in6->sin6_scope_id = scope_id;
        if (host[0] == '\0')
            in6->sin6_addr = in6addr_any;
        else if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return 1;
        return 0;
    }
    return UV_EAFNOSUPPORT;
}

/* The parts of the address tuple the socket module makes of a sockaddr: the
 * host as getnameinfo(NI_NUMERICHOST) writes it (with a %scope for a scoped
 * IPv6 address), the port, and for IPv6 flowinfo and scope_id.  Returns the
 * family, or 0 for another one. */
static int uvl_udp_addr_parts(const char *sa, char *host, size_t hostlen, int *port,
                              unsigned int *flowinfo, unsigned int *scope_id)
{
    const struct sockaddr *addr = (const struct sockaddr *)sa;
    socklen_t len;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        len = sizeof(*in4);
        *port = ntohs(in4->sin_port);
        *flowinfo = 0;
        *scope_id = 0;
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        len = sizeof(*in6);
        *port = ntohs(in6->sin6_port);
        *flowinfo = ntohl(in6->sin6_flowinfo);
        *scope_id = in6->sin6_scope_id;
    } else {
        return 0;
    }
    if (getnameinfo(addr, len, host, (socklen_t)hostlen, NULL, 0, NI_NUMERICHOST) != 0)
        return -1;
    return addr->sa_family;
}


/* ---- fs: file work on libuv's thread pool (handles/fs.py) ----------------
 *
 * Nothing here runs file I/O on the loop thread (DESIGN.md rule 11).  stat
 * and unlink are plain uv_fs_* requests.  sendfile is our own uv_work_t, not
 * uv_fs_sendfile: libuv's version falls back, for a file sendfile(2) cannot
 * read (a pipe, say), to a read/write emulation that poll()s the socket in the
 * pool thread until it is writable -- a stalled peer would hold a pool thread
 * forever -- and stdlib's semantics want that case to fail at once (its
 * fallback then sends the file from Python).  So the work item makes exactly
 * the sendfile(2) calls os.sendfile() makes, until the non-blocking socket is
 * full (EAGAIN), the range is sent, EOF, an error, or the loop asks it to stop;
 * Python then waits for writability on the loop and queues the next step. */
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#define UVL_EV_FS 60   /* a uv_fs_t or uvl_sendfile_t finished; status: its result */

#define UVL_SF_DONE 1      /* the requested count is sent */
#define UVL_SF_EOF 2       /* sendfile() returned 0, or the file is empty (no count) */
#define UVL_SF_AGAIN 3     /* the socket is full: wait until it is writable */
#define UVL_SF_ERROR 4     /* sendfile() failed: error is its errno */
#define UVL_SF_NOTREG 5    /* fstat() of the file failed: error is its errno */
#define UVL_SF_STOPPED 6   /* the loop asked it to stop (cancellation, close) */

/* Never more per sendfile() call than Linux moves in one (and than a 32-bit
 * ssize_t holds: stdlib caps at sys.maxsize // 2 + 1 for that). */
#define UVL_SF_MAX_CALL ((int64_t)0x7ffff000)

typedef struct {
    uv_work_t work;     /* first member: work.data is the Python owner */
    int out_fd;         /* our dup of the socket (uvl_sendfile_init), -1 once released */
    int in_fd;          /* the file: the caller's descriptor, never closed here */
    int want_size;      /* first step: fstat in_fd; without a count, send st_size per call */
    int stop;           /* set by the loop thread, read between syscalls */
    int64_t offset;     /* in/out: the file offset of the next byte to send */
    int64_t limit;      /* in/out: bytes still to send, -1: until EOF */
    int64_t block;      /* bytes per sendfile() call when limit < 0 */
    int64_t sent;       /* out: bytes this step sent */
    int outcome;        /* out: UVL_SF_* */
    int error;          /* out: errno for UVL_SF_ERROR / UVL_SF_NOTREG */
} uvl_sendfile_t;

static void uvl_fs_cb(uv_fs_t *req)
{
    uvl_push(req->loop, req->data, UVL_EV_FS, (int)req->result, 0);
}

static int uvl_fs_stat(uv_loop_t *loop, uv_fs_t *req, const char *path, int follow)
{
    UVL_CHECK_LOOP(loop);
    if (follow)
        return uv_fs_stat(loop, req, path, uvl_fs_cb);
    return uv_fs_lstat(loop, req, path, uvl_fs_cb);
}

static int uvl_fs_unlink(uv_loop_t *loop, uv_fs_t *req, const char *path)
{
    UVL_CHECK_LOOP(loop);
    return uv_fs_unlink(loop, req, path, uvl_fs_cb);
}

/* The fields of a finished stat request Python needs (st_mode, st_ino, st_dev). */
static void uvl_fs_statinfo(uv_fs_t *req, uint64_t *mode, uint64_t *ino, uint64_t *dev)
{
    *mode = req->statbuf.st_mode;
    *ino = req->statbuf.st_ino;
    *dev = req->statbuf.st_dev;
}

/* 3.13's cleanup_socket at Server.close(): unlink path only if it is still
 * the file the server bound (same inode), as stdlib's os.stat + os.unlink,
 * and as stdlib does it, at once, inside close() (CPython's test_asyncio
 * checks the path right after close()).  Done here in the native layer,
 * not by Python-level os calls on the loop thread (DESIGN.md rule 11:
 * blocking-call detectors stay silent); a stat and an unlink of a local
 * socket file.  0 unlinked, 1 kept (another file is there now), or -errno. */
static int uvl_unlink_if_same(const char *path, uint64_t ino)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_ino != ino)
        return 1;
    return unlink(path) != 0 ? -errno : 0;
}

/* The socket's descriptor is duplicated for the life of the transfer: a
 * step may still be running in the pool when the transport is closed on the
 * loop thread, and without our own reference that descriptor number could
 * already belong to another connection, which would then receive the file. */
static int uvl_sendfile_init(uvl_sendfile_t *r, int out_fd, int in_fd)
{
    int fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    r->out_fd = fd;
    r->in_fd = in_fd;
    r->want_size = 1;
    r->stop = 0;
    r->sent = 0;
    r->outcome = 0;
    r->error = 0;
    return 0;
}

static void uvl_sendfile_release(uvl_sendfile_t *r)
{
    if (r->out_fd >= 0) {
        close(r->out_fd);
        r->out_fd = -1;
    }
}

static void uvl_sendfile_work(uv_work_t *w)
{
    uvl_sendfile_t *r = (uvl_sendfile_t *)w;
    r->sent = 0;
    r->error = 0;
    if (r->want_size) {
        struct stat st;
        r->want_size = 0;
        if (fstat(r->in_fd, &st) != 0) {
            r->error = errno;
            r->outcome = UVL_SF_NOTREG;
            return;
        }
        if (r->limit < 0) {
            if (st.st_size == 0) {     /* stdlib: an empty file sends nothing */
                r->outcome = UVL_SF_EOF;
                return;
            }
            r->block = (int64_t)st.st_size;
        }
    }
    for (;;) {
        int64_t len;
        ssize_t n;
        if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
            r->outcome = UVL_SF_STOPPED;
            return;
        }
        if (r->limit >= 0) {
            if (r->limit == 0) {
                r->outcome = UVL_SF_DONE;
                return;
            }
            len = r->limit;
        } else {
            len = r->block;
        }
        if (len > UVL_SF_MAX_CALL)
            len = UVL_SF_MAX_CALL;
#ifdef __linux__
        {
            off_t off = (off_t)r->offset;
            n = sendfile(r->out_fd, r->in_fd, &off, (size_t)len);
        }
#else
        /* Elsewhere the system sendfile() differs; stdlib's fallback applies. */
        errno = ENOSYS;
        n = -1;
#endif
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                r->outcome = UVL_SF_AGAIN;
                return;
            }
            r->error = errno;
            r->outcome = UVL_SF_ERROR;
            return;
        }
        if (n == 0) {
            r->outcome = UVL_SF_EOF;
            return;
        }
        r->offset += n;
        r->sent += n;
        if (r->limit >= 0)
            r->limit -= n;
    }
}

static void uvl_sendfile_after(uv_work_t *w, int status)
{
    if (status == 0) UVL_STAT_ADD(w->loop, bytes_sent, ((uvl_sendfile_t *)w)->sent);
    uvl_push(w->loop, w->data, UVL_EV_FS, status, 0);
}

/* Queue one step; its completion is a UVL_EV_FS with status 0 (read
 * outcome/sent/error) or UV_ECANCELED (never started). */
static int uvl_sendfile_step(uv_loop_t *loop, uvl_sendfile_t *r)
{
    UVL_CHECK_LOOP(loop);
    __atomic_store_n(&r->stop, 0, __ATOMIC_RELAXED);
    return uv_queue_work(loop, &r->work, uvl_sendfile_work, uvl_sendfile_after);
}

/* Make a running step return after its current syscall. */
static void uvl_sendfile_stop(uvl_sendfile_t *r)
{
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
}

/* --- native core (issue 9): the libuv entry points uvloop_like._core uses ---
 *
 * The optional CPython extension uvloop_like._core drives the loop from C,
 * but there is one libuv in the process: this module's (statically linked,
 * symbols private).  So _core never links libuv; it calls these functions
 * through a table of pointers, uvl_core_api() below, whose address _core
 * reads through this module's ffi at import.  abi and size let _core
 * refuse a table from a build that does not match it. */
static int uvl_run_stats(uvl_loop_t *l, int64_t timeout_ms, uint64_t ran);
static void uvl_stats_count_callbacks(uvl_loop_t *l, uint64_t n);

static uvl_event_t *uvl_core_events(uvl_loop_t *l)
{
    return l->events;
}

static const char *uvl_core_arena(uvl_loop_t *l)
{
    return l->arena;
}

static void uvl_stream_set_target(uvl_stream_t *s, void *target)
{
    s->target = target;
}

static void uvl_udp_set_target(uvl_udp_t *u, void *target)
{
    u->target = target;
}

/* The table's type, uvl_core_api_t, is in uvl_core_api.h. */
static const uvl_core_api_t uvl_core_api_table = {
    UVL_CORE_API_ABI, (int)sizeof(uvl_core_api_t), uvl_run, uvl_wakeup,
    uvl_run_stats, uvl_stats_count_callbacks,
    uvl_core_events, uvl_core_arena, uvl_stream_set_target, uvl_udp_set_target,
    uvl_try_write, uvl_udp_try_send,
};

static const void *uvl_core_api(void)
{
    return &uvl_core_api_table;
}

/* ---- stats: the scheduler's counters (observe; loop.stats()) ------------
 *
 * The Python core's run loop calls uvl_run_counted once per iteration instead
 * of uvl_run, the native core's (_core.c) uvl_run_stats through its table.  Clock reads: one per iteration, plus one more after a uv_run
 * that was allowed to wait.  The time between two iterations' entries is busy,
 * except the wait itself, which is idle:
 *
 *   entry(i) ... [uv_run may wait: idle] ... exit(i) ... dispatch, timers,
 *   ready handles ... entry(i+1)
 *
 * A non-waiting uv_run (callbacks were ready) counts as busy: libuv does I/O in
 * it.  Busy and idle time accrue only between uvl_stats_start and
 * uvl_stats_stop (run_forever).
 *
 * One argument carries both the timeout and `ran`, the number of handles the
 * previous iteration ran (each cffi argument costs about 50 instructions to
 * convert, a measurable share of a call_soon iteration):
 *   arg >= 0: don't wait (timeout 0), ran = arg -- the hot path, no arithmetic
 *             in Python;
 *   arg < 0:  y = -arg - 1 = ((timeout_ms + 1) << 32) | ran, timeout_ms >= -1
 *             (see uvloop_like/handles/core.py, run_arg). */
static int uvl_run_counted(uvl_loop_t *l, int64_t arg)
{
    uint64_t ran;
    int64_t timeout_ms;
    if (arg >= 0) {
        timeout_ms = 0;
        ran = (uint64_t)arg;
    } else {
        uint64_t y = (uint64_t)(-(arg + 1));
        ran = y & 0xffffffffu;
        timeout_ms = (int64_t)(y >> 32) - 1;
    }
    return uvl_run_stats(l, timeout_ms, ran);
}

/* uvl_run_counted's work, its argument decoded; the native core (_core.c)
 * calls it directly through uvl_core_api(). */
static int uvl_run_stats(uvl_loop_t *l, int64_t timeout_ms, uint64_t ran)
{
    uvl_stats_t *st = &l->stats;
    uint64_t now, busy;
    int n;
    st->callbacks += ran;
    st->iterations++;
    if (st->mark_ns == 0)
        return uvl_run(l, timeout_ms);
    now = uv_hrtime();
    busy = now - st->mark_ns;
    st->busy_ns += busy;
    if (busy > st->max_busy_ns)
        st->max_busy_ns = busy;
    n = uvl_run(l, timeout_ms);
    if (timeout_ms != 0) {
        uint64_t after = uv_hrtime();
        st->idle_ns += after - now;
        now = after;
    }
    st->mark_ns = now;
    return n;
}

/* Handles a scheduler ran that no uvl_run_stats call counts (the last
 * iteration before the run loop returns). */
static void uvl_stats_count_callbacks(uvl_loop_t *l, uint64_t n)
{
    l->stats.callbacks += n;
}

/* run_forever starts and ends the accounting of busy time. */
static void uvl_stats_start(uvl_loop_t *l)
{
    l->stats.mark_ns = uv_hrtime();
}

static void uvl_stats_stop(uvl_loop_t *l)
{
    uvl_stats_t *st = &l->stats;
    uint64_t busy;
    if (st->mark_ns == 0)
        return;
    busy = uv_hrtime() - st->mark_ns;
    st->busy_ns += busy;
    if (busy > st->max_busy_ns)
        st->max_busy_ns = busy;
    st->mark_ns = 0;
}

/* The busy time of the interval under way (0 when not running), for a
 * snapshot taken while the loop runs. */
static uint64_t uvl_stats_busy_now(uvl_loop_t *l)
{
    return l->stats.mark_ns ? uv_hrtime() - l->stats.mark_ns : 0;
}
