/* ctxloop._speedups: the optional compiled half of ctxloop's hot path.
 *
 * Never required: ctxloop/_accel.py imports it once (unless the environment
 * variable CTXLOOP_NO_SPEEDUPS is set, or on PyPy) and every pure-Python
 * module keeps its own implementation, which this module falls back to for
 * anything but the common case. Public C API only, plus two functions CPython
 * exports for exactly this use on the Pythons that have them and that no
 * longer change (3.8-3.10): _PyGen_Send (3.8/3.9) and
 * _PyGen_SetStopIterationValue (3.8-3.10). One private field is read: the
 * entered flag of CPython's context object (see "S6/S7" below), only after a
 * self-test at import has read it exactly.
 *
 * Free-threaded CPython: the module declares that it does not need the GIL.
 * Its state is set once at import; the caches filled later are published
 * with atomic operations (see "Free threading" below).
 *
 * What it provides:
 *
 * CreateTask(pure, kinds, asyncio, uvloop, task_type, strip)
 *     A callable that is ``create_task_on(loop, coro, ...)`` and binds as a
 *     method (a method descriptor, like a Python function): it is what a
 *     ctxloop loop's ``create_task`` is. For a loop whose ``create_task`` is
 *     asyncio's or uvloop's, without a task factory and with the keywords of
 *     the Python's own signature, it does in C what the pure-Python function
 *     does; anything else calls *pure*, the pure-Python function itself.
 * check_task_context(context, eager=False)
 *     S6/S7: an exact Context that is not entered is returned at once; the
 *     rest goes to the pure-Python check, set by setup().
 * InContext(context, method, connection, after, mode, copies)
 *     A protocol callback bound to its connection's context: the compiled
 *     in_context() of ctxloop/_connections.py.
 * TaskCoroutine, bind_task(coro, context)  (used on 3.8-3.10)
 *     The binding a Task steps so that every step runs inside *context*:
 *     send/throw/close enter the context around the coroutine's own, and on
 *     3.10 the type has am_send, so asyncio's C Task steps it with no method
 *     lookup and no StopIteration.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>

#if PY_VERSION_HEX < 0x03080000
#error "ctxloop._speedups needs CPython 3.8 or later"
#endif

#if PY_VERSION_HEX < 0x03090000
#define CALL _PyObject_Vectorcall
#define TPFLAGS_VECTORCALL _Py_TPFLAGS_HAVE_VECTORCALL
#else
#define CALL PyObject_Vectorcall
#define TPFLAGS_VECTORCALL Py_TPFLAGS_HAVE_VECTORCALL
#endif

/* ------------------------------------------------------------------------ */
/* Free threading: the few statics filled after import are published atomically. */

#ifdef Py_GIL_DISABLED
#define LOAD_PTR(slot) ((PyObject *)_Py_atomic_load_ptr(&(slot)))
/* Publish *value* (a new reference) in *slot* unless another thread did first; return the one in place (borrowed). */
static inline PyObject *
publish(PyObject **slot, PyObject *value)
{
    void *expected = NULL;
    if (_Py_atomic_compare_exchange_ptr(slot, &expected, value)) {
        return value;
    }
    Py_DECREF(value);
    return (PyObject *)expected;
}
#else
#define LOAD_PTR(slot) (slot)
static inline PyObject *
publish(PyObject **slot, PyObject *value)
{
    if (*slot != NULL) {
        Py_DECREF(value);
        return *slot;
    }
    *slot = value;
    return value;
}
#endif

/* A dict lookup returning a strong reference (1: found, 0: not found, -1: error): without the GIL a
 * borrowed value could be freed by another thread before it is used. */
static int
dict_get_ref(PyObject *dict, PyObject *key, PyObject **value)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(dict, key, value);
#else
    *value = PyDict_GetItemWithError(dict, key);
    if (*value == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(*value);
    return 1;
#endif
}

#define HAS_AM_SEND (PY_VERSION_HEX >= 0x030A0000)
#define BINDS_CONTEXT (PY_VERSION_HEX < 0x030B0000)    /* 3.8-3.10: Task takes no context= */
#define ANY_KEYWORDS (PY_VERSION_HEX >= 0x030E0000)    /* 3.14+: create_task(coro, **kwargs) */
#define NATIVE_TASK (PY_VERSION_HEX >= 0x030C0000)     /* 3.12+: ctxloop's Task is asyncio.Task itself */

/* Interned names. */
static PyObject *s_loop, *s_name, *s_context, *s_eager_start, *s__closed, *s__task_factory, *s_is_closed,
    *s_get_task_factory, *s__source_traceback, *s_send, *s_throw, *s_close, *s_is_running, *s_create_task, *s_Task,
    *s_coro, *s_set_name;
/* Keyword tuples for the Task call. */
static PyObject *kw_loop, *kw_loop_name, *kw_loop_context, *kw_loop_name_context, *kw_name_context, *kw_context;
/* Set by setup(): the pure-Python check_task_context. */
static PyObject *pure_check_task_context;

static PyObject *
call_method0(PyObject *obj, PyObject *name)
{
#if PY_VERSION_HEX >= 0x03090000
    return PyObject_VectorcallMethod(name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
#else
    return PyObject_CallMethodObjArgs(obj, name, NULL);
#endif
}

enum keyword { KW_OTHER, KW_CONTEXT, KW_NAME, KW_EAGER_START, KW_LOOP, KW_CORO };

/* Which keyword ctxloop reads *key* is. A call site's keywords are interned, as these names are, so
   identity with each of them comes first: comparing text is for keywords built at run time. */
static enum keyword
keyword_of(PyObject *key)
{
    if (key == s_context) {
        return KW_CONTEXT;
    }
    if (key == s_name) {
        return KW_NAME;
    }
    if (key == s_eager_start) {
        return KW_EAGER_START;
    }
    if (key == s_loop) {
        return KW_LOOP;
    }
    if (key == s_coro) {
        return KW_CORO;
    }
    if (!PyUnicode_Check(key)) {
        return KW_OTHER;
    }
    PyObject *const names[] = {s_context, s_name, s_eager_start, s_loop, s_coro};
    for (int i = 0; i < 5; i++) {
        if (PyUnicode_Compare(key, names[i]) == 0) {
            return (enum keyword)(KW_CONTEXT + i);
        }
    }
    return KW_OTHER;
}

/* ------------------------------------------------------------------------ */
/* S6/S7 */

/* Whether a Context is entered (Context.run executing in it, in this thread or another) is read from
 * CPython's context object without entering it: entering to find out is atomic only under the GIL, and
 * without it would make another thread's legitimate Context.run fail. The object is, in every CPython
 * from 3.7 to 3.15 (Include/internal/pycore_context.h), the header, three pointers, then this int. */
typedef struct {
    PyObject_HEAD
    void *prev;
    void *vars;
    void *weakreflist;
    int entered;
} ContextLayout;

static int entered_flag_readable; /* set once at import, by the self-test */

static int
read_entered_flag(PyObject *context)
{
#ifdef Py_GIL_DISABLED
    return _Py_atomic_load_int_relaxed(&((ContextLayout *)context)->entered);
#else
    return ((ContextLayout *)context)->entered;
#endif
}

/* The self-test: a new Context reads 0, 1 while entered, 0 after. 1: passed, 0: failed, -1: error. */
static int
entered_flag_self_test(void)
{
    PyObject *context = PyContext_New();
    if (context == NULL) {
        return -1;
    }
    int before = read_entered_flag(context);
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(context);
        return -1;
    }
    int inside = read_entered_flag(context);
    int exited = PyContext_Exit(context);
    int after = read_entered_flag(context);
    Py_DECREF(context);
    if (exited < 0) {
        return -1;
    }
    return before == 0 && inside == 1 && after == 0;
}

/* 0: *context* is not entered; 1: it is entered (in this thread or another); -1: error. */
static int
context_entered(PyObject *context)
{
    if (entered_flag_readable) {
        return read_entered_flag(context) != 0;
    }
#ifdef Py_GIL_DISABLED
    return 0; /* not known: what CPython itself assumes (see ctxloop/_entered.py) */
#else
    /* Under the GIL entering runs no Python code, so this probe is atomic. */
    if (PyContext_Enter(context) < 0) {
        if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            PyErr_Clear();
            return 1;
        }
        return -1;
    }
    return PyContext_Exit(context) < 0 ? -1 : 0;
