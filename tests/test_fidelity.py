"""Where ctxloop must do exactly what CPython 3.12 does: factories, the Runner, debug mode.

Each behaviour is also run natively on CPython 3.12+ (a plain loop, asyncio's
own Runner) where it exists there, and must give the same result.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import sys
import threading
from typing import Any, Callable, List
from unittest import mock

import pytest
from conftest import RLOOP_310_SIGNALS, RLOOP_NO_DEBUG, run_plain

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("fidelity_var", default="unset")
scope: contextvars.ContextVar[str] = contextvars.ContextVar("fidelity_scope", default="no scope")

NATIVE = sys.version_info >= (3, 12)


def wrapping_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
    """A task factory as error trackers write them: a wrapper coroutine, keywords passed on to asyncio.Task."""

    async def wrapper() -> Any:
        scope.set("set by the wrapper")  # per-task state the wrapped coroutine reads
        return await coro

    return asyncio.Task(wrapper(), loop=loop, **kwargs)


def _wrapped_program(create: Callable[..., Any]) -> Any:
    async def child() -> str:
        seen = scope.get()
        var.set("child")
        await asyncio.sleep(0)
        return seen

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(wrapping_factory)
        assert loop.get_task_factory() is wrapping_factory
        ctx = contextvars.copy_context()
        task = create(child(), context=ctx)
        result = [await task, ctx[scope], ctx[var], scope.get(), var.get()]
        result += [task.get_context() is ctx, task.get_coro().__qualname__.rsplit(".", 1)[-1]]  # type: ignore[attr-defined]
        loop.set_task_factory(None)
        return result

    return main()


EXPECTED_WRAPPED = ["set by the wrapper", "set by the wrapper", "child", "no scope", "unset", True, "wrapper"]


def test_a_wrapping_factory_runs_its_wrapper_in_the_given_context(
    run: Callable[..., Any], loop_name: str, base_loop_factory: Any
) -> None:
    # The wrapper and the coroutine it wraps both run in ctx itself: the
    # wrapper's state reaches the coroutine, their writes reach ctx and never
    # the creator. On 3.8-3.10 asyncio's Task takes no context=, so the factory
    # cannot be given it: ctxloop makes the task it returns step in ctx.
    def through_loop(coro: Any, context: Any) -> Any:
        return asyncio.get_running_loop().create_task(coro, context=context)  # type: ignore[call-arg]

    assert run(_wrapped_program(through_loop)) == EXPECTED_WRAPPED
    assert run(_wrapped_program(ctxloop.create_task)) == EXPECTED_WRAPPED
    # ctxloop.create_task on a loop ctxloop did not make, too.
    assert run_plain(base_loop_factory, _wrapped_program(ctxloop.create_task)) == EXPECTED_WRAPPED
    if NATIVE and loop_name == "asyncio":
        assert run_plain(base_loop_factory, _wrapped_program(through_loop)) == EXPECTED_WRAPPED


def test_get_task_factory_returns_what_was_set(run: Callable[..., Any]) -> None:
    marked = mock.Mock(wraps=wrapping_factory)
    marked._already_patched = True  # libraries recognise their own factory by a marker

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert loop.get_task_factory() is None
        for factory in (marked, wrapping_factory, None):
            loop.set_task_factory(factory)
            assert loop.get_task_factory() is factory
        if sys.version_info >= (3, 12):
            loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
            got = loop.get_task_factory()
            # anyio recognises the eager factory by its code object
            assert got is asyncio.eager_task_factory and got.__code__ is asyncio.eager_task_factory.__code__  # type: ignore[attr-defined, union-attr]
            loop.set_task_factory(None)

    run(main())


# --- the Runner -------------------------------------------------------------


def _interrupted(also_cancelled: bool) -> Any:
    async def main() -> None:
        if also_cancelled:
            me = asyncio.current_task()
            assert me is not None
            me.cancel()  # cancelled for another reason as well
        # raise_signal: to this thread (a signal to the process may reach another thread
        # and be handled only after the run, outside the Runner's handler)
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGINT)
        await asyncio.sleep(3600)

    return main()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT handling is main-thread")
@pytest.mark.parametrize("also_cancelled", [False, True])
def test_ctrl_c_and_another_cancel_of_the_main_task(loop_name: str, also_cancelled: bool) -> None:
    if loop_name == "rloop" and sys.version_info < (3, 11) and not also_cancelled:
        pytest.skip(RLOOP_310_SIGNALS)
    # 3.12: KeyboardInterrupt only when the interrupt's cancel is the only one.
    expected = asyncio.CancelledError if also_cancelled else KeyboardInterrupt
    with pytest.raises(expected):
        ctxloop.run(_interrupted(also_cancelled), loop_factory=ctxloop.loop_factory(loop_name))
    if sys.version_info >= (3, 11):
        with pytest.raises(expected):
            asyncio.run(_interrupted(also_cancelled))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_runner_takes_a_loop_like_object_as_asyncio_does() -> None:
    # asyncio's Runner uses whatever the factory returns; ctxloop leaves an
    # object that is not an asyncio.AbstractEventLoop as it is.
    def fake_loop() -> Any:
        loop = mock.Mock()
        loop.run_until_complete.side_effect = lambda awaitable: awaitable.close()
        return loop

    made: List[Any] = []

    def factory() -> Any:
        made.append(fake_loop())
        return made[-1]

    with ctxloop.Runner(loop_factory=factory) as runner:
        assert runner.get_loop() is made[0]
        assert "create_task" not in vars(made[0]) or not isinstance(vars(made[0])["create_task"], type(factory))
    assert made[0].close.called
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.get_loop() is made[1]


# --- debug mode -------------------------------------------------------------


def _created_at(create: Callable[..., Any], loop_name: str) -> Any:
    async def child() -> None:
        pass

    async def main() -> Any:
        task = create(child())
        where = [(entry.filename, entry.name) for entry in task._source_traceback[-1:]]
        text = repr(task)
        await task
        return where, text

    return ctxloop.run(main(), debug=True, loop_factory=ctxloop.loop_factory(loop_name))


@pytest.mark.parametrize(
    "create",
    [
        lambda coro: ctxloop.Task(coro, context=contextvars.copy_context()),
        ctxloop.Task,
        lambda coro: ctxloop.create_task(coro, context=contextvars.copy_context()),
        ctxloop.create_task,
        lambda coro: asyncio.get_running_loop().create_task(coro, context=contextvars.copy_context()),
        lambda coro: ctxloop.task_factory(asyncio.get_running_loop(), coro, context=contextvars.copy_context()),
        lambda coro: ctxloop.task_factory(asyncio.get_running_loop(), coro),
    ],
    ids=[
        "Task(context=)",
        "Task()",
        "create_task(context=)",
        "create_task()",
        "loop.create_task(context=)",
        "task_factory(context=)",
        "task_factory()",
    ],
)
def test_debug_mode_says_created_at_the_callers_line(loop_name: str, create: Callable[..., Any]) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_NO_DEBUG)
    where, text = _created_at(create, loop_name)
    assert where[0][0] == __file__ and where[0][1] in ("<lambda>", "main")
    assert f"created at {__file__}:" in text
