/* uvloop_like._core: the optional native core (CPython only; issue 9).
 *
 * The loop class stays Python (uvloop_like.loop.Loop).  A Loop on the native
 * core holds one Core object, and its instance dict binds Core's call_soon,
 * call_soon_threadsafe, call_later, call_at, create_task and create_future
 * over the class's Python methods (only those the loop's class does not
 * override); Loop._run_once
 * hands the whole run loop to Core.run.  Everything else -- the ready deque,
 * the timer heap (a list kept in heapq order), the cancelled-timer count,
 * stop(), debug mode, the exception handler -- is the Python core's own
 * state on the loop (the hot part in Loop.__slots__: see loop_attr), read
 * here at the points the Python core reads it, so both cores can run the
 * same loop and Python code that looks at loop._ready or loop._scheduled
 * sees what it always saw.
 *
 * Handles are real asyncio.Handle / asyncio.TimerHandle objects: allocated
 * as their class's __new__ would and their slots set as __init__ sets them
 * (the slot offsets come from the classes' member descriptors, checked at
 * import: a Python whose Handle has other slots gets no native core).
 *
 * One libuv per process: the cffi module's.  Core reaches it through the
 * table of function pointers uvl_core_api() returns (uvl.c, "native core"
 * section), whose address Python passes in as an int.
 *
 * loop.stats(): each iteration's libuv run goes through uvl.c's
 * uvl_run_stats (the table's run_counted), which keeps iterations, callbacks
 * and busy/idle time as uvl_run_counted does for the Python core; with a
 * slow-callback hook set, the run loop times each callback itself
 * (run_ready_hooked) and each completion's dispatch through
 * LoopCore.process_timed, as the Python core does.
 *
 * Whatever the core does not reproduce exactly goes to the Python methods:
 * debug mode, Handle creation when the loop's _slow_handles is set, a
 * call_at replaced on the instance, bad arguments (the Python function then
 * raises its own error), and loop.time() replaced on the instance or by a
 * subclass (the monotonic clock is read directly only while `time` is
 * Loop.time; DESIGN.md rule 13).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
static inline PyObject *Py_XNewRef(PyObject *o) { Py_XINCREF(o); return o; }
#endif

/* The cffi module's table (and the completion record): one declaration,
 * shared with uvl.c. */
#include "_native/uvl_core_api.h"

typedef uvl_core_api_t core_api_t;

#define CORE_API_ABI UVL_CORE_API_ABI
#define MAX_WAIT_MS (24.0 * 3600 * 1000)  /* loop.py's _MAX_WAIT_MS */

/* --- module state (single-phase init: one per process) ------------------ */

static PyTypeObject *HandleType;       /* asyncio.Handle */
static PyTypeObject *TimerHandleType;  /* asyncio.TimerHandle */
static PyObject *DequeType;            /* collections.deque */
static PyObject *ExitExceptions;       /* (SystemExit, KeyboardInterrupt) */
static PyObject *PerfCounter;          /* time.perf_counter: the slow-callback hook's clock */
static const core_api_t *CoreApi;      /* the cffi module's uvl_core_api() */
/* To read a LoopCore's uvl_loop_t address from its cdata, through cffi
 * (never from an int a caller passes: that would be a crash on demand). */
static PyObject *LoopCoreType;         /* uvloop_like.handles.core.LoopCore */
static PyObject *Ffi;                  /* uvloop_like._ffi.ffi */
static PyObject *UintptrType;           /* ffi.typeof("uintptr_t") */
static PyObject *UvlLoopPtrType;       /* ffi.typeof("uvl_loop_t *") */

/* Slot offsets of Handle (and TimerHandle, which adds _when/_scheduled). */
static Py_ssize_t off_callback, off_args, off_cancelled, off_loop, off_source_traceback,
    off_repr, off_context, off_when, off_scheduled;

static PyObject *s_closed, *s_slow_handles, *s_debug, *s_ready, *s_scheduled,
    *s_timer_cancelled_count, *s_stopping, *s_clock_resolution, *s_time, *s_call_at,
    *s_call_soon, *s_append, *s_popleft, *s_purge, *s_run_ready_debug, *s_report_error,
    *s_process, *s_dispatch_pending, *s_pending, *s_run, *s_when, *s_cancelled,
    *s_context, *s_callback, *s_args, *s_slow_hook, *s_slow_hook_threshold, *s_call_slow_hook,
    *s_process_timed, *s_report_slow_dispatch, *s_timed;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* A call's result, done with: -1 if it failed (its error set), else `ok`
 * (the reference dropped). */
static inline int
consume(PyObject *r, int ok)
{
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return ok;
}

/* The loop's state the core reads at its hot points: Loop.__slots__ (loop.py),
 * read at their offsets (a few instructions; a look-up in the instance dict
 * costs about a hundred).  Python code sets them as ever (loop._debug = True,
 * loop._ready = deque()): the core reads the slot each time it needs the
 * value, so there is no copy to go stale. */
enum { A_CLOSED, A_STOPPING, A_DEBUG, A_TIMED, A_SLOW_HANDLES, A_READY, A_SCHEDULED,
       A_TIMER_CANCELLED_COUNT, A_TASK_FACTORY, A_CLOCK_RESOLUTION, A_SLOW_HOOK,
       A_SLOW_HOOK_THRESHOLD, N_ATTRS };
static PyObject *attr_names[N_ATTRS];  /* interned; set in PyInit__core */

/* Free lists of Handles and TimerHandles the run loop held the last
 * reference to, their slots cleared: call_soon/call_at reuse them instead of
 * allocating, which also spares the garbage collector a young-generation
 * pass every 700 handles (a GC object allocated from a free list is not
 * counted).  Only an object nobody else refers to and no weak reference
 * points at goes in (so it is unobservable but through gc.get_objects()). */
#define FREELIST_SIZE 1024
typedef struct {
    PyObject *items[FREELIST_SIZE];
    int n;
} freelist_t;
static freelist_t free_handles, free_timers;
static int freelist_ok;  /* Handle's weak reference list is at a known offset */

/* --- Core ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *loop;        /* the Loop */
    PyObject *dict;        /* loop.__dict__: the Python core's state */
    PyObject *lcore;       /* loop._core (handles/core.py LoopCore): owns the uvl_loop_t */
    PyObject *pending;     /* lcore.pending: completions an exception interrupted */
    struct uvl_loop_s *uvl;  /* its uvl_loop_t * */
    const core_api_t *api;
    PyObject *time_func;   /* Loop.time: the clock is native while type(loop).time is it */
    /* The Python core's functions (Loop.call_soon, ...) for the fallbacks. */
    PyObject *py_call_soon, *py_call_soon_threadsafe, *py_call_later, *py_call_at;
    PyObject *ready;       /* the deque last seen in loop._ready, and its methods */
    PyObject *ready_append;
    PyObject *ready_popleft;
    int running;           /* Core.run frames under way: close() waits for none */
    int closed;            /* close() ran: its methods then say "Event loop is closed" */
    /* create_task/create_future (their section below).  close() keeps these:
     * a bound method held past Loop.close() still reaches the Python core. */
    PyObject *loop_ref;    /* weak reference to the loop */
    PyObject *py_create_task, *py_create_future;  /* Loop's, or NULL */
    /* The hot attributes (see loop_attr): each one's slot offset in the
     * loop, or -1: read with getattr, the value then held in attr_tmp. */
    Py_ssize_t attr_off[N_ATTRS];
    PyObject *attr_tmp[N_ATTRS];
} CoreObject;

static PyTypeObject CoreType;
static int task_init(CoreObject *self, PyObject *loop, PyObject *ct, PyObject *cf);

static int
Core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->dict);
    Py_VISIT(self->lcore);
    Py_VISIT(self->pending);
    Py_VISIT(self->time_func);
    Py_VISIT(self->py_call_soon);
    Py_VISIT(self->py_call_soon_threadsafe);
    Py_VISIT(self->py_call_later);
    Py_VISIT(self->py_call_at);
    Py_VISIT(self->ready);
    Py_VISIT(self->ready_append);
    Py_VISIT(self->ready_popleft);
    Py_VISIT(self->py_create_task);
    Py_VISIT(self->py_create_future);
    for (int a = 0; a < N_ATTRS; a++)
        Py_VISIT(self->attr_tmp[a]);
    return 0;
}

static int
core_release(CoreObject *self);

static int
Core_clear(CoreObject *self)
{
    Py_CLEAR(self->loop_ref);
    Py_CLEAR(self->py_create_task);
    Py_CLEAR(self->py_create_future);
    return core_release(self);
}

/* Drop the loop and its state (close()); see Core_clear for the rest. */
static int
core_release(CoreObject *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->lcore);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->time_func);
    Py_CLEAR(self->py_call_soon);
    Py_CLEAR(self->py_call_soon_threadsafe);
    Py_CLEAR(self->py_call_later);
    Py_CLEAR(self->py_call_at);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->ready_append);
    Py_CLEAR(self->ready_popleft);
    for (int a = 0; a < N_ATTRS; a++)
        Py_CLEAR(self->attr_tmp[a]);
    self->uvl = NULL;
    return 0;
}

static void
Core_dealloc(CoreObject *self)
{
    PyObject_GC_UnTrack(self);
    Core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* int(ffi.cast(UINTPTR, cdata)): 0 with an exception set on failure (a
 * null pointer is 0 without one). */
static uintptr_t
cdata_to_uintptr(PyObject *cdata)
{
    PyObject *i = PyObject_CallMethod(Ffi, "cast", "OO", UintptrType, cdata);
    if (i == NULL)
        return 0;
    PyObject *n = PyNumber_Long(i);
    Py_DECREF(i);
    if (n == NULL)
        return 0;
    uintptr_t addr = (uintptr_t)PyLong_AsUnsignedLongLong(n);
    Py_DECREF(n);
    return PyErr_Occurred() ? 0 : addr;
}

/* int(ffi.cast(UINTPTR, cdata)) when cdata's type is `ptrtype`; 0 with an
 * exception otherwise. */
static uintptr_t
cdata_address(PyObject *cdata, PyObject *ptrtype)
{
    PyObject *t = PyObject_CallMethod(Ffi, "typeof", "O", cdata);
    if (t == NULL)
        return 0;
    int same = t == ptrtype;
    Py_DECREF(t);
    if (!same) {
        PyErr_SetString(PyExc_TypeError, "Core: the loop's core has the wrong pointer type");
        return 0;
    }
    uintptr_t addr = cdata_to_uintptr(cdata);
    if (addr == 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "Core: null loop pointer");
    return addr;
}

/* The offset of attribute `name` when the loop's class has it as a plain
 * object slot (Loop.__slots__), else -1 (a subclass that redefines it). */
static Py_ssize_t
attr_slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type))
        return -1;
    PyMemberDescrObject *m = (PyMemberDescrObject *)d;
    if (m->d_member->type != T_OBJECT_EX || (m->d_member->flags & READONLY)
            || !PyType_IsSubtype(type, PyDescr_TYPE(m)))
        return -1;
    return m->d_member->offset;
}

static int
Core_init(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "time", "call_soon", "call_soon_threadsafe", "call_later",
                             "call_at", "create_task", "create_future", NULL};
    PyObject *loop, *time_func, *cs, *cst, *cl, *ca, *ct = NULL, *cf = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO|OO:Core", kwlist, &loop, &time_func, &cs,
                                     &cst, &cl, &ca, &ct, &cf))
        return -1;
    if (self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Core is already initialized");
        return -1;
    }
    if (!PyCallable_Check(time_func) || !PyCallable_Check(cs) || !PyCallable_Check(cst)
            || !PyCallable_Check(cl) || !PyCallable_Check(ca)
            || (ct != NULL && ct != Py_None && !PyCallable_Check(ct))
            || (cf != NULL && cf != Py_None && !PyCallable_Check(cf))) {
        PyErr_SetString(PyExc_TypeError, "Core: the Python core's methods must be callable");
        return -1;
    }
    /* The libuv loop: the loop's own LoopCore (handles/core.py), open. */
    PyObject *lcore = PyObject_GetAttrString(loop, "_core");
    if (lcore == NULL)
        return -1;
    if ((PyObject *)Py_TYPE(lcore) != LoopCoreType) {
        Py_DECREF(lcore);
        PyErr_SetString(PyExc_TypeError, "Core: loop._core is not a LoopCore");
        return -1;
    }
    PyObject *closed = PyObject_GetAttrString(lcore, "closed");
    int is_closed = closed == NULL ? -1 : PyObject_IsTrue(closed);
    Py_XDECREF(closed);
    if (is_closed != 0) {
        Py_DECREF(lcore);
        if (is_closed == 1)
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    PyObject *ptr = PyObject_GetAttrString(lcore, "ptr");
    if (ptr == NULL) {
        Py_DECREF(lcore);
        return -1;
    }
    uintptr_t uvl = cdata_address(ptr, UvlLoopPtrType);
    Py_DECREF(ptr);
    if (uvl == 0) {
        Py_DECREF(lcore);
        return -1;
    }
    /* LoopCore sets it once, in __init__ (handles/core.py). */
    PyObject *pending = PyObject_GetAttrString(lcore, "pending");
    if (pending == NULL) {
        Py_DECREF(lcore);
        return -1;
    }
    if ((PyObject *)Py_TYPE(pending) != DequeType) {
        Py_DECREF(pending);
        Py_DECREF(lcore);
        PyErr_SetString(PyExc_TypeError, "Core: loop._core.pending is not a deque");
        return -1;
    }
    PyObject *dict = PyObject_GetAttrString(loop, "__dict__");
    if (dict == NULL) {
        Py_DECREF(pending);
        Py_DECREF(lcore);
        return -1;
    }
    if (!PyDict_CheckExact(dict)) {
        Py_DECREF(dict);
        Py_DECREF(pending);
        Py_DECREF(lcore);
        PyErr_SetString(PyExc_TypeError, "Core: the loop's __dict__ is not a dict");
        return -1;
    }
    self->dict = dict;
    self->loop = Py_NewRef(loop);
    self->lcore = lcore;
    self->pending = pending;
    self->uvl = (struct uvl_loop_s *)uvl;
    self->api = CoreApi;
    self->time_func = Py_NewRef(time_func);
    self->py_call_soon = Py_NewRef(cs);
    self->py_call_soon_threadsafe = Py_NewRef(cst);
    self->py_call_later = Py_NewRef(cl);
    self->py_call_at = Py_NewRef(ca);
    for (int a = 0; a < N_ATTRS; a++)
        self->attr_off[a] = attr_slot_offset(Py_TYPE(loop), attr_names[a]);
    return task_init(self, loop, ct, cf);
}

/* loop.<attr_names[a]>, borrowed: its slot's value, NULL without an
 * exception when unset (Python's AttributeError); for a class that redefines
 * the name, what getattr gives (held in attr_tmp until the next read). */
static inline PyObject *
loop_attr(CoreObject *self, int a)
{
    Py_ssize_t off = self->attr_off[a];
    if (off > 0)
        return SLOT(self->loop, off);
    PyObject *v = PyObject_GetAttr(self->loop, attr_names[a]);
    if (v == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError))
            PyErr_Clear();
        return NULL;
    }
    Py_XSETREF(self->attr_tmp[a], v);
    return v;
}

/* loop.<attr_names[a]> (borrowed) in *out: 1 when it is set, 0 when not,
 * -1 with an exception.  One place tells "missing" from "failed", so each
 * caller only maps the three cases to its own answer. */
static inline int
attr_find(CoreObject *self, int a, PyObject **out)
{
    *out = loop_attr(self, a);
    if (*out != NULL)
        return 1;
    return PyErr_Occurred() ? -1 : 0;
}

