"""The IPython extension: ``%load_ext ctxloop`` in Jupyter, VS Code's notebooks and terminal IPython.

Loading it in a shell whose cells run on an asyncio loop changes three things,
and ``%unload_ext ctxloop`` puts each back as it was:

* the loop that runs the cells becomes a ctxloop loop (``enable(loop)``),
  unless it is one already;
* on 3.8-3.10, ``asyncio.create_task`` takes ``context=`` (the patch
  ``install()`` makes, shared with it: restored when neither holds it);
* every cell runs in one Context, so what a cell sets is seen by the next,
  whether or not either cell awaits.

The last is needed because IPython runs the two kinds of cell differently.
A cell without top-level ``await`` runs inline: in ipykernel, in the context of
the task that handles the kernel's messages (the same context from cell to
cell); in terminal IPython, in the main thread's context. A cell with
``await`` runs as a new task (ipykernel's ``asyncio.ensure_future``, terminal
IPython's ``loop.run_until_complete``), in a *copy* of that context, and what
it sets dies with the copy. Both run the cell as the coroutine the shell's
``run_cell_async`` returns: the extension wraps that method (an instance
attribute of the one shell) so that a cell with ``await`` runs as a task in
the very context an inline cell runs in: in a kernel, its message task's
context; in terminal IPython, the main thread's base context (named through
``entered_chain()``, on CPython). Where that context cannot be named or given
to a task (PyPy; IPython embedded inside a ``Context.run``), every cell runs in
a context the extension keeps instead, copied when the first cell after loading
starts: what cells set there is not seen after ``%unload_ext``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from typing import Any, Callable, Coroutine, Dict, Optional

from ._binding import run_in_context
from ._checks import _is_current, context_of_task, entered_chain, is_entered
from ._create import create_task
from ._install import hold_create_task_patch, release_create_task_patch
from ._loop import disable, enable, is_ctxloop_loop

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_lock = threading.Lock()
_NOTHING = object()
# The shells the extension is loaded in, by id(shell): what loading changed there.
_loaded: Dict[int, "_Loaded"] = {}


class _Loaded:
    """What loading the extension changed in one shell, for unloading to undo."""

    def __init__(self, shell: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.shell = shell
        self.loop = loop
        self.enabled_loop = False  # enable() was ours to undo
        self.own_attribute: Any = _NOTHING  # an instance attribute run_cell_async had before
        self.wrapper: Any = None
        self.active = True
        self.own_context: Optional[contextvars.Context] = None  # where the current one cannot be named

    def cell_context(self) -> Optional[contextvars.Context]:
        """The context the cell about to run should run in, or None to leave the cell as it is."""
        loop = asyncio._get_running_loop()
        if loop is not None:
            # A kernel: its cells are dispatched by the task that handles its messages.
            task = asyncio.current_task(loop)
            context = None if task is None else context_of_task(task)
        else:
            # Terminal IPython: cells are dispatched from the main thread, outside
            # any task, in its base context, which no Context.run has entered
            # (so a task can run in it; CPython allows entering it on top of
            # itself). An entered one (IPython embedded in a Context.run) cannot
            # be given to a task, nor can a context that cannot be named.
            chain = entered_chain()
            context = chain[0] if chain else None
            if context is None or is_entered(context):
                if self.own_context is None:
                    self.own_context = contextvars.copy_context()
                return self.own_context
        return context if context is not None and _is_current(context) else None


async def _run_cell_in(context: contextvars.Context, cell: Coroutine[Any, Any, Any]) -> Any:
    if _is_current(context):
        # A cell without await, stepped at once where it was made.
        return await cell
    if asyncio._get_running_loop() is None:
        # A cell without await, stepped with no loop running, in the
        # extension's own context: inline, as IPython steps it.
        return await run_in_context(context, cell)
    # A cell with await, in the task IPython made for it (in a copy): run as a
    # task of its own in the context itself, which no step has entered now.
    return await create_task(cell, context=context)


def _cell_runner(loaded: _Loaded, run_cell_async: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run_cell_async)  # keeps the signature ipykernel inspects (cell_id=, cell_meta=)
    def run_cell_in_one_context(*args: Any, **kwargs: Any) -> Any:
        cell = run_cell_async(*args, **kwargs)
        context = loaded.cell_context() if loaded.active else None
        return cell if context is None else _run_cell_in(context, cell)

    return run_cell_in_one_context


def _cells_loop(shell: Any) -> asyncio.AbstractEventLoop:
    """The asyncio loop that runs *shell*'s cells, or raise saying why there is none."""
    # IPython is not a dependency (the lint environment has no stubs of it either).
    try:
        from IPython.core.error import UsageError  # type: ignore[import-not-found]
        from IPython.core.interactiveshell import InteractiveShell  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "ctxloop.load_ipython_extension() is IPython's hook for %load_ext ctxloop, and IPython is not "
            "installed for this Python: nothing was changed. In a script, use ctxloop.run() or "
            "ctxloop.loop_factory()"
        ) from None
    if not isinstance(shell, InteractiveShell):
        raise TypeError(
            "ctxloop.load_ipython_extension() is IPython's hook for %load_ext ctxloop and takes the running "
            f"IPython shell, not {type(shell).__name__}: nothing was changed. Write %load_ext ctxloop in a "
            "notebook cell or at an IPython prompt"
        )
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop  # a kernel (ipykernel): its cells run inside its loop
    from IPython.core import async_helpers  # type: ignore[import-not-found]

    if shell.autoawait and shell.loop_runner is async_helpers._asyncio_runner:
        # Terminal IPython: cells with await run on IPython's own asyncio loop
        # (IPython 7: on asyncio's current loop).
        get_loop = getattr(async_helpers, "get_asyncio_loop", asyncio.get_event_loop)
        return get_loop()  # type: ignore[no-any-return]
    runner = shell.loop_runner
    why = f"its loop runner: {getattr(runner, '__name__', runner)}" if shell.autoawait else "autoawait: off"
    raise UsageError(
        "%load_ext ctxloop applies to an IPython whose cells run on an asyncio event loop (a Jupyter kernel, "
        f"or terminal IPython with %autoawait asyncio); here no asyncio loop runs this shell's cells ({why}), "
        "so nothing was changed"
    )


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ctxloop``: cells run on a ctxloop loop, and contextvars persist from cell to cell.

    IPython calls it with the running shell. The loop that runs the cells
    (a kernel's running loop, or terminal IPython's) becomes a ctxloop loop
    (``ctxloop.enable``); on 3.8-3.10 ``asyncio.create_task`` takes
    ``context=``; and every cell runs in one Context, so a value a cell sets
    is seen by the next whether or not either awaits, as in a script run top
    to bottom, while a task a cell creates still runs in a copy, or in the
    ``context=`` given. No policy is set and nothing is printed. Loading it
    again is a no-op. Outside IPython, or in a shell whose cells no asyncio
    loop runs, it raises, saying why, and changes nothing.
    """
    loop = _cells_loop(ipython)
    with _lock:
        if id(ipython) in _loaded:
            return
        loaded = _Loaded(ipython, loop)
        if not is_ctxloop_loop(loop):
            enable(loop)
            loaded.enabled_loop = True
        hold_create_task_patch(_HOLDER)
        loaded.own_attribute = vars(ipython).get("run_cell_async", _NOTHING)
        loaded.wrapper = _cell_runner(loaded, ipython.run_cell_async)
        ipython.run_cell_async = loaded.wrapper
        _loaded[id(ipython)] = loaded


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext ctxloop``: undo what ``load_ipython_extension`` changed, exactly.

    The loop is a plain loop again (unless it was a ctxloop loop before
    loading), ``asyncio.create_task`` is restored on 3.8-3.10 (unless
    ``install()`` still holds it), and cells run as IPython runs them. A no-op
    where the extension is not loaded.
    """
    with _lock:
        loaded = _loaded.pop(id(ipython), None)
        if loaded is None:
            return
        loaded.active = False  # a wrapper someone put around ours passes cells through unchanged now
        if vars(ipython).get("run_cell_async") is loaded.wrapper:
            if loaded.own_attribute is _NOTHING:
                del ipython.run_cell_async
            else:
                ipython.run_cell_async = loaded.own_attribute
        release_create_task_patch(_HOLDER)
        if loaded.enabled_loop:
            disable(loaded.loop)


_HOLDER = "the IPython extension"
