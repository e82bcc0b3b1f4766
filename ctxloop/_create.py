"""``create_task`` with the semantics of CPython 3.12, on any loop: the version decision for task creation.

``create_task_on(loop, coro, ...)`` is what a ctxloop loop's ``create_task``
is, and what ``ctxloop.create_task`` calls on the running loop, whatever loop it
is. It does what the loop's own ``create_task`` would do on CPython 3.12 (check
that the loop is open, call the task factory the loop has, the 3.12 way, or
make an ``asyncio.Task``; name the task), plus the checks of S6/S7, and:

* 3.8-3.10: ``context=`` is honoured. Without a task factory the task steps a
  binding of the coroutine to the context (see ``_binding.py``). A factory
  is called as 3.12 calls it, ``factory(loop, coro, context=ctx)``, unless it
  takes ``**kwargs`` without declaring ``context``: such a factory passes its
  keywords on, maybe to an ``asyncio.Task`` that takes no ``context=`` there,
  so it is called without it, and the task it returns is then made to step
  its coroutine (a wrapper the factory built, say) inside the context (see
  ``_retarget.py``).
* 3.11: tasks also get 3.12's ``get_context()``.
* 3.11-3.13: a factory is called ``factory(loop, coro)``, or
  ``factory(loop, coro, context=ctx)`` with a context, then the task is named:
  3.12's contract, also on uvloop (which passes ``context=None`` and
  ``eager_start=None`` itself) and on 3.13.0-3.13.2 (which renamed every
  unnamed task of a factory "None").
* 3.14+: every keyword is passed on as given, as asyncio's loop does.

A loop class with a ``create_task`` of its own (instrumentation, say) keeps
it: ctxloop calls it, after its checks, with the coroutine bound to the
context on 3.8-3.10. Only asyncio's and uvloop's ``create_task`` are done here
instead, which saves a Python frame per task, and before 3.11 rloop's, which
is asyncio's written again (see ``_RLOOP_IS_ASYNCIO``).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import weakref
from typing import Any, Callable, Coroutine, Dict, Optional, TypeVar

from ._binding import bind_task, report_binding
from ._checks import check_task_context, context_slot
from ._task import _Task, strip_own_frames

# From 3.12 ctxloop's Task is asyncio's own: asyncio's create_task makes
# asyncio.tasks.Task as it is at the call (a program or a test may replace
# it), uvloop's the one it found at import (_Task).
_tasks = asyncio.tasks
_NATIVE_TASK = sys.version_info >= (3, 12)

__all__ = ["create_task", "create_task_on", "forwards_keywords", "introspectable", "is_eager_factory"]

_T = TypeVar("_T")
_get_running_loop = asyncio.get_running_loop

_ASYNCIO = "asyncio"
_UVLOOP = "uvloop"
# rloop's create_task (3.10, where rloop starts) is asyncio's, line for line: it
# checks self._closed, calls self._task_factory or makes asyncio.Task(coro,
# loop=self, name=name), and only departs in naming a factory's unnamed task
# "None", where 3.12 leaves asyncio's name. Before 3.11 ctxloop makes that task
# itself, as on asyncio's loop: its own Task reports the coroutine and the
# Context, where an asyncio.Task made by rloop would need both attached to it.
# From 3.11 on rloop's own create_task is called (it takes context= there).
_RLOOP_IS_ASYNCIO = sys.version_info < (3, 11)
# Loop class -> _ASYNCIO, _UVLOOP, or the class's own create_task function.
# Two threads may both compute a class's kind (free-threaded CPython): they
# find the same value, and a dict's own operations are atomic.
_kinds: Dict[type, Any] = {}


def _kind(cls: type) -> Any:
    kind = _kinds.get(cls)
    if kind is None:
        kind = _kinds[cls] = _find_kind(cls)
    return kind


def _find_kind(cls: type) -> Any:
    uvloop = sys.modules.get("uvloop.loop")  # never imported here
    uvloop_create_task = None if uvloop is None else uvloop.Loop.__dict__.get("create_task")
    rloop = sys.modules.get("rloop.loop") if _RLOOP_IS_ASYNCIO else None
    rloop_create_task = None if rloop is None else rloop.RLoop.__dict__.get("create_task")
    for klass in cls.__mro__:
        method = klass.__dict__.get("create_task")
        if method is None or klass.__dict__.get("_ctxloop_class"):
            continue
        if method is asyncio.BaseEventLoop.__dict__["create_task"] or method is rloop_create_task:
            return _ASYNCIO
        if method is uvloop_create_task:
            return _UVLOOP
        return method
    raise TypeError(f"{cls.__name__} has no create_task method")  # pragma: no cover - not a loop


_forwards_cache: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()
_forwards_lock = threading.Lock()  # a WeakKeyDictionary is not safe to share between threads without the GIL


def forwards_keywords(factory: Callable[..., Any]) -> bool:
    """Whether *factory* takes ``**kwargs`` but declares no ``context`` parameter.

    Such a factory (sentry-sdk's, say) passes its keywords on, to asyncio's
    ``Task`` or to another factory: before 3.11 a ``context=`` would reach a
    Task that does not take it. ctxloop's own factories declare ``context``.
    """
    try:
        with _forwards_lock:
            return _forwards_cache[factory]
    except KeyError:
        pass
    except TypeError:  # not weakly referenceable: not cached
        return _forwards_keywords(factory)
    result = _forwards_keywords(factory)
    with _forwards_lock:
        _forwards_cache[factory] = result
    return result


def _forwards_keywords(factory: Callable[..., Any]) -> bool:
    import inspect

    if getattr(factory, "__ctxloop_chained__", False):
        return False
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False  # a builtin we cannot see into: called as 3.12 would
    context = parameters.get("context")
    if context is not None and context.kind is not inspect.Parameter.VAR_KEYWORD:
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


if sys.version_info >= (3, 12):
    # Every factory asyncio.create_eager_task_factory() makes shares this code
    # (asyncio.eager_task_factory is one of them).
    _EAGER_FACTORY_CODE = asyncio.eager_task_factory.__code__

    def is_eager_factory(factory: Any) -> bool:
        """Whether *factory* is asyncio's eager task factory (or made by create_eager_task_factory)."""
        return getattr(factory, "__code__", None) is _EAGER_FACTORY_CODE

else:

    def is_eager_factory(factory: Any) -> bool:
        """No eager tasks before 3.12."""
        return False


def introspectable(task: Any, coro: Any, context: Optional[contextvars.Context]) -> Any:
    """Make a task that ctxloop did not build report its coroutine and Context (S4, S5).

    For a task made by a loop class's own ``create_task`` or by a factory of
    the user's, before 3.12 (asyncio's Task has no ``get_context()`` there).
    Instance attributes, holding the coroutine, the context or a weak
    reference to the task, never the task itself (no cycle). Returns *task*.
    """
    if context is not None:
        report_binding(task, coro, context)  # 3.8-3.10: the task steps a binding
    if not hasattr(task, "get_context"):
        if context is None:
            task_ref = weakref.ref(task)

            def get_context() -> contextvars.Context:
                return context_slot(task_ref())

        else:

            def get_context() -> contextvars.Context:
                return context

        try:
            task.get_context = get_context
        except AttributeError:
            pass  # a future type without a __dict__: it keeps what it reports
    return task


if sys.version_info >= (3, 14):

    def create_task_on(loop: Any, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> "asyncio.Task[Any]":
        """*loop*'s ``create_task(coro, **kwargs)`` with 3.12's semantics and the checks of S6/S7."""
        kind = _kinds.get(type(loop)) or _kind(type(loop))  # no Python frame once cached
        context = kwargs.get("context")
        if kind is _ASYNCIO or kind is _UVLOOP:
            if loop._closed if kind is _ASYNCIO else loop.is_closed():
                raise RuntimeError("Event loop is closed")
            factory = loop._task_factory if kind is _ASYNCIO else loop.get_task_factory()
        else:
            factory = None
        if context is not None:
            if kind is not _ASYNCIO and kind is not _UVLOOP:
                factory = loop.get_task_factory()  # only to know whether the task starts eagerly
            eager = kwargs.get("eager_start", True) if is_eager_factory(factory) else kwargs.get("eager_start")
            check_task_context(context, bool(eager) and loop.is_running())
        if kind is not _ASYNCIO and kind is not _UVLOOP:
            return kind(loop, coro, **kwargs)  # type: ignore[no-any-return]
        if factory is not None:
            return factory(loop, coro, **kwargs)  # type: ignore[no-any-return]
        task = (_tasks.Task if kind is _ASYNCIO else _Task)(coro, loop=loop, **kwargs)
        if task._source_traceback:  # type: ignore[attr-defined]
            strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
        return task

    def create_task(coro: Coroutine[Any, Any, _T], **kwargs: Any) -> "asyncio.Task[_T]":
        """Schedule *coro* on the running loop; with ``context=``, run it in that Context.

        ``asyncio.create_task`` on every Python: without *context* the task runs
        in a copy of the current context taken now; with it, every step runs
        inside *context* itself. A non-Context raises ``TypeError``, and a
        Context that would still be entered when the task first runs raises
        ``RuntimeError``, here, at creation. Other keywords (``name=``,
        ``eager_start=``) are asyncio's.
        """
        return create_task_on(_get_running_loop(), coro, **kwargs)

elif sys.version_info >= (3, 11):
    _ADDS_GET_CONTEXT = sys.version_info < (3, 12)

    def create_task_on(  # type: ignore[misc]
        loop: Any,
        coro: Coroutine[Any, Any, Any],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> "asyncio.Task[Any]":
        """*loop*'s ``create_task(coro, name=, context=)`` with 3.12's semantics and the checks of S6/S7."""
        kind = _kinds.get(type(loop)) or _kind(type(loop))  # no Python frame once cached
        if kind is not _ASYNCIO and kind is not _UVLOOP:
            if context is not None:
                # the loop's own create_task runs its task factory, perhaps an eager one
                check_task_context(context, is_eager_factory(loop.get_task_factory()) and loop.is_running())
            task = kind(loop, coro, name=name, context=context)
            return introspectable(task, coro, None) if _ADDS_GET_CONTEXT else task  # type: ignore[no-any-return]
        if loop._closed if kind is _ASYNCIO else loop.is_closed():
            raise RuntimeError("Event loop is closed")
        factory = loop._task_factory if kind is _ASYNCIO else loop.get_task_factory()
        if factory is None:
            if context is not None:
                check_task_context(context)
            task = (_tasks.Task if _NATIVE_TASK and kind is _ASYNCIO else _Task)(
                coro, loop=loop, name=name, context=context
            )
            if task._source_traceback:  # type: ignore[attr-defined]
                strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
            return task
        if context is None:
            task = factory(loop, coro)
        else:
            check_task_context(context, is_eager_factory(factory) and loop.is_running())
            task = factory(loop, coro, context=context)
        if name is not None:
            task.set_name(name)
        return introspectable(task, coro, None) if _ADDS_GET_CONTEXT else task  # type: ignore[no-any-return]

    def create_task(  # type: ignore[misc]
        coro: Coroutine[Any, Any, _T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> "asyncio.Task[_T]":
        """Schedule *coro* on the running loop; with *context*, run it in that Context.

        ``asyncio.create_task`` on every Python: without *context* the task runs
        in a copy of the current context taken now; with it, every step runs
        inside *context* itself. A non-Context raises ``TypeError``, and a
        Context that would still be entered when the task first runs raises
        ``RuntimeError``, here, at creation.
        """
        return create_task_on(_get_running_loop(), coro, name=name, context=context)

else:
    from ._retarget import step_in_context

    def create_task_on(  # type: ignore[misc]
        loop: Any,
        coro: Coroutine[Any, Any, Any],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> "asyncio.Task[Any]":
        """*loop*'s ``create_task(coro, name=, context=)`` with 3.12's semantics and the checks of S6/S7."""
        kind = _kinds.get(type(loop)) or _kind(type(loop))  # no Python frame once cached
        # The class's own create_task takes no context= here: it gets the coroutine
        # bound to the context, which any Task can step; but a task factory gets
        # context= as 3.12 gives it, below, as on asyncio's loop.
        if kind is not _ASYNCIO and kind is not _UVLOOP and (context is None or loop.get_task_factory() is None):
            bound = coro if context is None else bind_task(coro, context)
            return introspectable(kind(loop, bound, name=name), coro, context)  # type: ignore[no-any-return]
        if loop.is_closed() if kind is not _ASYNCIO else loop._closed:
            raise RuntimeError("Event loop is closed")
        factory = loop._task_factory if kind is _ASYNCIO else loop.get_task_factory()
        if factory is None:
            task: Any = _Task(coro if context is None else bind_task(coro, context), loop=loop, name=name)
            if task._source_traceback:  # type: ignore[attr-defined]
                strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
            return task  # type: ignore[no-any-return]
        if context is None:
            task = factory(loop, coro)
        elif forwards_keywords(factory):
            check_task_context(context)
            task = step_in_context(factory(loop, coro), context)
        else:  # as 3.12 calls it (a factory without context= fails there too)
            task = factory(loop, coro, context=context)
        if name is not None:
            task.set_name(name)
        return introspectable(task, coro, None)  # type: ignore[no-any-return]

    def create_task(  # type: ignore[misc]
        coro: Coroutine[Any, Any, _T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> "asyncio.Task[_T]":
        """Schedule *coro* on the running loop; with *context*, run it in that Context.

        ``asyncio.create_task`` on every Python, with 3.11's ``context=``:
        without *context* the task runs in a copy of the current context taken
        now; with it, every step runs inside *context* itself. A non-Context
        raises ``TypeError``, and a Context that would still be entered when
        the task first runs raises ``RuntimeError``, here, at creation.
        """
        return create_task_on(_get_running_loop(), coro, name=name, context=context)


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# create_task_on becomes a compiled callable that binds as a method (a ctxloop
# loop's create_task): for a loop whose create_task is asyncio's or uvloop's,
# with no task factory and the keywords above, it does in C what the function
# above does; every other call is handed to that function, unchanged.
# create_task becomes a compiled call of it on the running loop (no Python
# frame); a call with other arguments is the pure function's.
from ._accel import speedups as _speedups  # noqa: E402 - after what it wraps

if _speedups is not None:
    create_task_on = _speedups.CreateTask(create_task_on, _kinds, _ASYNCIO, _UVLOOP, _Task, strip_own_frames)
    create_task = _speedups.RunningCreateTask(create_task, create_task_on, _get_running_loop)