/* The truth of loop.<attr_names[a]>: 1, 0, -1 with an exception; -2 (no
 * exception) when the attribute is not set. */
static inline int
attr_flag(CoreObject *self, int a)
{
    PyObject *v;
    int found = attr_find(self, a, &v);
    if (found <= 0)
        return found < 0 ? -1 : -2;
    if (v == Py_False || v == Py_None)
        return 0;
    if (v == Py_True)
        return 1;
    Py_INCREF(v);  /* (__bool__ may replace it) */
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* loop.<key>, borrowed, NULL without an exception when absent: one of the
 * attributes above, or a value of the loop's __dict__. */
static PyObject *
dict_get(CoreObject *self, PyObject *key)
{
    for (int a = 0; a < N_ATTRS; a++) {
        if (key == attr_names[a])
            return loop_attr(self, a);
    }
    return PyDict_GetItemWithError(self->dict, key);
}

/* The truth of loop.<key> (see attr_flag). */
static int
dict_flag(CoreObject *self, PyObject *key)
{
    for (int a = 0; a < N_ATTRS; a++) {
        if (key == attr_names[a])
            return attr_flag(self, a);
    }
    PyObject *v = PyDict_GetItemWithError(self->dict, key);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : -2;
    Py_INCREF(v);
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static int
check_alive(CoreObject *self)
{
    if (self->loop == NULL) {
        /* A bound method kept past loop.close() says what the Python
         * method says. */
        PyErr_SetString(PyExc_RuntimeError, self->closed ? "Event loop is closed"
                        : "Core is not initialized");
        return -1;
    }
    return 0;
}

/* The loop's ready deque and its bound append/popleft, refreshed when
 * loop._ready was replaced.  0, or -1 with an exception; 1: not a deque
 * (the caller falls back to Python). */
static int
get_ready(CoreObject *self)
{
    PyObject *ready;
    int found = attr_find(self, A_READY, &ready);
    if (found <= 0)
        return found < 0 ? -1 : 1;
    if (ready == self->ready)
        return 0;
    if ((PyObject *)Py_TYPE(ready) != DequeType)
        return 1;
    PyObject *append = PyObject_GetAttr(ready, s_append);
    if (append == NULL)
        return -1;
    PyObject *popleft = PyObject_GetAttr(ready, s_popleft);
    if (popleft == NULL) {
        Py_DECREF(append);
        return -1;
    }
    Py_XSETREF(self->ready, Py_NewRef(ready));
    Py_XSETREF(self->ready_append, append);
    Py_XSETREF(self->ready_popleft, popleft);
    return 0;
}

/* loop.time(): the monotonic clock read here while `time` is Loop.time on
 * the class and not replaced on the instance; else a call to loop.time(). */
static PyObject *
loop_time(CoreObject *self)
{
    PyObject *patched = dict_get(self, s_time);
    if (patched == NULL && PyErr_Occurred())
        return NULL;
    if (patched == NULL && _PyType_Lookup(Py_TYPE(self->loop), s_time) == self->time_func) {
#if PY_VERSION_HEX >= 0x030D0000
        PyTime_t t;
        if (PyTime_Monotonic(&t) < 0)
            return NULL;
        return PyFloat_FromDouble(PyTime_AsSecondsDouble(t));
#else
        return PyFloat_FromDouble(_PyTime_AsSecondsDouble(_PyTime_GetMonotonicClock()));
#endif
    }
    return PyObject_CallMethodNoArgs(self->loop, s_time);
}

/* fn(first, *args, **kw) through vectorcall (args: the positional, then
 * the keyword values, as a vectorcall receives them). */
static PyObject *
call_with_first(PyObject *fn, PyObject *first, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    PyObject *small[8];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t total = nargs + nkw + 1;
    PyObject **stack = small;
    if (total > 8) {
        stack = PyMem_Malloc(total * sizeof(PyObject *));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = first;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[i + 1] = args[i];
    PyObject *res = PyObject_Vectorcall(fn, stack, nargs + 1, kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return res;
}

/* fn(loop, *args, **kw): the Python core's method. */
static PyObject *
call_python(CoreObject *self, PyObject *fn, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    return call_with_first(fn, self->loop, args, nargs, kwnames);
}

/* Is this keyword name "context"?  By identity for the interned name and
 * for the last other "context" string seen (3.11's _asyncio passes its own,
 * not interned, on every call_soon of a Task step), else by value. */
static PyObject *s_kw_context;  /* "context", interned (task_module_init) */

static int
kwname_is_context(PyObject *name)
{
    static PyObject *alias;
    if (name == s_kw_context || name == alias)
        return 1;
    if (!PyUnicode_Check(name) || PyUnicode_Compare(name, s_kw_context) != 0)
        return 0;
    if (PyUnicode_CheckExact(name))
        Py_XSETREF(alias, Py_NewRef(name));
    return 1;
}

/* The keyword arguments of call_soon & co.: only `context`.  1: found
 * (*context set, borrowed); 0: none; -1: anything else (the caller falls
 * back to Python, which raises the right TypeError). */
static int
parse_context(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **context)
{
    *context = Py_None;
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0)
        return 0;
    if (PyTuple_GET_SIZE(kwnames) != 1)
        return -1;
    if (!kwname_is_context(PyTuple_GET_ITEM(kwnames, 0)))
        return -1;
    *context = args[nargs];
    return 1;
}

/* A new Handle (or TimerHandle) with the slots Handle.__init__ sets, as
 * when the loop is not in debug mode.  callback, cargs: borrowed. */
static PyObject *
new_handle(CoreObject *self, PyTypeObject *type, PyObject *callback, PyObject *cargs,
           PyObject *context)
{
    PyObject *ctx;
    if (context == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL)
            return NULL;
    } else {
        ctx = Py_NewRef(context);
    }
    freelist_t *fl = type == HandleType ? &free_handles : &free_timers;
    PyObject *h;
    if (fl->n) {
        h = fl->items[--fl->n];
    } else {
        h = type->tp_alloc(type, 0);
        if (h == NULL) {
            Py_DECREF(ctx);
            return NULL;
        }
    }
    SLOT(h, off_context) = ctx;
    SLOT(h, off_loop) = Py_NewRef(self->loop);
    SLOT(h, off_callback) = Py_NewRef(callback);
    SLOT(h, off_args) = Py_NewRef(cargs);
    SLOT(h, off_cancelled) = Py_NewRef(Py_False);
    SLOT(h, off_repr) = Py_NewRef(Py_None);
    SLOT(h, off_source_traceback) = Py_NewRef(Py_None);
    return h;
}

static void
clear_slot(PyObject *h, Py_ssize_t off)
{
    PyObject *v = SLOT(h, off);
    SLOT(h, off) = NULL;
    Py_XDECREF(v);
}

/* Drop the run loop's reference to a handle it ran: into the free list when
 * that is the last reference (see freelist_t), else a plain DECREF. */
static void
release_handle(PyObject *h)
{
    PyTypeObject *type = Py_TYPE(h);
    freelist_t *fl = type == HandleType ? &free_handles
        : type == TimerHandleType ? &free_timers : NULL;
    if (fl == NULL || !freelist_ok || Py_REFCNT(h) != 1 || fl->n >= FREELIST_SIZE
            || *(PyObject **)((char *)h + type->tp_weaklistoffset) != NULL) {
        Py_DECREF(h);
        return;
    }
    /* Releasing the slots may run arbitrary code (finalizers). */
    clear_slot(h, off_callback);
    clear_slot(h, off_args);
    clear_slot(h, off_context);
    clear_slot(h, off_loop);
    clear_slot(h, off_cancelled);
    clear_slot(h, off_repr);
    clear_slot(h, off_source_traceback);
    if (type == TimerHandleType) {
        clear_slot(h, off_when);
        clear_slot(h, off_scheduled);
    }
    if (Py_REFCNT(h) != 1 || fl->n >= FREELIST_SIZE
            || *(PyObject **)((char *)h + type->tp_weaklistoffset) != NULL) {
        Py_DECREF(h);
        return;
    }
    fl->items[fl->n++] = h;
}

static PyObject *
args_tuple(PyObject *const *args, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
    return t;
}

/* A Handle for callback args[0](*args[1:]) in ``context``, appended to the
 * ready queue: the new reference, or NULL with an exception set. */
static PyObject *
queue_handle(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    PyObject *cargs = args_tuple(args + 1, nargs - 1);
    if (cargs == NULL)
        return NULL;
    PyObject *h = new_handle(self, HandleType, args[0], cargs, context);
    Py_DECREF(cargs);
    if (h == NULL)
        return NULL;
    PyObject *r = PyObject_CallOneArg(self->ready_append, h);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    return h;
}

/* `if self._closed: raise RuntimeError(...)`, as every Python method that
 * schedules begins: 0 when open, -1 with the exception set; 1 when
 * loop._closed is not in the instance dict (the Python method then raises
 * its AttributeError). */
static int
refuse_closed(CoreObject *self)
{
    int flag = attr_flag(self, A_CLOSED);
    if (flag == 1)
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return flag == -2 ? 1 : flag != 0 ? -1 : 0;
}

/* Is loop.<name> (instance dict) this core's own bound method `fn`? */
static int
is_own_method(CoreObject *self, PyObject *name, PyCFunction fn)
{
    PyObject *m = dict_get(self, name);
    return m != NULL && PyCFunction_Check(m) && PyCFunction_GET_SELF(m) == (PyObject *)self
        && PyCFunction_GET_FUNCTION(m) == fn;
}

static PyObject *Core_call_soon(CoreObject *, PyObject *const *, Py_ssize_t, PyObject *);

/* call_soon and call_soon_threadsafe: one body, inlined into each. */
static inline PyObject *
soon(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames,
     int threadsafe)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    if (check_alive(self) < 0)
        return NULL;
    /* Missing or unknown arguments: the Python method raises its TypeError. */
    if (nargs < 1 || parse_context(args, nargs, kwnames, &context) < 0)
        goto python;
    int flag = refuse_closed(self);
    if (flag < 0)
        return NULL;
    if (flag)
        goto python;
    /* Debug mode checks the callback (call_soon_threadsafe; call_soon's
     * _slow_handles is set then); _slow_handles builds a real Handle; a
     * call_soon replaced on the instance is what Python's
     * call_soon_threadsafe calls. */
    if ((threadsafe && attr_flag(self, A_DEBUG) != 0) || attr_flag(self, A_SLOW_HANDLES) != 0)
        goto python;
    if (threadsafe
            && !is_own_method(self, s_call_soon, (PyCFunction)(void (*)(void))Core_call_soon))
        goto python;
    if (get_ready(self) != 0)
        goto python;
    PyObject *h = queue_handle(self, args, nargs, context);
    if (h != NULL && threadsafe)
        self->api->wakeup(self->uvl);
    return h;
python:
    /* (A check that failed with an exception raises it.) */
    if (PyErr_Occurred())
        return NULL;
    return call_python(self, threadsafe ? self->py_call_soon_threadsafe : self->py_call_soon,
                       args, nargs, kwnames);
}

/* call_soon(callback, *args, context=None) */
static PyObject *
Core_call_soon(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return soon(self, args, nargsf, kwnames, 0);
}

/* call_soon_threadsafe(callback, *args, context=None) */
static PyObject *
Core_call_soon_threadsafe(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf,
                          PyObject *kwnames)
{
    return soon(self, args, nargsf, kwnames, 1);
}

/* --- the timer heap: heapq's algorithm on the loop's list ----------------
 *
 * Same algorithm as heapq.heappush/heappop (so timers with equal deadlines
 * come out in the order stdlib's heap gives), comparing TimerHandles as
 * TimerHandle.__lt__ does (by _when) without a Python frame. */

/* a < b, both held across the comparison (it may run code that drops
 * them from the heap or from their handle). */
static int
held_lt(PyObject *a, PyObject *b)
{
    Py_INCREF(a);
    Py_INCREF(b);
    int r = PyObject_RichCompareBool(a, b, Py_LT);
    Py_DECREF(a);
    Py_DECREF(b);
    return r;
}

static int
timer_lt(PyObject *a, PyObject *b)
{
    if (Py_IS_TYPE(a, TimerHandleType) && Py_IS_TYPE(b, TimerHandleType)) {
        PyObject *wa = SLOT(a, off_when), *wb = SLOT(b, off_when);
        if (wa != NULL && wb != NULL) {
            if (PyFloat_CheckExact(wa) && PyFloat_CheckExact(wb))
                return PyFloat_AS_DOUBLE(wa) < PyFloat_AS_DOUBLE(wb);
            return held_lt(wa, wb);
        }
    }
    return held_lt(a, b);
}

static int
heap_siftdown(PyObject *heap, Py_ssize_t startpos, Py_ssize_t pos)
{
    Py_ssize_t size = PyList_GET_SIZE(heap);
    if (pos >= size) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return -1;
    }
    PyObject **arr = ((PyListObject *)heap)->ob_item;
    PyObject *newitem = arr[pos];
    while (pos > startpos) {
        Py_ssize_t parentpos = (pos - 1) >> 1;
        PyObject *parent = arr[parentpos];
        int lt = timer_lt(newitem, parent);
        if (lt < 0)
            return -1;
        if (size != PyList_GET_SIZE(heap)) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
            return -1;
        }
        if (lt == 0)
            break;
        arr = ((PyListObject *)heap)->ob_item;
        parent = arr[parentpos];
        newitem = arr[pos];
        arr[parentpos] = newitem;
        arr[pos] = parent;
        pos = parentpos;
    }
    return 0;
}

static int
heap_siftup(PyObject *heap, Py_ssize_t pos)
{
    Py_ssize_t endpos = PyList_GET_SIZE(heap);
    Py_ssize_t startpos = pos;
    if (pos >= endpos) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return -1;
    }
    PyObject **arr = ((PyListObject *)heap)->ob_item;
    Py_ssize_t limit = endpos >> 1;
    while (pos < limit) {
        Py_ssize_t childpos = 2 * pos + 1;
        if (childpos + 1 < endpos) {
            int lt = timer_lt(arr[childpos], arr[childpos + 1]);
            if (lt < 0)
                return -1;
            childpos += ((unsigned)lt ^ 1);
            arr = ((PyListObject *)heap)->ob_item;
            if (endpos != PyList_GET_SIZE(heap)) {
                PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
                return -1;
            }
        }
        PyObject *tmp1 = arr[childpos];
        PyObject *tmp2 = arr[pos];
        arr[childpos] = tmp2;
        arr[pos] = tmp1;
        pos = childpos;
    }
    return heap_siftdown(heap, startpos, pos);
}

static int
heap_push(PyObject *heap, PyObject *item)
{
    if (PyList_Append(heap, item) < 0)
        return -1;
    return heap_siftdown(heap, 0, PyList_GET_SIZE(heap) - 1);
}

/* heapq.heappop: a new reference, or NULL with an exception. */
static PyObject *
heap_pop(PyObject *heap)
{
    Py_ssize_t n = PyList_GET_SIZE(heap);
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    PyObject *last = PyList_GET_ITEM(heap, n - 1);
    Py_INCREF(last);
    if (PyList_SetSlice(heap, n - 1, n, NULL) < 0) {
        Py_DECREF(last);
        return NULL;
    }
    n--;
    if (n == 0)
        return last;
    PyObject *ret = PyList_GET_ITEM(heap, 0);
    PyList_SET_ITEM(heap, 0, last);  /* steals last; ret's reference moves to us */
    if (heap_siftup(heap, 0) < 0) {
        Py_DECREF(ret);
        return NULL;
    }
    return ret;
}

/* call_at's work once `when` is known, as Loop.call_at does it outside debug
 * mode.  1: fall back to Python (nothing done); 0 and *out: the timer; -1. */
