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

#define UVL_EV_POLL 1
#define UVL_EV_CLOSE 2
#define UVL_EV_GETADDRINFO 3
#define UVL_EV_GETNAMEINFO 4
#define UVL_EV_READ 5          /* status: nread or error; events: arena offset, -1: posted buffer */
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

typedef struct {
    void *owner;    /* the Python owner's ffi handle (handle->data / req->data) */
    int kind;       /* UVL_EV_* */
    int status;     /* libuv status, 0 or a negative UV_E* code */
    int events;     /* UV_READABLE | UV_WRITABLE ... for polls */
} uvl_event_t;

typedef struct {
    uv_loop_t uv;           /* first member: a handle's ->loop is this struct */
    uv_timer_t wake_timer;  /* bounds the poll wait by the earliest Python timer */
    uv_async_t wakeup;      /* call_soon_threadsafe() wakes a sleeping loop */
    uvl_event_t *events;
    size_t nevents;
    size_t capacity;
    int overflow;           /* set when the events array could not grow */
    char *arena;            /* UVL_ARENA_SIZE bytes for reads (see above) */
    size_t arena_used;
} uvl_loop_t;

/* A stream handle (TCP or pipe) and the BufferedProtocol buffer Python has
 * posted for its next read. */
typedef struct {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    char *posted;        /* memory from get_buffer(); NULL once a read used it */
    size_t posted_len;
    int buffered;        /* 1: read only into the posted buffer, never the arena */
} uvl_stream_t;

static void uvl_push(uv_loop_t *loop, void *owner, int kind, int status, int events)
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
    return uv_poll_start(handle, events, uvl_poll_cb);
}

static void uvl_close(uv_handle_t *handle)
{
    if (!uv_is_closing(handle))
        uv_close(handle, uvl_close_cb);
}

static int uvl_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req,
                           const char *node, const char *service,
                           int family, int socktype, int protocol, int flags)
{
    struct addrinfo hints;
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
        uvl_push(stream->loop, stream->data, UVL_EV_READ, (int)nread, 0);
        return;
    }
    if (s->posted != NULL && buf->base == s->posted) {
        s->posted = NULL;  /* Python posts the next buffer after buffer_updated() */
        uvl_push(stream->loop, stream->data, UVL_EV_READ, (int)nread, -1);
    } else {
        int offset = (int)(buf->base - l->arena);
        l->arena_used += (size_t)nread;
        uvl_push(stream->loop, stream->data, UVL_EV_READ, (int)nread, offset);
    }
}

static void uvl_write_cb(uv_write_t *req, int status)
{
    uvl_push(req->handle->loop, req->handle->data, UVL_EV_WRITE, status, 0);
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
    return uv_tcp_init(loop, &s->u.tcp);
}

static int uvl_pipe_init(uv_loop_t *loop, uvl_stream_t *s, int ipc)
{
    return uv_pipe_init(loop, &s->u.pipe, ipc);
}

static int uvl_tcp_open(uvl_stream_t *s, int fd)
{
    return uv_tcp_open(&s->u.tcp, (uv_os_sock_t)fd);
}

static int uvl_pipe_open(uvl_stream_t *s, int fd)
{
    return uv_pipe_open(&s->u.pipe, (uv_file)fd);
}

static int uvl_tcp_nodelay(uvl_stream_t *s, int enable)
{
    return uv_tcp_nodelay(&s->u.tcp, enable);
}

static int uvl_read_start(uvl_stream_t *s)
{
    return uv_read_start(&s->u.stream, uvl_alloc_cb, uvl_read_cb);
}

static int uvl_read_stop(uvl_stream_t *s)
{
    return uv_read_stop(&s->u.stream);
}

static int uvl_try_write(uvl_stream_t *s, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned int)len);
    return uv_try_write(&s->u.stream, &buf, 1);
}

static int uvl_try_writev(uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs)
{
    return uv_try_write(&s->u.stream, bufs, nbufs);
}

static int uvl_write(uv_write_t *req, uvl_stream_t *s, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned int)len);
    return uv_write(req, &s->u.stream, &buf, 1, uvl_write_cb);
}

static int uvl_writev(uv_write_t *req, uvl_stream_t *s, const uv_buf_t *bufs, unsigned int nbufs)
{
    return uv_write(req, &s->u.stream, bufs, nbufs, uvl_write_cb);
}

static int uvl_shutdown(uv_shutdown_t *req, uvl_stream_t *s)
{
    return uv_shutdown(req, &s->u.stream, uvl_shutdown_cb);
}

static int uvl_listen(uvl_stream_t *s, int backlog)
{
    return uv_listen(&s->u.stream, backlog, uvl_connection_cb);
}

static int uvl_accept(uvl_stream_t *server, uvl_stream_t *client)
{
    return uv_accept(&server->u.stream, &client->u.stream);
}

static size_t uvl_write_queue_size(uvl_stream_t *s)
{
    return s->u.stream.write_queue_size;
}

static int uvl_stream_fileno(uvl_stream_t *s)
{
    uv_os_fd_t fd;
    int r = uv_fileno(&s->u.handle, &fd);
    return r < 0 ? r : (int)fd;
}