#endif
}

/* check_task_context(context, eager): a new reference to *context*, or NULL with the error set.
 * *eager* may be NULL (False). */
static PyObject *
checked_context(PyObject *context, PyObject *eager)
{
    if (PyContext_CheckExact(context)) {
        int entered = context_entered(context);
        if (entered == 0) {
            Py_INCREF(context);
            return context;
        }
        if (entered < 0) {
            return NULL;
        }
    }
    /* Not a Context (TypeError), or entered: the pure-Python check decides. */
    if (pure_check_task_context == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ctxloop._speedups.setup() was not called");
        return NULL;
    }
    PyObject *args[3] = {NULL, context, eager != NULL ? eager : Py_False};
    return CALL(pure_check_task_context, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
check_task_context(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
        return checked_context(args[0], nargs == 2 ? args[1] : NULL);
    }
    if (pure_check_task_context == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ctxloop._speedups.setup() was not called");
        return NULL;
    }
    return CALL(pure_check_task_context, args, (size_t)nargs, kwnames);
}

static PyObject *
setup(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"check_task_context", NULL};
    PyObject *check;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O:setup", keywords, &check)) {
        return NULL;
    }
    Py_INCREF(check);
    Py_XSETREF(pure_check_task_context, check);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* TaskCoroutine: a coroutine bound to a Context (3.8-3.10) */

#if BINDS_CONTEXT

/* Imported when first needed: asyncio.iscoroutine, ctxloop._binding._awaitable. */
static PyObject *asyncio_iscoroutine, *binding_awaitable;

typedef struct {
    PyObject_HEAD
    PyObject *coro;
    PyObject *context;
} BindingObject;

static PyTypeObject Binding_Type;

static PyObject *
make_binding(PyObject *coro, PyObject *context)
{
    BindingObject *self = PyObject_GC_New(BindingObject, &Binding_Type);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(coro);
    self->coro = coro;
    Py_INCREF(context);
    self->context = context;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
binding_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *coro, *context;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "TaskCoroutine() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "TaskCoroutine", 2, 2, &coro, &context)) {
        return NULL;
    }
    if (!PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError, "context must be a contextvars.Context, not %.200s", Py_TYPE(context)->tp_name);
        return NULL;
    }
    return make_binding(coro, context);
}

static int
binding_traverse(BindingObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->coro);
    Py_VISIT(self->context);
    return 0;
}

static int
binding_clear(BindingObject *self)
{
    Py_CLEAR(self->coro);
    Py_CLEAR(self->context);
    return 0;
}

static void
binding_dealloc(BindingObject *self)
{
    PyObject_GC_UnTrack(self);
    binding_clear(self);
    PyObject_GC_Del(self);
}

/* coro.send(value), with the coroutine's own result protocol (StopIteration on return). */
static PyObject *
coro_send(PyObject *coro, PyObject *value)
{
#if HAS_AM_SEND
    if (PyCoro_CheckExact(coro) || PyGen_CheckExact(coro)) {
        PyObject *result;
        PySendResult status = PyIter_Send(coro, value, &result);
        if (status == PYGEN_RETURN) {
            if (result == Py_None) {
                PyErr_SetNone(PyExc_StopIteration);
            }
            else {
                _PyGen_SetStopIterationValue(result);
            }
            Py_DECREF(result);
            return NULL;
        }
        return status == PYGEN_NEXT ? result : NULL;
    }
#else
    if (PyCoro_CheckExact(coro) || PyGen_CheckExact(coro)) {
        return _PyGen_Send((PyGenObject *)coro, value);
    }
#endif
    return PyObject_CallMethodObjArgs(coro, s_send, value, NULL);
}

