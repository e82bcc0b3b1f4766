"""ctxloop: asyncio's contextvars semantics of Python 3.12, on every Python and every loop.

Each task runs in the Context it was given (``context=``), or in a copy of its
creator's context taken when it was created. On 3.8-3.10 ctxloop backports
``context=``; on 3.11+ asyncio does the work and ctxloop only checks its input.
Importing ctxloop changes nothing: every global effect is opt-in (``install``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._binding import isolated, run_in_context
from ._create import create_task
from ._factory import chain_task_factory, task_factory
from ._install import install, uninstall
from ._ipython import load_ipython_extension, unload_ipython_extension
from ._loop import disable, enable, loop_factory, new_event_loop
from ._runner import Runner, run
from ._task import Task

if TYPE_CHECKING:
    from ._policy import EventLoopPolicy

__version__ = "0.1.0"

__all__ = [
    "EventLoopPolicy",
    "Runner",
    "Task",
    "__version__",
    "chain_task_factory",
    "create_task",
    "disable",
    "enable",
    "install",
    "isolated",
    "load_ipython_extension",
    "loop_factory",
    "new_event_loop",
    "run",
    "run_in_context",
    "task_factory",
    "uninstall",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    # Policies are deprecated from Python 3.14: the policy module is imported
    # only when asked for, so importing ctxloop never touches a policy name.
    if name == "EventLoopPolicy":
        from ._policy import EventLoopPolicy

        return EventLoopPolicy
    raise AttributeError(f"module 'ctxloop' has no attribute {name!r}")
