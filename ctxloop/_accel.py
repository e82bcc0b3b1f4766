"""Whether ctxloop uses its optional compiled accelerator: decided once, here, at import.

``ctxloop._speedups`` (built from ``ctxloop/_speedups.c`` where a C compiler
was available) does the hot path of task creation in C: a ctxloop loop's
``create_task``, the checks of ``context=`` (S6, S7) and, on Python
3.8-3.10, the binding of a coroutine to its Context. It is never required:
every module keeps its pure-Python implementation, which behaves the same,
and the accelerator hands anything but the common case back to it.

Pure Python is used when:

* the environment variable ``CTXLOOP_NO_SPEEDUPS`` is set to anything but
  ``""`` or ``"0"`` when ctxloop is imported;
* the interpreter is not CPython (PyPy's JIT runs the pure-Python code);
* the accelerator was not built for this Python.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

__all__ = ["DISABLE_VARIABLE", "implementation", "speedups"]

DISABLE_VARIABLE = "CTXLOOP_NO_SPEEDUPS"

speedups: Optional[Any] = None  # the ctxloop._speedups module, when in use
_why_not: str

if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
    _why_not = f"{DISABLE_VARIABLE} is set"
elif sys.implementation.name != "cpython":
    _why_not = f"the accelerator is for CPython, this is {sys.implementation.name}"
else:
    try:
        from . import _speedups as speedups  # type: ignore[attr-defined, no-redef]
    except ImportError:
        _why_not = "the compiled accelerator is not built for this Python"
    else:
        _why_not = ""


def implementation() -> str:
    """One line saying which implementation is in use, and why."""
    if speedups is not None:
        return f"compiled accelerator ({os.path.basename(speedups.__file__)})"
    return f"pure Python ({_why_not})"