static PyObject *
binding_send(BindingObject *self, PyObject *value)
{
    if (PyContext_Enter(self->context) < 0) {
        return NULL;
    }
    PyObject *result = coro_send(self->coro, value);
    if (PyContext_Exit(self->context) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

#if HAS_AM_SEND
static PySendResult
binding_am_send(BindingObject *self, PyObject *value, PyObject **result)
{
    if (PyContext_Enter(self->context) < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult status = PyIter_Send(self->coro, value, result);
    if (PyContext_Exit(self->context) < 0) {
        Py_CLEAR(*result);
        return PYGEN_ERROR;
    }
    return status;
}
#endif

static PyObject *
binding_throw(BindingObject *self, PyObject *args)
{
    PyObject *throw = PyObject_GetAttr(self->coro, s_throw);
    if (throw == NULL) {
        return NULL;
    }
    if (PyContext_Enter(self->context) < 0) {
        Py_DECREF(throw);
        return NULL;
    }
    PyObject *result = PyObject_Call(throw, args, NULL);
    Py_DECREF(throw);
    if (PyContext_Exit(self->context) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *
binding_close(BindingObject *self, PyObject *unused)
{
    if (PyContext_Enter(self->context) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return NULL;
        }
        /* Entered elsewhere: close where we are, as a native coroutine's
           finaliser would, rather than not at all. */
        PyErr_Clear();
        return call_method0(self->coro, s_close);
    }
    PyObject *result = call_method0(self->coro, s_close);
    if (PyContext_Exit(self->context) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *
binding_await(BindingObject *self)
{
    /* ctxloop._binding._awaitable(coro, context).__await__(), as the pure class does. */
    if (binding_awaitable == NULL) {
        PyObject *module = PyImport_ImportModule("ctxloop._binding");
        if (module == NULL) {
            return NULL;
        }
        binding_awaitable = PyObject_GetAttrString(module, "_awaitable");
        Py_DECREF(module);
        if (binding_awaitable == NULL) {
            return NULL;
        }
    }
    PyObject *awaitable = PyObject_CallFunctionObjArgs(binding_awaitable, self->coro, self->context, NULL);
    if (awaitable == NULL) {
        return NULL;
    }
    PyObject *iterator = PyObject_CallMethod(awaitable, "__await__", NULL);
    Py_DECREF(awaitable);
    return iterator;
}

static PyObject *
binding_await_method(BindingObject *self, PyObject *unused)
{
    return binding_await(self);
}

static PyObject *
binding_repr(BindingObject *self)
{
    return PyUnicode_FromFormat("<TaskCoroutine %R in %R>", self->coro, self->context);
}

/* What the pure class forwards through __getattr__ and anything reads:
 * asyncio's repr and get_stack(), inspect, tracebacks. */
static PyObject *
binding_forward(BindingObject *self, void *name)
{
    return PyObject_GetAttrString(self->coro, (const char *)name);
}

#define FORWARD(name) {name, (getter)binding_forward, NULL, NULL, name}

static PyGetSetDef binding_getset[] = {
    FORWARD("cr_await"),
    FORWARD("cr_code"),
    FORWARD("cr_frame"),
    FORWARD("cr_origin"),
    FORWARD("cr_running"),
    FORWARD("gi_code"),
    FORWARD("gi_frame"),
    FORWARD("gi_running"),
    FORWARD("gi_yieldfrom"),
    FORWARD("__name__"),
    FORWARD("__qualname__"),
    {NULL},
};

static PyMemberDef binding_members[] = {
    {"_coro", T_OBJECT_EX, offsetof(BindingObject, coro), READONLY, "the coroutine"},
    {"_context", T_OBJECT_EX, offsetof(BindingObject, context), READONLY, "the Context every step runs in"},
    {NULL},
};

static PyMethodDef binding_methods[] = {
    {"send", (PyCFunction)binding_send, METH_O, "Step the coroutine inside the context."},
    {"throw", (PyCFunction)binding_throw, METH_VARARGS, "Throw into the coroutine inside the context."},
    {"close", (PyCFunction)binding_close, METH_NOARGS, "Close the coroutine inside the context."},
    {"__await__", (PyCFunction)binding_await_method, METH_NOARGS, "Await the coroutine inline, in the context."},
    {NULL},
};

static PyAsyncMethods binding_async = {
    .am_await = (unaryfunc)binding_await,
#if HAS_AM_SEND
    .am_send = (sendfunc)binding_am_send,
#endif
};

static PyTypeObject Binding_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctxloop._speedups.TaskCoroutine",
    .tp_basicsize = sizeof(BindingObject),
    .tp_dealloc = (destructor)binding_dealloc,
    .tp_as_async = &binding_async,
    .tp_repr = (reprfunc)binding_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A coroutine whose every step (send, throw, close) runs inside a Context.",
    .tp_traverse = (traverseproc)binding_traverse,
    .tp_clear = (inquiry)binding_clear,
    .tp_iter = (getiterfunc)binding_await,
    .tp_methods = binding_methods,
    .tp_members = binding_members,
    .tp_getset = binding_getset,
    .tp_new = binding_new,
};

static int
is_coroutine(PyObject *coro)
{
    if (PyCoro_CheckExact(coro)) {
        return 1;
    }
    if (asyncio_iscoroutine == NULL) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");
        if (asyncio == NULL) {
            return -1;
        }
        asyncio_iscoroutine = PyObject_GetAttrString(asyncio, "iscoroutine");
        Py_DECREF(asyncio);
        if (asyncio_iscoroutine == NULL) {
            return -1;
        }
    }
    PyObject *result = PyObject_CallFunctionObjArgs(asyncio_iscoroutine, coro, NULL);
    if (result == NULL) {
        return -1;
    }
    int is = PyObject_IsTrue(result);
    Py_DECREF(result);
    return is;
}

/* bind_task(coro, context): the checks of S6/S7, then the binding. */
static PyObject *
bind_task_impl(PyObject *coro, PyObject *context)
{
    PyObject *checked = checked_context(context, NULL);
    if (checked == NULL) {
        return NULL;
    }
    Py_DECREF(checked);
    int is = is_coroutine(coro);
    if (is <= 0) {
        if (is == 0) {
            PyErr_Format(PyExc_TypeError, "a coroutine was expected, got %R", coro);
        }
        return NULL;
    }
    return make_binding(coro, context);
}

static PyObject *
bind_task(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "bind_task() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    return bind_task_impl(args[0], args[1]);
}
#endif /* BINDS_CONTEXT */

/* ------------------------------------------------------------------------ */
/* CreateTask: create_task_on, bindable as a loop's create_task method */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *pure;      /* the pure-Python create_task_on: every other case, and __wrapped__ */
    PyObject *kinds;     /* dict: loop class -> kind (filled by the pure function) */
    PyObject *k_asyncio; /* the kind of a loop whose create_task is asyncio's */
    PyObject *k_uvloop;  /* ... uvloop's */
    PyObject *task_type; /* the Task class ctxloop makes */
    PyObject *strip;     /* strip_own_frames(source_traceback) */
    PyObject *uvloop_create_task; /* uvloop.Loop.create_task, once needed (3.12+) */
    PyObject *tasks_dict; /* asyncio.tasks.__dict__ (3.12+; else NULL) */
} CreateTaskObject;

#if !BINDS_CONTEXT
/* ("loop",) + kwnames, for the few keyword tuples a program's call sites use
   (3.14+: create_task's keywords; 3.11+: a task factory's). */
#define KW_CACHE 8
static PyObject *kw_cache_key[KW_CACHE], *kw_cache_value[KW_CACHE];
static int kw_cache_next;
#ifdef Py_GIL_DISABLED
static PyMutex kw_cache_mutex;
#define KW_CACHE_LOCK() PyMutex_Lock(&kw_cache_mutex)
#define KW_CACHE_UNLOCK() PyMutex_Unlock(&kw_cache_mutex)
#else
#define KW_CACHE_LOCK()
#define KW_CACHE_UNLOCK()
#endif

/* A call through f(**kwargs) gets a new keyword-name tuple each time (CPython makes one from the
   dictionary), with the same interned strings in it: compare the names, not the tuple. */
static inline int
same_keywords(PyObject *key, PyObject *kwnames, Py_ssize_t n)
{
    if (key == kwnames) {
        return 1;
    }
    if (key == NULL || PyTuple_GET_SIZE(key) != n) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyTuple_GET_ITEM(key, i) != PyTuple_GET_ITEM(kwnames, i)) {
            return 0;
        }
    }
    return 1;
}

/* ("loop",) + kwnames, as a new reference, or NULL with the error set. */
static PyObject *
with_loop(PyObject *kwnames)
{
    if (kwnames == NULL) {
        Py_INCREF(kw_loop);
        return kw_loop;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
    KW_CACHE_LOCK();
    for (int i = 0; i < KW_CACHE; i++) {
        if (same_keywords(kw_cache_key[i], kwnames, n)) {
            PyObject *hit = kw_cache_value[i];
            Py_INCREF(hit);
            KW_CACHE_UNLOCK();
            return hit;
        }
    }
    KW_CACHE_UNLOCK();
    PyObject *value = PyTuple_New(n + 1);
    if (value == NULL) {
        return NULL;
    }
    Py_INCREF(s_loop);
    PyTuple_SET_ITEM(value, 0, s_loop);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        Py_INCREF(key);
        PyTuple_SET_ITEM(value, i + 1, key);
    }
    /* The evicted entries are released after the lock: their destructors run no code of ours, but
       nothing else should run while it is held. */
    PyObject *old_key, *old_value;
    Py_INCREF(kwnames);
    Py_INCREF(value);
    KW_CACHE_LOCK();
    int slot = kw_cache_next;
    kw_cache_next = (kw_cache_next + 1) % KW_CACHE;
    old_key = kw_cache_key[slot];
    old_value = kw_cache_value[slot];
    kw_cache_key[slot] = kwnames;
    kw_cache_value[slot] = value;
    KW_CACHE_UNLOCK();
    Py_XDECREF(old_key);
    Py_XDECREF(old_value);
    return value;
}
#define MAX_KEYWORDS 6
#endif

static PyObject *
create_task_slow(CreateTaskObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return CALL(self->pure, args, nargsf, kwnames);
}

/* 0: the loop is open; -1: it is closed (RuntimeError set), or the check failed. */
static int
check_open(PyObject *loop, int is_asyncio)
{
    PyObject *closed = is_asyncio ? PyObject_GetAttr(loop, s__closed) : call_method0(loop, s_is_closed);
    if (closed == NULL) {
        return -1;
    }
    int is_closed = PyObject_IsTrue(closed);
    Py_DECREF(closed);
    if (is_closed) {
        if (is_closed > 0) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        }
        return -1;
    }
    return 0;
}

/* The loop's task factory, None if it has none (a new reference), or NULL with the error set. */
static PyObject *
task_factory_of(PyObject *loop, int is_asyncio)
{
    return is_asyncio ? PyObject_GetAttr(loop, s__task_factory) : call_method0(loop, s_get_task_factory);
}

static PyTypeObject TaskFactory_Type;

/* The loop's task factory is ctxloop's own task_factory: what the pure function does with it, without
 * its Python frame (the factory itself, compiled, makes the task):
 *
 *     task = factory(loop, coro) or factory(loop, coro, context=context)    # 3.8-3.13
 *     if name is not None: task.set_name(name)
 *     task = factory(loop, coro, **kwargs)                                  # 3.14+
 *
 * From 3.11 the pure function checks the context before calling the factory: a Context entered
 * nowhere passes; any other is left to it, with its errors. *name* is NULL on 3.14+. */
static PyObject *
own_factory_task(CreateTaskObject *self, PyObject *factory, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                 PyObject *context, PyObject *name)
{
#if !BINDS_CONTEXT
    if (context != NULL) {
        int entered = PyContext_CheckExact(context) ? context_entered(context) : 1;
        if (entered != 0) {
            return entered < 0 ? NULL : create_task_slow(self, args, nargsf, kwnames);
        }
    }
#endif
#if ANY_KEYWORDS
    return CALL(factory, args, nargsf, kwnames);
#else
    PyObject *stack[4] = {NULL, args[0], args[1], context};
    PyObject *task = CALL(factory, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, context == NULL ? NULL : kw_context);
    if (task != NULL && name != Py_None) {
        PyObject *done = PyObject_CallMethodObjArgs(task, s_set_name, name, NULL);
        if (done == NULL) {
            Py_CLEAR(task);
        }
        Py_XDECREF(done);
    }
    return task;
#endif
}

