"""What a ctxloop loop on rloop changes besides ``create_task``: where rloop 0.5 departs from asyncio.

rloop (CPython 3.10+) is a loop written in Rust. A ctxloop loop built on it
is rloop's own loop in every respect but these:

* rloop makes a socket pair for each run of the loop (its wakeup channel),
  hands the file descriptors to its Rust side, which closes them when the run
  ends, and drops the Python socket objects still believing they are open:
  every run then ends with two ``ResourceWarning`` s ("unclosed
  <socket.socket ...>"), errors under ``-W error``. ctxloop detaches the
  sockets from their (already closed) descriptors instead.
* ``call_later()``/``call_at()`` of a timer due at once replace an empty
  ``context=Context()`` (a falsy object) by a copy of the current context;
  ctxloop keeps the context given (C4).
* ``call_soon_threadsafe(callback)`` without ``context=`` runs the callback
  in the loop's own context; asyncio runs it in a copy of the calling
  thread's current context (C4), and so does ctxloop.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Optional

__all__ = ["ClosesItsSockets", "RLoopFixes", "plain_rloop_class"]


class ClosesItsSockets:
    """rloop's loop without its unclosed-socket warnings (also a baseline for measurements)."""

    _ssock_r: Any
    _ssock_w: Any

    def _ssock_stop(self) -> None:
        pair = (self._ssock_r, self._ssock_w)
        super()._ssock_stop()  # type: ignore[misc]
        for sock in pair:
            if sock is not None:
                sock.detach()  # rloop's Rust side has closed the descriptor


class RLoopFixes(ClosesItsSockets):
    """Mixed into the ctxloop subclass of ``rloop.RLoop`` (before it in the MRO)."""

    def call_later(self, delay: float, callback: Any, *args: Any, context: Optional[contextvars.Context] = None) -> Any:
        """rloop's call_later, keeping an empty ``context=Context()`` given for a timer due at once (C4)."""
        if delay <= 0 and context is not None:
            return self.call_soon(callback, *args, context=context)  # type: ignore[attr-defined]
        return super().call_later(delay, callback, *args, context=context)  # type: ignore[misc]

    def call_at(self, when: float, callback: Any, *args: Any, context: Optional[contextvars.Context] = None) -> Any:
        """rloop's call_at, keeping an empty ``context=Context()`` given for a timer due at once (C4)."""
        if when <= self.time() and context is not None:  # type: ignore[attr-defined]
            return self.call_soon(callback, *args, context=context)  # type: ignore[attr-defined]
        return super().call_at(when, callback, *args, context=context)  # type: ignore[misc]

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Optional[contextvars.Context] = None) -> Any:
        """rloop's call_soon_threadsafe, in a copy of the calling thread's context unless one is given (C4)."""
        return super().call_soon_threadsafe(  # type: ignore[misc]
            callback, *args, context=contextvars.copy_context() if context is None else context
        )


@functools.lru_cache(maxsize=None)
def plain_rloop_class() -> type:
    """rloop's loop class without its unclosed-socket warnings, nothing else changed: a baseline for measurements."""
    import rloop  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return type("RLoop", (ClosesItsSockets, rloop.RLoop), {"__module__": rloop.RLoop.__module__})
