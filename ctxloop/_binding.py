"""Binding a coroutine to a Context: every step of it runs inside that Context.

This is the one mechanism ctxloop adds to asyncio. A ``ContextBound`` object
looks like a coroutine to asyncio (``asyncio.iscoroutine`` accepts it), and its
``send`` is ``context.run`` bound to ``coro.send`` (``send(v)`` is
``context.run(coro.send, v)``): a chain of C calls, so a Task stepping it pays
no Python frame per step. It serves two callers:

* the Task of ``_task.py`` on Python 3.8-3.10, where the C ``Task`` cannot be
  told which Context to run in;
* ``run_in_context()`` / ``isolated()``, which ``await`` a coroutine inline,
  in the current task, with its steps inside another Context (every Python).
"""

from __future__ import annotations

import collections.abc
import contextvars
import functools
import operator
import types
from asyncio import iscoroutine as _iscoroutine
from typing import Any, Awaitable, Callable, Coroutine, Generator, TypeVar

from ._checks import check_context, check_task_context
from ._entered import is_entered

__all__ = [
    "AwaitableBound",
    "ContextBound",
    "TaskCoroutine",
    "bind",
    "bind_task",
    "isolated",
    "report_binding",
    "run_in_context",
]

_T = TypeVar("_T")
_Context = contextvars.Context
_partial = functools.partial
_bind_method = types.MethodType
_new = object.__new__
_CoroutineType = types.CoroutineType


class ContextBound:
    """A coroutine whose every step (send, throw, close) runs inside a Context.

    Awaiting it drives the wrapped coroutine inline, with no new task and no
    extra loop iteration. Introspection (``cr_frame``, ``cr_code``,
    ``__qualname__``, ...) is forwarded to the wrapped coroutine, so a task's
    ``repr()`` and ``get_stack()`` show the caller's coroutine.

    It is deliberately not an iterator itself: the C Task of 3.10+ and the
    interpreter step an iterator with ``__next__`` (a Python frame per step
    for a class defined in Python) and anything else with ``send``, which here
    is C all the way down. ``__await__`` returns an ``AwaitableBound``, whose
    ``__next__`` is C too.
    """

    __slots__ = ("_context", "_coro", "send")
    _context: contextvars.Context
    _coro: Coroutine[Any, Any, Any]
    send: Callable[[Any], Any]

    def throw(self, *args: Any) -> Any:
        # Forward the arguments as given: the one-argument form is what asyncio
        # uses, the deprecated three-argument form warns exactly as natively.
        return self._context.run(self._coro.throw, *args)

    def close(self) -> None:
        context = self._context
        if is_entered(context):
            # Entered elsewhere: close where we are, as a native coroutine's
            # finaliser would, rather than not at all.
            self._coro.close()
            return
        context.run(self._coro.close)

    def __await__(self) -> Generator[Any, None, Any]:
        return _awaitable(self._coro, self._context).__await__()

    __iter__ = __await__

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: cr_frame, cr_code, __name__,
        # __qualname__, cr_running, cr_await, ... of the wrapped coroutine.
        return getattr(object.__getattribute__(self, "_coro"), name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._coro!r} in {self._context!r}>"


class AwaitableBound(ContextBound):
    """What ``run_in_context()`` / ``isolated()`` return: a ContextBound that is its own iterator.

    The interpreter steps an awaited iterator with ``__next__`` when it sends
    None (every asyncio step). ``__next__`` is a property whose getter (C)
    returns ``partial(context.run, coro.send, None)``, which the interpreter
    then calls (C): no Python frame per step.
    """

    __slots__ = ("_next",)
    _next: Callable[[], Any]

    __next__ = property(operator.attrgetter("_next"))

    def __await__(self) -> Generator[Any, None, Any]:
        return self  # type: ignore[return-value]

    __iter__ = __await__


