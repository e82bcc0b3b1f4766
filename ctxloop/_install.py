"""install()/uninstall(): the one global switch, opt-in, idempotent, reversible (S9)."""

from __future__ import annotations

import asyncio
import asyncio.events
import sys
import threading
from typing import Any

from ._task import create_task

__all__ = ["install", "uninstall"]

_lock = threading.Lock()
_NOTHING = object()
# What install() replaced, for uninstall() to put back exactly.
_saved_policy: Any = _NOTHING
_saved_create_task: Any = _NOTHING


def _policy_class() -> Any:
    from ._policy import EventLoopPolicy  # keeps policies off the import path

    return EventLoopPolicy


def install(base: Any = None, *, patch_create_task: bool = True) -> None:
    """Set ``ctxloop.EventLoopPolicy(base)`` as asyncio's event loop policy.

    On 3.8-3.10, with *patch_create_task*, also replace ``asyncio.create_task``
    by ``ctxloop.create_task`` so that ``asyncio.create_task(coro,
    context=ctx)`` works as on 3.11 (code that imported the function before
    ``install()`` keeps the original). On 3.11+ nothing is patched. Calling it
    again replaces the policy only; ``uninstall()`` restores what the first
    call found. Policies are deprecated from Python 3.14: prefer
    ``ctxloop.loop_factory()`` there.
    """
    global _saved_policy, _saved_create_task
    policy = _policy_class()(base)
    with _lock:
        if _saved_policy is _NOTHING:
            # The raw slot, possibly None ("not chosen yet"), so that uninstall()
            # leaves asyncio exactly as it was, lazily-created default included.
            _saved_policy = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
        asyncio.set_event_loop_policy(policy)
        if sys.version_info < (3, 11) and patch_create_task and _saved_create_task is _NOTHING:
            _saved_create_task = asyncio.create_task
            asyncio.create_task = create_task  # type: ignore[assignment]


def uninstall() -> None:
    """Undo ``install()``: restore the previous policy and ``asyncio.create_task``.

    A no-op when ctxloop is not installed.
    """
    global _saved_policy, _saved_create_task
    with _lock:
        if _saved_policy is not _NOTHING:
            # Only if ours is still the policy: one set after install() was
            # someone's deliberate choice (as with asyncio.create_task below).
            if isinstance(asyncio.events._event_loop_policy, _policy_class()):  # type: ignore[attr-defined]
                asyncio.set_event_loop_policy(_saved_policy)
            _saved_policy = _NOTHING
        if _saved_create_task is not _NOTHING:
            if asyncio.create_task is create_task:
                asyncio.create_task = _saved_create_task
            _saved_create_task = _NOTHING