/* if task._source_traceback: strip(task._source_traceback) (debug mode); return task (stolen) */
static PyObject *
stripped(PyObject *strip, PyObject *task)
{
    if (task == NULL) {
        return NULL;
    }
    PyObject *traceback = PyObject_GetAttr(task, s__source_traceback);
    if (traceback == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    if (traceback != Py_None) {
        int truth = PyObject_IsTrue(traceback);
        PyObject *done = truth > 0 ? PyObject_CallFunctionObjArgs(strip, traceback, NULL) : NULL;
        Py_XDECREF(done);
        if (truth < 0 || (truth > 0 && done == NULL)) {
            Py_DECREF(traceback);
            Py_DECREF(task);
            return NULL;
        }
    }
    Py_DECREF(traceback);
    return task;
}

#if NATIVE_TASK
/* uvloop.Loop.__dict__["create_task"], published in self once (borrowed), or NULL with the error set. */
static PyObject *
find_uvloop_create_task(CreateTaskObject *self)
{
    /* The function ctxloop._create recognises as uvloop's: uvloop.Loop.__dict__["create_task"]. */
    PyObject *module = PyImport_ImportModule("uvloop.loop");
    if (module == NULL) {
        return NULL;
    }
    PyObject *cls = PyObject_GetAttrString(module, "Loop");
    Py_DECREF(module);
    if (cls == NULL) {
        return NULL;
    }
    PyObject *namespace = PyObject_GetAttrString(cls, "__dict__");
    Py_DECREF(cls);
    if (namespace == NULL) {
        return NULL;
    }
    PyObject *method = PyObject_GetItem(namespace, s_create_task);
    Py_DECREF(namespace);
    return method == NULL ? NULL : publish(&self->uvloop_create_task, method);
}
#endif

static PyObject *
create_task_vectorcall(CreateTaskObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2) {
        return create_task_slow(self, args, nargsf, kwnames);
    }
    PyObject *loop = args[0], *coro = args[1];
    PyObject *kind;
    int found = dict_get_ref(self->kinds, (PyObject *)Py_TYPE(loop), &kind);
    if (found <= 0) {
        /* a new loop class: the pure function learns it */
        return found < 0 ? NULL : create_task_slow(self, args, nargsf, kwnames);
    }
    int is_asyncio = kind == self->k_asyncio, is_uvloop = kind == self->k_uvloop;
    if (is_asyncio || is_uvloop) {
        Py_DECREF(kind); /* compared by identity only; the dict and self keep both kinds alive */
    }
#if !NATIVE_TASK
    else {
        Py_DECREF(kind);
        return create_task_slow(self, args, nargsf, kwnames); /* the class's own create_task */
    }
#endif

    /* The keywords: name= and context= (3.8-3.13); any (3.14+), context= and eager_start= read. */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *context = NULL;
#if ANY_KEYWORDS
    PyObject *eager = NULL;
    if (nkw > MAX_KEYWORDS) {
        return create_task_slow(self, args, nargsf, kwnames);
    }
#else
    PyObject *name = Py_None;
#endif
    int plain_keywords = 1; /* only context= and name=None (the uvloop route of 3.12+) */
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *value = args[nargs + i];
        enum keyword keyword = keyword_of(PyTuple_GET_ITEM(kwnames, i));
        if (keyword == KW_CONTEXT) {
            context = value;
        }
        else if (value == Py_None && keyword == KW_NAME) {
            /* the default */
        }
#if ANY_KEYWORDS
        else if (keyword == KW_EAGER_START) {
            eager = value;
            plain_keywords = 0;
        }
        else if (keyword == KW_LOOP) {
            return create_task_slow(self, args, nargsf, kwnames); /* Task's own error */
        }
        else {
            plain_keywords = 0;
        }
#else
        else if (keyword == KW_NAME) {
            name = value;
            plain_keywords = 0;
        }
        else {
            return create_task_slow(self, args, nargsf, kwnames); /* the signature's own error */
        }
#endif
    }
    if (context == Py_None) {
        context = NULL;
    }
    (void)plain_keywords;

#if NATIVE_TASK
    if (!is_asyncio && !is_uvloop) {
        /* The class's own create_task (rloop's, say), called as the pure function calls it once
           the context is checked. A Context entered nowhere passes the check whatever the loop's
           task factory and eager_start= say, so the factory need not be asked; any other context
           (one to refuse, or one entered) is the pure function's, with its errors. */
        PyObject *task = NULL;
        int entered = context == NULL ? 0 : PyContext_CheckExact(context) ? context_entered(context) : 1;
        if (entered > 0) {
            task = create_task_slow(self, args, nargsf, kwnames);
        }
        else if (entered == 0) {
#if ANY_KEYWORDS
            task = CALL(kind, args, nargsf, kwnames); /* kind(loop, coro, **kwargs) */
#else
            /* kind(loop, coro, name=name, context=context) */
            PyObject *stack[5] = {NULL, loop, coro, name, context != NULL ? context : Py_None};
            task = CALL(kind, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_name_context);
#endif
        }
        Py_DECREF(kind);
        return task;
    }
#endif

    PyObject *factory = NULL;
#if NATIVE_TASK
    /* 3.12+ on uvloop without a task factory, with no keyword but context= (and
       name=None): the Task ctxloop makes is asyncio's own, made exactly as
       uvloop's C create_task makes it, so that method makes it (it checks that
       the loop is open). */
    if (!is_asyncio && plain_keywords) {
        factory = task_factory_of(loop, 0);
        if (factory == NULL) {
            return NULL;
        }
        if (factory == Py_None) {
            Py_DECREF(factory);
            if (context != NULL) {
                PyObject *checked = checked_context(context, NULL);
                if (checked == NULL) {
                    return NULL;
                }
                Py_DECREF(checked);
            }
            PyObject *uvloop_create_task = LOAD_PTR(self->uvloop_create_task);
            if (uvloop_create_task == NULL && (uvloop_create_task = find_uvloop_create_task(self)) == NULL) {
                return NULL;
            }
            return stripped(self->strip, CALL(uvloop_create_task, args, nargsf, kwnames));
        }
        /* a task factory: the loop must be open, as on asyncio's loop, below */
    }
#endif
    if (check_open(loop, is_asyncio) < 0) {
        Py_XDECREF(factory);
        return NULL;
    }
    if (factory == NULL && (factory = task_factory_of(loop, is_asyncio)) == NULL) {
        return NULL;
    }
    if (factory != Py_None) {
        /* ctxloop's own task_factory is called as the pure function calls it; any other factory is the
           pure function's */
        PyObject *task;
        if (Py_TYPE(factory) == &TaskFactory_Type) {
#if ANY_KEYWORDS
            task = own_factory_task(self, factory, args, nargsf, kwnames, context, NULL);
#else
            task = own_factory_task(self, factory, args, nargsf, kwnames, context, name);
#endif
        }
        else {
            task = create_task_slow(self, args, nargsf, kwnames);
        }
        Py_DECREF(factory);
        return task;
    }
    Py_DECREF(factory);
#if NATIVE_TASK
    /* asyncio's create_task makes asyncio.tasks.Task as it is at the call (a
       program or a test may have replaced it): any other than ctxloop's is the
       pure function's. The object is compared by identity only. */
    if (is_asyncio) {
        PyObject *current;
        if (dict_get_ref(self->tasks_dict, s_Task, &current) < 0) {
            return NULL;
        }
        Py_XDECREF(current);
        if (current != self->task_type) {
            return create_task_slow(self, args, nargsf, kwnames);
        }
    }
#endif

    PyObject *task;
#if BINDS_CONTEXT
    /* _Task(coro if context is None else bind_task(coro, context), loop=loop, name=name) */
    PyObject *bound = NULL;
    if (context != NULL) {
        bound = bind_task_impl(coro, context);
        if (bound == NULL) {
            return NULL;
        }
    }
    PyObject *stack[4] = {NULL, bound != NULL ? bound : coro, loop, name};
    /* name=None is the Task's default: not passed, one keyword less for it to parse */
    task = CALL(self->task_type, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, name == Py_None ? kw_loop : kw_loop_name);
    Py_XDECREF(bound);
