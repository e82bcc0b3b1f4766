"""ctxloop's Task and ``create_task``: the version decision for tasks lives here.

* 3.12+: asyncio's Task does everything (``context=``, ``get_context()``);
  ctxloop only checks the context first (S6, S7).
* 3.11: asyncio's Task takes ``context=`` but has no ``get_context()``; the
  subclass adds it, reading the C task's context slot (see ``_task_context``).
* 3.8-3.10 (and PyPy 3.9/3.10): asyncio's Task always runs in a copy. A task
  given ``context=ctx`` steps a ``TaskCoroutine`` instead, whose every
  send/throw runs inside ``ctx``: the fast C Task is kept, and the subclass
  unwraps it in ``get_coro()`` / ``get_context()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import weakref
from typing import TYPE_CHECKING, Any, Coroutine, Optional, TypeVar

from ._binding import TaskCoroutine, bind_task, check_context, report_binding

__all__ = ["Task", "create_task"]

_T = TypeVar("_T")
_get_running_loop = asyncio.get_running_loop
_Context = contextvars.Context

# ctxloop.task_factory, set by _factory.py (which imports this module). A loop
# whose factory it is (a ctxloop loop with no factory of the user's) would
# only pass the coroutine on to the Task made here: create_task makes that
# Task itself, saving the loop's create_task and the factory (two Python frames).
_own_factory: Any = None


def _known_create_task(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether *loop*'s class uses asyncio's or uvloop's own create_task.

    Only then may ctxloop make a task itself instead of calling the loop's
    create_task: a create_task of another class may do more (instrumentation).
    """
    method = type(loop).create_task
    if method is asyncio.BaseEventLoop.create_task:
        return True
    uvloop = sys.modules.get("uvloop.loop")  # never imported here
    return uvloop is not None and method is getattr(uvloop.Loop, "create_task", None)


# The C Task (CPython) keeps its context in a slot that Python cannot read
# before 3.12, but its tp_traverse visits that slot before any other Context
# it holds, so the first Context among the referents gc reports is the task's.
# The pure-Python Task (PyPy) keeps it in ``_context``.
_C_TASK = asyncio.Task.__module__ == "_asyncio"


def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
    if not _C_TASK:
        return task._context  # type: ignore[attr-defined, no-any-return]
    # A subclass instance reports its (heap) type first, then the C fields.
    for referent in gc.get_referents(task):
        if type(referent) is _Context:
            return referent  # type: ignore[no-any-return]
    raise RuntimeError(f"cannot find the context of {task!r} on this Python")  # pragma: no cover


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
                return _task_context(task_ref())  # type: ignore[arg-type]

        else:

            def get_context() -> contextvars.Context:
                return context

        try:
            task.get_context = get_context
        except AttributeError:
            pass  # a future type without a __dict__: it keeps what it reports
    return task


