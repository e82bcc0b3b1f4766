"""EventLoopPolicy: a wrapper policy whose loops are ctxloop loops.

Imported only when ``ctxloop.EventLoopPolicy`` or ``install()`` is used, so
that nothing on ctxloop's import path touches a policy name. Policies are
deprecated from Python 3.14 (removal planned for 3.16): there asyncio's own
``set_event_loop_policy()`` warns, and so does ``install()``, at the caller's
line; defining or instantiating this class warns nothing, because it only uses
asyncio's private policy base classes, which do not warn. From 3.12 on the
loop-factory route (``ctxloop.loop_factory()``) is the primary one.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Optional, Union

from ._loop import _ASYNCIO_LOOP, LOOP_NAMES, NAMED_LOOPS, enable, loop_class, named_loop_class

__all__ = ["EventLoopPolicy", "current_policy", "set_policy"]

if sys.version_info >= (3, 14):
    import asyncio.events

    if sys.platform == "win32":  # pragma: no cover
        from asyncio.windows_events import _DefaultEventLoopPolicy
    else:
        from asyncio.unix_events import _DefaultEventLoopPolicy
    _AbstractPolicy: Any = asyncio.events._AbstractEventLoopPolicy
    _BaseDefaultPolicy: Any = asyncio.events._BaseDefaultEventLoopPolicy
    _DefaultPolicy: Any = _DefaultEventLoopPolicy

    def current_policy() -> Any:
        """The policy in force (asyncio's default one, created now if none was chosen), without a warning."""
        return asyncio.events._get_event_loop_policy()

    def set_policy(policy: Any) -> None:
        """Set the policy slot without asyncio's deprecation warning (for restoring one)."""
        asyncio.events._set_event_loop_policy(policy)

else:
    _AbstractPolicy = asyncio.AbstractEventLoopPolicy
    _BaseDefaultPolicy = asyncio.events.BaseDefaultEventLoopPolicy
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy

    def current_policy() -> Any:
        """The policy in force (asyncio's default one, created now if none was chosen)."""
        return asyncio.get_event_loop_policy()

    def set_policy(policy: Any) -> None:
        """Set the policy slot."""
        asyncio.set_event_loop_policy(policy)


_NAMES = ", ".join(repr(name) for name in LOOP_NAMES)


class _NamedLoopPolicy(_BaseDefaultPolicy):  # type: ignore[misc, valid-type]
    # The policy of a loop package ctxloop knows by name (uvloop's own
    # EventLoopPolicy touches asyncio's deprecated names when first used on
    # 3.14+): asyncio's base policy making ctxloop's subclass of its loop class.
    def __init__(self, name: str) -> None:
        super().__init__()
        self._class = loop_class(named_loop_class(name))

    def _loop_factory(self) -> asyncio.AbstractEventLoop:
        return self._class()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<{self._class.__module__}.{self._class.__qualname__} policy>"


def _resolve_policy(base: Any) -> Any:
    if base is None or base == "asyncio":
        return _DefaultPolicy()
    if base in NAMED_LOOPS:
        return _NamedLoopPolicy(base)  # type: ignore[abstract]  # no child watchers: its loop needs none
    if isinstance(base, str):
        raise ValueError(f"unknown policy {base!r}: expected None, {_NAMES} or an event loop policy")
    if isinstance(base, EventLoopPolicy):
        return base._base
    if not isinstance(base, _AbstractPolicy):
        raise TypeError(
            f"base must be None, {_NAMES} or an asyncio.AbstractEventLoopPolicy instance, not {type(base).__name__}"
        )
    return base


class EventLoopPolicy(_AbstractPolicy):  # type: ignore[misc, valid-type]
    """An event loop policy that wraps *base* and hands out ctxloop loops.

    *base* is a policy instance, None or ``"asyncio"`` (a new instance of
    asyncio's default policy), ``"uvloop"`` or ``"rloop"``. Every loop this policy creates or
    returns is a ctxloop loop (see ``ctxloop.new_event_loop``); every other
    method, child watchers included (3.8-3.13), is *base*'s.
    """

    def __init__(self, base: Union[str, "asyncio.AbstractEventLoopPolicy", None] = None) -> None:
        self._base = _resolve_policy(base)
        # asyncio's default policy makes loops of one known class: build
        # ctxloop's subclass of it directly instead of changing each instance.
        self._loop_class: Optional[type] = None
        if (
            isinstance(self._base, _BaseDefaultPolicy)
            and type(self._base).new_event_loop is _BaseDefaultPolicy.new_event_loop
            and getattr(type(self._base), "_loop_factory", None) is _ASYNCIO_LOOP
        ):
            self._loop_class = loop_class(_ASYNCIO_LOOP)

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
        if self._loop_class is not None:
            return self._loop_class()  # type: ignore[no-any-return]
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
