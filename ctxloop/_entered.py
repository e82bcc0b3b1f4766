"""Whether a Context is entered, and where: read without entering it.

A Context is *entered* while ``Context.run`` executes in it, in this thread or
another. Python has no API to ask, and entering a context to find out (the
probe ``context.run(f)``, which raises ``RuntimeError`` when it is entered) is
only safe where entering is atomic: under the GIL. Without the GIL the probe
would race another thread's own ``context.run`` of the same context (making
it fail with "cannot enter context ... is already entered"), and on CPython
3.13t entering is not atomic at all. So ``is_entered()`` is decided once, here:

* CPython with the GIL: the probe. Entering runs no Python code there, so
  under the GIL nothing can interleave with it; it is also the cheapest test
  in pure Python (an interpreted read of the field below costs twice as much).
* free-threaded CPython: a read of the context object's ``ctx_entered`` field
  (an ``int`` after the object header and three pointers, in every CPython
  from 3.7 to 3.15).
* PyPy: a read of the context's ``_is_entered`` attribute. PyPy's
  ``Context.run`` is Python code, which another thread can interleave with
  even under the GIL: probing would make that thread's own ``Context.run``
  fail (one in ten, in a stress test).

Each reader is used only after a self-test has seen it read False, then True
inside ``Context.run``, then False again. Where none passes, nothing tells an
entered context apart, and every context counts as not entered: what CPython
itself does (a task given a context entered in another thread then fails when
it runs, as natively).

The compiled accelerator reads the same field in C, with the same self-test,
on every CPython (see ``_speedups.c``).

``entered_chain()`` gives the contexts entered in this thread, innermost
first, decided once, when first needed: on CPython from each Context's
``prev`` link (the first field after the object header), used only after a
self-test has read a known chain back exactly; on PyPy from the frames of its
pure-Python ``Context.run``; None elsewhere or when the self-test fails.
"""

from __future__ import annotations

import contextvars
import gc
import sys
import sysconfig
import threading
from types import FrameType
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["FREE_THREADED", "entered_chain", "entered_test", "is_entered"]

_Context = contextvars.Context
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# Entering a Context runs the callable given: a C function taking no argument
# and returning a constant is the cheapest probe of "can it be entered now".
_PROBE = gc.isenabled
_MAX_DEPTH = 10_000  # a chain is never this deep; a bound in case memory is not what it should be


def _reads_entered_exactly(entered: Callable[[contextvars.Context], bool]) -> bool:
    """The self-test of a reader of "entered": a known context reads False, True inside run, False again."""
    context, other = _Context(), _Context()
    seen: List[Tuple[bool, bool]] = []
    before = entered(context)
    context.run(lambda: seen.append((entered(context), entered(other))))
    return not before and seen == [(True, False)] and not entered(context)


def _field_reader() -> Optional[Callable[[contextvars.Context], bool]]:
    """CPython: a reader of each Context's ``ctx_entered`` field, if the self-test passes."""
    if sys.implementation.name != "cpython" or type(_Context.run).__name__ != "method_descriptor":
        return None
    import ctypes

    offset = object.__basicsize__ + 3 * ctypes.sizeof(ctypes.c_void_p)
    read = ctypes.c_int.from_address

    def entered(context: contextvars.Context) -> bool:
        return read(id(context) + offset).value != 0

    return entered if _reads_entered_exactly(entered) else None


def _attribute_reader() -> Optional[Callable[[contextvars.Context], bool]]:
    """PyPy: a reader of each Context's ``_is_entered`` attribute (set by its run), if the self-test passes."""
    if not hasattr(_Context(), "_is_entered"):
        return None

    def entered(context: contextvars.Context) -> bool:
        return context._is_entered  # type: ignore[attr-defined, no-any-return]

    return entered if _reads_entered_exactly(entered) else None


def _not_known(context: contextvars.Context) -> bool:
    return False


# Entering is atomic where the GIL is held throughout Context.run's C code.
_PROBE_IS_ATOMIC = sys.implementation.name == "cpython" and not FREE_THREADED


_resolve_lock = threading.Lock()
_entered: Optional[Callable[[contextvars.Context], bool]] = None


