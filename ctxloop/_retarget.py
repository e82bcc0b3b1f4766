"""Making a task that someone else built step its coroutine inside a given Context (3.8-3.10).

A task factory that wraps the coroutine (``sentry-sdk``'s does) and passes its
keywords on to asyncio's ``Task`` cannot be given ``context=`` before 3.11:
asyncio's ``Task`` there takes no such keyword. ctxloop calls such a factory
without it, and then makes the task it returned step *its* coroutine (the
wrapper) inside the context, as 3.12 would: the task's coroutine is replaced by
a binding whose ``send`` is ``context.run`` bound to the wrapper's ``send``.

The task has not run yet (no task starts eagerly before 3.12). A pure-Python
Task (PyPy, ``asyncio.tasks._PyTask``) keeps its coroutine in an attribute. The
C Task of CPython 3.8-3.10 keeps it in a read-only slot: the slot is found by
looking, in the task's own memory, for the one word that holds the address of
the coroutine ``task._coro`` returns; it is written only when exactly one word
matches and read back through ``task._coro`` afterwards. Those Pythons are no
longer maintained, so the layout this relies on cannot change under it.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Optional

from ._binding import TaskCoroutine, bind, report_binding

__all__ = ["step_in_context"]

_C_TASK: Any = getattr(asyncio.tasks, "_CTask", None)
_coro_offset: Optional[int] = None


def _find_coro_offset(task: Any, coro: object) -> int:
    import ctypes

    word = ctypes.sizeof(ctypes.c_void_p)
    target = id(coro)
    start = id(task)
    hits = [
        offset
        for offset in range(2 * word, _C_TASK.__basicsize__ - word + 1, word)  # after refcount and type
        if ctypes.c_void_p.from_address(start + offset).value == target
    ]
    if len(hits) != 1:
        raise RuntimeError(
            f"ctxloop cannot find the coroutine slot of asyncio's C Task on this Python ({len(hits)} candidates)"
        )
    return hits[0]


def _replace_c_coro(task: Any, coro: object, binding: object) -> None:
    import ctypes  # CPython only (PyPy's Task is pure Python), and only once a factory needs it

    global _coro_offset
    offset = _coro_offset
    if offset is None or ctypes.c_void_p.from_address(id(task) + offset).value != id(coro):
        offset = _coro_offset = _find_coro_offset(task, coro)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(binding))
    ctypes.c_void_p.from_address(id(task) + offset).value = id(binding)
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(coro))  # the binding holds the coroutine now
    if task._coro is not binding:  # pragma: no cover - the slot found was not the coroutine's
        raise RuntimeError("ctxloop could not make asyncio's C Task step its coroutine in the given context")


def step_in_context(task: Any, context: contextvars.Context) -> Any:
    """Make the unstarted *task* step its coroutine inside *context*; return *task*.

    Afterwards ``task.get_coro()`` still returns the coroutine it was given
    and ``task.get_context()`` returns *context*. A future that steps no
    coroutine of its own (not a Task) is returned unchanged.
    """
    coro = getattr(task, "_coro", None)
    if coro is None or type(coro) is TaskCoroutine:
        return task
    binding = bind(TaskCoroutine, coro, context)
    if _C_TASK is not None and isinstance(task, _C_TASK):
        _replace_c_coro(task, coro, binding)
    else:
        task._coro = binding
    report_binding(task, coro, context)
    return task