static int
schedule_timer(CoreObject *self, PyObject *when, PyObject *callback, PyObject *const *rest,
               Py_ssize_t nrest, PyObject *context, PyObject **out)
{
    int flag = refuse_closed(self);
    if (flag != 0)
        return flag;
    if ((flag = attr_flag(self, A_DEBUG)) != 0 || (flag = attr_flag(self, A_SLOW_HANDLES)) != 0)
        return flag < 0 && flag != -2 ? -1 : 1;
    PyObject *heap = loop_attr(self, A_SCHEDULED);
    if (heap == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (!PyList_CheckExact(heap))
        return 1;
    PyObject *cargs = args_tuple(rest, nrest);
    if (cargs == NULL)
        return -1;
    PyObject *t = new_handle(self, TimerHandleType, callback, cargs, context);
    Py_DECREF(cargs);
    if (t == NULL)
        return -1;
    SLOT(t, off_when) = Py_NewRef(when);
    SLOT(t, off_scheduled) = Py_NewRef(Py_False);
    Py_INCREF(heap);
    int r = heap_push(heap, t);
    Py_DECREF(heap);
    if (r < 0) {
        Py_DECREF(t);
        return -1;
    }
    Py_SETREF(SLOT(t, off_scheduled), Py_NewRef(Py_True));
    *out = t;
    return 0;
}

static PyObject *Core_call_at(CoreObject *, PyObject *const *, Py_ssize_t, PyObject *);

/* loop.time() + x (call_later's deadline, the run loop's end of "due"):
 * a new reference, or NULL with an exception. */
static PyObject *
now_plus(CoreObject *self, PyObject *x)
{
    PyObject *now = loop_time(self);
    if (now == NULL)
        return NULL;
    PyObject *sum;
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(x))
        sum = PyFloat_FromDouble(PyFloat_AS_DOUBLE(now) + PyFloat_AS_DOUBLE(x));
    else
        sum = PyNumber_Add(now, x);
    Py_DECREF(now);
    return sum;
}

/* call_at (later == 0: args[0] is the deadline) and call_later (later == 1:
 * args[0] is the delay): one body, inlined into each. */
static inline PyObject *
timer_call(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames,
           int later)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context, *timer, *when;
    if (check_alive(self) < 0)
        return NULL;
    /* Missing or unknown arguments, and a None delay or deadline (TypeError
     * on 3.11+, TimerHandle's assertion before): the Python method's error. */
    if (nargs < 2 || args[0] == Py_None || parse_context(args, nargs, kwnames, &context) < 0)
        goto python;
    if (later) {
        /* Loop.call_later calls self.call_at: only while that is this core's.
         * In debug mode the Python method reads loop.time() itself. */
        if (!is_own_method(self, s_call_at, (PyCFunction)(void (*)(void))Core_call_at)
                || attr_flag(self, A_DEBUG) != 0)
            goto python;
        if ((when = now_plus(self, args[0])) == NULL)
            return NULL;
    } else {
        when = Py_NewRef(args[0]);
    }
    int r = schedule_timer(self, when, args[1], args + 2, nargs - 2, context, &timer);
    Py_DECREF(when);
    if (r < 0)
        return NULL;
    if (r == 0)
        return timer;
    /* r == 1: nothing was scheduled (a _scheduled that is not a list, say):
     * the Python method does it all. */
python:
    /* (A check that failed with an exception raises it.) */
    if (PyErr_Occurred())
        return NULL;
    return call_python(self, later ? self->py_call_later : self->py_call_at, args, nargs,
                       kwnames);
}

/* call_at(when, callback, *args, context=None) */
static PyObject *
Core_call_at(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return timer_call(self, args, nargsf, kwnames, 0);
}

/* call_later(delay, callback, *args, context=None) */
static PyObject *
Core_call_later(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return timer_call(self, args, nargsf, kwnames, 1);
}

/* --- create_task and create_future ---------------------------------------
 *
 * Loop.create_task and Loop.create_future (loop.py) are a Python frame
 * around one call of asyncio's Task or Future type.  Here that call is made
 * directly in the common case, with the Python method's own checks, in its
 * order: the loop's class still has Loop's method (a class patched after the
 * loop was made is honoured), the arguments are the plain ones, the loop is
 * not closed (create_task), no task factory is set, debug mode is off (the
 * Python method then trims its own frame from the task's
 * _source_traceback), and asyncio.tasks.Task / asyncio.futures.Future are
 * still the types this module saw at import (the Python method looks them
 * up at each call).  Anything else is the Python method's, which then
 * raises what it raises. */

static PyObject *TaskType;     /* asyncio.tasks.Task at import (_asyncio's, on CPython) */
static PyObject *FutureType;   /* asyncio.futures.Future at import */
static PyObject *TasksDict;    /* asyncio.tasks.__dict__ */
static PyObject *FuturesDict;  /* asyncio.futures.__dict__ */
static PyObject *s_create_task, *s_create_future, *s_task_factory, *s_name, *s_Task,
    *s_Future;
/* The keyword names of Task(coro, loop=, name=, context=) and Future(loop=). */
static PyObject *kw_loop, *kw_loop_name, *kw_loop_context, *kw_loop_name_context;

static int
task_init(CoreObject *self, PyObject *loop, PyObject *ct, PyObject *cf)
{
    PyObject *ref = PyWeakref_NewRef(loop, NULL);
    if (ref == NULL) {
        /* No weak references: after close() a held method says "closed". */
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();
    }
    Py_XSETREF(self->loop_ref, ref);
    Py_XSETREF(self->py_create_task, ct == Py_None ? NULL : Py_XNewRef(ct));
    Py_XSETREF(self->py_create_future, cf == Py_None ? NULL : Py_XNewRef(cf));
    return 0;
}

/* Is kwnames[i] this interned name?  Interned names compare by identity; a
 * caller's non-interned string by value. */
static int
kwname_is(PyObject *kwname, PyObject *interned)
{
    if (kwname == interned)
        return 1;
    return PyUnicode_Check(kwname) && PyUnicode_Compare(kwname, interned) == 0;
}

/* The loop, a new reference: self->loop, or after close() the weak
 * reference's; NULL with RuntimeError when there is none. */
static PyObject *
strong_loop(CoreObject *self)
{
    PyObject *loop = Py_XNewRef(self->loop);
    if (loop == NULL && self->loop_ref == NULL) {
        check_alive(self);  /* never initialized: "Core is not initialized" */
        return NULL;
    }
    if (loop == NULL) {
#if PY_VERSION_HEX >= 0x030D0000
        if (PyWeakref_GetRef(self->loop_ref, &loop) < 0)
            return NULL;
#else
        loop = PyWeakref_GetObject(self->loop_ref);
        loop = loop == Py_None ? NULL : Py_XNewRef(loop);
#endif
    }
    if (loop == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return loop;
}

/* The method `name` of the loop's class, called with (loop, *args, **kw):
 * the Python core's create_task/create_future, or whatever a patched class
 * now has.  Looked up on the class, bound as attribute access binds it
 * (the instance dict holds this core's own method). */
static PyObject *
call_class_method(CoreObject *self, PyObject *name, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *loop = strong_loop(self);
    if (loop == NULL)
        return NULL;
    PyObject *res = NULL;
    PyObject *attr = Py_XNewRef(_PyType_Lookup(Py_TYPE(loop), name));
    if (attr == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'",
                     Py_TYPE(loop)->tp_name, name);
    } else {
        descrgetfunc get = Py_TYPE(attr)->tp_descr_get;
        PyObject *fn = get ? get(attr, loop, (PyObject *)Py_TYPE(loop)) : Py_NewRef(attr);
        if (fn != NULL) {
            res = PyObject_Vectorcall(fn, args, nargs, kwnames);
            Py_DECREF(fn);
        }
        Py_DECREF(attr);
    }
    Py_DECREF(loop);
    return res;
}

/* Is the loop's class attribute `name` still `fn` (Loop's method)? */
static int
class_method_is(CoreObject *self, PyObject *name, PyObject *fn)
{
    return fn != NULL && _PyType_Lookup(Py_TYPE(self->loop), name) == fn;
}

/* create_task(coro, *, name=None, context=None) */
static PyObject *
Core_create_task(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *name = NULL, *context = NULL;
    if (self->loop == NULL || nargs != 1
            || !class_method_is(self, s_create_task, self->py_create_task))
        goto python;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (name == NULL && kwname_is(k, s_name))
                name = args[nargs + i];
            else if (context == NULL && kwname_is_context(k))
                context = args[nargs + i];
            else
                goto python;  /* (PyUnicode_Compare's error, if any, too) */
        }
    }
    int flag = attr_flag(self, A_CLOSED);
    if (flag == 1) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    if (flag != 0)
        goto python;
    PyObject *factory = loop_attr(self, A_TASK_FACTORY);
    if (factory != Py_None)
        goto python;
    if (attr_flag(self, A_DEBUG) != 0)
        goto python;
    if (context == Py_None)
        context = NULL;
#if PY_VERSION_HEX < 0x030B0000
    if (context != NULL)  /* Task has no context= before 3.11 */
        goto python;
#endif
    if (PyDict_GetItemWithError(TasksDict, s_Task) != TaskType)
        goto python;
    PyObject *stack[4] = {args[0], self->loop};
    PyObject *kw = kw_loop;
    if (name != NULL && name != Py_None) {
        stack[2] = name;
        if (context != NULL) {
            stack[3] = context;
            kw = kw_loop_name_context;
        } else {
            kw = kw_loop_name;
        }
    } else if (context != NULL) {
        stack[2] = context;
        kw = kw_loop_context;
    }
    return PyObject_Vectorcall(TaskType, stack, 1, kw);
python:
    if (PyErr_Occurred())
        return NULL;
    return call_class_method(self, s_create_task, args, nargs, kwnames);
}

/* create_future() */
static PyObject *
Core_create_future(CoreObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (self->loop == NULL || nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))
            || !class_method_is(self, s_create_future, self->py_create_future))
        goto python;
    if (PyDict_GetItemWithError(FuturesDict, s_Future) != FutureType)
        goto python;
    PyObject *stack[1] = {self->loop};
    return PyObject_Vectorcall(FutureType, stack, 0, kw_loop);
python:
    if (PyErr_Occurred())
        return NULL;
    return call_class_method(self, s_create_future, args, nargs, kwnames);
}

/* Module `modname`'s dict in *dict and its attribute `name` in *cls (new
 * references).  0, or -1 with an exception. */
static int
import_class(const char *modname, PyObject *name, PyObject **dict, PyObject **cls)
{
    PyObject *mod = PyImport_ImportModule(modname);
    if (mod == NULL)
        return -1;
    *dict = Py_NewRef(PyModule_GetDict(mod));
    *cls = PyObject_GetAttr(mod, name);
    Py_DECREF(mod);
    return *cls == NULL ? -1 : 0;
}

/* The module's side: asyncio's Task and Future and the names above. */
static int
task_module_init(void)
{
    if ((s_create_task = PyUnicode_InternFromString("create_task")) == NULL
            || (s_create_future = PyUnicode_InternFromString("create_future")) == NULL
            || (s_task_factory = PyUnicode_InternFromString("_task_factory")) == NULL
            || (s_name = PyUnicode_InternFromString("name")) == NULL
            || (s_Task = PyUnicode_InternFromString("Task")) == NULL
            || (s_Future = PyUnicode_InternFromString("Future")) == NULL)
        return -1;
    if ((s_kw_context = PyUnicode_InternFromString("context")) == NULL)
        return -1;
    PyObject *s_loop = PyUnicode_InternFromString("loop");
    if (s_loop == NULL)
        return -1;
    kw_loop = PyTuple_Pack(1, s_loop);
    kw_loop_name = PyTuple_Pack(2, s_loop, s_name);
    kw_loop_context = PyTuple_Pack(2, s_loop, s_kw_context);
    kw_loop_name_context = PyTuple_Pack(3, s_loop, s_name, s_kw_context);
    Py_DECREF(s_loop);
    if (kw_loop == NULL || kw_loop_name == NULL || kw_loop_context == NULL
            || kw_loop_name_context == NULL)
        return -1;
    if (import_class("asyncio.tasks", s_Task, &TasksDict, &TaskType) < 0
            || import_class("asyncio.futures", s_Future, &FuturesDict, &FutureType) < 0)
        return -1;
    if (!PyType_Check(TaskType) || !PyType_Check(FutureType)) {
        PyErr_SetString(PyExc_ImportError, "uvloop_like._core: unexpected asyncio.Task/Future");
        return -1;
    }
    return 0;
}

/* --- completions: the last libuv run's completion array, dispatched in C ---
 * (issue 9, the read half of "I/O dispatch in C")
 *
 * The Python core's LoopCore.process (handles/core.py) turns every
 * completion into a call of its owner: for a read, StreamHandle._on_read
 * -> StreamReading._on_read (transports/base.py) -> context.run(
 * protocol.data_received, data); for a datagram, UDPHandle._on_recv ->
 * UDPTransport._on_recv (transports/datagram.py), which queues it for the
 * transport's deliver handle.  process_completions below walks the same
 * array in the same order and does those two common cases itself, in C,
 * with the same guard; every other completion, and every read it cannot
 * reproduce exactly, goes to LoopCore.process for that completion (or run
 * of completions): the one Python dispatch, so behaviour stays identical.
 *
 * Which Python object a read belongs to.  A completion's owner is the
 * handle's cffi handle (ffi.new_handle); turning it back into the object
 * from C would mean relying on cffi's internals.  Instead the native core
 * binds each stream and UDP handle as it is created (Core.bind, called by
 * StreamHandle/UDPHandle.__init__): uvl.c keeps the handle object's address
 * in its struct (`target`) and records it with each read completion
 * (uvl_event_t.target).  The reference is BORROWED, and that is sound for
 * the same reason the cffi handle in `owner` is: the handle object lives at
 * least until its close completion is dispatched (loop._uv_handles holds it
 * from init to _on_close: handles/base.py, rule 1), libuv reports no read
 * after uv_close(), and the close completion is recorded after every read
 * of the handle, so every read completion is dispatched, in order, before
 * the handle can die.  Completions saved after an exception (LoopCore._save)
 * are Python objects by then and never use `target`.  A strong reference
 * would need dropping at exactly the handle's close completion on both
 * cores (the Python core also dispatches this loop's completions: debug
 * mode, Loop.close()); a borrowed one needs nothing.  The transport a read
 * goes to is reached through the handle's `_on_read` slot, a strong
 * reference taken for the time of the dispatch: a transport closed (or a
 * handle closed) by an earlier completion of the batch is still alive and
 * simply says so (_closing), which sends the read to the Python path.
 *
 * The fast paths (everything else falls back):
 * - UVL_EV_READ into the arena (nread > 0) of a handle whose _on_read is
 *   StreamReading._on_read bound to its transport, the transport not
 *   closing, not paused, nothing held, not buffered, its _context a
 *   contextvars.Context: protocol.data_received(bytes) inside that context
 *   (PyContext_Enter/Exit, as Context.run); SystemExit/KeyboardInterrupt
 *   propagate (the completions after it are saved, as LoopCore.process
 *   saves them), anything else goes to transport._fatal_error(exc,
 *   "Fatal error: protocol.data_received() call failed.") with exc being
 *   handled (sys.exc_info()), as inside the Python `except` block.
 * - UVL_EV_READ into the buffer a BufferedProtocol posted, on the same
 *   conditions (but `_buffered`), the handle keeping the buffer's export
 *   (a memoryview's: release_after_read False): buffer_updated(nread), then,
 *   still reading and not closing, get_buffer(-1) and handle.repost() for
 *   the same object or handle.post_buffer(buf), each guarded as above.
 * - UVL_EV_RECV of a datagram (status >= 0, header offset >= 0) of a UDP
 *   handle whose _on_recv is UDPTransport._on_recv bound to its transport:
 *   what that method does (append (data, sockaddr) to _received, queueing
 *   _deliver_handle on loop._ready first when _received was empty); the
 *   protocol's datagram_received runs from that handle, in the ready queue,
 *   exactly as on the Python path.
 * The slow-callback hook keeps LoopCore.process_timed (run_iteration), and
 * debug mode runs whole iterations on the Python core. */

