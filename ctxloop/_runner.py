"""Runner and run(): asyncio.Runner / asyncio.run with 3.12 semantics on every Python.

3.11+: asyncio's own Runner; ctxloop only makes the loop it creates a ctxloop
loop. 3.8-3.10: a backport of 3.12's Runner (one context per runner, a main
task created with ``context=``, Ctrl-C cancels the main task and then raises
``KeyboardInterrupt`` unless the task was also cancelled for another reason,
async generators and the default executor shut down).

A *loop_factory* may return an object that is not an
``asyncio.AbstractEventLoop`` (asyncio's Runner accepts any loop-like object,
a test double say): it is used as it is, without ctxloop's ``create_task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, Callable, Coroutine, List, Optional, Type, TypeVar

from ._loop import enable

__all__ = ["Runner", "run"]

_T = TypeVar("_T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

if sys.version_info >= (3, 11):

    class Runner(asyncio.Runner):  # type: ignore[misc]  # final in typeshed only
        """``asyncio.Runner`` whose loop is a ctxloop loop.

        Same contract as asyncio's: ``with Runner(debug=..., loop_factory=...)
        as r: r.run(coro, context=ctx)``. Without *loop_factory* the loop
        comes from the current policy, as in asyncio.
        """

        def _lazy_init(self) -> None:
            super()._lazy_init()  # type: ignore[misc]
            _enable_if_a_loop(self._loop)  # type: ignore[attr-defined]

else:

    class _State(enum.Enum):
        CREATED = "created"
        INITIALIZED = "initialized"
        CLOSED = "closed"

    class Runner:  # type: ignore[no-redef]
        """A backport of Python 3.12's ``asyncio.Runner`` running ctxloop loops.

        ``with Runner(debug=..., loop_factory=...) as r: r.run(coro,
        context=ctx)``: each ``run`` creates its main task in *context*, or in
        the runner's own context, copied once when the loop is created, so
        values set by one ``run`` are seen by the next.
        """

        def __init__(self, *, debug: Optional[bool] = None, loop_factory: Optional[LoopFactory] = None) -> None:
            self._state = _State.CREATED
            self._debug = debug
            self._loop_factory = loop_factory
            self._loop: Optional[asyncio.AbstractEventLoop] = None
            self._context: Optional[contextvars.Context] = None
            self._interrupt_count = 0
            self._set_event_loop = False

        def __enter__(self) -> "Runner":
            self._lazy_init()
            return self

        def __exit__(
            self,
            exc_type: Optional[Type[BaseException]],
            exc_val: Optional[BaseException],
            exc_tb: Optional[TracebackType],
        ) -> None:
            self.close()

        def close(self) -> None:
            """Shut down and close the loop (a no-op unless initialised)."""
            if self._state is not _State.INITIALIZED:
                return
            loop = self._loop
            assert loop is not None
            try:
                _cancel_all_tasks(loop)
                _run_coroutine(loop, loop.shutdown_asyncgens())
                _shutdown_default_executor(loop)
            finally:
                if self._set_event_loop:
                    asyncio.set_event_loop(None)
                loop.close()
                self._loop = None
                self._state = _State.CLOSED

        def get_loop(self) -> asyncio.AbstractEventLoop:
            """Return the runner's loop, creating it if needed."""
            self._lazy_init()
            assert self._loop is not None
            return self._loop

        def run(self, coro: Coroutine[Any, Any, _T], *, context: Optional[contextvars.Context] = None) -> _T:
            """Run *coro* as the main task, in *context* or the runner's context."""
            if not asyncio.iscoroutine(coro):
                raise ValueError(f"a coroutine was expected, got {coro!r}")
            if asyncio._get_running_loop() is not None:
                # Same message as asyncio's.
                raise RuntimeError("Runner.run() cannot be called from a running event loop")
            self._lazy_init()
            loop = self._loop
            assert loop is not None
            if context is None:
                context = self._context
            task = loop.create_task(coro, context=context)  # type: ignore[call-arg]
            cancel_requests = _count_cancel_requests(task)

            if threading.current_thread() is threading.main_thread() and (
                signal.getsignal(signal.SIGINT) is signal.default_int_handler
            ):
                sigint_handler: Any = functools.partial(self._on_sigint, main_task=task)
                try:
                    signal.signal(signal.SIGINT, sigint_handler)
                except ValueError:
                    # Not the main interpreter (embedded): leave SIGINT alone.
                    sigint_handler = None
            else:
                sigint_handler = None

            self._interrupt_count = 0
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                # 3.12 raises KeyboardInterrupt when uncancel() brings the task's
                # cancel requests to 0, i.e. the interrupt's was the only one.
                # Chained to the CancelledError, as 3.12's Runner does. A task
                # factory's object that is not an asyncio.Task (3.12 would find
                # no uncancel() on it) gets the CancelledError, as in 3.12.
                interrupted = self._interrupt_count > 0 and isinstance(task, asyncio.Task)
                if interrupted and cancel_requests[0] - 1 == 0:
                    raise KeyboardInterrupt()  # noqa: B904
                raise
            finally:
                _stop_counting(task)
                if sigint_handler is not None and signal.getsignal(signal.SIGINT) is sigint_handler:
                    signal.signal(signal.SIGINT, signal.default_int_handler)

        def _lazy_init(self) -> None:
            if self._state is _State.CLOSED:
                raise RuntimeError("Runner is closed")
            if self._state is _State.INITIALIZED:
                return
            if self._loop_factory is None:
                self._loop = enable(asyncio.new_event_loop())
                if not self._set_event_loop:
                    # Once only: attaching child watchers twice is an error.
                    asyncio.set_event_loop(self._loop)
                    self._set_event_loop = True
            else:
                self._loop = _enable_if_a_loop(self._loop_factory())
            if self._debug is not None:
                self._loop.set_debug(self._debug)
            self._context = contextvars.copy_context()
            self._state = _State.INITIALIZED

        def _on_sigint(self, signum: int, frame: Optional[FrameType], main_task: "asyncio.Task[Any]") -> None:
            self._interrupt_count += 1
            if self._interrupt_count == 1 and not main_task.done():
                main_task.cancel()
                assert self._loop is not None
                # Wake the loop if select() sleeps with a long timeout.
                self._loop.call_soon_threadsafe(lambda: None)
                return
            raise KeyboardInterrupt()

    def _count_cancel_requests(task: Any) -> List[int]:
        # Tasks count cancel requests from 3.11 (cancelling()/uncancel()); the
        # runner's main task counts them here, through an instance attribute
        # that run() removes again (it holds the task: a cycle until then).
        requests = [0]
        cancel = task.cancel

        def counting_cancel(*args: Any, **kwargs: Any) -> bool:
            if not task.done():
                requests[0] += 1
            return cancel(*args, **kwargs)  # type: ignore[no-any-return]

        task.cancel = counting_cancel
        return requests

    if sys.version_info >= (3, 10):

        def _run_coroutine(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
            return loop.run_until_complete(coro)

    else:

        def _run_coroutine(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
            # run_until_complete(coro) on 3.8-3.9 reads _source_traceback of what
            # the task factory returned, which a duck-typed task lacks (3.10+ and
            # asyncio.run on 3.12 do not read it): the task is made here instead.
            return loop.run_until_complete(loop.create_task(coro))

    def _stop_counting(task: Any) -> None:
        try:
            del task.cancel
        except AttributeError:
            pass

    def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
        to_cancel = asyncio.all_tasks(loop)
        if not to_cancel:
            return
        for task in to_cancel:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
        for task in to_cancel:
            if task.cancelled():
                continue
            if task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": "unhandled exception during asyncio.run() shutdown",
                        "exception": task.exception(),
                        "task": task,
                    }
                )

    if sys.version_info >= (3, 9):

        def _shutdown_default_executor(loop: asyncio.AbstractEventLoop) -> None:
            _run_coroutine(loop, loop.shutdown_default_executor())

    else:

        def _shutdown_default_executor(loop: asyncio.AbstractEventLoop) -> None:
            # asyncio's 3.8 loop has no shutdown_default_executor() (uvloop's
            # has): wait for the executor's threads here, as 3.9+ does.
            shutdown = getattr(loop, "shutdown_default_executor", None)
            if shutdown is not None:
                _run_coroutine(loop, shutdown())
                return
            executor = getattr(loop, "_default_executor", None)
            if executor is not None:
                executor.shutdown(wait=True)


def _enable_if_a_loop(loop: Any) -> Any:
    if isinstance(loop, asyncio.AbstractEventLoop):
        enable(loop)
    return loop


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: Optional[bool] = None,
    loop_factory: Optional[LoopFactory] = None,
    context: Optional[contextvars.Context] = None,
) -> _T:
    """``asyncio.run`` with 3.12 semantics on every Python, on a ctxloop loop.

    Runs *main* as a task in *context* (or in a copy of the current context),
    on a new loop from *loop_factory* (or from the current policy), then
    cancels what is left, shuts down async generators and the default
    executor, and closes the loop.
    """
    if asyncio._get_running_loop() is not None:
        # asyncio's message, naming the call made, and what to write instead
        # where a loop already runs (a notebook cell can await at its top level).
        name = getattr(main, "__name__", "main")
        raise RuntimeError(
            "ctxloop.run() cannot be called from a running event loop: await the coroutine instead "
            f"(in a Jupyter or IPython cell, write await {name}(...) rather than ctxloop.run({name}(...)))"
        )
    with Runner(debug=debug, loop_factory=loop_factory) as runner:
        return runner.run(main, context=context)
