"""install()/uninstall(): the one global switch, opt-in, idempotent, reversible (S9)."""

from __future__ import annotations

import asyncio
import asyncio.events
import sys
import threading
import warnings
from typing import Any, Set

from ._create import create_task
from ._loop import is_ctxloop_loop

__all__ = ["hold_create_task_patch", "install", "release_create_task_patch", "uninstall"]

_lock = threading.Lock()
_NOTHING = object()
# What install() replaced, for uninstall() to put back exactly.
_saved_policy: Any = _NOTHING
_saved_create_task: Any = _NOTHING
# The base install() was last given, and the policy it made from it.
_installed: Any = None
_installed_base: Any = _NOTHING
# Who holds the asyncio.create_task patch (install(), the IPython extension):
# it is made when the first takes it and undone when the last lets it go.
_patch_holders: Set[str] = set()
_INSTALL = "install()"

_POLICIES_DEPRECATED = sys.version_info >= (3, 14)
_PATCHES_CREATE_TASK = sys.version_info < (3, 11)


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: only asked, if already loaded
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None


def _warn_if_a_foreign_loop_runs() -> None:
    loop = asyncio._get_running_loop()
    if loop is None or is_ctxloop_loop(loop):
        return
    if _in_ipython():
        if sys.version_info >= (3, 11):
            return  # the running loop already takes context= with these semantics: nothing that matters is left
        message = (
            f"ctxloop.install() was called in IPython, whose loop {loop!r} is already running and is not changed: "
            "asyncio.create_task now takes context=, but that loop's own create_task() still does not on this "
            "Python. Write %load_ext ctxloop instead: it makes the running loop a ctxloop loop and keeps "
            "contextvars from cell to cell"
        )
    else:
        message = (
            f"ctxloop.install() was called while {loop!r}, a loop ctxloop did not create, is running: "
            "that loop and its tasks are not changed (a server that creates its own loop, such as "
            "uvicorn, imports the application inside it). Give the server a ctxloop loop factory "
            "instead (uvicorn: --loop ctxloop.loops:asyncio_loop or ctxloop.loops:uvloop_loop), "
            "or call ctxloop.enable(loop) on this loop"
        )
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _hold_patch(holder: str) -> None:
    global _saved_create_task
    if not _patch_holders:
        _saved_create_task = asyncio.create_task
        asyncio.create_task = create_task  # type: ignore[assignment]
    _patch_holders.add(holder)


def _release_patch(holder: str) -> None:
    global _saved_create_task
    if holder not in _patch_holders:
        return
    _patch_holders.discard(holder)
    if not _patch_holders:
        if asyncio.create_task is create_task:
            asyncio.create_task = _saved_create_task
        _saved_create_task = _NOTHING


def hold_create_task_patch(holder: str) -> None:
    """On 3.8-3.10, let ``asyncio.create_task`` take ``context=`` until *holder* releases it.

    The module attribute is replaced once, when the first holder takes it, and
    put back when the last lets it go (``install()`` and the IPython extension
    share it). A no-op on 3.11+, where asyncio takes ``context=`` itself.
    """
    if _PATCHES_CREATE_TASK:
        with _lock:
            _hold_patch(holder)


def release_create_task_patch(holder: str) -> None:
    """Undo ``hold_create_task_patch(holder)``; a no-op for a holder that holds nothing."""
    if _PATCHES_CREATE_TASK:
        with _lock:
            _release_patch(holder)


def install(base: Any = None, *, patch_create_task: bool = True) -> None:
    """Set ``ctxloop.EventLoopPolicy(base)`` as asyncio's event loop policy.

    With *base* None the policy in force now is wrapped (uvloop's, after
    ``uvloop.install()``; asyncio's default policy when none was chosen);
    ``"asyncio"``, ``"uvloop"`` or a policy instance choose one. Calling it
    again with the same *base* (or None) keeps the policy object, and so the
    current loop. On 3.8-3.10, with *patch_create_task*, ``asyncio.create_task``
    is also replaced by ``ctxloop.create_task``, so that
    ``asyncio.create_task(coro, context=ctx)`` works as on 3.11 (code that
    imported the function before ``install()`` keeps the original); on 3.11+
    nothing is patched. ``uninstall()`` restores what the first call found.

    Policies are deprecated from Python 3.14: there this warns as
    ``asyncio.set_event_loop_policy()`` does; prefer ``ctxloop.loop_factory()``.
    """
    global _saved_policy, _installed, _installed_base
    from ._policy import EventLoopPolicy, current_policy, set_policy

    _warn_if_a_foreign_loop_runs()
    if _POLICIES_DEPRECATED:
        # asyncio's own warning, at the caller's line, as set_event_loop_policy gives it.
        warnings._deprecated("asyncio.set_event_loop_policy", remove=(3, 16))  # type: ignore[attr-defined]
    with _lock:
        raw_slot = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
        in_force = current_policy()
        same_base = base is None or base is _installed_base
        if isinstance(in_force, EventLoopPolicy) and in_force is _installed and same_base:
            policy = in_force  # installed already, from the same base
        else:
            if _saved_policy is _NOTHING:
                # The raw slot, possibly None ("not chosen yet"), so that
                # uninstall() leaves asyncio exactly as it was.
                _saved_policy = raw_slot
            policy = EventLoopPolicy(in_force if base is None else base)
            _installed, _installed_base = policy, base
            set_policy(policy)
        if _PATCHES_CREATE_TASK and patch_create_task:
            _hold_patch(_INSTALL)


def uninstall() -> None:
    """Undo ``install()``: restore the previous policy and ``asyncio.create_task``.

    A no-op when ctxloop is not installed. A policy or ``asyncio.create_task``
    that someone set after ``install()`` is theirs and stays.
    """
    global _saved_policy, _installed, _installed_base
    with _lock:
        if _saved_policy is not _NOTHING:
            if asyncio.events._event_loop_policy is _installed:  # type: ignore[attr-defined]
                # The raw slot: no warning on 3.14+, and None ("not chosen") restored as None.
                asyncio.events._event_loop_policy = _saved_policy  # type: ignore[attr-defined]
            _saved_policy = _NOTHING
            _installed, _installed_base = None, _NOTHING
        _release_patch(_INSTALL)