static int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *off);
static PyObject *import_attr(const char *module, const char *name);

static PyObject *StreamHandleType, *UdpHandleType;  /* handles/stream.py, handles/udp.py */
static PyObject *StreamPtrType, *UdpPtrType;        /* ffi.typeof of their _ptr */
static PyObject *StreamReadingOnRead;   /* transports/base.py StreamReading._on_read */
static PyObject *UdpTransportOnRecv;    /* transports/datagram.py UDPTransport._on_recv */
static Py_ssize_t off_on_read, off_on_recv;  /* the handles' callback slots */
static Py_ssize_t off_release_after_read;    /* StreamHandle.release_after_read */
static int bind_state;                  /* 0: not loaded yet, 1: ready, -1: unavailable */
static PyObject *s_save, *s_closing, *s_paused, *s_held, *s_buffered, *s_protocol,
    *s_data_received, *s_fatal_error, *s_received, *s_deliver_handle, *s_loop, *s_ptr,
    *s_on_read_name, *s_on_recv_name, *msg_data_received, *s_buffer_updated, *s_get_buffer,
    *s_reading, *s_handle, *s_posted_obj, *s_repost, *s_post_buffer, *msg_buffer_updated,
    *msg_get_buffer;

/* What Core.bind needs, loaded at its first call (the transports import the
 * handles, which import the cffi module: not at _core's import). */
#define BIND_NAME(var, text) \
    do { if (var == NULL && (var = PyUnicode_InternFromString(text)) == NULL) goto fail; } while (0)

static int
bind_load(void)
{
    if (bind_state != 0)
        return bind_state;
    PyObject *reading = NULL, *udpt = NULL;
    BIND_NAME(s_save, "_save");
    BIND_NAME(s_closing, "_closing");
    BIND_NAME(s_paused, "_paused");
    BIND_NAME(s_held, "_held");
    BIND_NAME(s_buffered, "_buffered");
    BIND_NAME(s_protocol, "_protocol");
    BIND_NAME(s_data_received, "data_received");
    BIND_NAME(s_fatal_error, "_fatal_error");
    BIND_NAME(s_received, "_received");
    BIND_NAME(s_deliver_handle, "_deliver_handle");
    BIND_NAME(s_loop, "_loop");
    BIND_NAME(s_ptr, "_ptr");
    BIND_NAME(s_on_read_name, "_on_read");
    BIND_NAME(s_on_recv_name, "_on_recv");
    BIND_NAME(msg_data_received, "Fatal error: protocol.data_received() call failed.");
    BIND_NAME(s_buffer_updated, "buffer_updated");
    BIND_NAME(s_get_buffer, "get_buffer");
    BIND_NAME(s_reading, "_reading");
    BIND_NAME(s_handle, "_handle");
    BIND_NAME(s_posted_obj, "posted_obj");
    BIND_NAME(s_repost, "repost");
    BIND_NAME(s_post_buffer, "post_buffer");
    BIND_NAME(msg_buffer_updated, "Fatal error: protocol.buffer_updated() call failed.");
    BIND_NAME(msg_get_buffer, "Fatal error: protocol.get_buffer() call failed.");
    if ((StreamHandleType = import_attr("uvloop_like.handles.stream", "StreamHandle")) == NULL
            || (UdpHandleType = import_attr("uvloop_like.handles.udp", "UDPHandle")) == NULL
            || (StreamPtrType = import_attr("uvloop_like._ffi", "UVL_STREAM_P")) == NULL
            || (UdpPtrType = import_attr("uvloop_like._ffi", "UDP_P")) == NULL
            || (reading = import_attr("uvloop_like.transports.base", "StreamReading")) == NULL
            || (udpt = import_attr("uvloop_like.transports.datagram", "UDPTransport")) == NULL
            || !PyType_Check(StreamHandleType) || !PyType_Check(UdpHandleType)
            || !PyType_Check(reading) || !PyType_Check(udpt))
        goto fail;
    /* The plain functions, from the classes' own dicts. */
    StreamReadingOnRead = Py_XNewRef(PyDict_GetItemWithError(((PyTypeObject *)reading)->tp_dict,
                                                             s_on_read_name));
    UdpTransportOnRecv = Py_XNewRef(PyDict_GetItemWithError(((PyTypeObject *)udpt)->tp_dict,
                                                            s_on_recv_name));
    if (StreamReadingOnRead == NULL || UdpTransportOnRecv == NULL
            || !PyFunction_Check(StreamReadingOnRead) || !PyFunction_Check(UdpTransportOnRecv)
            || slot_offset((PyTypeObject *)StreamHandleType, "_on_read", &off_on_read) < 0
            || slot_offset((PyTypeObject *)UdpHandleType, "_on_recv", &off_on_recv) < 0
            || slot_offset((PyTypeObject *)StreamHandleType, "release_after_read",
                           &off_release_after_read) < 0)
        goto fail;
    Py_DECREF(reading);
    Py_DECREF(udpt);
    bind_state = 1;
    return 1;
fail:
    /* No fast path then: every completion goes to LoopCore.process. */
    PyErr_Clear();
    Py_XDECREF(reading);
    Py_XDECREF(udpt);
    Py_CLEAR(StreamHandleType);
    Py_CLEAR(UdpHandleType);
    Py_CLEAR(StreamPtrType);
    Py_CLEAR(UdpPtrType);
    Py_CLEAR(StreamReadingOnRead);
    Py_CLEAR(UdpTransportOnRecv);
    bind_state = -1;
    return -1;
}

/* Core.bind(handle): record `handle` (a StreamHandle or UDPHandle of this
 * loop, just initialised) as its reads' target.  True when bound; False
 * when the fast path is unavailable (its reads then take the Python path). */
static PyObject *
Core_bind(CoreObject *self, PyObject *handle)
{
    if (check_alive(self) < 0)
        return NULL;
    if (bind_load() < 0)
        Py_RETURN_FALSE;
    int stream = PyObject_TypeCheck(handle, (PyTypeObject *)StreamHandleType);
    if (!stream && !PyObject_TypeCheck(handle, (PyTypeObject *)UdpHandleType)) {
        PyErr_SetString(PyExc_TypeError, "Core.bind: not a StreamHandle or UDPHandle");
        return NULL;
    }
    PyObject *ptr = PyObject_GetAttr(handle, s_ptr);
    if (ptr == NULL)
        return NULL;
    /* (checks the cdata's type: never an address a caller made up) */
    uintptr_t addr = cdata_address(ptr, stream ? StreamPtrType : UdpPtrType);
    Py_DECREF(ptr);
    if (addr == 0)
        return NULL;
    if (stream)
        self->api->stream_set_target((struct uvl_stream_s *)addr, handle);
    else
        self->api->udp_set_target((struct uvl_udp_s *)addr, handle);
    Py_RETURN_TRUE;
}

/* The error set on entry, normalized, cleared: a new reference. */
static PyObject *
fetch_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(exc, tb);
        Py_DECREF(tb);
    }
    Py_XDECREF(type);
    return exc;
#endif
}

/* The error set now gets `handled` as its __context__, as an exception
 * raised inside an `except` block does. */
static void
chain_context(PyObject *handled)
{
    PyObject *e = fetch_exc();
    if (e != NULL && e != handled)
        PyException_SetContext(e, Py_NewRef(handled));
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(e);
#else
    if (e != NULL)
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(e)), e, PyException_GetTraceback(e));
#endif
}

/* fn(args...) with `exc` as the exception being handled (sys.exc_info()),
 * as inside an `except ... as exc:` block.  The result, or NULL with an
 * exception chained to exc. */
static PyObject *
call_handling(PyObject *fn, PyObject *const *args, size_t nargs, PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *saved = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
#else
    PyObject *st, *sv, *stb;
    PyErr_GetExcInfo(&st, &sv, &stb);
    PyErr_SetExcInfo(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                     PyException_GetTraceback(exc));
#endif
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
#if PY_VERSION_HEX >= 0x030B0000
    PyErr_SetHandledException(saved);
    Py_XDECREF(saved);
#else
    PyErr_SetExcInfo(st, sv, stb);
#endif
    if (r == NULL)
        chain_context(exc);
    return r;
}

/* lcore.process(end, start): the Python dispatch of completions
 * [start, end).  0, or -1 with its exception (it saved nothing past end). */