#elif !ANY_KEYWORDS
    /* check_task_context(context); _Task(coro, loop=loop, name=name, context=context) */
    if (context != NULL) {
        PyObject *checked = checked_context(context, NULL);
        if (checked == NULL) {
            return NULL;
        }
        Py_DECREF(checked);
    }
    /* name=None and context=None are the Task's defaults: not passed, fewer keywords for it to parse */
    PyObject *stack[5] = {NULL, coro, loop}, *keywords;
    if (name == Py_None) {
        stack[3] = context;
        keywords = context == NULL ? kw_loop : kw_loop_context;
    }
    else {
        stack[3] = name;
        stack[4] = context;
        keywords = context == NULL ? kw_loop_name : kw_loop_name_context;
    }
    task = CALL(self->task_type, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, keywords);
#else
    /* check_task_context(context, bool(eager_start) and loop.is_running()); _Task(coro, loop=loop, **kwargs) */
    if (context != NULL) {
        if (!PyContext_CheckExact(context) || context_entered(context) != 0) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            PyObject *is_eager = Py_False;
            int truth = eager == NULL ? 0 : PyObject_IsTrue(eager);
            if (truth < 0) {
                return NULL;
            }
            PyObject *running = NULL;
            if (truth) {
                running = call_method0(loop, s_is_running);
                if (running == NULL) {
                    return NULL;
                }
                is_eager = running;
            }
            PyObject *checked = checked_context(context, is_eager);
            Py_XDECREF(running);
            if (checked == NULL) {
                return NULL;
            }
            Py_DECREF(checked);
        }
    }
    PyObject *keywords = with_loop(kwnames);
    if (keywords == NULL) {
        return NULL;
    }
    PyObject *stack[3 + MAX_KEYWORDS] = {NULL, coro, loop};
    for (Py_ssize_t i = 0; i < nkw; i++) {
        stack[3 + i] = args[nargs + i];
    }
    task = CALL(self->task_type, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, keywords);
    Py_DECREF(keywords);
#endif
    return stripped(self->strip, task);
}

static PyObject *
create_task_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *pure, *kinds, *k_asyncio, *k_uvloop, *task_type, *strip;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "CreateTask() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!OOOO:CreateTask", &pure, &PyDict_Type, &kinds, &k_asyncio, &k_uvloop, &task_type,
                          &strip)) {
        return NULL;
    }
    CreateTaskObject *self = (CreateTaskObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)create_task_vectorcall;
#if NATIVE_TASK
    PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
    if (tasks == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->tasks_dict = PyModule_GetDict(tasks); /* borrowed from the module, kept alive below */
    Py_INCREF(self->tasks_dict);
    Py_DECREF(tasks);
#endif
    PyObject **fields[] = {&self->pure, &self->kinds, &self->k_asyncio, &self->k_uvloop, &self->task_type, &self->strip};
    PyObject *values[] = {pure, kinds, k_asyncio, k_uvloop, task_type, strip};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        Py_INCREF(values[i]);
        *fields[i] = values[i];
    }
    return (PyObject *)self;
}

static int
create_task_traverse(CreateTaskObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pure);
    Py_VISIT(self->kinds);
    Py_VISIT(self->k_asyncio);
    Py_VISIT(self->k_uvloop);
    Py_VISIT(self->task_type);
    Py_VISIT(self->strip);
    Py_VISIT(self->uvloop_create_task);
    Py_VISIT(self->tasks_dict);
    return 0;
}

static int
create_task_clear(CreateTaskObject *self)
{
    Py_CLEAR(self->pure);
    Py_CLEAR(self->kinds);
    Py_CLEAR(self->k_asyncio);
    Py_CLEAR(self->k_uvloop);
    Py_CLEAR(self->task_type);
    Py_CLEAR(self->strip);
    Py_CLEAR(self->uvloop_create_task);
    Py_CLEAR(self->tasks_dict);
    return 0;
}

static void
create_task_dealloc(CreateTaskObject *self)
{
    PyObject_GC_UnTrack(self);
    create_task_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
create_task_get(PyObject *self, PyObject *obj, PyObject *type)
{
    /* As a Python function: bound to an instance, itself on the class. */
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *
create_task_pure_attribute(CreateTaskObject *self, void *name)
{
    return PyObject_GetAttrString(self->pure, (const char *)name);
}

static PyObject *
create_task_wrapped(CreateTaskObject *self, void *unused)
{
    Py_INCREF(self->pure);
    return self->pure;
}

/* A module-level compiled function pickles as the pure one does: by its qualified name. */
static PyObject *
create_task_reduce(CreateTaskObject *self, PyObject *unused)
{
    return PyObject_GetAttrString(self->pure, "__qualname__");
}

static PyObject *
create_task_repr(CreateTaskObject *self)
{
    return PyUnicode_FromFormat("<compiled create_task_on of ctxloop (pure: %R)>", self->pure);
}

#define PURE(name) {name, (getter)create_task_pure_attribute, NULL, NULL, name}

static PyGetSetDef create_task_getset[] = {
    PURE("__name__"),
    PURE("__qualname__"),
    PURE("__module__"),
    PURE("__doc__"),
    {"__wrapped__", (getter)create_task_wrapped, NULL, "the pure-Python create_task_on", NULL},
    {NULL},
};

static PyTypeObject CreateTask_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctxloop._speedups.CreateTask",
    .tp_basicsize = sizeof(CreateTaskObject),
    .tp_dealloc = (destructor)create_task_dealloc,
    .tp_vectorcall_offset = offsetof(CreateTaskObject, vectorcall),
    .tp_repr = (reprfunc)create_task_repr,
    /* tp_call, tp_getattro: set in PyInit__speedups (addresses of API
       functions are not constant initialisers everywhere, e.g. on Windows). */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | TPFLAGS_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_traverse = (traverseproc)create_task_traverse,
    .tp_clear = (inquiry)create_task_clear,
    .tp_getset = create_task_getset,
    .tp_descr_get = create_task_get,
    .tp_new = create_task_new,
};


/* ------------------------------------------------------------------------ */
/* A compiled twin of a module-level function: RunningCreateTask and
 * TaskFactory. It holds the pure-Python function (its __wrapped__, which
 * every call the compiled one does not take is handed to, for that
 * function's own errors; first field after vectorcall, as in CreateTask) and
 * two objects of its own, given to Type(pure, first, second); it looks like
 * and pickles as the pure function. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *pure;
    PyObject *first;
    PyObject *second;
    PyObject *weakreflist; /* weakly referenceable, as the function it stands for */
} TwinObject;

/* tp_new of a twin type: *format* is "OOO:<its name>", *vectorcall* its call. */
static PyObject *
twin_new(PyTypeObject *type, PyObject *args, PyObject *kwargs, const char *format, vectorcallfunc vectorcall)
{
    PyObject *pure, *first, *second;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", format + 4);
        return NULL;
    }
    if (!PyArg_ParseTuple(args, format, &pure, &first, &second)) {
        return NULL;
    }
    TwinObject *self = (TwinObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = vectorcall;
    Py_INCREF(pure);
    self->pure = pure;
    Py_INCREF(first);
    self->first = first;
    Py_INCREF(second);
    self->second = second;
    return (PyObject *)self;
}

static int
twin_traverse(TwinObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pure);
    Py_VISIT(self->first);
    Py_VISIT(self->second);
    return 0;
}

static int
twin_clear(TwinObject *self)
{
    Py_CLEAR(self->pure);
    Py_CLEAR(self->first);
    Py_CLEAR(self->second);
    return 0;
}