if sys.version_info >= (3, 12):

    class Task(asyncio.Task):  # type: ignore[type-arg]
        """asyncio.Task, checking ``context=`` first (S6, S7).

        On 3.12+ asyncio's Task runs in the given Context natively; this
        subclass only refuses a non-Context and a Context that is entered right
        now, where asyncio would fail later or hang.
        """

        __slots__ = ()

        def __init__(
            self,
            coro: Coroutine[Any, Any, Any],
            *,
            loop: Optional[asyncio.AbstractEventLoop] = None,
            name: Optional[str] = None,
            context: Optional[contextvars.Context] = None,
            eager_start: bool = False,
        ) -> None:
            if context is not None:
                check_context(context)
            super().__init__(coro, loop=loop, name=name, context=context, eager_start=eager_start)

    def create_task(
        coro: Coroutine[Any, Any, _T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Task[_T]:
        """Schedule *coro* on the running loop; with *context*, run it in that Context.

        ``asyncio.create_task`` on every Python: without *context* the task runs
        in a copy of the current context taken now; with it, every step runs
        inside *context* itself. A non-Context raises ``TypeError`` and an
        entered Context ``RuntimeError``, here, at creation.
        """
        loop = _get_running_loop()
        if context is not None:
            check_context(context)
        if loop.get_task_factory() is _own_factory:
            return _Task(coro, loop=loop, name=name, context=context)
        return loop.create_task(coro, name=name, context=context)

    _Task = asyncio.Task

elif sys.version_info >= (3, 11):

    class Task(asyncio.Task):  # type: ignore[no-redef, type-arg]
        """asyncio.Task with ``get_context()`` (3.12's) and a checked ``context=``."""

        __slots__ = ()

        def __init__(
            self,
            coro: Coroutine[Any, Any, Any],
            *,
            loop: Optional[asyncio.AbstractEventLoop] = None,
            name: Optional[str] = None,
            context: Optional[contextvars.Context] = None,
        ) -> None:
            if context is not None:
                check_context(context)
            super().__init__(coro, loop=loop, name=name, context=context)

        def get_context(self) -> contextvars.Context:
            """Return the Context this task runs in (the given one, or its copy)."""
            return _task_context(self)

    class _Task(Task):
        # The Task ctxloop makes once the context is checked: asyncio's C
        # __init__ (a slot wrapper assigned here becomes the C tp_init), so
        # no Python frame runs to create it.
        __slots__ = ()
        if not TYPE_CHECKING:  # mypy: the signature is Task's
            __init__ = asyncio.Task.__init__

    _Task.__name__ = _Task.__qualname__ = "Task"  # repr() shows <Task ...>

    def create_task(  # type: ignore[misc]
        coro: Coroutine[Any, Any, _T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Task[_T]:
        """Schedule *coro* on the running loop; with *context*, run it in that Context.

        ``asyncio.create_task`` on every Python: without *context* the task runs
        in a copy of the current context taken now; with it, every step runs
        inside *context* itself. A non-Context raises ``TypeError`` and an
        entered Context ``RuntimeError``, here, at creation.
        """
        loop = _get_running_loop()
        if context is not None:
            check_context(context)
        factory = loop.get_task_factory()
        if factory is _own_factory or (factory is None and _known_create_task(loop)):
            return _Task(coro, loop=loop, name=name, context=context)
        return introspectable(loop.create_task(coro, name=name, context=context), coro, context)  # type: ignore[no-any-return]

else:

    class Task(asyncio.Task):  # type: ignore[no-redef, type-arg]
        """asyncio.Task that runs every step inside ``context`` when one is given.

        Python 3.8-3.10 backport of 3.11's ``context=``: the given Context
        itself, not a copy. ``get_coro()``, ``repr()``, ``get_stack()`` show the
        caller's coroutine; ``get_context()`` (3.12's) returns the Context.
        """

        __slots__ = ()

        def __init__(
            self,
            coro: Coroutine[Any, Any, Any],
            *,
            loop: Optional[asyncio.AbstractEventLoop] = None,
            name: Optional[str] = None,
            context: Optional[contextvars.Context] = None,
        ) -> None:
            if context is not None:
                try:
                    coro = bind_task(coro, context)
                except BaseException:
                    # Refused before Future.__init__ ran: the pure-Python Task
                    # (PyPy) would report itself "destroyed but pending".
                    self._log_destroy_pending = False
                    raise
            super().__init__(coro, loop=loop, name=name)

        def get_coro(self) -> Any:
            """Return the coroutine this task runs (never ctxloop's wrapper)."""
            coro = super().get_coro()
            return coro._coro if type(coro) is TaskCoroutine else coro

        def get_context(self) -> contextvars.Context:
            """Return the Context this task runs in (the given one, or its copy)."""
            coro = super().get_coro()
            if type(coro) is TaskCoroutine:
                return coro._context
            return _task_context(self)

    class _Task(Task):  # type: ignore[no-redef]
        # The Task ctxloop makes once the coroutine is bound: asyncio's C
        # __init__ (a slot wrapper assigned here becomes the C tp_init), so
        # no Python frame runs to create it.
        __slots__ = ()
        if not TYPE_CHECKING:  # mypy: the signature is Task's
            __init__ = asyncio.Task.__init__

    _Task.__name__ = _Task.__qualname__ = "Task"  # repr() shows <Task ...>

    def create_task(  # type: ignore[misc]
        coro: Coroutine[Any, Any, _T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Task[_T]:
        """Schedule *coro* on the running loop; with *context*, run it in that Context.

        ``asyncio.create_task`` on every Python: without *context* the task runs
        in a copy of the current context taken now; with it, every step runs
        inside *context* itself. A non-Context raises ``TypeError`` and an
        entered Context ``RuntimeError``, here, at creation.
        """
        loop = _get_running_loop()
        bound = coro if context is None else bind_task(coro, context)
        factory = loop.get_task_factory()
        if factory is _own_factory or (factory is None and _known_create_task(loop)):
            return _Task(bound, loop=loop, name=name)
        # Another factory, or a loop class with a create_task of its own: it
        # gets the bound coroutine (which any Task can step) and no context=,
        # which asyncio's create_task of 3.8-3.10 does not take.
        return introspectable(loop.create_task(bound, name=name), coro, context)  # type: ignore[no-any-return]
