"""ctxloop loops: a base loop (asyncio's, uvloop's, any factory's) that honours ``context=``.

A ctxloop loop is the base loop object itself, with three instance attributes:

* its task factory is ``chain_task_factory(<the factory it had>)``, so every
  task it makes follows S1-S7, and ``set_task_factory(f)`` chains ``f`` too
  (chain, never overwrite);
* on 3.8-3.10, ``create_task`` also takes ``context=`` (3.11's signature), which
  asyncio's and uvloop's loops lack there.

Everything else (I/O, subprocesses, signals, executors, debug) is the base loop's.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from typing import Any, Callable, Coroutine, Optional, Union

from ._binding import bind_task
from ._factory import TaskFactory, chain_task_factory, task_factory
from ._task import _known_create_task, _Task, introspectable

__all__ = ["LoopBase", "enable", "import_uvloop", "loop_factory", "new_event_loop", "resolve_base"]

LoopBase = Union[None, str, Callable[[], asyncio.AbstractEventLoop]]

_MARK = "_ctxloop_enabled"

if sys.platform == "win32":  # pragma: no cover - asyncio's default loop there
    _ASYNCIO_LOOP: Callable[[], asyncio.AbstractEventLoop] = asyncio.ProactorEventLoop
else:
    _ASYNCIO_LOOP = asyncio.SelectorEventLoop


def import_uvloop() -> Any:
    """Import uvloop (an optional dependency), or raise a clear error."""
    try:
        import uvloop
    except ImportError:
        raise ModuleNotFoundError(
            "ctxloop: base='uvloop' needs the uvloop package, which is not installed "
            "for this Python; install it with: pip install 'ctxloop[uvloop]'",
            name="uvloop",
        ) from None
    return uvloop


def resolve_base(base: LoopBase) -> Callable[[], asyncio.AbstractEventLoop]:
    """Turn a ``base=`` argument into a zero-argument loop factory, or raise."""
    if base is None or base == "asyncio":
        return _ASYNCIO_LOOP
    if base == "uvloop":
        return import_uvloop().new_event_loop  # type: ignore[no-any-return]
    if isinstance(base, str):
        raise ValueError(f"unknown loop {base!r}: expected None, 'asyncio', 'uvloop' or a zero-argument loop factory")
    if not callable(base):
        raise TypeError(
            "base must be None, 'asyncio', 'uvloop' or a zero-argument callable "
            f"returning an event loop, not {type(base).__name__}"
        )
    return base


def _task_factory_via_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
    # ctxloop.create_task makes the task itself when a loop's factory is
    # ctxloop's own task_factory, skipping a create_task that would do nothing
    # more. A loop class with a create_task of its own (which may do more) gets
    # this distinct but equivalent factory instead, so it is never skipped.
    return task_factory(loop, coro, **kwargs)


_task_factory_via_loop.__ctxloop_chained__ = True  # type: ignore[attr-defined]


def _factory_for(loop: asyncio.AbstractEventLoop, factory: Optional[TaskFactory]) -> TaskFactory:
    chained = chain_task_factory(factory)
    if chained is task_factory and not _known_create_task(loop):
        return _task_factory_via_loop
    return chained


def _set_task_factory(loop: asyncio.AbstractEventLoop, factory: Optional[TaskFactory]) -> None:
    type(loop).set_task_factory(loop, _factory_for(loop, factory))


if sys.version_info < (3, 11):

    def _create_task(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Task[Any]:
        bound = coro if context is None else bind_task(coro, context)
        task = type(loop).create_task(loop, bound, name=name)  # type: ignore[arg-type]
        return introspectable(task, coro, context)  # type: ignore[no-any-return]

    def _direct_create_task(loop: asyncio.AbstractEventLoop) -> Callable[..., asyncio.Task[Any]]:
        # For a loop whose class's create_task is asyncio's or uvloop's: with
        # ctxloop's own factory, that create_task would check the loop is
        # open, call the factory (a Python frame) and name the task; this does
        # the same with no frame besides its own. Any other factory, or a
        # create_task of another class (which may do more), takes the full path.
        if isinstance(loop, asyncio.BaseEventLoop):

            def create_task(
                coro: Coroutine[Any, Any, Any],
                *,
                name: Optional[str] = None,
                context: Optional[contextvars.Context] = None,
            ) -> asyncio.Task[Any]:
                if loop._task_factory is not task_factory:  # type: ignore[attr-defined]
                    return _create_task(loop, coro, name=name, context=context)
                if loop._closed:  # type: ignore[attr-defined]
                    raise RuntimeError("Event loop is closed")  # BaseEventLoop._check_closed()
                if context is not None:
                    coro = bind_task(coro, context)
                task: Any = _Task(coro, loop=loop, name=name)
                if task._source_traceback:  # debug mode: "created at" the caller's line, as asyncio's
                    del task._source_traceback[-1]
                return task  # type: ignore[no-any-return]

        else:
            get_task_factory = loop.get_task_factory
            is_closed = loop.is_closed

            def create_task(
                coro: Coroutine[Any, Any, Any],
                *,
                name: Optional[str] = None,
                context: Optional[contextvars.Context] = None,
            ) -> asyncio.Task[Any]:
                if get_task_factory() is not task_factory:
                    return _create_task(loop, coro, name=name, context=context)
                if is_closed():
                    raise RuntimeError("Event loop is closed")
                if context is not None:
                    coro = bind_task(coro, context)
                return _Task(coro, loop=loop, name=name)

        return create_task


# CPython 3.13.0-3.13.2: BaseEventLoop.create_task() with a task factory calls
# task.set_name(name) even when name is None, renaming every unnamed task
# "None" (CPython gh-130033). A ctxloop loop always has a factory, so on those
# versions its create_task hands the name to the factory instead.
_RENAMES_TO_NONE = (3, 13, 0) <= sys.version_info[:3] < (3, 13, 3)


def _create_task_keeping_name(
    loop: asyncio.BaseEventLoop,
    coro: Coroutine[Any, Any, Any],
    *,
    name: Optional[str] = None,
    context: Optional[contextvars.Context] = None,
) -> asyncio.Task[Any]:
    loop._check_closed()  # type: ignore[attr-defined]
    factory = loop.get_task_factory()
    assert factory is not None
    return factory(loop, coro, name=name, context=context)  # type: ignore[call-arg, return-value]


def enable(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """Make *loop* a ctxloop loop, in place; return it. Idempotent."""
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"expected an asyncio.AbstractEventLoop, got {type(loop).__name__}")
    # getattr/setattr, never loop.__dict__: reading __dict__ turns the inline
    # attribute values of CPython 3.11/3.12 into a real dict, after which every
    # attribute and method lookup on the loop (call_soon, _run_once, ...) is
    # slower: +14% (3.11) and +24% (3.12) per task step on asyncio's loop.
    if getattr(loop, _MARK, False):
        return loop
    type(loop).set_task_factory(loop, _factory_for(loop, loop.get_task_factory()))
    # Bound methods in the instance dict: the loop's class (and every other
    # loop of it) stays untouched.
    loop.set_task_factory = types.MethodType(_set_task_factory, loop)  # type: ignore[method-assign]
    if sys.version_info < (3, 11):
        if _known_create_task(loop):
            loop.create_task = _direct_create_task(loop)  # type: ignore[method-assign]
        else:
            loop.create_task = types.MethodType(_create_task, loop)  # type: ignore[method-assign]
    elif _RENAMES_TO_NONE and isinstance(loop, asyncio.BaseEventLoop) and _known_create_task(loop):
        loop.create_task = types.MethodType(_create_task_keeping_name, loop)  # type: ignore[method-assign]
    setattr(loop, _MARK, True)
    return loop


def new_event_loop(base: LoopBase = None) -> asyncio.AbstractEventLoop:
    """Return a new ctxloop loop built on *base*.

    *base* is None or ``"asyncio"`` (asyncio's default loop), ``"uvloop"``, or a
    zero-argument callable returning an ``asyncio.AbstractEventLoop``. The loop
    is that loop, unchanged except that ``create_task(coro, *, name=None,
    context=None)`` works on every Python with 3.12's semantics, for every
    caller, and task factories set on it are chained.
    """
    return enable(resolve_base(base)())


def loop_factory(base: LoopBase = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a zero-argument callable making ctxloop loops on *base*.

    For ``asyncio.run(main, loop_factory=...)`` (3.12+), ``asyncio.Runner``,
    ``ctxloop.run``, anyio's ``backend_options={"loop_factory": ...}`` and
    pytest-asyncio. *base* is checked now: an unknown name, or ``"uvloop"``
    when uvloop is not installed, raises here rather than in the first run.
    """
    make_base = resolve_base(base)

    def factory() -> asyncio.AbstractEventLoop:
        return enable(make_base())

    factory.__qualname__ = factory.__name__ = f"loop_factory({base!r})"
    return factory
