"""EventLoopPolicy: a wrapper policy whose loops are ctxloop loops.

Imported only when ``ctxloop.EventLoopPolicy`` or ``install()`` is used, so
that on 3.14+ (where policies are deprecated) nothing on ctxloop's import path
touches a policy name. From 3.12 on the loop-factory route is the primary one.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Optional, Union

from ._loop import enable, import_uvloop

__all__ = ["EventLoopPolicy"]

if sys.version_info >= (3, 14):  # pragma: no cover - not installable here; see docs/python314.md
    _AbstractPolicy: Any = asyncio.events._AbstractEventLoopPolicy  # type: ignore[attr-defined]
    _DefaultPolicy: Any = asyncio.events._DefaultEventLoopPolicy  # type: ignore[attr-defined]
else:
    _AbstractPolicy = asyncio.AbstractEventLoopPolicy
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy


def _resolve_policy(base: Any) -> Any:
    if base is None or base == "asyncio":
        return _DefaultPolicy()
    if base == "uvloop":
        return import_uvloop().EventLoopPolicy()
    if isinstance(base, str):
        raise ValueError(f"unknown policy {base!r}: expected None, 'asyncio', 'uvloop' or an event loop policy")
    if isinstance(base, EventLoopPolicy):
        return base._base
    if not isinstance(base, _AbstractPolicy):
        raise TypeError(
            "base must be None, 'asyncio', 'uvloop' or an asyncio.AbstractEventLoopPolicy "
            f"instance, not {type(base).__name__}"
        )
    return base


class EventLoopPolicy(_AbstractPolicy):  # type: ignore[misc, valid-type]
    """An event loop policy that wraps *base* and hands out ctxloop loops.

    *base* is a policy instance, None or ``"asyncio"`` (a new instance of
    asyncio's default policy) or ``"uvloop"``. Every loop this policy creates or
    returns is a ctxloop loop (see ``ctxloop.new_event_loop``); every other
    method, child watchers included (3.8-3.13), is *base*'s.
    """

    def __init__(self, base: Union[str, "asyncio.AbstractEventLoopPolicy", None] = None) -> None:
        self._base = _resolve_policy(base)

    @property
    def base(self) -> Any:
        """The wrapped policy."""
        return self._base

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        """The base policy's current loop, made a ctxloop loop."""
        return enable(self._base.get_event_loop())

    def set_event_loop(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        """Set the current loop through the base policy (which attaches child watchers)."""
        self._base.set_event_loop(loop)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A new loop from the base policy, made a ctxloop loop."""
        return enable(self._base.new_event_loop())

    if sys.version_info < (3, 14):

        def get_child_watcher(self) -> Any:
            """The base policy's child watcher (3.8-3.13)."""
            return self._base.get_child_watcher()

        def set_child_watcher(self, watcher: Any) -> None:
            """Set the base policy's child watcher (3.8-3.13)."""
            self._base.set_child_watcher(watcher)

    def __getattr__(self, name: str) -> Any:
        # Anything a particular base policy adds beyond the abstract interface.
        return getattr(object.__getattribute__(self, "_base"), name)

    def __repr__(self) -> str:
        return f"ctxloop.EventLoopPolicy({self._base!r})"
