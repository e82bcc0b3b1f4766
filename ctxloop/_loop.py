"""ctxloop loops: a base loop (asyncio's, uvloop's, any factory's) whose ``create_task`` has 3.12's semantics.

A ctxloop loop differs from its base loop in one method: ``create_task(coro,
*, name=None, context=None)`` (``**kwargs`` on 3.14+) is ``create_task_on``
(see ``_create.py``), so every caller, third-party code included, gets S1-S7
on every Python, and a task factory set on the loop is called the 3.12 way.
``get_task_factory()`` / ``set_task_factory()`` are the base loop's own: the
loop returns exactly the factory that was set (libraries recognise their own
factory by identity, a marker attribute or ``__code__``).

* A loop ctxloop creates from ``"asyncio"`` or ``"uvloop"`` is an instance of a
  subclass of the base class, made once per class, that only overrides
  ``create_task``: the instance itself is untouched, so the interpreter's
  attribute caches for the loop's own methods stay as fast as the base's.
* Any other loop (from a factory of the user's, a base policy, ``enable()``)
  gets ``create_task`` as an instance attribute; ``disable()`` removes it.

Everything else (I/O, subprocesses, signals, executors, debug) is the base loop's.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import types
from typing import Any, Callable, Dict, Tuple, Union

from ._connections import connection_methods
from ._create import create_task_on

__all__ = [
    "LoopBase",
    "disable",
    "enable",
    "LOOP_NAMES",
    "NAMED_LOOPS",
    "import_loop_package",
    "import_uvloop",
    "is_ctxloop_loop",
    "loop_class",
    "loop_factory",
    "named_loop_class",
    "new_event_loop",
    "resolve_base",
]

LoopBase = Union[None, str, Callable[[], asyncio.AbstractEventLoop]]

_ENABLED = "_ctxloop_enabled"  # an instance attribute of the loops enable() changed

if sys.platform == "win32":  # pragma: no cover - asyncio's default loop there
    _ASYNCIO_LOOP: Any = asyncio.ProactorEventLoop
else:
    _ASYNCIO_LOOP = asyncio.SelectorEventLoop


# The loop packages ctxloop knows by name: the module, its loop class, the
# Pythons it installs on (a hint when it is missing).
NAMED_LOOPS: Dict[str, Tuple[str, str, str]] = {
    "uvloop": ("uvloop", "Loop", "CPython 3.8+, not on Windows"),
    "rloop": ("rloop", "RLoop", "CPython 3.10+"),
}
LOOP_NAMES = ("asyncio", *NAMED_LOOPS)


def import_loop_package(name: str) -> Any:
    """Import the optional loop package *name* (``"uvloop"``, ``"rloop"``), or raise a clear error."""
    module, _, where = NAMED_LOOPS[name]
    try:
        return importlib.import_module(module)
    except ImportError:
        if sys.implementation.name != "cpython":  # nothing to install: it does not build here
            message = (
                f"ctxloop: base={name!r}: {module} runs on CPython only, not on {sys.implementation.name}: "
                "use base='asyncio' here"
            )
        else:
            message = (
                f"ctxloop: base={name!r} needs the {module} package, which is not installed for this Python "
                f"({sys.version_info[0]}.{sys.version_info[1]}); it installs on {where}: "
                f"pip install 'ctxloop[{name}]', or use base='asyncio'"
            )
        raise ModuleNotFoundError(message, name=module) from None


def import_uvloop() -> Any:
    """Import uvloop (an optional dependency), or raise a clear error."""
    return import_loop_package("uvloop")


def named_loop_class(name: str) -> type:
    """The loop class of the loop package *name* (imported now)."""
    return getattr(import_loop_package(name), NAMED_LOOPS[name][1])  # type: ignore[no-any-return]


_classes: Dict[type, type] = {}
_classes_lock = threading.Lock()


def loop_class(base: type) -> type:
    """The ctxloop subclass of the loop class *base* (made once per class, whichever thread asks first)."""
    cls = _classes.get(base)
    if cls is not None:
        return cls
    with _classes_lock:  # without the GIL, threads making their first loop at once would each make one
        cls = _classes.get(base)
        if cls is None:
            cls = _classes[base] = _make_loop_class(base)
    return cls


def _fixes(base: type) -> Tuple[type, ...]:
    """The classes ctxloop mixes into its subclass of *base*: what it changes on that loop besides create_task."""
    if base.__module__.partition(".")[0] == "rloop":
        from ._rloop import RLoopFixes

        return (RLoopFixes,)
    return ()


def _make_loop_class(base: type) -> type:
    return type(
        base.__name__,
        (*_fixes(base), base),
        {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
            "create_task": create_task_on,
            **connection_methods(base),
            "_ctxloop_class": True,
        },
    )


def _asyncio_loop() -> asyncio.AbstractEventLoop:
    return loop_class(_ASYNCIO_LOOP)()  # type: ignore[no-any-return]


_NAMES = ", ".join(repr(name) for name in LOOP_NAMES)


def resolve_base(base: LoopBase) -> Callable[[], asyncio.AbstractEventLoop]:
    """Turn a ``base=`` argument into a zero-argument factory of ctxloop loops, or raise."""
    if base is None or base == "asyncio":
        return _asyncio_loop
    if isinstance(base, str):
        if base not in NAMED_LOOPS:
            raise ValueError(f"unknown loop {base!r}: expected None, {_NAMES} or a zero-argument loop factory")
        cls = loop_class(named_loop_class(base))

        def make_named() -> asyncio.AbstractEventLoop:
            return cls()  # type: ignore[no-any-return]

        return make_named
    if not callable(base):
        raise TypeError(
            f"base must be None, {_NAMES} or a zero-argument callable returning an event loop, "
            f"not {type(base).__name__}"
        )

    def make() -> asyncio.AbstractEventLoop:
        return enable(base())

    return make


def is_ctxloop_loop(loop: object) -> bool:
    """Whether *loop* is a ctxloop loop (made by ctxloop, or passed to ``enable()``)."""
    return bool(getattr(loop, "_ctxloop_class", False) or getattr(loop, _ENABLED, False))


def enable(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """Make *loop*, an event loop made elsewhere, a ctxloop loop in place; return it.

    For a loop a framework or a test harness hands you: its ``create_task``
    then honours ``context=`` with 3.12's semantics on every Python (S1-S7),
    for every caller, and the connections it makes from then on keep their
    own contexts (C1-C3). Only that instance changes (its class, and every
    other loop of it, stay as they were). Idempotent; ``disable(loop)``
    undoes it (connections made meanwhile keep their contexts).
    """
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio.AbstractEventLoop, not {type(loop).__name__}")
    # getattr/setattr, never loop.__dict__: reading __dict__ turns the inline
    # attribute values of CPython 3.11+ into a real dict, after which every
    # attribute and method lookup on the loop is slower.
    if is_ctxloop_loop(loop):
        return loop
    loop.create_task = types.MethodType(create_task_on, loop)  # type: ignore[method-assign]
    # What a ctxloop loop class adds for connections, as instance attributes
    # (a property, looked up at a moment that matters, cannot be one: left out).
    added = {name: value for name, value in connection_methods(type(loop)).items() if not isinstance(value, property)}
    for name, value in added.items():
        setattr(loop, name, types.MethodType(value, loop) if isinstance(value, types.FunctionType) else value)
    setattr(loop, _ENABLED, tuple(added))
    return loop


def disable(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """Undo ``enable(loop)``: *loop*'s ``create_task`` is its class's again; return it.

    A no-op for a loop that ``enable()`` did not change. A loop that ctxloop
    created (``new_event_loop``, ``loop_factory``, the policy's loops) is a
    ctxloop loop for life: ``ValueError``.
    """
    if getattr(loop, "_ctxloop_class", False):
        raise ValueError(f"{loop!r} was created by ctxloop and stays a ctxloop loop; disable() undoes enable() only")
    added = getattr(loop, _ENABLED, None)
    if added is not None:
        del loop.create_task
        for name in added:
            delattr(loop, name)
        delattr(loop, _ENABLED)
    return loop


def new_event_loop(base: LoopBase = None) -> asyncio.AbstractEventLoop:
    """Return a new ctxloop loop built on *base*.

    *base* is None or ``"asyncio"`` (asyncio's default loop), ``"uvloop"``,
    ``"rloop"``, or a zero-argument callable returning an ``asyncio.AbstractEventLoop``. The loop
    is that loop, unchanged except that ``create_task(coro, *, name=None,
    context=None)`` works on every Python with 3.12's semantics, for every
    caller.
    """
    return resolve_base(base)()


def loop_factory(base: LoopBase = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a zero-argument callable making ctxloop loops on *base*.

    For ``asyncio.run(main, loop_factory=...)`` (3.12+), ``asyncio.Runner``,
    ``ctxloop.run``, anyio's ``backend_options={"loop_factory": ...}`` and
    pytest-asyncio. *base* is checked now: an unknown name, or ``"uvloop"``/``"rloop"``
    when that package is not installed, raises here rather than in the first run.
    """
    make = resolve_base(base)

    def factory() -> asyncio.AbstractEventLoop:
        return make()

    factory.__qualname__ = factory.__name__ = f"loop_factory({base!r})"
    return factory