static int
process_python(CoreObject *self, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *args[3] = {self->lcore, NULL, NULL};
    PyObject *r = NULL;
    if ((args[1] = PyLong_FromSsize_t(end)) != NULL
            && (args[2] = PyLong_FromSsize_t(start)) != NULL)
        r = PyObject_VectorcallMethod(s_process, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    return consume(r, 0);
}

/* An exception interrupts the batch at completion `next`: LoopCore._save
 * keeps [next, n) for dispatch_pending, as LoopCore.process does; the
 * exception set on entry stays set (or _save's own replaces it).  -1. */
static int
save_rest(CoreObject *self, Py_ssize_t next, Py_ssize_t n)
{
    if (next >= n)
        return -1;
    PyObject *exc = fetch_exc();
    PyObject *args[3] = {self->lcore, NULL, NULL};
    PyObject *r = NULL;
    if ((args[1] = PyLong_FromSsize_t(next)) != NULL && (args[2] = PyLong_FromSsize_t(n)) != NULL)
        r = PyObject_VectorcallMethod(s_save, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    if (r == NULL) {
        if (exc != NULL)
            chain_context(exc);
        Py_XDECREF(exc);
        return -1;
    }
    Py_DECREF(r);
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc != NULL)
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
    return -1;
}

/* An attribute of a transport, or NULL (no exception) when it cannot be
 * read: the caller then takes the Python path, which reads it again. */
static PyObject *
peek_attr(PyObject *o, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

/* The stream transport's hot state (StreamTransport.__slots__,
 * transports/stream.py), read by fast_read here and by StreamWrite (the
 * write fast path) at its slot's offset: a few instructions where a
 * look-up by name costs about a hundred and fifty.  Only for a class whose
 * attribute look-up is object's own (no __getattribute__/__getattr__) and
 * that resolves every one of these names to a plain writable object slot
 * (a member descriptor of a class in its MRO): a subclass redefining one
 * (a property, a class attribute, ...) gets NULL, and the callers their
 * generic path, which reads each attribute by name.  Reading the slot is
 * then exactly what the look-up does (a data descriptor wins over the
 * instance dict); an unset slot (NULL) is the look-up's AttributeError.
 *
 * The verdict is kept per class, with the class's version tag: CPython
 * invalidates that tag whenever the class or one of its bases is modified
 * (StreamTransport._closing = property(...) after the fact), so the class
 * is checked again then.  A class without a valid tag (the tags ran out)
 * is checked at each call: correct, only slower. */
enum { TA_HANDLE, TA_PROTOCOL, TA_CONTEXT, TA_CLOSING, TA_PAUSED, TA_READING, TA_HELD,
       TA_BUFFERED, TA_EOF, TA_CONN_LOST, TA_EMPTY_WAITER, N_TA };
static const char *const ta_text[N_TA] = {
    "_handle", "_protocol", "_context", "_closing", "_paused", "_reading", "_held",
    "_buffered", "_eof", "_conn_lost", "_empty_waiter"};
static PyObject *ta_names[N_TA];  /* interned at the first check */

typedef struct {
    PyTypeObject *type;   /* borrowed: only compared (with its tag, never reused) */
    unsigned int tag;
    int ok;
    Py_ssize_t off[N_TA];
} ta_entry;
#define TA_CACHE 4
static ta_entry ta_cache[TA_CACHE];
static int ta_next;

/* The type's version tag when valid, else 0. */
static inline unsigned int
ta_tag(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030D0000
    return type->tp_version_tag;  /* (3.13 zeroes it on change; the flag is unused) */
#else
    return (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? type->tp_version_tag : 0;
#endif
}

/* Check `type` into *e (ok: every name a plain object slot). */
static void
ta_check(PyTypeObject *type, ta_entry *e)
{
    e->ok = 0;
    if (type->tp_getattro != PyObject_GenericGetAttr)
        return;
    for (int a = 0; a < N_TA; a++) {
        if (ta_names[a] == NULL && (ta_names[a] = PyUnicode_InternFromString(ta_text[a])) == NULL) {
            PyErr_Clear();
            return;
        }
        PyObject *d = _PyType_Lookup(type, ta_names[a]);  /* borrowed; assigns the tag */
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type))
            return;
        PyMemberDescrObject *m = (PyMemberDescrObject *)d;
        if (m->d_member->type != T_OBJECT_EX || (m->d_member->flags & READONLY)
                || m->d_member->offset <= 0 || !PyType_IsSubtype(type, PyDescr_TYPE(m)))
            return;
        e->off[a] = m->d_member->offset;
    }
    e->ok = 1;
}

/* The slot offsets of the hot attributes for instances of `type` (indexed
 * by TA_*), or NULL: the generic path. */
static const Py_ssize_t *
transport_slots(PyTypeObject *type)
{
    unsigned int tag = ta_tag(type);
    if (tag != 0) {
        for (int i = 0; i < TA_CACHE; i++) {
            if (ta_cache[i].type == type && ta_cache[i].tag == tag)
                return ta_cache[i].ok ? ta_cache[i].off : NULL;
        }
    }
    static ta_entry scratch;
    ta_entry *e = &scratch;
    ta_check(type, e);
    tag = ta_tag(type);  /* (assigned by the look-ups when it was not) */
    if (tag != 0) {
        ta_cache[ta_next] = scratch;
        e = &ta_cache[ta_next];
        e->type = type;
        e->tag = tag;
        ta_next = (ta_next + 1) % TA_CACHE;
    }
    return e->ok ? e->off : NULL;
}

/* transport.<name> (TA_* a): from its slot when `off` (transport_slots) is
 * given, else by name.  A new reference, or NULL without an exception when
 * it cannot be read (the caller's Python path reads it again and says so). */
static inline PyObject *
tr_attr(PyObject *tr, const Py_ssize_t *off, int a, PyObject *name)
{
    if (off != NULL)
        return Py_XNewRef(SLOT(tr, off[a]));
    return peek_attr(tr, name);
}

/* ctx.run(obj.<name>, arg): the method is looked up first, outside the
 * context (as Python evaluates Context.run's arguments), then called inside
 * it (PyContext_Enter/Exit: Context.run's own steps; entering a context
 * that is already entered raises RuntimeError, as Context.run does).  A new
 * reference, or NULL with an exception. */
static PyObject *
run_in_context(PyObject *ctx, PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *meth = PyObject_GetAttr(obj, name);
    if (meth == NULL)
        return NULL;
    PyObject *r = NULL;
    if (PyContext_Enter(ctx) == 0) {
        r = PyObject_Vectorcall(meth, &arg, 1, NULL);
        if (PyContext_Exit(ctx) < 0)
            Py_CLEAR(r);
    }
    Py_DECREF(meth);
    return r;
}

/* The guard of StreamReading._on_read, entered with the error set:
 * `except (SystemExit, KeyboardInterrupt): raise` (-1), `except
 * BaseException as exc: self._fatal_error(exc, msg)` (1, or -1 if that
 * raised: chained to exc, as in an except block). */
static int
guard_error(PyObject *tr, PyObject *msg)
{
    if (PyErr_ExceptionMatches(ExitExceptions))
        return -1;
    PyObject *exc = fetch_exc();
    PyObject *fatal = PyObject_GetAttr(tr, s_fatal_error);
    if (fatal == NULL) {
        chain_context(exc);
        Py_DECREF(exc);
        return -1;
    }
    PyObject *args[2] = {exc, msg};
    PyObject *r = call_handling(fatal, args, 2, exc);
    Py_DECREF(fatal);
    Py_DECREF(exc);
    return consume(r, 1);
}

/* A read of nread bytes for the stream handle h: at arena offset
 * `offset`, or (offset -1) in the buffer its BufferedProtocol posted.
 * StreamReading._on_read's work.  1: delivered (or its error handled); 0:
 * not handled here (nothing done, no exception); -1: an exception to
 * propagate. */
static int
fast_read(CoreObject *self, PyObject *h, const char *arena, int nread, int offset)
{
    PyObject *on_read = SLOT(h, off_on_read);
    if (on_read == NULL || !PyMethod_Check(on_read)
            || PyMethod_GET_FUNCTION(on_read) != StreamReadingOnRead)
        return 0;
    /* A read into the posted buffer whose export _on_read gives back first
     * (a bytearray's, say): the Python path. */
    if (offset < 0 && SLOT(h, off_release_after_read) != Py_False)
        return 0;
    Py_INCREF(on_read);  /* (it holds the transport for the time of the call) */
    PyObject *tr = PyMethod_GET_SELF(on_read);
    PyObject *v, *protocol = NULL, *ctx = NULL, *arg = NULL, *r = NULL, *buf = NULL;
    PyObject *handle = NULL, *posted = NULL;
    int rc = 0;
    /* (The hot attributes at their slots' offsets, or by name: see
     * transport_slots.) */
    const Py_ssize_t *off = transport_slots(Py_TYPE(tr));
    /* `_closing`, `_paused` False, `_held` an empty deque; for a read into
     * the arena, `_buffered` False. */
    if ((v = tr_attr(tr, off, TA_CLOSING, s_closing)) == NULL)
        goto done;
    Py_DECREF(v);
    if (v != Py_False)
        goto done;
    if ((v = tr_attr(tr, off, TA_PAUSED, s_paused)) == NULL)
        goto done;
    Py_DECREF(v);
    if (v != Py_False)
        goto done;
    if ((v = tr_attr(tr, off, TA_HELD, s_held)) == NULL)
        goto done;
    int held = (PyObject *)Py_TYPE(v) != DequeType || Py_SIZE(v) != 0;
    Py_DECREF(v);
    if (held)
        goto done;
    if (offset >= 0) {
        if ((v = tr_attr(tr, off, TA_BUFFERED, s_buffered)) == NULL)
            goto done;
        Py_DECREF(v);
        if (v != Py_False)
            goto done;
    }
    if ((ctx = tr_attr(tr, off, TA_CONTEXT, s_context)) == NULL || !PyContext_CheckExact(ctx))
        goto done;
    if ((protocol = tr_attr(tr, off, TA_PROTOCOL, s_protocol)) == NULL)
        goto done;
    /* From here on this is the delivery. */
    rc = 1;
    if (offset >= 0) {
        /* self._context.run(self._protocol.data_received, data), guarded */
        arg = PyBytes_FromStringAndSize(arena + offset, nread);
        if (arg == NULL) {
            rc = -1;  /* (the Python path's slice would raise it outside the guard) */
            goto done;
        }
        if ((r = run_in_context(ctx, protocol, s_data_received, arg)) == NULL)
            rc = guard_error(tr, msg_data_received);
        goto done;
    }
    /* A BufferedProtocol's read, into the buffer it posted:
     * run(protocol.buffer_updated, nread), guarded ... */
    if ((arg = PyLong_FromLong(nread)) == NULL) {
        rc = -1;
        goto done;
    }
    if ((r = run_in_context(ctx, protocol, s_buffer_updated, arg)) == NULL) {
        rc = guard_error(tr, msg_buffer_updated);
        goto done;
    }
    Py_CLEAR(r);
    /* ... `if not self._reading or self._closing: return` (unguarded) ... */
    if ((v = PyObject_GetAttr(tr, s_reading)) == NULL) {
        rc = -1;
        goto done;
    }
    int go_on = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (go_on == 1) {
        if ((v = PyObject_GetAttr(tr, s_closing)) == NULL) {
            rc = -1;
            goto done;
        }
        int closing = PyObject_IsTrue(v);
        Py_DECREF(v);
        go_on = closing < 0 ? -1 : !closing;
    }
    if (go_on <= 0) {
        rc = go_on < 0 ? -1 : 1;
        goto done;
    }
    /* ... then, guarded: buf = run(protocol.get_buffer, -1); handle =
     * self._handle; the same object as handle.posted_obj: handle.repost(),
     * else handle.post_buffer(buf). */
    Py_CLEAR(arg);
    if ((arg = PyLong_FromLong(-1)) == NULL
            || (buf = run_in_context(ctx, protocol, s_get_buffer, arg)) == NULL
            || (handle = PyObject_GetAttr(tr, s_handle)) == NULL
            || (posted = PyObject_GetAttr(handle, s_posted_obj)) == NULL) {
        rc = guard_error(tr, msg_get_buffer);
        goto done;
    }
    if (buf == posted)
        r = PyObject_CallMethodNoArgs(handle, s_repost);
    else
        r = PyObject_CallMethodOneArg(handle, s_post_buffer, buf);
    if (r == NULL)
        rc = guard_error(tr, msg_get_buffer);
done:
    Py_XDECREF(r);
    Py_XDECREF(arg);
    Py_XDECREF(buf);
    Py_XDECREF(handle);
    Py_XDECREF(posted);
    Py_XDECREF(protocol);
    Py_XDECREF(ctx);
    Py_DECREF(on_read);
    return rc;
}

/* A datagram (size bytes, sender's sockaddr header at arena offset h_off)
 * for the UDP handle h: UDPTransport._on_recv's work.  1, 0 or -1 as
 * fast_read. */
static int
fast_recv(CoreObject *self, PyObject *h, const char *arena, int size, int h_off)
{
    PyObject *on_recv = SLOT(h, off_on_recv);
    if (on_recv == NULL || !PyMethod_Check(on_recv)
            || PyMethod_GET_FUNCTION(on_recv) != UdpTransportOnRecv)
        return 0;
    Py_INCREF(on_recv);
    PyObject *tr = PyMethod_GET_SELF(on_recv);
    PyObject *received = NULL, *deliver = NULL, *loop = NULL, *ready = NULL, *item = NULL;
    int rc = 0;
    if ((received = peek_attr(tr, s_received)) == NULL || !PyList_CheckExact(received))
        goto done;
    if (PyList_GET_SIZE(received) == 0) {
        if ((deliver = peek_attr(tr, s_deliver_handle)) == NULL)
            goto done;
        if (deliver == Py_None) {
            rc = 1;  /* connection_lost has run: dropped, as _on_recv drops it */
            goto done;
        }
        if ((loop = peek_attr(tr, s_loop)) == NULL || (ready = peek_attr(loop, s_ready)) == NULL)
            goto done;
        rc = 1;
        PyObject *r = PyObject_CallMethodOneArg(ready, s_append, deliver);
        if (r == NULL) {
            rc = -1;
            goto done;
        }
        Py_DECREF(r);
    }
    rc = 1;
    int d_off = UVL_UDP_DATA_OFFSET(h_off);
    item = Py_BuildValue("(y#y#)", arena + d_off, (Py_ssize_t)size, arena + h_off,
                         (Py_ssize_t)UVL_UDP_HEADER);
    if (item == NULL || PyList_Append(received, item) < 0)
        rc = -1;
done:
    Py_XDECREF(item);
    Py_XDECREF(ready);
    Py_XDECREF(loop);
    Py_XDECREF(deliver);
    Py_XDECREF(received);
    Py_DECREF(on_recv);
    return rc;
}

/* LoopCore.process(n)'s work (n: the last run's completion count, or its
 * negative error, which LoopCore.process raises).  0, or -1 with an
 * exception (the completions after the one that raised are saved). */
static int
process_completions(CoreObject *self, int n)
{
    if (n < 0 || bind_state != 1)
        return process_python(self, 0, n);
    const uvl_event_t *events = self->api->events(self->uvl);
    const char *arena = self->api->arena(self->uvl);
    Py_ssize_t i = 0;
    while (i < n) {
        /* A run of completions nothing bound: one Python call for all. */
        Py_ssize_t j = i;
        while (j < n && events[j].target == NULL)
            j++;
        if (j > i) {
            if (process_python(self, i, j) < 0)
                return save_rest(self, j, n);
            i = j;
            continue;
        }
        const uvl_event_t *ev = &events[i];
        PyObject *h = (PyObject *)ev->target;
        int done = 0;
        Py_INCREF(h);
        if (ev->kind == UVL_EV_READ) {
            if (ev->status > 0 && ev->events >= -1)
                done = fast_read(self, h, arena, ev->status, ev->events);
        } else if (ev->kind == UVL_EV_RECV) {
            if (ev->status >= 0 && ev->events >= 0)
                done = fast_recv(self, h, arena, ev->status, ev->events);
        }
        Py_DECREF(h);
        i++;
        if (done < 0)
            return save_rest(self, i, n);
        if (done == 0 && process_python(self, i - 1, i) < 0)
            return save_rest(self, i, n);
    }
    return 0;
}

/* --- the run loop ------------------------------------------------------- */

/* What Handle._run() does on an exception: report it through
 * loop._report_callback_error(handle, exc), with exc as the exception being
 * handled (as inside the Python core's `except` block).  The error is set on
 * entry; 0, or -1 with an exception to propagate. */
static int
report_error(CoreObject *self, PyObject *handle)
{
    if (PyErr_ExceptionMatches(ExitExceptions))
        return -1;
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return 0;
    PyObject *r = NULL, *report = PyObject_GetAttr(self->loop, s_report_error);
    if (report != NULL) {
        PyObject *args[2] = {handle, exc};
        r = call_handling(report, args, 2, exc);
        Py_DECREF(report);
    }
    Py_DECREF(exc);
    return consume(r, 0);
}

/* context.run(callback, *args) for anything that is not a Handle we know. */
static PyObject *
run_generic(PyObject *handle, int *skipped)
{
    *skipped = 0;
    PyObject *c = PyObject_GetAttr(handle, s_cancelled);
    if (c == NULL)
        return NULL;
    int cancelled = PyObject_IsTrue(c);
    Py_DECREF(c);
    if (cancelled < 0)
        return NULL;
    if (cancelled) {
        *skipped = 1;
        return NULL;
    }
    PyObject *ctx = PyObject_GetAttr(handle, s_context);
    if (ctx == NULL)
        return NULL;
    PyObject *run = PyObject_GetAttr(ctx, s_run);
    Py_DECREF(ctx);
    if (run == NULL)
        return NULL;
    PyObject *res = NULL, *cb = NULL, *cargs = NULL, *all = NULL;
    cb = PyObject_GetAttr(handle, s_callback);
    if (cb == NULL)
        goto done;
    cargs = PyObject_GetAttr(handle, s_args);
    if (cargs == NULL)
        goto done;
    PyObject *seq = PySequence_Tuple(cargs);
    if (seq == NULL)
        goto done;
    all = PyTuple_New(PyTuple_GET_SIZE(seq) + 1);
    if (all == NULL) {
        Py_DECREF(seq);
        goto done;
    }
    PyTuple_SET_ITEM(all, 0, Py_NewRef(cb));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++)
        PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(seq, i)));
    Py_DECREF(seq);
    res = PyObject_Call(run, all, NULL);
done:
    Py_DECREF(run);
    Py_XDECREF(cb);
    Py_XDECREF(cargs);
    Py_XDECREF(all);
    return res;
}

/* Run one handle as Handle._run() would, inlined.  1: it ran (loop.stats()
 * counts it); 0: it was cancelled; -1 with an exception to propagate
 * (SystemExit, KeyboardInterrupt, or one raised by the exception handler
 * path). */
static int
run_handle(CoreObject *self, PyObject *h)
{
    PyObject *res;
    if (Py_IS_TYPE(h, HandleType) || Py_IS_TYPE(h, TimerHandleType)) {
        PyObject *cancelled = SLOT(h, off_cancelled);
        PyObject *ctx = SLOT(h, off_context);
        PyObject *cb = SLOT(h, off_callback);
        PyObject *cargs = SLOT(h, off_args);
        if (cancelled == Py_True)
            return 0;
        if (cancelled != Py_False || ctx == NULL || cb == NULL || cargs == NULL
                || !PyContext_CheckExact(ctx) || !PyTuple_CheckExact(cargs))
            goto generic;
        /* The callback may cancel its own handle, which drops these. */
        Py_INCREF(ctx);
        Py_INCREF(cb);
        Py_INCREF(cargs);
        if (PyContext_Enter(ctx) < 0) {
            res = NULL;
        } else {
            res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(cargs, 0), PyTuple_GET_SIZE(cargs),
                                      NULL);
            if (PyContext_Exit(ctx) < 0)
                Py_CLEAR(res);
        }
        Py_DECREF(ctx);
        Py_DECREF(cb);
        Py_DECREF(cargs);
        goto check;
    }
generic:;
    int skipped;
    res = run_generic(h, &skipped);
    if (res == NULL && skipped)
        return 0;
check:
    if (res != NULL) {
        Py_DECREF(res);
        return 1;
    }
    return report_error(self, h) < 0 ? -1 : 1;
}

/* ceil(delay * 1000) ms, bounded, as loop.py computes the poll timeout. */
static int
timeout_for(CoreObject *self, PyObject *heap, int64_t *timeout)
{
    PyObject *first = PyList_GET_ITEM(heap, 0);
    Py_INCREF(first);
    PyObject *when = Py_IS_TYPE(first, TimerHandleType) ? Py_XNewRef(SLOT(first, off_when)) : NULL;
    if (when == NULL)
        when = PyObject_GetAttr(first, s_when);
    Py_DECREF(first);
    if (when == NULL)
        return -1;
    PyObject *now = loop_time(self);
    if (now == NULL) {
        Py_DECREF(when);
        return -1;
    }
    double delay;
    if (PyFloat_CheckExact(when) && PyFloat_CheckExact(now)) {
        delay = PyFloat_AS_DOUBLE(when) - PyFloat_AS_DOUBLE(now);
    } else {
        PyObject *d = PyNumber_Subtract(when, now);
        if (d == NULL) {
            Py_DECREF(when);
            Py_DECREF(now);
            return -1;
        }
        delay = PyFloat_AsDouble(d);
        Py_DECREF(d);
        if (delay == -1.0 && PyErr_Occurred()) {
            Py_DECREF(when);
            Py_DECREF(now);
            return -1;
        }
    }
    Py_DECREF(when);
    Py_DECREF(now);
    if (delay > 0)
        *timeout = delay * 1000 >= MAX_WAIT_MS ? (int64_t)MAX_WAIT_MS : (int64_t)ceil(delay * 1000);
    else
        *timeout = 0;
    return 0;
}

