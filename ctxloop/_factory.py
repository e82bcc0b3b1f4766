"""Task factories for ``loop.set_task_factory``: ctxloop's own, and a chainer.

The factory contract moves between versions: 3.8-3.10 call
``factory(loop, coro)``; 3.11-3.13.2 and 3.13.4+ add ``context=`` only when one
was given; 3.13.3 and 3.14 forward every keyword of ``create_task`` (``name=``,
``eager_start=``, ...); uvloop on 3.11+ always passes ``context=`` (even None)
and, from 0.23 on 3.13+, ``eager_start=`` (None meaning "the factory's
default"). Both factories accept ``**kwargs``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
from typing import Any, Callable, Coroutine, Dict, FrozenSet, Optional

from ._binding import bind_task, report_binding
from ._checks import check_task_context
from ._create import forwards_keywords, is_eager_factory
from ._task import Task, _Task, strip_own_frames

__all__ = ["TaskFactory", "chain_task_factory", "task_factory"]

TaskFactory = Callable[..., "asyncio.Future[Any]"]

if sys.version_info >= (3, 12):
    _NativeTask = asyncio.Task

    def task_factory(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        *,
        context: Optional[contextvars.Context] = None,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        """Create a task for *loop*; use as ``loop.set_task_factory(ctxloop.task_factory)``.

        Honours ``name=``, ``context=`` (that Context itself, checked: S6, S7)
        and ``eager_start=``.
        """
        if context is not None:
            eager = kwargs.get("eager_start")
            check_task_context(context, bool(eager) and loop.is_running())
            task = _NativeTask(coro, loop=loop, context=context, **kwargs)
        else:
            task = _NativeTask(coro, loop=loop, **kwargs)
        if task._source_traceback:  # type: ignore[attr-defined]
            strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
        return task

elif sys.version_info >= (3, 11):

    def task_factory(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        *,
        context: Optional[contextvars.Context] = None,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        """Create a task for *loop*; use as ``loop.set_task_factory(ctxloop.task_factory)``.

        Honours ``name=`` and ``context=`` (that Context itself, checked: S6,
        S7); the task has 3.12's ``get_context()``.
        """
        if context is not None:
            check_task_context(context)
        task = _Task(coro, loop=loop, context=context, **kwargs)
        if task._source_traceback:  # type: ignore[attr-defined]
            strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
        return task

else:

    def task_factory(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        *,
        context: Optional[contextvars.Context] = None,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        """Create a task for *loop*; use as ``loop.set_task_factory(ctxloop.task_factory)``.

        Honours ``name=`` and ``context=`` (that Context itself, not a copy,
        checked: S6, S7); ``eager_start=`` does not exist before 3.12.
        """
        if kwargs:  # name= (or a keyword Task refuses, with Task's own error)
            task: Any = Task(coro, loop=loop, context=context, **kwargs)
        else:
            task = _Task(coro if context is None else bind_task(coro, context), loop=loop)
        if task._source_traceback:  # type: ignore[attr-defined]
            strip_own_frames(task._source_traceback)  # type: ignore[attr-defined]
        return task  # type: ignore[no-any-return]


_ANY = None  # marks a factory that takes **kwargs


def _accepted_keywords(factory: Callable[..., Any]) -> Optional[FrozenSet[str]]:
    """The keywords *factory* accepts besides (loop, coro); None means any."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return frozenset()  # a builtin we cannot see into: give it (loop, coro) only
    names = set()
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return _ANY
        if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.add(parameter.name)
    return frozenset(names)


def chain_task_factory(inner: Optional[TaskFactory]) -> TaskFactory:
    """Wrap the task factory *inner* so that it honours ``context=`` exactly.

    ``loop.set_task_factory(ctxloop.chain_task_factory(loop.get_task_factory()))``
    keeps what *inner* does (eager start, a custom Task class, a wrapper
    coroutine, ...) and adds ctxloop's checks (S6, S7). *inner* gets only the
    keywords it accepts (``eager_start=None``, "the default", is left out).
    With a context, *inner* is given ``context=`` where it can use it: when it
    declares that parameter, or on 3.11+ when it takes ``**kwargs``. Otherwise
    (3.8-3.10, where asyncio's Task takes no ``context=``, or a factory
    written before ``context=`` existed) the task it returns steps its
    coroutine inside the context all the same. ``name=`` it does not take is
    set on the task afterwards, as asyncio's loop does. With *inner* None this
    is ``task_factory``. Chaining a chained factory returns it unchanged.
    """
    if inner is None or inner is task_factory:
        return task_factory
    if getattr(inner, "__ctxloop_chained__", False):
        return inner
    if not callable(inner):
        raise TypeError(f"task factory must be a callable or None, not {type(inner).__name__}")
    accepted = _accepted_keywords(inner)
    takes_name = accepted is _ANY or "name" in accepted
    # Whether inner gets context=, and if not, how the task is made to run in it.
    if accepted is not _ANY and "context" not in accepted:
        mode = "bind"  # a factory from before context=: it steps a bound coroutine
    elif sys.version_info < (3, 11) and forwards_keywords(inner):
        mode = "retarget"  # it would pass context= on to a Task that does not take it
    else:
        mode = "forward"
    eager_inner = is_eager_factory(inner)

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> "asyncio.Future[Any]":
        context = kwargs.pop("context", None)
        name = kwargs.pop("name", None)
        if "eager_start" in kwargs and kwargs["eager_start"] is None:
            del kwargs["eager_start"]
        forwarded: Dict[str, Any] = kwargs if accepted is _ANY else {k: v for k, v in kwargs.items() if k in accepted}
        if name is not None and takes_name:
            forwarded["name"] = name
            name = None
        if context is None:
            task = inner(loop, coro, **forwarded)
        elif mode == "forward":
            eager = forwarded.get("eager_start", eager_inner)
            forwarded["context"] = check_task_context(context, bool(eager) and loop.is_running())
            task = inner(loop, coro, **forwarded)
        elif mode == "bind":
            task = inner(loop, bind_task(coro, context), **forwarded)
            report_binding(task, coro, context)
        else:
            from ._retarget import step_in_context

            check_task_context(context)
            task = step_in_context(inner(loop, coro, **forwarded), context)
        if name is not None:
            task.set_name(name)  # type: ignore[attr-defined]
        return task

    factory.__ctxloop_chained__ = True  # type: ignore[attr-defined]
    factory.__wrapped__ = inner  # type: ignore[attr-defined]
    factory.__qualname__ = factory.__name__ = f"chain_task_factory({getattr(inner, '__qualname__', inner)!s})"
    return factory


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# task_factory becomes a compiled callable: a call with (loop, coro) and
# keywords, whose context (if any) is a Context entered nowhere, makes the
# Task the function above makes, in C (before 3.11: with context= as its only
# keyword, a native coroutine bound to it); every other call is handed to it.
from ._accel import speedups as _speedups  # noqa: E402 - after what it wraps

if _speedups is not None:
    task_factory = _speedups.TaskFactory(task_factory, _Task, strip_own_frames)