static void
twin_dealloc(TwinObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    twin_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
twin_repr(TwinObject *self)
{
    PyObject *name = PyObject_GetAttrString(self->pure, "__name__");
    if (name == NULL) {
        return NULL;
    }
    PyObject *repr = PyUnicode_FromFormat("<compiled %U of ctxloop (pure: %R)>", name, self->pure);
    Py_DECREF(name);
    return repr;
}

static PyGetSetDef twin_getset[] = {
    PURE("__name__"),
    PURE("__qualname__"),
    PURE("__module__"),
    PURE("__doc__"),
    {"__wrapped__", (getter)create_task_wrapped, NULL, "the pure-Python function", NULL},
    {NULL},
};

static PyMethodDef twin_methods[] = {
    {"__reduce__", (PyCFunction)create_task_reduce, METH_NOARGS, "pickled by name, as the function"},
    {NULL},
};

/* ------------------------------------------------------------------------ */
/* RunningCreateTask: ctxloop.create_task(coro, **kwargs), i.e.
 * create_task_on(asyncio.get_running_loop(), coro, **kwargs), without the
 * Python frame of the pure function. first: the compiled create_task_on;
 * second: asyncio.get_running_loop. */

#define RUNNING_MAX_KEYWORDS 6 /* more: the pure function */

static PyObject *
running_create_task_vectorcall(TwinObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (PyVectorcall_NARGS(nargsf) != 1 || nkw > RUNNING_MAX_KEYWORDS) {
        return CALL(self->pure, args, nargsf, kwnames);
    }
#if !ANY_KEYWORDS
    /* create_task(coro, *, name=None, context=None): any other keyword is the pure function's error */
    for (Py_ssize_t i = 0; i < nkw; i++) {
        enum keyword keyword = keyword_of(PyTuple_GET_ITEM(kwnames, i));
        if (keyword != KW_CONTEXT && keyword != KW_NAME) {
            return CALL(self->pure, args, nargsf, kwnames);
        }
    }
#endif
    PyObject *loop = CALL(self->second, NULL, 0, NULL);
    if (loop == NULL) {
        return NULL;
    }
    /* (loop, coro, *keyword values), with a free slot in front for the callee */
    PyObject *stack[2 + 1 + RUNNING_MAX_KEYWORDS];
    stack[0] = NULL;
    stack[1] = loop;
    for (Py_ssize_t i = 0; i < 1 + nkw; i++) {
        stack[2 + i] = args[i];
    }
    PyObject *task = CALL(self->first, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    Py_DECREF(loop);
    return task;
}

static PyObject *
running_create_task_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return twin_new(type, args, kwargs, "OOO:RunningCreateTask", (vectorcallfunc)running_create_task_vectorcall);
}

static PyTypeObject RunningCreateTask_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctxloop._speedups.RunningCreateTask",
    .tp_basicsize = sizeof(TwinObject),
    .tp_weaklistoffset = offsetof(TwinObject, weakreflist),
    .tp_dealloc = (destructor)twin_dealloc,
    .tp_vectorcall_offset = offsetof(TwinObject, vectorcall),
    .tp_repr = (reprfunc)twin_repr,
    /* tp_call, tp_getattro: set in PyInit__speedups, as for CreateTask. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | TPFLAGS_VECTORCALL,
    .tp_traverse = (traverseproc)twin_traverse,
    .tp_clear = (inquiry)twin_clear,
    .tp_getset = twin_getset,
    .tp_methods = twin_methods,
    .tp_new = running_create_task_new,
};

/* ------------------------------------------------------------------------ */
/* TaskFactory: ctxloop.task_factory, a loop's task factory
 * factory(loop, coro, **kwargs), without the Python frame and the keyword
 * dictionary of the pure function:
 *
 *     check_task_context(context, ...)     # when a context is given
 *     task = Task(coro, loop=loop, **kwargs)    # asyncio's (3.12+), ctxloop's _Task (3.11)
 *     task = _Task(coro or bind_task(coro, context), loop=loop)    # 3.8-3.10: no keyword but context=
 *
 * first: that Task class (asyncio.Task as ctxloop found it at import on
 * 3.12+); second: strip_own_frames. A context passed as None goes on to the
 * Task, which then copies the current context, as it does without one. */

#if BINDS_CONTEXT
static PyObject *
task_factory_vectorcall(TwinObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    /* Only (loop, coro) and (loop, coro, context=...): with name= (or a keyword refused) the pure
       function makes a ctxloop.Task, with its errors. */
    PyObject *context = NULL;
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) != 1 ||
                                                                 keyword_of(PyTuple_GET_ITEM(kwnames, 0)) != KW_CONTEXT))) {
        return CALL(self->pure, args, nargsf, kwnames);
    }
    if (kwnames != NULL && args[2] != Py_None) {
        context = args[2];
        /* anything but a Context entered nowhere and a native coroutine: the pure function's */
        int entered = PyContext_CheckExact(context) ? context_entered(context) : 1;
        if (entered != 0 || !PyCoro_CheckExact(args[1])) {
            return entered < 0 ? NULL : CALL(self->pure, args, nargsf, kwnames);
        }
    }
    PyObject *bound = context == NULL ? (Py_INCREF(args[1]), args[1]) : make_binding(args[1], context);
    if (bound == NULL) {
        return NULL;
    }
    PyObject *stack[3] = {NULL, bound, args[0]};
    PyObject *task = CALL(self->first, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_loop);
    Py_DECREF(bound);
    return stripped(self->second, task);
}
#else
static PyObject *
task_factory_vectorcall(TwinObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs != 2 || nkw > MAX_KEYWORDS) {
        return CALL(self->pure, args, nargsf, kwnames);
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *value = args[nargs + i];
        enum keyword keyword = keyword_of(PyTuple_GET_ITEM(kwnames, i));
        if (keyword == KW_LOOP || keyword == KW_CORO) {
            return CALL(self->pure, args, nargsf, kwnames); /* the signature's own error */
        }
        if (value != Py_None && keyword == KW_CONTEXT) {
            /* A Context entered nowhere passes the check whatever eager_start= says; any
               other (one to refuse, or one entered) is the pure function's, with its errors. */
            int entered = PyContext_CheckExact(value) ? context_entered(value) : 1;
            if (entered != 0) {
                return entered < 0 ? NULL : CALL(self->pure, args, nargsf, kwnames);
            }
        }
    }
    PyObject *keywords = with_loop(kwnames);
    if (keywords == NULL) {
        return NULL;
    }
    PyObject *stack[3 + MAX_KEYWORDS] = {NULL, args[1], args[0]};
    for (Py_ssize_t i = 0; i < nkw; i++) {
        stack[3 + i] = args[nargs + i];
    }
    PyObject *task = CALL(self->first, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, keywords);
    Py_DECREF(keywords);
    return stripped(self->second, task);
}
#endif

static PyObject *
task_factory_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return twin_new(type, args, kwargs, "OOO:TaskFactory", (vectorcallfunc)task_factory_vectorcall);
}

static PyTypeObject TaskFactory_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctxloop._speedups.TaskFactory",
    .tp_basicsize = sizeof(TwinObject),
    .tp_weaklistoffset = offsetof(TwinObject, weakreflist),
    .tp_dealloc = (destructor)twin_dealloc,
    .tp_vectorcall_offset = offsetof(TwinObject, vectorcall),
    .tp_repr = (reprfunc)twin_repr,
    /* tp_call, tp_getattro: set in PyInit__speedups, as for CreateTask. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | TPFLAGS_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_traverse = (traverseproc)twin_traverse,
    .tp_clear = (inquiry)twin_clear,
    .tp_getset = twin_getset,
    .tp_methods = twin_methods,
    .tp_descr_get = create_task_get,
    .tp_new = task_factory_new,
};

/* ------------------------------------------------------------------------ */
/* checked_task_class(base, native, pure_init, name): ctxloop.Task with a
 * compiled __init__, a subclass of *base* (asyncio.Task on 3.12+; before, the
 * pure-Python ctxloop Task, for its get_context() and, before 3.11, its
 * get_coro()). A call with one positional argument and asyncio's keywords,
 * whose context (if any) is a Context entered nowhere, is *native*'s own
 * __init__ (asyncio.Task's, in C): nothing to check; before 3.11, where
 * asyncio's Task takes no context=, a native coroutine is first bound to the
 * context, as the pure __init__ binds it. Any other call is the pure-Python
 * __init__'s (pure_init(self, *args, **kwargs)), for its checks and its
 * errors. Made once, when ctxloop._task is imported. */

