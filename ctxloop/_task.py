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
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any, Coroutine, List, Optional

from ._binding import TaskCoroutine, bind_task
from ._checks import check_task_context, context_slot

__all__ = ["Task", "strip_own_frames"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def strip_own_frames(source_traceback: List[Any]) -> None:
    """Drop ctxloop's frames from the end of a debug-mode ``_source_traceback``.

    asyncio drops its own ``create_task`` frame, so that a task's repr says
    "created at" the caller's line; ctxloop's frames must go the same way.
    """
    while source_traceback and source_traceback[-1].filename.startswith(_PACKAGE_DIR):
        del source_traceback[-1]


def _eager(eager_start: Any, loop: Optional[asyncio.AbstractEventLoop]) -> bool:
    # asyncio starts a task eagerly only when its loop is running.
    if not eager_start:
        return False
    if loop is None:
        loop = asyncio._get_running_loop()
    return loop is not None and loop.is_running()


if sys.version_info >= (3, 12):

    class Task(asyncio.Task):  # type: ignore[type-arg]
        """asyncio.Task, checking ``context=`` first (S6, S7).

        On 3.12+ asyncio's Task runs in the given Context natively; this
        subclass only refuses a non-Context, and a Context that would still be
        entered when the task's first step runs, where asyncio would fail
        later or hang.
        """

        __slots__ = ()

        def __init__(
            self,
            coro: Coroutine[Any, Any, Any],
            *,
            loop: Optional[asyncio.AbstractEventLoop] = None,
            name: Optional[str] = None,
            context: Optional[contextvars.Context] = None,
            eager_start: Optional[bool] = False,
        ) -> None:
            if context is not None:
                check_task_context(context, _eager(eager_start, loop))
            # Not super(): the compiled class below calls this function with its own instances.
            _task_init(self, coro, loop=loop, name=name, context=context, eager_start=eager_start)  # type: ignore[arg-type]
            if self._source_traceback:  # type: ignore[attr-defined]
                strip_own_frames(self._source_traceback)  # type: ignore[attr-defined]

    _task_init = asyncio.Task.__init__
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
                check_task_context(context)
            super().__init__(coro, loop=loop, name=name, context=context)
            if self._source_traceback:  # type: ignore[attr-defined]
                strip_own_frames(self._source_traceback)  # type: ignore[attr-defined]

        def get_context(self) -> contextvars.Context:
            """Return the Context this task runs in (the given one, or its copy)."""
            return context_slot(self)

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
            if self._source_traceback:  # type: ignore[attr-defined]
                strip_own_frames(self._source_traceback)  # type: ignore[attr-defined]

        def get_coro(self) -> Any:
            """Return the coroutine this task runs (never ctxloop's wrapper)."""
            coro = super().get_coro()
            return coro._coro if type(coro) is TaskCoroutine else coro

        def get_context(self) -> contextvars.Context:
            """Return the Context this task runs in (the given one, or its copy)."""
            coro = super().get_coro()
            if type(coro) is TaskCoroutine:
                return coro._context
            return context_slot(self)


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# Task becomes a class made in C, a subclass of asyncio's Task (3.12+) or of
# the class above (before, for the methods it adds) with a compiled __init__:
# a call with one coroutine and asyncio's keywords, whose context (if any) is a
# Context entered nowhere, is asyncio's own __init__ (nothing to check; before
# 3.11 the coroutine bound to the context first); every other call is the
# __init__ above.
from ._accel import speedups as _speedups  # noqa: E402 - after what it wraps

_PureTask = Task
if _speedups is not None:
    Task = _speedups.checked_task_class(  # type: ignore[misc]
        asyncio.Task if sys.version_info >= (3, 12) else _PureTask, asyncio.Task, _PureTask.__init__, f"{__name__}.Task"
    )
    Task.__doc__ = _PureTask.__doc__
    # What inspect shows is the pure __init__'s (before 3.12 asyncio's C __init__ has no context=).
    Task.__signature__ = inspect.signature(_PureTask)  # type: ignore[attr-defined]

if sys.version_info < (3, 12):

    class _Task(Task):  # type: ignore[no-redef, valid-type, misc]
        # The Task ctxloop makes once the context is checked (before 3.11: once
        # the coroutine is bound): asyncio's C __init__ (a slot wrapper assigned
        # here becomes the C tp_init), so no Python frame runs to create it.
        __slots__ = ()
        if not TYPE_CHECKING:  # mypy: the signature is Task's
            __init__ = asyncio.Task.__init__

    _Task.__name__ = _Task.__qualname__ = "Task"  # repr() shows <Task ...>
