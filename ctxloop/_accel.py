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
* the accelerator was not built for this Python;
* on free-threaded CPython, importing it turned the GIL on (a module built
  without declaring that it runs without the GIL, an old build say): it is
  not used, and CPython's warning about it reaches the user.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Optional

__all__ = ["DISABLE_VARIABLE", "gil_status", "implementation", "speedups"]

DISABLE_VARIABLE = "CTXLOOP_NO_SPEEDUPS"

speedups: Optional[Any] = None  # the ctxloop._speedups module, when in use
_why_not: str


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def _import_keeping_the_gil_off() -> Any:
    """Import ctxloop._speedups; on a free-threaded build, refuse it if importing it turned the GIL on."""
    if _gil_enabled():
        from . import _speedups  # type: ignore[attr-defined]

        return _speedups
    # CPython turns the GIL on for good when it loads a module that does not
    # declare Py_MOD_GIL_NOT_USED (this one does; an old build might not), and
    # says so in a RuntimeWarning, which -W error would turn into a failed
    # import of ctxloop. That warning means "not usable": the module is left
    # out, and the warning is passed on for the user to see.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from . import _speedups  # type: ignore[attr-defined]
    if _gil_enabled():
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        raise ImportError("importing it turned the GIL on (it does not declare that it runs without the GIL)")
    for warning in caught:  # anything else is passed on unchanged
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return _speedups


if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
    _why_not = f"{DISABLE_VARIABLE} is set"
elif sys.implementation.name != "cpython":
    _why_not = f"the accelerator is for CPython, this is {sys.implementation.name}"
else:
    try:
        speedups = _import_keeping_the_gil_off()
    except ImportError as error:
        _why_not = f"the compiled accelerator is not usable here: {error}"
    else:
        _why_not = ""


def implementation() -> str:
    """One line saying which implementation is in use, and why."""
    if speedups is not None:
        return f"compiled accelerator ({os.path.basename(speedups.__file__)})"
    return f"pure Python ({_why_not})"


def gil_status() -> str:
    """One line saying whether this interpreter runs with the GIL, for reports."""
    import sysconfig

    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "enabled (not a free-threaded build)"
    if _gil_enabled():
        return "enabled on a free-threaded build (PYTHON_GIL=1, -X gil=1, or a module that needs it)"
    return "disabled (free-threaded build)"