def _resolved() -> Callable[[contextvars.Context], bool]:
    global _entered
    with _resolve_lock:  # once: the self-test enters a context of its own
        if _entered is None:
            reader = _attribute_reader if sys.implementation.name == "pypy" else _field_reader
            _entered = reader() or _not_known
    return _entered


def entered_test() -> str:
    """How this interpreter tells whether a Context is entered (for reports)."""
    from ._accel import speedups

    if speedups is not None:
        readable = speedups.entered_flag_readable
    elif _PROBE_IS_ATOMIC:
        return "tested by entering them (atomic under the GIL)"
    else:
        readable = _resolved() is not _not_known
    return "read from each context's entered flag" if readable else "not known (an unknown context layout)"


if not _PROBE_IS_ATOMIC:

    def is_entered(context: contextvars.Context) -> bool:
        """Whether ``Context.run`` is executing in *context* right now (in any thread)."""
        return (_entered or _resolved())(context)

else:

    def is_entered(context: contextvars.Context) -> bool:
        """Whether ``Context.run`` is executing in *context* right now (in any thread)."""
        try:
            context.run(_PROBE)
        except RuntimeError:
            return True
        return False


# --- the chain of contexts entered in this thread ---


def _read_back_a_known_chain(
    chain: Callable[[], List[contextvars.Context]],
) -> Optional[Tuple[contextvars.Context, contextvars.Context]]:
    """The self-test of a chain reader: the two contexts it read back, innermost first, or None."""
    outer, inner = _Context(), _Context()
    seen: List[List[int]] = []
    outer.run(inner.run, lambda: seen.append([id(c) for c in chain()[:2]]))
    return (inner, outer) if seen == [[id(inner), id(outer)]] else None


def _chain_from_prev_links() -> Optional[Callable[[], List[contextvars.Context]]]:
    """CPython: a reader of the chain through each Context's ``prev`` link, if the self-test passes."""
    import ctypes

    offset = object.__basicsize__  # the link follows the object header
    read = ctypes.c_void_p.from_address
    by_address = ctypes.cast

    def prev(context_address: int) -> int:
        return read(context_address + offset).value or 0

    def chain() -> List[contextvars.Context]:
        found: List[contextvars.Context] = []
        probe = _Context()

        def walk() -> None:
            address = prev(id(probe))
            seen = set()
            # A context entered on top of itself (a thread's base context,
            # current without having been entered, then entered: terminal
            # IPython does it) links to itself: the chain ends there.
            while address and address not in seen and len(found) < _MAX_DEPTH:
                seen.add(address)
                found.append(by_address(address, ctypes.py_object).value)
                address = prev(address)

        probe.run(walk)
        return found

    read_back = _read_back_a_known_chain(chain)
    if read_back is None or any(prev(id(context)) for context in read_back):
        return None  # not the layout this relies on (or links left after exit): never read it
    return chain


def _chain_from_run_frames() -> Optional[Callable[[], List[contextvars.Context]]]:
    """PyPy: its Context.run is Python code, so each entered context is a ``self`` in a run frame."""
    code = getattr(_Context.run, "__code__", None)
    if code is None:
        return None

    def chain() -> List[contextvars.Context]:
        found: List[contextvars.Context] = []
        frame: Optional[FrameType] = sys._getframe(1)
        while frame is not None:
            if frame.f_code is code:
                found.append(frame.f_locals["self"])
            frame = frame.f_back
        return found

    return chain if _read_back_a_known_chain(chain) is not None else None


_NOT_YET = object()
_chain_reader: Any = _NOT_YET  # decided when first needed (ctypes is not imported with ctxloop)


def _find_chain_reader() -> Optional[Callable[[], List[contextvars.Context]]]:
    if sys.implementation.name == "cpython" and type(_Context.run).__name__ == "method_descriptor":
        return _chain_from_prev_links()
    if sys.implementation.name == "pypy":
        return _chain_from_run_frames()
    return None  # pragma: no cover - another implementation: only the current and the task's own context


def entered_chain() -> Optional[List[contextvars.Context]]:
    """The contexts entered in this thread, the current one first; None where it cannot be read."""
    global _chain_reader
    if _chain_reader is _NOT_YET:
        with _resolve_lock:
            if _chain_reader is _NOT_YET:
                _chain_reader = _find_chain_reader()
    return None if _chain_reader is None else _chain_reader()  # type: ignore[no-any-return]