static PyObject *checked_task_pure_init; /* set once, before the class exists */
static initproc checked_task_native_init;

static int
checked_task_pure(PyObject *self, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *full = PyTuple_New(n + 1);
    if (full == NULL) {
        return -1;
    }
    Py_INCREF(self);
    PyTuple_SET_ITEM(full, 0, self);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(full, i + 1, item);
    }
    PyObject *result = PyObject_Call(checked_task_pure_init, full, kwds);
    Py_DECREF(full);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

#if BINDS_CONTEXT
/* asyncio.Task.__init__(self, coro or bind_task(coro, context), loop=loop, name=name), the keywords
   that were given (context= is not asyncio's here). */
static int
checked_task_bound_init(PyObject *self, PyObject *coro, PyObject *context, PyObject *loop, PyObject *name)
{
    /* context: None, or a Context entered nowhere with a native coroutine (checked by the caller) */
    PyObject *bound = context == Py_None ? (Py_INCREF(coro), coro) : make_binding(coro, context);
    if (bound == NULL) {
        return -1;
    }
    PyObject *args = PyTuple_Pack(1, bound);
    Py_DECREF(bound);
    if (args == NULL) {
        return -1;
    }
    PyObject *kwds = NULL;
    if (loop != NULL || name != NULL) {
        kwds = PyDict_New();
        if (kwds == NULL || (loop != NULL && PyDict_SetItem(kwds, s_loop, loop) < 0) ||
            (name != NULL && PyDict_SetItem(kwds, s_name, name) < 0)) {
            Py_DECREF(args);
            Py_XDECREF(kwds);
            return -1;
        }
    }
    int result = checked_task_native_init(self, args, kwds);
    Py_DECREF(args);
    Py_XDECREF(kwds);
    return result;
}
#endif

static int
checked_task_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    int plain = PyTuple_GET_SIZE(args) == 1;
    PyObject *context = NULL; /* context=, if given */
#if BINDS_CONTEXT
    PyObject *loop = NULL, *name = NULL;
#endif
    if (plain && kwds != NULL) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        /* Read only: a caller in C may pass a dictionary of its own. */
        while (plain && PyDict_Next(kwds, &pos, &key, &value)) {
            switch (keyword_of(key)) {
            case KW_CONTEXT:
                context = value;
                break;
#if BINDS_CONTEXT
            case KW_LOOP:
                loop = value;
                break;
            case KW_NAME:
                name = value;
                break;
#else
            case KW_LOOP:
            case KW_NAME:
                break;
#endif
#if NATIVE_TASK
            case KW_EAGER_START:
                break;
#endif
            default:
                plain = 0; /* a keyword asyncio's Task does not take here: the pure __init__'s error */
            }
        }
    }
    if (plain && context != NULL && context != Py_None) {
        int entered = PyContext_CheckExact(context) ? context_entered(context) : 1;
        if (entered < 0) {
            return -1;
        }
        plain = entered == 0;
#if BINDS_CONTEXT
        /* anything but a native coroutine: the pure __init__ says what is wrong with it */
        plain = plain && PyCoro_CheckExact(PyTuple_GET_ITEM(args, 0));
#endif
    }
    if (!plain) {
        return checked_task_pure(self, args, kwds);
    }
#if BINDS_CONTEXT
    if (context != NULL) {
        return checked_task_bound_init(self, PyTuple_GET_ITEM(args, 0), context, loop, name);
    }
#endif
    return checked_task_native_init(self, args, kwds);
}

static PyObject *
checked_task_class(PyObject *module, PyObject *args)
{
    PyObject *base, *native, *pure_init;
    const char *name;
    if (!PyArg_ParseTuple(args, "O!O!Os:checked_task_class", &PyType_Type, &base, &PyType_Type, &native, &pure_init,
                          &name)) {
        return NULL;
    }
    if (checked_task_pure_init != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "checked_task_class() is called once, by ctxloop._task");
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)base, (PyTypeObject *)native)) {
        PyErr_Format(PyExc_TypeError, "checked_task_class(): %R is not a subclass of %R", base, native);
        return NULL;
    }
    /* Before 3.12 the type keeps the spec's name pointer as its tp_name (C reprs print it): a copy
       that lives as long as the class, which is never freed. */
    char *kept = PyMem_Malloc(strlen(name) + 1);
    if (kept == NULL) {
        return PyErr_NoMemory();
    }
    strcpy(kept, name);
    PyType_Slot slots[] = {{Py_tp_init, (void *)checked_task_init}, {0, NULL}};
    PyType_Spec spec = {
        .name = kept,
        .basicsize = 0,
        .itemsize = 0,
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, base);
    if (bases == NULL) {
        PyMem_Free(kept);
        return NULL;
    }
    PyObject *cls = PyType_FromSpecWithBases(&spec, bases);
    Py_DECREF(bases);
    if (cls == NULL) {
        PyMem_Free(kept);
        return NULL;
    }
    checked_task_native_init = ((PyTypeObject *)native)->tp_init;
    Py_INCREF(pure_init);
    checked_task_pure_init = pure_init;
    return cls;
}

/* ------------------------------------------------------------------------ */
/* InContext: a protocol callback bound to its connection's context (ctxloop/_connections.py) */

enum { AFTER_NOTHING = 0, AFTER_CALL = 1, AFTER_SWITCH = 2, AFTER_MADE = 3 };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *context;    /* the connection's context */
    PyObject *method;     /* the protocol's own bound method */
    PyObject *connection; /* what the connection's callbacks share (its .transport, .protocol) */
    PyObject *after;      /* None, or what runs after the call (see mode) */
    int mode;             /* AFTER_NOTHING; AFTER_CALL: after(*args); AFTER_SWITCH: after() if the protocol
                             changed; AFTER_MADE: connection.transport = args[0] */
    int copies;           /* each call in a new copy of the context */
} InContextObject;

static PyObject *s_transport, *s_get_protocol;

static PyObject *
in_context_run(InContextObject *self, PyObject *const *args, size_t nargsf)
{
    PyObject *context = self->context, *copy = NULL;
    if (self->copies) {
        context = copy = PyContext_Copy(context);
        if (copy == NULL) {
            return NULL;
        }
    }
    else {
        int entered = context_entered(context);
        if (entered != 0) {
            /* Entered: called from another callback of the connection, already in it. */
            return entered < 0 ? NULL : CALL(self->method, args, nargsf, NULL);
        }
    }
    if (PyContext_Enter(context) < 0) {
        Py_XDECREF(copy);
        return NULL;
    }
    PyObject *result = CALL(self->method, args, nargsf, NULL);
    if (PyContext_Exit(context) < 0) {
        Py_CLEAR(result);
    }
    Py_XDECREF(copy);
    return result;
}

/* AFTER_SWITCH: 1 when the connection's transport now has another protocol, 0 if not, -1 on error. */
static int
protocol_switched(InContextObject *self)
{
    PyObject *transport = PyObject_GetAttr(self->connection, s_transport);
    if (transport == NULL) {
        return -1;
    }
    if (transport == Py_None) {
        Py_DECREF(transport);
        return 0;
    }
    PyObject *current = call_method0(transport, s_get_protocol);
    Py_DECREF(transport);
    if (current == NULL) {
        return -1;
    }
    Py_DECREF(current); /* compared by identity only */
    /* The protocol is the bound method's own object (in_context() checked it is a method). */
    return current != PyMethod_GET_SELF(self->method);
}

static PyObject *
in_context_vectorcall(InContextObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "a protocol callback takes no keyword arguments");
        return NULL;
    }
    PyObject *result = in_context_run(self, args, nargsf);
    if (result == NULL || self->mode == AFTER_NOTHING) {
        return result;
    }
    PyObject *done;
    if (self->mode == AFTER_MADE) {
        if (PyVectorcall_NARGS(nargsf) < 1 || PyObject_SetAttr(self->connection, s_transport, args[0]) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "connection_made() takes the transport");
            }
            Py_DECREF(result);
            return NULL;
        }
        return result;
    }
    if (self->mode == AFTER_CALL) {
        done = CALL(self->after, args, nargsf, NULL);
    }
    else {
        int switched = protocol_switched(self);
        done = switched < 0 ? NULL : switched ? CALL(self->after, NULL, 0, NULL) : (Py_INCREF(Py_None), Py_None);
    }
    if (done == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    Py_DECREF(done);
    return result;
}