/* Move every timer due by loop.time() + clock resolution to the ready queue. */
static int
expire_timers(CoreObject *self, PyObject *heap, PyObject *append)
{
    /* (Held: a patched loop.time() may replace it.  Not in the instance
     * dict: the attribute look-up finds it, or raises Python's error.) */
    PyObject *res = Py_XNewRef(loop_attr(self, A_CLOCK_RESOLUTION));
    if (res == NULL && (PyErr_Occurred()
                        || (res = PyObject_GetAttr(self->loop, s_clock_resolution)) == NULL))
        return -1;
    PyObject *end = now_plus(self, res);
    Py_DECREF(res);
    if (end == NULL)
        return -1;
    int rc = -1;
    while (PyList_GET_SIZE(heap)) {
        PyObject *timer = PyList_GET_ITEM(heap, 0);
        int due;
        if (Py_IS_TYPE(timer, TimerHandleType) && SLOT(timer, off_when) != NULL
                && PyFloat_CheckExact(SLOT(timer, off_when)) && PyFloat_CheckExact(end)) {
            /* `not (when >= end)`, as loop.py: a NaN deadline is due. */
            due = !(PyFloat_AS_DOUBLE(SLOT(timer, off_when)) >= PyFloat_AS_DOUBLE(end));
        } else {
            Py_INCREF(timer);
            PyObject *when = PyObject_GetAttr(timer, s_when);
            Py_DECREF(timer);
            if (when == NULL)
                goto done;
            int ge = PyObject_RichCompareBool(when, end, Py_GE);
            Py_DECREF(when);
            if (ge < 0)
                goto done;
            due = !ge;
        }
        if (!due)
            break;
        timer = heap_pop(heap);
        if (timer == NULL)
            goto done;
        if (Py_IS_TYPE(timer, TimerHandleType)) {
            Py_XSETREF(SLOT(timer, off_scheduled), Py_NewRef(Py_False));
        } else if (PyObject_SetAttrString(timer, "_scheduled", Py_False) < 0) {
            Py_DECREF(timer);
            goto done;
        }
        PyObject *r = PyObject_CallOneArg(append, timer);
        Py_DECREF(timer);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    rc = 0;
done:
    Py_DECREF(end);
    return rc;
}

/* time.perf_counter(), read in C: the slow-callback hook's clock, as in the
 * Python core (loop.py, _run_ready_timed).  0, or -1 with an exception. */
static int
perf_now(double *out)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_PerfCounter(&t) < 0)
        return -1;
    *out = PyTime_AsSecondsDouble(t);
#else
    *out = _PyTime_AsSecondsDouble(_PyTime_GetPerfCounter());
#endif
    return 0;
}

/* Is a slow-callback hook set?  1, 0, or -1 with an exception.  (The Python
 * core asks `self._slow_callback_hook is not None` at the same points.) */
static int
hook_set(CoreObject *self)
{
    PyObject *hook;
    int found = attr_find(self, A_SLOW_HOOK, &hook);
    return found <= 0 ? found : hook != Py_None;
}

/* After handle h ran for dt seconds with a hook set: loop._call_slow_hook(h,
 * dt) when dt reaches the threshold, both read now as loop.py reads them
 * after each callback (the callback may have changed them).  0, or -1 with
 * an exception to propagate (what _call_slow_hook lets through). */
static int
report_if_slow(CoreObject *self, PyObject *h, double dt)
{
    /* The threshold first: a fast callback costs one look-up. */
    PyObject *thr;
    int found = attr_find(self, A_SLOW_HOOK_THRESHOLD, &thr);
    if (found <= 0)
        return found;
    double threshold;
    if (PyFloat_CheckExact(thr)) {
        threshold = PyFloat_AS_DOUBLE(thr);
    } else {
        Py_INCREF(thr);
        threshold = PyFloat_AsDouble(thr);
        Py_DECREF(thr);
        if (threshold == -1.0 && PyErr_Occurred())
            return -1;
    }
    if (!(dt >= threshold))
        return 0;
    int set = hook_set(self);
    if (set <= 0)
        return set;
    PyObject *seconds = PyFloat_FromDouble(dt);
    if (seconds == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodObjArgs(self->loop, s_call_slow_hook, h, seconds, NULL);
    Py_DECREF(seconds);
    return consume(r, 0);
}

/* The ready handles of one iteration with a slow-callback hook set: each
 * timed on its own (two clock reads, as the Python core's timed path; only
 * this path pays them).  *ran counts the handles run.  0, or -1. */
static int
run_ready_hooked(CoreObject *self, PyObject *popleft, Py_ssize_t ntodo, uint64_t *ran)
{
    while (ntodo--) {
        PyObject *h = PyObject_CallNoArgs(popleft);
        if (h == NULL)
            return -1;
        double t0, t1;
        int e = perf_now(&t0), ran_one = 0;
        if (e == 0) {
            e = run_handle(self, h);
            if (e != 0)
                (*ran)++;
            if (e == 1) {
                ran_one = 1;
                e = perf_now(&t1) < 0 ? -1 : report_if_slow(self, h, t1 - t0);
            }
        }
        release_handle(h);
        if (e < 0)
            return -1;
        /* A callback started debug mode: the Python core's timed path, which
         * asks before each callback, also warns for the rest of them. */
        if (ntodo && ran_one && (e = attr_flag(self, A_DEBUG)) != 0 && e != -2) {
            if (e < 0)
                return -1;
            PyObject *r = PyObject_CallMethod(self->loop, "_run_ready_debug", "n", ntodo);
            return consume(r, 0);
        }
    }
    return 0;
}

/* One iteration of Loop._run_once (see loop.py: the same steps, in the same
 * order).  *ran: the handles the previous iteration ran, which this one's
 * libuv run counts (loop.stats()); on return, this iteration's.  1: done;
 * 0: hand over to Python (nothing done); -1. */
static int
run_iteration(CoreObject *self, uint64_t *ran)
{
    int rc = -1;
    PyObject *heap = NULL, *ready = NULL, *append = NULL, *popleft = NULL, *r;
    int flag = attr_flag(self, A_CLOSED);
    if (flag < 0)  /* (-2, no loop._closed: the Python core does without it) */
        return flag == -2 ? 0 : -1;
    if (flag == 1) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    /* Debug mode times each callback with loop.time() and warns: the
     * Python core runs those iterations.  (A slow-callback hook is handled
     * here: run_ready_hooked.) */
    if ((flag = attr_flag(self, A_DEBUG)) != 0 && flag != -2)
        return flag < 0 ? -1 : 0;
    heap = loop_attr(self, A_SCHEDULED);
    if ((flag = get_ready(self)) != 0 || heap == NULL || !PyList_CheckExact(heap))
        return (flag < 0 || PyErr_Occurred()) ? -1 : 0;
    Py_INCREF(heap);
    ready = Py_NewRef(self->ready);
    append = Py_NewRef(self->ready_append);
    popleft = Py_NewRef(self->ready_popleft);

    if (PyList_GET_SIZE(heap)) {
        flag = attr_flag(self, A_TIMER_CANCELLED_COUNT);
        if (flag < 0 && flag != -2)
            goto done;
        if (flag == 1) {
            r = PyObject_CallMethodNoArgs(self->loop, s_purge);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }

    int64_t timeout;
    int stopping = attr_flag(self, A_STOPPING);
    if (stopping == -1)
        goto done;
    if (PyObject_Length(ready) > 0 || stopping == 1)
        timeout = 0;
    else if (PyList_GET_SIZE(heap)) {
        if (timeout_for(self, heap, &timeout) < 0)
            goto done;
    } else
        timeout = -1;

    Py_ssize_t has_pending = PyObject_Length(self->pending);
    if (has_pending < 0)
        goto done;
    if (has_pending) {
        r = PyObject_CallMethodNoArgs(self->lcore, s_dispatch_pending);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    /* The loop may have been closed by a callback of dispatch_pending. */
    if ((flag = attr_flag(self, A_CLOSED)) == -1)
        goto done;
    if (flag == 1) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        goto done;
    }
    /* uvl_run_stats: loop.stats()'s iteration, its clock read(s), and the
     * previous iteration's handle count (uvl.c, stats section). */
    int n;
    uint64_t counted = *ran;
    *ran = 0;
    if (timeout == 0) {
        n = self->api->run_counted(self->uvl, 0, counted);
    } else {
        Py_BEGIN_ALLOW_THREADS
        n = self->api->run_counted(self->uvl, timeout, counted);
        Py_END_ALLOW_THREADS
    }
    if (n) {
        PyObject *pn = PyLong_FromLong(n);
        if (pn == NULL)
            goto done;
        /* `self._timed and self._slow_callback_hook is not None`, as loop.py */
        if ((flag = dict_flag(self, s_timed)) == 1)
            flag = hook_set(self);
        if (flag == -1) {
            Py_DECREF(pn);
            goto done;
        }
        if (flag == 1) {
            /* Each completion's dispatch timed, as the Python core does. */
            PyObject *thr = Py_XNewRef(dict_get(self, s_slow_hook_threshold));
            PyObject *report = thr == NULL ? NULL
                : PyObject_GetAttr(self->loop, s_report_slow_dispatch);
            if (report == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_AttributeError, "_slow_hook_threshold");
                Py_XDECREF(thr);
                Py_DECREF(pn);
                goto done;
            }
            r = PyObject_CallMethodObjArgs(self->lcore, s_process_timed, pn, PerfCounter, thr,
                                           report, NULL);
            Py_DECREF(thr);
            Py_DECREF(report);
        } else {
            /* The completions section (above): reads in C, the rest through
             * LoopCore.process. */
            r = process_completions(self, n) < 0 ? NULL : Py_NewRef(Py_None);
        }
        Py_DECREF(pn);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    /* Python code would see a pending signal here (the completions are
     * consumed, so raising now loses nothing). */
    if (PyErr_CheckSignals() < 0)
        goto done;

    if (PyList_GET_SIZE(heap) && expire_timers(self, heap, append) < 0)
        goto done;

    Py_ssize_t ntodo = PyObject_Length(ready);
    if (ntodo < 0)
        goto done;
    /* loop._timed: debug mode or a slow-callback hook (loop.py keeps it), the
     * one flag the Python core checks here too; the untimed path pays one
     * look-up. */
    int debug = 0, hooked = 0;
    if ((flag = attr_flag(self, A_TIMED)) == -1)
        goto done;
    if (flag == 1) {
        if ((debug = attr_flag(self, A_DEBUG)) == -1)
            goto done;
        debug = debug == 1;
        if (!debug && (hooked = hook_set(self)) < 0)
            goto done;
    }
    if (debug) {
        /* (It counts its handles itself.) */
        r = PyObject_CallMethod(self->loop, "_run_ready_debug", "n", ntodo);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    } else if (hooked) {
        if (run_ready_hooked(self, popleft, ntodo, ran) < 0)
            goto done;
    } else {
        while (ntodo--) {
            PyObject *h = PyObject_CallNoArgs(popleft);
            if (h == NULL)
                goto done;
            int e = run_handle(self, h);
            release_handle(h);
            *ran += e != 0;  /* one that raised ran too */
            if (e < 0)
                goto done;
        }
    }
    rc = 1;
done:
    Py_XDECREF(heap);
    Py_XDECREF(ready);
    Py_XDECREF(append);
    Py_XDECREF(popleft);
    return rc;
}

/* run(until_stopped): Loop._run_once's work.  True when done (one iteration,
 * or until stop()); False: nothing was done, the Python core must run it. */
static PyObject *
Core_run(CoreObject *self, PyObject *arg)
{
    if (check_alive(self) < 0)
        return NULL;
    int until = PyObject_IsTrue(arg);
    if (until < 0)
        return NULL;
    PyObject *result = NULL;
    uint64_t ran = 0;  /* loop.py's `ran`: see run_iteration */
    self->running++;
    for (;;) {
        int r = run_iteration(self, &ran);
        if (r < 0)
            break;
        if (r == 0) {  /* (also after iterations: debug mode was set) */
            result = Py_NewRef(Py_False);
            break;
        }
        if (!until) {
            result = Py_NewRef(Py_True);
            break;
        }
        int stopping = attr_flag(self, A_STOPPING);
        if (stopping == -1)
            break;
        if (stopping == 1) {
            result = Py_NewRef(Py_True);
            break;
        }
    }
    /* The last iteration's handles, which no libuv run will count. */
    if (ran)
        self->api->count_callbacks(self->uvl, ran);
    self->running--;
    return result;
}

/* close(): drop every reference (the loop, its dict, its LoopCore), so a
 * closed loop dies by reference counting as the Python core's does; the
 * methods then raise RuntimeError.  Loop.close() calls it after unbinding
 * them. */
static PyObject *
Core_close(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot close the native core while it runs");
        return NULL;
    }
    core_release(self);
    self->closed = 1;
    Py_RETURN_NONE;
}

static PyMethodDef Core_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))Core_call_soon, METH_FASTCALL | METH_KEYWORDS,
     "call_soon(callback, *args, context=None): Loop.call_soon, natively."},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))Core_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS, "Loop.call_soon_threadsafe, natively."},
    {"call_later", (PyCFunction)(void (*)(void))Core_call_later, METH_FASTCALL | METH_KEYWORDS,
     "Loop.call_later, natively."},
    {"call_at", (PyCFunction)(void (*)(void))Core_call_at, METH_FASTCALL | METH_KEYWORDS,
     "Loop.call_at, natively."},
    {"create_task", (PyCFunction)(void (*)(void))Core_create_task, METH_FASTCALL | METH_KEYWORDS,
     "create_task(coro, *, name=None, context=None): Loop.create_task, natively."},
    {"create_future", (PyCFunction)(void (*)(void))Core_create_future,
     METH_FASTCALL | METH_KEYWORDS, "Loop.create_future, natively."},
    {"close", (PyCFunction)Core_close, METH_NOARGS,
     "close(): release the loop (Loop.close() calls it)."},
    {"bind", (PyCFunction)Core_bind, METH_O,
     "bind(handle): a StreamHandle/UDPHandle whose reads the core dispatches in C."},
    {"run", (PyCFunction)Core_run, METH_O,
     "run(until_stopped): Loop._run_once's iterations; False: run them in Python."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uvloop_like._core.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The native scheduler and run loop of one uvloop_like Loop.",
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_init = (initproc)Core_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *import_attr(const char *module, const char *name);

/* --- the write fast path (issue 9): StreamTransport.write, UDPTransport.sendto ---
 *
 * On a loop with a native core, each StreamTransport (and UDPTransport) whose
 * class does not override write (sendto) gets, in its instance dict, a
 * StreamWrite (DatagramSend) over its handle: transport.write(data) then
 * runs here, without a Python frame or a cffi call.  It does what the
 * Python method does on its hot path, and only that: for bytes, a bytearray
 * or a flat byte memoryview, with the transport in its normal state (no
 * write_eof, no sendfile waiter, connection not lost) and nothing queued,
 * one libuv try-write through the cffi module's core API table (the same
 * uvl.c function the Python method calls, which also counts loop.stats()'s
 * bytes_sent).  All of it written: None.  Part of it (or EAGAIN): the rest
 * goes to the transport's own _queue_write, as the Python method sends it.
 * An error: handle.try_write_error() and the transport's _fatal_error(), as
 * the Python method's except clause does.  Anything else (another type,
 * other arguments, another state, something queued) calls the class's
 * Python method itself, before anything was written, so its checks,
 * exceptions and messages are the Python core's.
 *
 * References: the StreamWrite lives in the transport's __dict__, so it holds
 * the transport weakly (a strong reference would make a cycle, and a
 * transport abandoned by its protocol must die by reference counting, warn
 * ResourceWarning and close its descriptor: DESIGN.md rule 12).  It holds
 * the handle and its _ptr cdata (the memory of the uvl_stream_t) strongly:
 * the address it writes to cannot outlive them.  Called after the transport
 * died (the object kept elsewhere), it raises RuntimeError. */

static PyObject *w_send_now, *w_eof, *w_empty_waiter, *w_conn_lost, *w_handle, *w_queue_write, *w_fatal_error,
    *w_try_write_error, *w_fatal_write_msg, *w_address, *w_connected, *w_sockaddrs,
    *w_send_sizes, *w_protocol, *w_error_received;
static PyObject *WZero;                 /* the int 0 (a small int: one object) */
static PyObject *ConvertError;         /* uvloop_like.handles.errors.convert_error */
static PyObject *UvlStreamPtrType;     /* ffi.typeof("uvl_stream_t *") */
static PyObject *UvlUdpPtrType;        /* ffi.typeof("uvl_udp_t *") */
static int UvEagain;                   /* lib.UV_EAGAIN */
static Py_ssize_t SockaddrSize;        /* lib.UVL_UDP_HEADER: a sendto sockaddr's size */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *transport_ref;  /* weak reference to the transport */
    PyObject *handle;         /* transport._handle when bound (checked on every call) */
    PyObject *ptr;            /* handle._ptr: the cdata owning the libuv struct */
    void *uv;                 /* its address */
    PyObject *py_method;      /* the class's Python write/sendto: every other case */
    /* The C call the Python method would make, as bound: replaced (a test
     * simulating EAGAIN, say), the Python method runs. */
    PyObject *send_now;       /* handle.try_write_bytes / transport._send_now */
    Py_ssize_t queued_off;    /* StreamHandle's `queued` slot (StreamWrite only) */
    Py_ssize_t send_now_off;  /* StreamHandle's `try_write_bytes` slot (StreamWrite only) */
} WriterObject;

