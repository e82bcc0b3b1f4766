"""The checks of a ``context=`` argument: its type (S6) and whether a task can run in it now (S7).

S7 follows what CPython 3.12+ does natively with a Context that is *entered*
(``Context.run`` is executing in it, in this thread or another) at the moment a
task is created in it:

* a lazy task's first step runs in a later loop iteration. A context that is
  current now, or that is the creating task's own context, is exited by then
  (the creation happens inside the current step), so the task works: CPython
  accepts it, and so does ctxloop. Parent and child then share the context;
  their steps never nest.
* a context entered *during* the current task's step (by a ``Context.run``
  nested inside it, at any depth: ``ctx.run(other.run, create_task, coro,
  context=ctx)``) is exited before that step ends, so the task works too.
  Where the thread's chain of entered contexts can be read (below), ctxloop
  tells it apart exactly from the next case and accepts it.
* any other entered context was entered beneath the current step (the event
  loop itself runs inside ``context.run(...)``, or another thread holds it): it
  is still entered when the task's step runs, and CPython then logs "Exception
  in callback" and never finishes the task. ctxloop refuses it at creation.
* an eager task (3.12+) runs its first step inside the creation call, so any
  entered context fails; natively that corrupts the loop's current-task record.
  ctxloop refuses it at creation.

"Current" is tested exactly and cheaply: a private ContextVar set now is
visible through the context only if it is the current one. "Entered", and
"entered during the current task's step", are read without entering the
context (see ``_entered.py``). None of this runs unless the context is
entered: the common path is one test of "entered".
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
from typing import Any, Optional

from ._entered import entered_chain, is_entered

__all__ = ["check_context", "check_task_context", "context_of_task", "context_slot", "entered_chain", "is_entered"]

_Context = contextvars.Context
_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task
_CURRENT_PROBE: contextvars.ContextVar[object] = contextvars.ContextVar("ctxloop_current_probe")

# The C Task (CPython) keeps its context in a slot that Python cannot read
# before 3.12, but its tp_traverse visits that slot before any other Context
# it holds, so the first Context among the referents gc reports is the task's.
# The pure-Python Task (PyPy, asyncio.tasks._PyTask) keeps it in ``_context``.
_C_TASK: Any = getattr(asyncio.tasks, "_CTask", None)


def _type_error(context: object) -> TypeError:
    return TypeError(f"context must be a contextvars.Context, not {type(context).__name__}")


def _is_current(context: contextvars.Context) -> bool:
    marker = object()
    token = _CURRENT_PROBE.set(marker)
    try:
        return context.get(_CURRENT_PROBE) is marker
    finally:
        _CURRENT_PROBE.reset(token)


def context_of_task(task: Any) -> contextvars.Context:
    """The Context *task* runs in, on any Python (``get_context()`` exists from 3.12)."""
    get_context = getattr(task, "get_context", None)
    if get_context is not None:
        return get_context()  # type: ignore[no-any-return]
    return context_slot(task)


def context_slot(task: Any) -> contextvars.Context:
    """The Context asyncio's Task machinery steps *task* in (its copy, or the one given on 3.11+)."""
    if _C_TASK is None or not isinstance(task, _C_TASK):
        return task._context  # type: ignore[no-any-return]
    for referent in gc.get_referents(task):
        if type(referent) is _Context:
            return referent
    raise RuntimeError(f"cannot find the context of {task!r} on this Python")  # pragma: no cover


def _own_task_context() -> Optional[contextvars.Context]:
    loop = _get_running_loop()
    if loop is None:
        return None
    task = _current_task(loop)
    return None if task is None else context_of_task(task)


def check_context(context: object) -> contextvars.Context:
    """Return *context* if a coroutine can be awaited inline in it now, else raise.

    For ``run_in_context()`` / ``isolated()``: their first step enters the
    context at once, so any entered context fails (``RuntimeError``); a
    non-Context is a ``TypeError`` (S6).
    """
    if type(context) is not _Context:
        raise _type_error(context)
    if is_entered(context):
        raise RuntimeError(
            f"{context!r} is entered right now (it is the current context, or one beneath it), so a "
            "coroutine cannot be awaited in it: every step would try to enter it again; pass "
            "contextvars.copy_context() instead, or await the coroutine directly"
        )
    return context


def check_task_context(context: object, eager: bool = False) -> contextvars.Context:
    """Return *context* if a task can be created in it now, else raise (S6, S7).

    ``TypeError`` for a non-Context. ``RuntimeError`` for a context that will
    still be entered when the task's first step runs: one entered beneath the
    current context (not the current one, not the current task's own), or,
    for an *eager* task, any entered context.
    """
    if type(context) is not _Context:
        raise _type_error(context)
    if is_entered(context):
        return _entered_task_context(context, eager)
    return context


def _entered_during_the_step(context: contextvars.Context, own: Optional[contextvars.Context]) -> bool:
    """Whether *context* was entered on top of the current task's own context *own* (or is it)."""
    if own is None:
        return False
    if own is context:
        return True
    chain = entered_chain()
    if chain is None:
        return False
    for entered in chain:  # innermost first
        if entered is context:
            return True
        if entered is own:
            return False  # reached the step's own context first: *context* is beneath it
    return False  # not entered in this thread


def _entered_task_context(context: contextvars.Context, eager: bool) -> contextvars.Context:
    if eager:
        raise RuntimeError(
            f"{context!r} is entered right now, so an eager task cannot start in it: its first step "
            "runs at once, inside this call; pass contextvars.copy_context(), or create the task "
            "without eager start"
        )
    if _is_current(context) or _entered_during_the_step(context, _own_task_context()):
        # Exited when the current step ends, before the task's first step.
        return context
    raise RuntimeError(
        f"{context!r} is entered beneath the current context (for example the event loop runs inside "
        "context.run(...), or another thread is running in it), so it would still be entered when the "
        "task's first step runs and the task could never run; pass contextvars.copy_context() instead"
    )


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# The compiled check returns an unentered Context at once and hands every
# other case (a non-Context, an entered Context) to the function above.
from ._accel import speedups as _speedups  # noqa: E402 - after what it falls back to

_pure_check_task_context = check_task_context
if _speedups is not None:
    _speedups.setup(check_task_context=_pure_check_task_context)
    check_task_context = _speedups.check_task_context
