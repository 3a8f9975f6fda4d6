/* The native core's view of the cffi module (issue 9): ONE declaration of
 * what uvl.c (compiled into the cffi module, with libuv) and _core.c (the
 * CPython extension, which never links libuv) share.
 *
 * There is one libuv per process: the cffi module's.  _core.c reaches it
 * only through the table of function pointers below, whose address
 * uvl_core_api() returns (uvl.c, "native core" section) and Python passes
 * to _core at import.  Both sides include this header, so the table's
 * function-pointer types are the very types of uvl.c's functions (a call
 * through a pointer of another type is undefined behaviour, and UBSan's
 * -fsanitize=function reports it): the loop, stream and UDP structs are
 * named here and stay opaque to _core.c.
 *
 * abi and size let _core refuse a table from a build that does not match
 * it: bump UVL_CORE_API_ABI on any change of this file's types.  New
 * entries go at the END of the table. */
#ifndef UVL_CORE_API_H
#define UVL_CORE_API_H

#include <stddef.h>
#include <stdint.h>

struct uvl_loop_s;    /* uvl.c's uvl_loop_t: a uv_loop_t plus the completion array */
struct uvl_stream_s;  /* uvl.c's uvl_stream_t: a TCP or pipe stream */
struct uvl_udp_s;     /* uvl.c's uvl_udp_t: a UDP socket */

/* One completion recorded by a libuv callback (uvl.c), dispatched once
 * uv_run has returned: by LoopCore.process (handles/core.py) on the Python
 * core, by _core.c's completion section on the native core.  The Python
 * core never reads `target`. */
typedef struct {
    void *owner;    /* the Python owner's ffi handle (handle->data / req->data) */
    int kind;       /* UVL_EV_* */
    int status;     /* libuv status, 0 or a negative UV_E* code */
    int events;     /* UV_READABLE | UV_WRITABLE ... for polls; arena offsets for reads */
    void *target;   /* reads (UVL_EV_READ, UVL_EV_RECV) of a handle the native core
                     * bound (stream/udp set_target): its Python handle object,
                     * borrowed; NULL otherwise.  See _core.c, "completions". */
} uvl_event_t;

/* The kinds the native core's completion section reads (uvl.c defines the
 * others in its sections, each in its own range). */
#define UVL_EV_CLOSE 2
#define UVL_EV_READ 5          /* status: nread or error; events: arena offset, -1: posted buffer */
#define UVL_EV_RECV 20         /* status: datagram size or error; events: arena offset of its header, -1 on error */

/* A datagram's layout in the arena (uvl.c's udp section explains it): the
 * data of the datagram whose sender's sockaddr header is at offset h. */
#define UVL_UDP_HEADER 32
#define UVL_UDP_BATCH_HEAD 1024
#define UVL_UDP_DATA_OFFSET(h) ((h) + UVL_UDP_BATCH_HEAD + ((h) & (UVL_UDP_BATCH_HEAD - 1)) * 2047)

typedef struct {
    int abi;
    int size;
    int (*run)(struct uvl_loop_s *l, int64_t timeout_ms);
    int (*wakeup)(struct uvl_loop_s *l);
    /* loop.stats() (uvl.c's stats section): the native core's iteration runs
     * through run_counted, as the Python core's through uvl_run_counted. */
    int (*run_counted)(struct uvl_loop_s *l, int64_t timeout_ms, uint64_t ran);
    void (*count_callbacks)(struct uvl_loop_s *l, uint64_t n);
    /* Completion dispatch (_core.c's completions section): the last run's
     * completion array and the read arena it points into; both stay put
     * until the next run (the array may move when a run grows it). */
    uvl_event_t *(*events)(struct uvl_loop_s *l);
    const char *(*arena)(struct uvl_loop_s *l);
    /* Record `target` (the Python handle object, or NULL) in each read
     * completion of this stream / UDP socket from now on. */
    void (*stream_set_target)(struct uvl_stream_s *s, void *target);
    void (*udp_set_target)(struct uvl_udp_s *u, void *target);
    /* The write fast path (_core.c's "write fast path" section): the very
     * functions the Python core calls (uvl_try_write, uvl_udp_try_send), so
     * loop.stats()'s bytes_sent counts alike on both cores. */
    int (*try_write)(struct uvl_stream_s *s, const char *data, size_t len);
    int (*udp_try_send)(struct uvl_udp_s *u, const char *data, size_t len, const char *addr);
    /* New entries here, at the end. */
} uvl_core_api_t;

#define UVL_CORE_API_ABI 4

#endif /* UVL_CORE_API_H */
