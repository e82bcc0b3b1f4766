"""S1-S8: what a task created through ctxloop sees, on every loop and entry point."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import io
import sys
from typing import Any, Callable, List

import pytest
from conftest import RLOOP_BASE_EXCEPTIONS

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


# The ways to create a task that ctxloop offers; each takes (coro, name=, context=).
def _via_module(coro: Any, **kw: Any) -> "asyncio.Task[Any]":
    return ctxloop.create_task(coro, **kw)


def _via_loop(coro: Any, **kw: Any) -> "asyncio.Task[Any]":
    return asyncio.get_running_loop().create_task(coro, **kw)


def _via_task_class(coro: Any, **kw: Any) -> "asyncio.Task[Any]":
    return ctxloop.Task(coro, loop=asyncio.get_running_loop(), **kw)


CREATORS = {"ctxloop.create_task": _via_module, "loop.create_task": _via_loop, "ctxloop.Task": _via_task_class}


@pytest.fixture(params=list(CREATORS))
def spawn(request: pytest.FixtureRequest) -> Callable[..., "asyncio.Task[Any]"]:
    return CREATORS[request.param]


def test_s1_copy_taken_at_creation_not_first_step(run: Callable[..., Any], spawn: Any) -> None:
    async def child() -> str:
        seen = var.get()
        var.set("child")
        return seen

    async def main() -> None:
        var.set("before")
        task = spawn(child())
        var.set("after")  # the child has not run yet: it must not see this
        assert await task == "before"
        assert var.get() == "after"

    run(main())


def test_s2_task_runs_in_the_given_context_itself(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.copy_context()
    steps: List[str] = []

    async def child() -> None:
        var.set("set by child")
        await asyncio.sleep(0)
        steps.append(var.get())  # set in ctx by someone else between our steps
        var.set("final")

    async def main() -> None:
        var.set("main")
        task = spawn(child(), context=ctx)
        await asyncio.sleep(0)
        assert ctx[var] == "set by child"
        ctx.run(var.set, "set between steps")
        await task
        assert var.get() == "main"

    run(main())
    assert steps == ["set between steps"]
    assert ctx[var] == "final"


def test_s2_two_tasks_share_one_context(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.Context()
    order: List[str] = []

    async def worker(name: str) -> None:
        for i in range(3):
            order.append(f"{name}{i}:{var.get()}")
            var.set(f"{name}{i}")
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(spawn(worker("a"), context=ctx), spawn(worker("b"), context=ctx))

    run(main())
    assert order == ["a0:unset", "b0:a0", "a1:b0", "b1:a1", "a2:b1", "b2:a2"]
    assert ctx[var] == "b2"


def test_s2_empty_context_is_used_not_replaced(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.Context()  # falsy: "context or copy_context()" would lose it

    async def child() -> str:
        seen = var.get()
        var.set("x")
        return seen

    async def main() -> None:
        var.set("outer")
        assert await spawn(child(), context=ctx) == "unset"

    run(main())
    assert ctx[var] == "x"


def test_s3_callbacks_capture_the_context_at_scheduling_time(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.copy_context()
    seen: List[str] = []

    async def child() -> None:
        loop = asyncio.get_running_loop()
        var.set("in task")
        done = loop.create_future()
        loop.call_soon(lambda: seen.append("call_soon:" + var.get()))
        loop.call_later(0, lambda: seen.append("call_later:" + var.get()))
        done.add_done_callback(lambda f: seen.append("done_callback:" + var.get()))
        var.set("later")  # callbacks already captured "in task"
        loop.call_soon(done.set_result, None)
        await done
        await asyncio.sleep(0)

    async def main() -> None:
        var.set("main")
        await spawn(child(), context=ctx)

    run(main())
    assert sorted(seen) == ["call_later:in task", "call_soon:in task", "done_callback:in task"]


def test_s4_get_context(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.copy_context()

    async def child() -> "contextvars.Context":
        var.set("child")
        task = asyncio.current_task()
        assert task is not None
        return task.get_context()  # type: ignore[attr-defined, no-any-return]

    async def main() -> None:
        bound = spawn(child(), context=ctx)
        assert await bound is ctx
        assert bound.get_context() is ctx  # type: ignore[attr-defined]
        free = spawn(child())
        own = await free
        assert own is free.get_context()  # type: ignore[attr-defined]
        assert type(own) is contextvars.Context
        assert own is not ctx
        assert own[var] == "child"
        assert var.get() == "unset"

    run(main())


def test_s5_a_real_asyncio_task(run: Callable[..., Any], spawn: Any) -> None:
    ctx = contextvars.copy_context()

    async def child_body() -> "asyncio.Task[Any]":
        await asyncio.sleep(0)
        me = asyncio.current_task()
        assert me is not None
        return me

    async def main() -> None:
        coro = child_body()
        task = spawn(coro, context=ctx, name="worker")
        assert isinstance(task, asyncio.Task)
        assert asyncio.isfuture(task)
        assert task in asyncio.all_tasks()
        assert task.get_coro() is coro
        assert task.get_name() == "worker"
        task.set_name("renamed")
        assert task.get_name() == "renamed"
        assert "child_body" in repr(task) and "renamed" in repr(task)
        await asyncio.sleep(0)
        stack = task.get_stack()
        assert [f.f_code.co_name for f in stack] == ["child_body"]
        out = io.StringIO()
        task.print_stack(file=out)
        assert "child_body" in out.getvalue()
        assert await task is task

    run(main())


def test_s5_exceptions_and_results_propagate(run: Callable[..., Any], spawn: Any) -> None:
    class Boom(Exception):
        pass

    async def fails() -> None:
        await asyncio.sleep(0)
        raise Boom("x")

    async def returns() -> int:
        await asyncio.sleep(0)
        return 42

    async def main() -> None:
        ctx = contextvars.copy_context()
        with pytest.raises(Boom, match="x"):
            await spawn(fails(), context=ctx)
        assert await spawn(returns(), context=ctx) == 42

    run(main())


def test_s5_cancellation(run: Callable[..., Any], spawn: Any) -> None:
    cleaned: List[str] = []

    async def sleeper() -> None:
        var.set("sleeper")
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(var.get())

    async def main() -> None:
        ctx = contextvars.copy_context()
        task = spawn(sleeper(), context=ctx)
        await asyncio.sleep(0)
        if sys.version_info >= (3, 9):
            task.cancel("stop now")
        else:
            task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert task.cancelled()
        if sys.version_info >= (3, 9):
            assert "stop now" in str(info.value) or "stop now" in repr(info.value.__context__)
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 1
            assert task.uncancel() == 0

    run(main())
    assert cleaned == ["sleeper"]  # the finally block ran inside the task's context


def test_s5_cancel_swallowed_keeps_running(run: Callable[..., Any], spawn: Any) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return var.get()
        return "not cancelled"

    async def main() -> None:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "bound")
        task = spawn(stubborn(), context=ctx)
        await asyncio.sleep(0)
        task.cancel()
        assert await task == "bound"

    run(main())


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_s5_keyboard_interrupt_and_system_exit_propagate(loop_name: str, exc_type: type, spawn: Any) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_BASE_EXCEPTIONS)

    async def child() -> None:
        await asyncio.sleep(0)
        raise exc_type()

    async def main() -> None:
        await spawn(child(), context=contextvars.copy_context())

    loop = ctxloop.new_event_loop(loop_name)
    try:
        with pytest.raises(exc_type):
            loop.run_until_complete(main())
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def test_s6_context_must_be_a_context(run: Callable[..., Any], spawn: Any) -> None:
    async def child() -> None:
        pass

    async def main() -> None:
        for bad, name in [(42, "int"), ({}, "dict"), ("ctx", "str")]:
            coro = child()
            with pytest.raises(TypeError, match=f"context must be a contextvars.Context, not {name}"):
                spawn(coro, context=bad)
            coro.close()

    run(main())


def test_s6_a_coroutine_is_required(run: Callable[..., Any], spawn: Any) -> None:
    async def main() -> None:
        for context in (None, contextvars.copy_context()):
            with pytest.raises(TypeError, match="a coroutine was expected, got 42"):
                spawn(42, context=context)

    run(main())


def test_s6_closed_loop(loop_name: str) -> None:
    loop = ctxloop.new_event_loop(loop_name)
    loop.close()

    async def child() -> None:
        pass

    for context in (None, contextvars.copy_context()):
        coro = child()
        with pytest.raises(RuntimeError, match="closed"):
            loop.create_task(coro, context=context)  # type: ignore[call-arg]
        coro.close()


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11+: asyncio steps the task itself (native behaviour)")
def test_s7_context_entered_before_a_later_step_fails_the_task(loop_name: str) -> None:
    ctx = contextvars.copy_context()
    resumed: List[bool] = []

    async def child() -> None:
        await asyncio.sleep(0)
        resumed.append(True)

    loop = ctxloop.new_event_loop(loop_name)
    try:
        task = loop.create_task(child(), context=ctx)  # type: ignore[call-arg]
        # Now the whole loop runs inside ctx: the task's steps cannot enter it.
        ctx.run(loop.run_until_complete, asyncio.wait([task]))
        assert isinstance(task.exception(), RuntimeError)
        assert "already entered" in str(task.exception())
        assert resumed == []
        # It never started: close it, or its deallocation warns "never awaited".
        task.get_coro().close()
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the native path exists on 3.11+ only")
def test_s8_native_path_has_no_wrapper(run: Callable[..., Any]) -> None:
    from ctxloop._binding import ContextBound

    async def child() -> Any:
        return [type(r) for r in gc.get_referents(asyncio.current_task())]

    async def main() -> None:
        for context in (None, contextvars.copy_context()):
            coro = child()
            task = asyncio.get_running_loop().create_task(coro, context=context)
            assert task.get_coro() is coro
            referent_types = await task
            assert ContextBound not in referent_types and type(coro) in referent_types
            if sys.version_info >= (3, 12):
                assert type(task) is asyncio.Task

    run(main())


def test_s5_unnamed_tasks_get_asyncio_default_names(run: Callable[..., Any], spawn: Any) -> None:
    # CPython 3.13.0-3.13.2 rename them "None" when a task factory is set.
    async def child() -> None:
        pass

    async def main() -> None:
        for context in (None, contextvars.copy_context()):
            task = spawn(child(), context=context)
            assert task.get_name().startswith("Task-"), task.get_name()
            await task

    run(main())