static int
Writer_traverse(WriterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->transport_ref);
    Py_VISIT(self->handle);
    Py_VISIT(self->ptr);
    Py_VISIT(self->py_method);
    Py_VISIT(self->send_now);
    return 0;
}

static int
Writer_clear(WriterObject *self)
{
    Py_CLEAR(self->transport_ref);
    Py_CLEAR(self->handle);
    Py_CLEAR(self->ptr);
    Py_CLEAR(self->py_method);
    Py_CLEAR(self->send_now);
    self->uv = NULL;
    return 0;
}

static void
Writer_dealloc(WriterObject *self)
{
    PyObject_GC_UnTrack(self);
    Writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The transport: a new reference; NULL with RuntimeError when it died. */
static PyObject *
writer_transport(WriterObject *self)
{
    PyObject *t = NULL;
    if (self->transport_ref != NULL) {
#if PY_VERSION_HEX >= 0x030D0000
        if (PyWeakref_GetRef(self->transport_ref, &t) < 0)
            return NULL;
#else
        t = PyWeakref_GET_OBJECT(self->transport_ref);
        t = t == Py_None ? NULL : Py_NewRef(t);
#endif
    }
    if (t == NULL)
        PyErr_SetString(PyExc_RuntimeError, "write to a transport that was garbage-collected");
    return t;
}

/* py_method(transport, *args, **kw): the Python path. */
static PyObject *
writer_python(WriterObject *self, PyObject *transport, PyObject *const *args, size_t nargsf,
              PyObject *kwnames)
{
    return call_with_first(self->py_method, transport, args, PyVectorcall_NARGS(nargsf), kwnames);
}

/* The fast path's way out: the Python method, unless a look-up failed (its
 * error is set: raise it).  Consumes the reference to transport. */
static PyObject *
writer_fallback(WriterObject *self, PyObject *transport, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    PyObject *res = PyErr_Occurred() ? NULL : writer_python(self, transport, args, nargsf, kwnames);
    Py_DECREF(transport);
    return res;
}

/* The transport's instance dict, borrowed (NULL: none). */
static inline PyObject *
instance_dict(PyObject *obj)
{
    PyObject **p = _PyObject_GetDictPtr(obj);
    return p == NULL ? NULL : *p;
}

/* dict[key] is `want` (borrowed values compared by identity). */
static inline int
dict_is(PyObject *dict, PyObject *key, PyObject *want)
{
    return PyDict_GetItemWithError(dict, key) == want;
}

/* data's bytes when it is bytes, a bytearray or a flat, C-contiguous byte
 * memoryview (what StreamTransport.write sends without write_data()): 1;
 * 0 for anything else. */
static inline int
flat_bytes(PyObject *data, const char **buf, Py_ssize_t *len)
{
    PyTypeObject *kind = Py_TYPE(data);
    if (kind == &PyBytes_Type) {
        *buf = PyBytes_AS_STRING(data);
        *len = PyBytes_GET_SIZE(data);
        return 1;
    }
    if (kind == &PyByteArray_Type) {
        *buf = PyByteArray_AS_STRING(data);
        *len = PyByteArray_GET_SIZE(data);
        return 1;
    }
    if (kind == &PyMemoryView_Type) {
        PyMemoryViewObject *mv = (PyMemoryViewObject *)data;
        Py_buffer *view = &mv->view;
        if ((mv->flags & _Py_MEMORYVIEW_RELEASED) || (mv->mbuf->flags & _Py_MANAGED_BUFFER_RELEASED)
                || view->ndim != 1 || view->itemsize != 1
                || (view->strides != NULL && view->strides[0] != 1) || view->suboffsets != NULL)
            return 0;
        *buf = (const char *)view->buf;
        *len = view->len;
        return 1;
    }
    return 0;
}

/* What the Python method's `except BaseException as exc:` clause does with
 * the exception set: SystemExit and KeyboardInterrupt propagate (-1);
 * anything else goes to handler(exc, *extra) with exc being handled, as in
 * the clause (sys.exc_info() is it; an exception it raises chains to it):
 * 0, or -1 with handler's exception. */
static int
handle_exception(PyObject *handler_owner, PyObject *handler_name, PyObject *extra)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {  /* (normalization failed: its own error is set) */
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return -1;
    }
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    if (PyErr_GivenExceptionMatches(type, ExitExceptions)) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    PyObject *st, *sv, *stb;
    PyErr_GetExcInfo(&st, &sv, &stb);
    Py_INCREF(value);
    PyErr_SetExcInfo(type, value, tb);  /* (steals the three) */
    PyObject *r = PyObject_CallMethodObjArgs(handler_owner, handler_name, value, extra, NULL);
    Py_DECREF(value);
    PyErr_SetExcInfo(st, sv, stb);
    return consume(r, 0);
}

/* What StreamTransport.write does after a try-write that took k of len
 * bytes: `self._queue_write([memoryview(data)[k:]], len - k)`. */
static PyObject *
queue_rest(PyObject *transport, PyObject *data, Py_ssize_t k, Py_ssize_t len)
{
    PyObject *res = NULL, *rest = NULL, *pieces = NULL, *size = NULL;
    PyObject *view = PyMemoryView_FromObject(data);
    if (view == NULL)
        return NULL;
    PyObject *start = PyLong_FromSsize_t(k);
    PyObject *slice = start == NULL ? NULL : PySlice_New(start, NULL, NULL);
    Py_XDECREF(start);
    if (slice != NULL) {
        rest = PyObject_GetItem(view, slice);
        Py_DECREF(slice);
    }
    Py_DECREF(view);
    if (rest == NULL)
        return NULL;
    pieces = PyList_New(1);
    if (pieces == NULL)
        goto done;
    PyList_SET_ITEM(pieces, 0, Py_NewRef(rest));
    size = PyLong_FromSsize_t(len - k);
    if (size == NULL)
        goto done;
    res = PyObject_CallMethodObjArgs(transport, w_queue_write, pieces, size, NULL);
    if (res != NULL) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
done:
    Py_DECREF(rest);
    Py_XDECREF(pieces);
    Py_XDECREF(size);
    return res;
}

/* transport.write(data) (StreamTransport.write; see the section's comment). */
static PyObject *
StreamWrite_vectorcall(WriterObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *transport = writer_transport(self);
    if (transport == NULL)
        return NULL;
    PyObject *res;
    const char *buf;
    Py_ssize_t len;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || !flat_bytes(args[0], &buf, &len))
        goto python;
    PyObject *data = args[0];
    /* StreamTransport.write's checks, in its order, each a field test: at
     * the slots' offsets (transport_slots, in the completions section), or
     * in the instance dict for a class that keeps them there. */
    const Py_ssize_t *off = transport_slots(Py_TYPE(transport));
    PyObject *dict = NULL;
    if (off != NULL) {
        if (SLOT(transport, off[TA_EOF]) != Py_False || SLOT(transport, off[TA_EMPTY_WAITER]) != Py_None)
            goto python;
    } else {
        dict = instance_dict(transport);
        if (dict == NULL || !dict_is(dict, w_eof, Py_False) || !dict_is(dict, w_empty_waiter, Py_None))
            goto python;
    }
    if (len == 0) {  /* `if not data: return` */
        Py_DECREF(transport);
        Py_RETURN_NONE;
    }
    if (off != NULL) {
        if (SLOT(transport, off[TA_CONN_LOST]) != WZero || SLOT(transport, off[TA_HANDLE]) != self->handle)
            goto python;
    } else if (!dict_is(dict, w_conn_lost, WZero) || !dict_is(dict, w_handle, self->handle)) {
        goto python;
    }
    PyObject *queued = *(PyObject **)((char *)self->handle + self->queued_off);
    if (queued == NULL || !PyAnySet_CheckExact(queued) || PySet_GET_SIZE(queued) != 0)
        goto python;  /* (the Python method queues behind the writes in flight) */
    if (*(PyObject **)((char *)self->handle + self->send_now_off) != self->send_now)
        goto python;
    /* (No Python code has run since flat_bytes: buf is still data's.) */
    int n = self->uv == NULL ? UvEagain : CoreApi->try_write(self->uv, buf, (size_t)len);
    if (n == len) {
        Py_DECREF(transport);
        Py_RETURN_NONE;
    }
    Py_ssize_t k = n;
    if (n < 0) {
        if (n == UvEagain) {
            k = 0;
        } else {
            /* `n = handle.try_write_error(n)` in the Python method's try. */
            PyObject *status = PyLong_FromLong(n);
            PyObject *r = status == NULL ? NULL
                : PyObject_CallMethodObjArgs(self->handle, w_try_write_error, status, NULL);
            Py_XDECREF(status);
            if (r == NULL) {
                res = handle_exception(transport, w_fatal_error, w_fatal_write_msg) < 0 ? NULL
                    : Py_NewRef(Py_None);
                Py_DECREF(transport);
                return res;
            }
            k = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (k == -1 && PyErr_Occurred()) {
                Py_DECREF(transport);
                return NULL;
            }
            if (k == len) {
                Py_DECREF(transport);
                Py_RETURN_NONE;
            }
        }
    }
    res = queue_rest(transport, data, k, len);
    Py_DECREF(transport);
    return res;
python:
    return writer_fallback(self, transport, args, nargsf, kwnames);
}

/* transport.sendto(data, addr=None) (UDPTransport.sendto): a non-empty bytes
 * datagram to an address whose sockaddr the transport has cached (or on a
 * connected socket), nothing queued, the transport in its normal state: one
 * uv_udp_try_send.  EAGAIN, and everything else, before anything was sent:
 * the Python method.  Another error: protocol.error_received(), as the
 * Python method reports it. */
static PyObject *
DatagramSend_vectorcall(WriterObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *transport = writer_transport(self);
    if (transport == NULL)
        return NULL;
    PyObject *res;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1 || nargs > 2 || kwnames != NULL)
        goto python;
    PyObject *data = args[0];
    PyObject *addr = nargs == 2 ? args[1] : Py_None;
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) == 0)
        goto python;
    PyObject *dict = instance_dict(transport);
    if (dict == NULL)
        goto python;
    PyObject *address = PyDict_GetItemWithError(dict, w_address);
    if (address == NULL)
        goto python;
    if (address != Py_None) {
        /* A connected endpoint: only sendto(data) or sendto(data, the same
         * object) are plain; anything else gets _send_target's checks. */
        if (addr != Py_None && addr != address)
            goto python;
        addr = address;
    }
    if (!dict_is(dict, w_conn_lost, WZero) || !dict_is(dict, w_handle, self->handle)
            || !dict_is(dict, w_send_now, self->send_now))
        goto python;
    PyObject *connected = PyDict_GetItemWithError(dict, w_connected);
    const char *sa = NULL;
    if (connected == Py_False) {
        PyObject *sockaddrs = PyDict_GetItemWithError(dict, w_sockaddrs);
        if (sockaddrs == NULL || !PyDict_CheckExact(sockaddrs))
            goto python;
        /* (Looked up again by the Python path if missing: a dict look-up
         * has no other effect.) */
        PyObject *cached = PyDict_GetItemWithError(sockaddrs, addr);
        if (cached == NULL) {
            PyErr_Clear();  /* (an unhashable address: the Python path says so) */
            goto python;
        }
        if (!PyBytes_CheckExact(cached) || PyBytes_GET_SIZE(cached) != SockaddrSize)
            goto python;
        sa = PyBytes_AS_STRING(cached);
    } else if (connected != Py_True) {
        goto python;
    }
    PyObject *sizes = PyDict_GetItemWithError(dict, w_send_sizes);
    if (sizes == NULL || (PyObject *)Py_TYPE(sizes) != DequeType || PyObject_Size(sizes) != 0)
        goto python;  /* (queued sends first: the Python method queues behind them) */
    if (self->uv == NULL)
        goto python;
    /* (data and the cached sockaddr are bytes: immutable, and held by the
     * caller and the dict, which no code has run to change.) */
    int n = CoreApi->udp_try_send(self->uv, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), sa);
    if (n >= 0) {
        Py_DECREF(transport);
        Py_RETURN_NONE;
    }
    if (n == UvEagain)
        goto python;  /* (nothing sent, no error consumed: the Python method queues it) */
    /* `self._protocol.error_received(convert_error(n))` */
    res = NULL;
    PyObject *protocol = PyDict_GetItemWithError(dict, w_protocol);
    if (protocol == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_AttributeError, w_protocol);
        Py_DECREF(transport);
        return NULL;
    }
    Py_INCREF(protocol);
    PyObject *status = PyLong_FromLong(n);
    PyObject *exc = status == NULL ? NULL : PyObject_CallOneArg(ConvertError, status);
    Py_XDECREF(status);
    if (exc != NULL) {
        res = PyObject_CallMethodOneArg(protocol, w_error_received, exc);
        Py_DECREF(exc);
        if (res != NULL) {
            Py_DECREF(res);
            res = Py_NewRef(Py_None);
        }
    }
    Py_DECREF(protocol);
    Py_DECREF(transport);
    return res;
python:
    return writer_fallback(self, transport, args, nargsf, kwnames);
}

/* The offset of the object slot `name` of obj's class (0, or -1 with
 * TypeError when it is not a plain slot). */
static int
object_slot(PyObject *obj, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)Py_TYPE(obj), name);
    int ok = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)
        && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok)
        *off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_XDECREF(d);
    if (!ok) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s has no `%s` slot", Py_TYPE(obj)->tp_name, name);
        return -1;
    }
    return 0;
}

/* StreamWrite(transport, handle, write) / DatagramSend(transport, handle,
 * sendto): bind the fast path over `handle` (the transport's _handle), with
 * `write` (`sendto`), the class's Python method, for every other case. */