static PyObject *
in_context_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    /* Positional, as ctxloop/_connections.py calls it (once per callback of each connection). */
    PyObject *context, *method, *connection, *after;
    int mode, copies;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "in_context() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OOOip:in_context", &PyContext_Type, &context, &method, &connection, &after, &mode,
                          &copies)) {
        return NULL;
    }
    if (mode < AFTER_NOTHING || mode > AFTER_MADE) {
        PyErr_Format(PyExc_ValueError, "in_context: mode must be 0, 1, 2 or 3, not %d", mode);
        return NULL;
    }
    if (mode == AFTER_SWITCH && !PyMethod_Check(method)) {
        PyErr_Format(PyExc_TypeError, "in_context: a bound method was expected, got %R", method);
        return NULL;
    }
    InContextObject *self = (InContextObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)in_context_vectorcall;
    Py_INCREF(context);
    self->context = context;
    Py_INCREF(method);
    self->method = method;
    Py_INCREF(connection);
    self->connection = connection;
    Py_INCREF(after);
    self->after = after;
    self->mode = mode;
    self->copies = copies;
    return (PyObject *)self;
}

static int
in_context_traverse(InContextObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->context);
    Py_VISIT(self->method);
    Py_VISIT(self->connection);
    Py_VISIT(self->after);
    return 0;
}

static int
in_context_clear(InContextObject *self)
{
    Py_CLEAR(self->context);
    Py_CLEAR(self->method);
    Py_CLEAR(self->connection);
    Py_CLEAR(self->after);
    return 0;
}

static void
in_context_dealloc(InContextObject *self)
{
    PyObject_GC_UnTrack(self);
    in_context_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
in_context_repr(InContextObject *self)
{
    return PyUnicode_FromFormat("<%R in %R>", self->method, self->context);
}

static PyMemberDef in_context_members[] = {
    {"__wrapped__", T_OBJECT_EX, offsetof(InContextObject, method), READONLY, "the protocol's own method"},
    {NULL},
};

static PyTypeObject InContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctxloop._speedups.InContext",
    .tp_basicsize = sizeof(InContextObject),
    .tp_dealloc = (destructor)in_context_dealloc,
    .tp_vectorcall_offset = offsetof(InContextObject, vectorcall),
    .tp_repr = (reprfunc)in_context_repr,
    /* tp_call, tp_getattro: set in PyInit__speedups, as for CreateTask. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | TPFLAGS_VECTORCALL,
    .tp_doc = "A protocol callback that runs in its connection's context (ctxloop._connections.in_context).",
    .tp_traverse = (traverseproc)in_context_traverse,
    .tp_clear = (inquiry)in_context_clear,
    .tp_members = in_context_members,
    .tp_new = in_context_new,
};

/* ------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"check_task_context", (PyCFunction)(void (*)(void))check_task_context, METH_FASTCALL | METH_KEYWORDS,
     "check_task_context(context, eager=False): S6/S7, the pure-Python check for anything but an unentered Context."},
#if BINDS_CONTEXT
    {"bind_task", (PyCFunction)(void (*)(void))bind_task, METH_FASTCALL,
     "bind_task(coro, context): the checks of S6/S7, then a TaskCoroutine."},
#endif
    {"checked_task_class", (PyCFunction)checked_task_class, METH_VARARGS,
     "checked_task_class(base, native, pure_init, name): ctxloop's Task class with a compiled __init__."},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_VARARGS | METH_KEYWORDS,
     "setup(*, check_task_context): the pure-Python check the fast paths fall back to."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ctxloop._speedups",
    .m_doc = "ctxloop's optional compiled accelerator (see ctxloop/_accel.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&s_loop, "loop") < 0 || intern(&s_name, "name") < 0 || intern(&s_context, "context") < 0 ||
        intern(&s_eager_start, "eager_start") < 0 || intern(&s__closed, "_closed") < 0 ||
        intern(&s__task_factory, "_task_factory") < 0 || intern(&s_is_closed, "is_closed") < 0 ||
        intern(&s_get_task_factory, "get_task_factory") < 0 ||
        intern(&s__source_traceback, "_source_traceback") < 0 || intern(&s_send, "send") < 0 ||
        intern(&s_throw, "throw") < 0 || intern(&s_close, "close") < 0 || intern(&s_is_running, "is_running") < 0 ||
        intern(&s_create_task, "create_task") < 0 || intern(&s_Task, "Task") < 0 || intern(&s_transport, "transport") < 0 ||
        intern(&s_get_protocol, "get_protocol") < 0 || intern(&s_coro, "coro") < 0 ||
        intern(&s_set_name, "set_name") < 0) {
        return NULL;
    }
    kw_loop = PyTuple_Pack(1, s_loop);
    kw_loop_name = PyTuple_Pack(2, s_loop, s_name);
    kw_loop_name_context = PyTuple_Pack(3, s_loop, s_name, s_context);
    kw_name_context = PyTuple_Pack(2, s_name, s_context);
    kw_context = PyTuple_Pack(1, s_context);
    kw_loop_context = PyTuple_Pack(2, s_loop, s_context);
    if (kw_loop == NULL || kw_loop_name == NULL || kw_loop_name_context == NULL || kw_name_context == NULL ||
        kw_context == NULL || kw_loop_context == NULL) {
        return NULL;
    }
    CreateTask_Type.tp_call = PyVectorcall_Call;
    CreateTask_Type.tp_getattro = PyObject_GenericGetAttr;
    if (PyType_Ready(&CreateTask_Type) < 0) {
        return NULL;
    }
    int readable = entered_flag_self_test();
    if (readable < 0) {
        return NULL;
    }
    entered_flag_readable = readable;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    if (PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    if (PyModule_AddIntConstant(module, "entered_flag_readable", readable) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#if BINDS_CONTEXT
    Binding_Type.tp_getattro = PyObject_GenericGetAttr; /* the interpreter's fast method lookup needs exactly this */
    if (PyType_Ready(&Binding_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&Binding_Type);
    if (PyModule_AddObject(module, "TaskCoroutine", (PyObject *)&Binding_Type) < 0) {
        Py_DECREF(&Binding_Type);
        Py_DECREF(module);
        return NULL;
    }
#endif
    Py_INCREF(&CreateTask_Type);
    if (PyModule_AddObject(module, "CreateTask", (PyObject *)&CreateTask_Type) < 0) {
        Py_DECREF(&CreateTask_Type);
        Py_DECREF(module);
        return NULL;
    }
    RunningCreateTask_Type.tp_call = PyVectorcall_Call;
    RunningCreateTask_Type.tp_getattro = PyObject_GenericGetAttr;
    if (PyType_Ready(&RunningCreateTask_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&RunningCreateTask_Type);
    if (PyModule_AddObject(module, "RunningCreateTask", (PyObject *)&RunningCreateTask_Type) < 0) {
        Py_DECREF(&RunningCreateTask_Type);
        Py_DECREF(module);
        return NULL;
    }
    TaskFactory_Type.tp_call = PyVectorcall_Call;
    TaskFactory_Type.tp_getattro = PyObject_GenericGetAttr;
    if (PyType_Ready(&TaskFactory_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&TaskFactory_Type);
    if (PyModule_AddObject(module, "TaskFactory", (PyObject *)&TaskFactory_Type) < 0) {
        Py_DECREF(&TaskFactory_Type);
        Py_DECREF(module);
        return NULL;
    }
    InContext_Type.tp_call = PyVectorcall_Call;
    InContext_Type.tp_getattro = PyObject_GenericGetAttr;
    if (PyType_Ready(&InContext_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&InContext_Type);
    if (PyModule_AddObject(module, "InContext", (PyObject *)&InContext_Type) < 0) {
        Py_DECREF(&InContext_Type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