class TaskCoroutine(ContextBound):
    """The binding a ctxloop Task steps: the Task unwraps it in ``get_coro()``."""

    __slots__ = ()


_compiled_binding: Any = None  # the compiled TaskCoroutine, when in use (see the end of this module)


def bind(cls: Any, coro: Any, context: contextvars.Context) -> Any:
    """A binding of class *cls* stepping *coro* inside *context* (no checks)."""
    if cls is _compiled_binding:
        return cls(coro, context)
    bound = _new(cls)
    bound._coro = coro
    bound._context = context
    bound.send = _bind_method(context.run, coro.send)
    return bound


def bind_task(coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> TaskCoroutine:
    """A binding for a Task to step, after the checks of S6/S7.

    A task made with ``context=`` on 3.8-3.10 comes through here: the common
    path pays one type comparison and one context probe.
    """
    if type(context) is not _Context:
        check_task_context(context)  # raises TypeError
    if is_entered(context):
        check_task_context(context)  # raises, unless the context is exited before the first step
    if type(coro) is not _CoroutineType and not _iscoroutine(coro):
        raise TypeError(f"a coroutine was expected, got {coro!r}")
    return bind(TaskCoroutine, coro, context)  # type: ignore[no-any-return]


def report_binding(task: Any, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
    """Make a task built by a foreign factory report *coro* and *context* (S4, S5).

    ctxloop's own Task unwraps its binding itself; any other task steps the
    binding and would report it from ``get_coro()``, and its own copy from
    ``get_context()``. Instance attributes fix both for that one task; the
    closures hold the coroutine and context, never the task (no cycle).
    """
    get_coro = getattr(task, "get_coro", None)
    if get_coro is None or get_coro() is coro:
        return
    try:
        task.get_coro = lambda: coro
        task.get_context = lambda: context
    except AttributeError:
        pass  # a future type without a __dict__: it keeps what it reports


def _awaitable(coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> AwaitableBound:
    check_context(context)
    if type(coro) is not _CoroutineType and not _iscoroutine(coro):
        raise TypeError(f"a coroutine was expected, got {coro!r}")
    bound: AwaitableBound = bind(AwaitableBound, coro, context)
    bound._next = _partial(context.run, coro.send, None)
    return bound


collections.abc.Coroutine.register(ContextBound)


def run_in_context(context: contextvars.Context, coro: Coroutine[Any, Any, _T]) -> Awaitable[_T]:
    """Return an awaitable that runs *coro* inline with every step inside *context*.

    ``await run_in_context(ctx, coro)`` is ``await coro`` (same task, no extra
    loop iteration; results, exceptions and cancellation pass through), except
    that what *coro* reads and sets is ``ctx``'s: changes stay in ``ctx`` and
    are visible there afterwards. *context* must be a ``contextvars.Context``
    (else ``TypeError``) that is not entered (else ``RuntimeError``).
    """
    return _awaitable(coro, context)


def isolated(coro: Coroutine[Any, Any, _T]) -> Awaitable[_T]:
    """Await *coro* inline in a fresh copy of the current context.

    Like ``await coro``, but the variables *coro* sets do not leak back into
    the caller: ``run_in_context(contextvars.copy_context(), coro)``.
    """
    return _awaitable(coro, contextvars.copy_context())


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# 3.8-3.10: the binding a Task steps is a compiled type (its send enters the
# context around the coroutine's own; on 3.10 it has am_send), and bind_task
# is compiled; the pure classes above stay for run_in_context()/isolated().
from ._accel import speedups as _speedups  # noqa: E402 - after what it replaces

_PureTaskCoroutine, _pure_bind_task = TaskCoroutine, bind_task
if _speedups is not None and hasattr(_speedups, "TaskCoroutine"):
    TaskCoroutine = _compiled_binding = _speedups.TaskCoroutine  # type: ignore[misc]
    collections.abc.Coroutine.register(TaskCoroutine)
    bind_task = _speedups.bind_task