static WriterObject *
writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds, PyObject *ptrtype, int stream)
{
    PyObject *transport, *handle, *method;
    if (!PyArg_ParseTuple(args, "OOO", &transport, &handle, &method))
        return NULL;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", type->tp_name);
        return NULL;
    }
    if (!PyCallable_Check(method)) {
        PyErr_Format(PyExc_TypeError, "%s: the Python method must be callable", type->tp_name);
        return NULL;
    }
    Py_ssize_t queued_off = 0, send_now_off = 0;
    PyObject *send_now;
    if (stream) {
        /* handle.queued and handle.try_write_bytes: plain slots of the
         * handle's class (StreamHandle). */
        if (object_slot(handle, "queued", &queued_off) < 0
                || object_slot(handle, "try_write_bytes", &send_now_off) < 0)
            return NULL;
        send_now = *(PyObject **)((char *)handle + send_now_off);
        if (send_now == NULL) {
            PyErr_Format(PyExc_TypeError, "%s: the handle has no try_write_bytes", type->tp_name);
            return NULL;
        }
        Py_INCREF(send_now);
    } else {
        send_now = PyObject_GetAttr(transport, w_send_now);
        if (send_now == NULL)
            return NULL;
    }
    PyObject *ptr = PyObject_GetAttrString(handle, "_ptr");
    if (ptr == NULL) {
        Py_DECREF(send_now);
        return NULL;
    }
    /* handle._ptr must be the cdata type the table's function takes. */
    PyObject *t = PyObject_CallMethod(Ffi, "typeof", "O", ptr);
    int same = t == ptrtype;
    Py_XDECREF(t);
    if (!same && t != NULL)
        PyErr_Format(PyExc_TypeError, "%s: the handle is not of the right kind", type->tp_name);
    uintptr_t addr = same ? cdata_to_uintptr(ptr) : 0;
    if (same && addr == 0 && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s: the handle has a null pointer", type->tp_name);
    PyObject *ref = addr == 0 ? NULL : PyWeakref_NewRef(transport, NULL);
    WriterObject *self = ref == NULL ? NULL : (WriterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_XDECREF(ref);
        Py_DECREF(ptr);
        Py_DECREF(send_now);
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)(stream ? (void *)StreamWrite_vectorcall
                                               : (void *)DatagramSend_vectorcall);
    self->transport_ref = ref;
    self->handle = Py_NewRef(handle);
    self->ptr = ptr;
    self->uv = (void *)addr;
    self->py_method = Py_NewRef(method);
    self->send_now = send_now;
    self->queued_off = queued_off;
    self->send_now_off = send_now_off;
    return self;
}

static PyObject *
StreamWrite_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return (PyObject *)writer_new(type, args, kwds, UvlStreamPtrType, 1);
}

static PyObject *
DatagramSend_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return (PyObject *)writer_new(type, args, kwds, UvlUdpPtrType, 0);
}

static PyObject *
Writer_repr(WriterObject *self)
{
    PyObject *t = writer_transport(self);
    if (t == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError))
            return NULL;
        PyErr_Clear();  /* (the transport died) */
    }
    PyObject *r = PyUnicode_FromFormat("<native %s of %R>", Py_TYPE(self)->tp_name,
                                       t == NULL ? Py_None : t);
    Py_XDECREF(t);
    return r;
}

static PyMemberDef Writer_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(WriterObject, vectorcall), READONLY, NULL},
    {NULL},
};

/* Both writer types are one WriterObject layout; they differ in name, doc
 * and constructor only. */
#define WRITER_TYPE(name, doc, new_fn) {                                              \
    PyVarObject_HEAD_INIT(NULL, 0)                                                     \
    .tp_name = "uvloop_like._core." name,                                              \
    .tp_doc = doc,                                                                     \
    .tp_basicsize = sizeof(WriterObject),                                              \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,   \
    .tp_new = new_fn,                                                                  \
    .tp_dealloc = (destructor)Writer_dealloc,                                          \
    .tp_traverse = (traverseproc)Writer_traverse,                                      \
    .tp_clear = (inquiry)Writer_clear,                                                 \
    .tp_call = PyVectorcall_Call,                                                      \
    .tp_vectorcall_offset = offsetof(WriterObject, vectorcall),                        \
    .tp_repr = (reprfunc)Writer_repr,                                                  \
    .tp_members = Writer_members,                                                      \
}

static PyTypeObject StreamWriteType = WRITER_TYPE(
    "StreamWrite", "StreamTransport.write's fast path, bound to one transport (native core).",
    StreamWrite_new);

static PyTypeObject DatagramSendType = WRITER_TYPE(
    "DatagramSend", "UDPTransport.sendto's fast path, bound to one transport (native core).",
    DatagramSend_new);

/* The section's module state, and its two types on the module. */
static int
write_module_init(PyObject *m)
{
#define W_INTERN(var, text) \
    do { if ((var = PyUnicode_InternFromString(text)) == NULL) return -1; } while (0)
    W_INTERN(w_send_now, "_send_now");
    W_INTERN(w_eof, "_eof");
    W_INTERN(w_empty_waiter, "_empty_waiter");
    W_INTERN(w_conn_lost, "_conn_lost");
    W_INTERN(w_handle, "_handle");
    W_INTERN(w_queue_write, "_queue_write");
    W_INTERN(w_fatal_error, "_fatal_error");
    W_INTERN(w_try_write_error, "try_write_error");
    W_INTERN(w_address, "_address");
    W_INTERN(w_connected, "_connected");
    W_INTERN(w_sockaddrs, "_sockaddrs");
    W_INTERN(w_send_sizes, "_send_sizes");
    W_INTERN(w_protocol, "_protocol");
    W_INTERN(w_error_received, "error_received");
#undef W_INTERN
    if ((w_fatal_write_msg = PyUnicode_FromString("Fatal write error on socket transport")) == NULL
            || (WZero = PyLong_FromLong(0)) == NULL
            || (ConvertError = import_attr("uvloop_like.handles.errors", "convert_error")) == NULL
            || (UvlStreamPtrType = import_attr("uvloop_like._ffi", "UVL_STREAM_P")) == NULL
            || (UvlUdpPtrType = import_attr("uvloop_like._ffi", "UDP_P")) == NULL)
        return -1;
    PyObject *v = import_attr("uvloop_like._ffi", "lib");
    PyObject *eagain = v == NULL ? NULL : PyObject_GetAttrString(v, "UV_EAGAIN");
    PyObject *header = v == NULL ? NULL : PyObject_GetAttrString(v, "UVL_UDP_HEADER");
    Py_XDECREF(v);
    UvEagain = eagain == NULL ? 0 : (int)PyLong_AsLong(eagain);
    SockaddrSize = header == NULL ? 0 : PyLong_AsSsize_t(header);
    Py_XDECREF(eagain);
    Py_XDECREF(header);
    if (PyErr_Occurred())
        return -1;
    if (PyType_Ready(&StreamWriteType) < 0 || PyType_Ready(&DatagramSendType) < 0)
        return -1;
    Py_INCREF(&StreamWriteType);
    if (PyModule_AddObject(m, "StreamWrite", (PyObject *)&StreamWriteType) < 0) {
        Py_DECREF(&StreamWriteType);
        return -1;
    }
    Py_INCREF(&DatagramSendType);
    if (PyModule_AddObject(m, "DatagramSend", (PyObject *)&DatagramSendType) < 0) {
        Py_DECREF(&DatagramSendType);
        return -1;
    }
    return 0;
}

/* --- module ----------------------------------------------------------- */

/* The offset of the writable object slot `name` on `type`. */
static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)type, name);
    if (d == NULL)
        return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type)
        && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX
        && !(((PyMemberDescrObject *)d)->d_member->flags & READONLY);
    if (ok)
        *off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_ImportError, "uvloop_like._core: %s.%s is not a plain slot",
                     type->tp_name, name);
        return -1;
    }
    return 0;
}

/* The set of the NULL-terminated `names`; NULL with an exception. */
static PyObject *
set_of_names(const char *const *names)
{
    PyObject *set = PySet_New(NULL);
    for (; set != NULL && *names; names++) {
        PyObject *s = PyUnicode_FromString(*names);
        if (s == NULL || PySet_Add(set, s) < 0)
            Py_CLEAR(set);
        Py_XDECREF(s);
    }
    return set;
}

/* The slots Handle and TimerHandle have on CPython 3.9-3.13: the core sets
 * exactly these, so any other layout means no native core. */
static int
check_handle_slots(void)
{
    static const char *const handle_slots[] = {"_callback", "_args", "_cancelled", "_loop",
                                               "_source_traceback", "_repr", "_context",
                                               "__weakref__", NULL};
    static const char *const timer_slots[] = {"_scheduled", "_when", NULL};
    const char *const *names[] = {handle_slots, timer_slots};
    PyTypeObject *types[] = {HandleType, TimerHandleType};
    for (int k = 0; k < 2; k++) {
        PyObject *slots = PyDict_GetItemString(types[k]->tp_dict, "__slots__");  /* borrowed */
        if (slots == NULL) {
            PyErr_Format(PyExc_ImportError, "uvloop_like._core: %s has no __slots__",
                         types[k]->tp_name);
            return -1;
        }
        PyObject *got = PySet_New(slots);
        PyObject *want = got == NULL ? NULL : set_of_names(names[k]);
        int eq = want == NULL ? -1 : PyObject_RichCompareBool(got, want, Py_EQ);
        Py_XDECREF(got);
        Py_XDECREF(want);
        if (eq < 0)
            return -1;
        if (!eq) {
            PyErr_Format(PyExc_ImportError, "uvloop_like._core: %s has unknown slots",
                         types[k]->tp_name);
            return -1;
        }
    }
    return 0;
}

/* module.name: a new reference, or NULL with an exception. */
static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *v = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return v;
}

/* The cffi module's side: its core API table and what Core_init needs to
 * read a LoopCore's pointer. */
static int
load_cffi_side(void)
{
    if ((Ffi = import_attr("uvloop_like._ffi", "ffi")) == NULL
            || (UintptrType = import_attr("uvloop_like._ffi", "UINTPTR")) == NULL
            || (UvlLoopPtrType = import_attr("uvloop_like._ffi", "UVL_LOOP_P")) == NULL
            || (LoopCoreType = import_attr("uvloop_like.handles.core", "LoopCore")) == NULL)
        return -1;
    PyObject *lib = import_attr("uvloop_like._ffi", "lib");
    PyObject *table = lib == NULL ? NULL : PyObject_CallMethod(lib, "uvl_core_api", NULL);
    Py_XDECREF(lib);
    if (table == NULL)
        return -1;
    CoreApi = (const core_api_t *)cdata_to_uintptr(table);
    Py_DECREF(table);
    if (PyErr_Occurred())
        return -1;
    if (CoreApi == NULL || CoreApi->abi != CORE_API_ABI
            || CoreApi->size != (int)sizeof(core_api_t)) {
        PyErr_SetString(PyExc_ImportError,
                        "uvloop_like._core does not match the cffi module's core API");
        return -1;
    }
    return 0;
}

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uvloop_like._core",
    .m_doc = "uvloop_like's optional native core (CPython only): scheduler and run loop.",
    .m_size = -1,
};

#define INTERN(var, text) \
    do { if ((var = PyUnicode_InternFromString(text)) == NULL) goto fail; } while (0)

PyMODINIT_FUNC
PyInit__core(void)
{
    PyObject *m = NULL, *events = NULL, *collections = NULL, *timemod = NULL;
    INTERN(s_closed, "_closed");
    INTERN(s_slow_handles, "_slow_handles");
    INTERN(s_debug, "_debug");
    INTERN(s_ready, "_ready");
    INTERN(s_scheduled, "_scheduled");
    INTERN(s_timer_cancelled_count, "_timer_cancelled_count");
    INTERN(s_stopping, "_stopping");
    INTERN(s_clock_resolution, "_clock_resolution");
    INTERN(s_time, "time");
    INTERN(s_call_at, "call_at");
    INTERN(s_call_soon, "call_soon");
    INTERN(s_append, "append");
    INTERN(s_popleft, "popleft");
    INTERN(s_purge, "_purge_cancelled_timers");
    INTERN(s_run_ready_debug, "_run_ready_debug");
    INTERN(s_report_error, "_report_callback_error");
    INTERN(s_process, "process");
    INTERN(s_dispatch_pending, "dispatch_pending");
    INTERN(s_pending, "pending");
    INTERN(s_run, "run");
    INTERN(s_when, "_when");
    INTERN(s_cancelled, "_cancelled");
    INTERN(s_context, "_context");
    INTERN(s_callback, "_callback");
    INTERN(s_args, "_args");
    INTERN(s_slow_hook, "_slow_callback_hook");
    INTERN(s_slow_hook_threshold, "_slow_hook_threshold");
    INTERN(s_call_slow_hook, "_call_slow_hook");
    INTERN(s_process_timed, "process_timed");
    INTERN(s_report_slow_dispatch, "_report_slow_dispatch");
    INTERN(s_timed, "_timed");

    events = PyImport_ImportModule("asyncio.events");
    if (events == NULL)
        goto fail;
    HandleType = (PyTypeObject *)PyObject_GetAttrString(events, "Handle");
    if (HandleType == NULL)
        goto fail;
    TimerHandleType = (PyTypeObject *)PyObject_GetAttrString(events, "TimerHandle");
    if (TimerHandleType == NULL)
        goto fail;
    if (!PyType_Check(HandleType) || !PyType_Check(TimerHandleType)
            || !PyType_IsSubtype(TimerHandleType, HandleType)) {
        PyErr_SetString(PyExc_ImportError, "uvloop_like._core: unexpected asyncio.Handle");
        goto fail;
    }
    if (check_handle_slots() < 0
            || slot_offset(HandleType, "_callback", &off_callback) < 0
            || slot_offset(HandleType, "_args", &off_args) < 0
            || slot_offset(HandleType, "_cancelled", &off_cancelled) < 0
            || slot_offset(HandleType, "_loop", &off_loop) < 0
            || slot_offset(HandleType, "_source_traceback", &off_source_traceback) < 0
            || slot_offset(HandleType, "_repr", &off_repr) < 0
            || slot_offset(HandleType, "_context", &off_context) < 0
            || slot_offset(TimerHandleType, "_when", &off_when) < 0
            || slot_offset(TimerHandleType, "_scheduled", &off_scheduled) < 0)
        goto fail;
    freelist_ok = HandleType->tp_weaklistoffset > 0
        && TimerHandleType->tp_weaklistoffset == HandleType->tp_weaklistoffset;
    collections = PyImport_ImportModule("collections");
    if (collections == NULL)
        goto fail;
    DequeType = PyObject_GetAttrString(collections, "deque");
    if (DequeType == NULL)
        goto fail;
    ExitExceptions = PyTuple_Pack(2, PyExc_SystemExit, PyExc_KeyboardInterrupt);
    if (ExitExceptions == NULL)
        goto fail;
    timemod = PyImport_ImportModule("time");
    if (timemod == NULL || (PerfCounter = PyObject_GetAttrString(timemod, "perf_counter")) == NULL)
        goto fail;
    if (load_cffi_side() < 0 || task_module_init() < 0)
        goto fail;
    attr_names[A_CLOSED] = s_closed;
    attr_names[A_STOPPING] = s_stopping;
    attr_names[A_DEBUG] = s_debug;
    attr_names[A_TIMED] = s_timed;
    attr_names[A_SLOW_HANDLES] = s_slow_handles;
    attr_names[A_READY] = s_ready;
    attr_names[A_SCHEDULED] = s_scheduled;
    attr_names[A_TIMER_CANCELLED_COUNT] = s_timer_cancelled_count;
    attr_names[A_TASK_FACTORY] = s_task_factory;
    attr_names[A_CLOCK_RESOLUTION] = s_clock_resolution;
    attr_names[A_SLOW_HOOK] = s_slow_hook;
    attr_names[A_SLOW_HOOK_THRESHOLD] = s_slow_hook_threshold;
    if (PyType_Ready(&CoreType) < 0)
        goto fail;
    m = PyModule_Create(&core_module);
    if (m == NULL)
        goto fail;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "API_ABI", CORE_API_ABI) < 0)
        goto fail;
    if (write_module_init(m) < 0)
        goto fail;
    Py_DECREF(events);
    Py_DECREF(collections);
    Py_DECREF(timemod);
    return m;
fail:
    Py_XDECREF(m);
    Py_XDECREF(events);
    Py_XDECREF(collections);
    Py_XDECREF(timemod);
    return NULL;
}
