"""S7: a task given a Context that is entered right now, as CPython 3.12+ runs it.

Natively, a lazy task's first step runs in a later loop iteration: a context
that is current now (the creating task's own, a callback's, an inline
``ctx.run``) has been exited by then, so the task runs in it, sharing it with
its creator; so has a context entered by an inline ``ctx.run`` nested inside
another one, during the current step. A context entered beneath the current
step (the loop runs inside ``ctx.run``) is still entered then: natively the
task never runs, so ctxloop refuses it at creation. Every "works" case is also run on a plain loop of
CPython 3.12+ and must give the same result there.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, Callable, Coroutine, List

import pytest
from conftest import run_plain

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

NATIVE = sys.version_info >= (3, 12)


def _spawners() -> List[str]:
    return ["loop.create_task", "ctxloop.create_task", "ctxloop.Task"]


def _spawn(how: str, coro: Any, context: contextvars.Context) -> "asyncio.Task[Any]":
    loop = asyncio.get_running_loop()
    if how == "loop.create_task":
        return loop.create_task(coro, context=context)  # type: ignore[call-arg]
    if how == "ctxloop.create_task":
        return ctxloop.create_task(coro, context=context)
    return ctxloop.Task(coro, loop=loop, context=context)


def _native_spawn(how: str, coro: Any, context: contextvars.Context) -> "asyncio.Task[Any]":
    return asyncio.get_running_loop().create_task(coro, context=context)  # type: ignore[call-arg]


def _both(
    loop_name: str,
    base_loop_factory: Callable[[], Any],
    program: Callable[[Callable[..., Any]], Coroutine[Any, Any, Any]],
    how: str,
) -> Any:
    """Run *program* on a ctxloop loop; on 3.12+ also natively, and require the same result."""
    got = ctxloop.run(program(lambda c, ctx: _spawn(how, c, ctx)), loop_factory=ctxloop.loop_factory(loop_name))
    if NATIVE:
        assert run_plain(base_loop_factory, program(_native_spawn.__get__(how))) == got  # type: ignore[attr-defined]
    return got


@pytest.mark.parametrize("how", _spawners())
def test_the_creating_tasks_own_context_is_shared(loop_name: str, base_loop_factory: Any, how: str) -> None:
    async def program(spawn: Callable[..., Any]) -> Any:
        async def child() -> str:
            seen = var.get()
            var.set("child")
            await asyncio.sleep(0)
            return seen

        var.set("parent")
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        task = spawn(child(), own)
        var.set("parent again")  # the child's first step has not run: it sees this
        seen = await task
        return [seen, var.get(), task.get_context() is own]

    assert _both(loop_name, base_loop_factory, program, how) == ["parent again", "child", True]


@pytest.mark.parametrize("how", _spawners())
def test_own_context_read_inside_a_nested_inline_run(loop_name: str, base_loop_factory: Any, how: str) -> None:
    # The task's own context is beneath the current one (other.run) but is
    # exited when this step ends, before the child's first step.
    async def program(spawn: Callable[..., Any]) -> Any:
        async def child() -> str:
            var.set("child")
            return "done"

        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        other = contextvars.copy_context()
        task = other.run(spawn, child(), own)
        return [await task, var.get()]

    assert _both(loop_name, base_loop_factory, program, how) == ["done", "child"]


@pytest.mark.parametrize("how", _spawners())
def test_a_context_entered_only_by_an_inline_run_around_the_creation(
    loop_name: str, base_loop_factory: Any, how: str
) -> None:
    async def program(spawn: Callable[..., Any]) -> Any:
        async def child() -> str:
            seen = var.get()
            var.set("child")
            return seen

        ctx = contextvars.copy_context()
        task = ctx.run(lambda: (var.set("inline"), spawn(child(), ctx))[1])
        return [await task, ctx[var], var.get()]

    assert _both(loop_name, base_loop_factory, program, how) == ["inline", "child", "unset"]


@pytest.mark.parametrize("how", _spawners())
def test_a_context_entered_by_an_inline_run_beneath_another(loop_name: str, base_loop_factory: Any, how: str) -> None:
    # ctx is entered beneath the current context (inner), but both were
    # entered during this step: they are exited before the child's first step.
    async def program(spawn: Callable[..., Any]) -> Any:
        async def child() -> str:
            seen = var.get()
            var.set("child")
            return seen

        ctx, inner = contextvars.copy_context(), contextvars.copy_context()

        def create() -> Any:
            var.set("in ctx")
            return inner.run(spawn, child(), ctx)

        task = ctx.run(create)
        return [await task, ctx[var], inner.get(var, "not in inner"), var.get()]

    assert _both(loop_name, base_loop_factory, program, how) == ["in ctx", "child", "not in inner", "unset"]


@pytest.mark.parametrize("how", _spawners())
def test_a_context_entered_by_run_in_context_beneath_isolated(loop_name: str, how: str) -> None:
    # The same with ctxloop's inline awaits: every step of the inner coroutine
    # runs inside a copy entered inside ctx, itself entered inside the step.
    async def child() -> str:
        seen = var.get()
        var.set("child")
        return seen

    async def creator(ctx: contextvars.Context) -> Any:
        await asyncio.sleep(0)  # a later step: the chain is entered again
        return await _spawn(how, child(), ctx)

    async def main() -> Any:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        seen = await ctxloop.run_in_context(ctx, ctxloop.isolated(creator(ctx)))
        return [seen, ctx[var], var.get()]

    assert ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name)) == ["in ctx", "child", "unset"]


@pytest.mark.parametrize("how", _spawners())
def test_a_callbacks_own_context(loop_name: str, base_loop_factory: Any, how: str) -> None:
    async def program(spawn: Callable[..., Any]) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        done: "asyncio.Future[Any]" = loop.create_future()

        async def child() -> str:
            seen = var.get()
            var.set("child")
            return seen

        def callback() -> None:
            var.set("callback")
            done.set_result(spawn(child(), ctx))

        loop.call_soon(callback, context=ctx)
        task = await done
        return [await task, ctx[var]]

    assert _both(loop_name, base_loop_factory, program, how) == ["callback", "child"]


@pytest.mark.parametrize("how", _spawners())
def test_parent_and_child_sharing_a_context_never_nest(loop_name: str, base_loop_factory: Any, how: str) -> None:
    async def program(spawn: Callable[..., Any]) -> Any:
        order: List[str] = []

        async def child() -> None:
            for i in range(3):
                order.append(f"child{i}:{var.get()}")
                var.set(f"child{i}")
                await asyncio.sleep(0)

        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        task = spawn(child(), own)
        for i in range(3):
            order.append(f"parent{i}:{var.get()}")
            var.set(f"parent{i}")
            await asyncio.sleep(0)
        await task
        return order

    assert _both(loop_name, base_loop_factory, program, how) == [
        "parent0:unset",
        "child0:parent0",
        "parent1:child0",
        "child1:parent1",
        "parent2:child1",
        "child2:parent2",
    ]


@pytest.mark.parametrize("how", _spawners())
@pytest.mark.parametrize("nested", [False, True], ids=["directly", "inside-an-inline-run"])
def test_a_context_entered_beneath_the_loop_is_refused(loop_name: str, how: str, nested: bool) -> None:
    ctx = contextvars.copy_context()

    async def child() -> None:  # pragma: no cover - refused
        pass

    async def main() -> None:
        coro = child()
        with pytest.raises(RuntimeError, match="is entered beneath the current context"):
            if nested:  # entered during the step too, but ctx was entered before it
                contextvars.copy_context().run(_spawn, how, coro, ctx)
            else:
                _spawn(how, coro, ctx)
        coro.close()

    loop = ctxloop.new_event_loop(loop_name)
    try:
        ctx.run(loop.run_until_complete, main())
    finally:
        loop.close()


def test_run_in_context_refuses_any_entered_context(run: Callable[..., Any]) -> None:
    async def body() -> None:  # pragma: no cover - refused
        pass

    async def main() -> None:
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        for context in (own, contextvars.copy_context()):
            coro = body()
            if context is own:
                with pytest.raises(RuntimeError, match="is entered right now"):
                    ctxloop.run_in_context(context, coro)
            else:
                await ctxloop.run_in_context(context, coro)
            coro.close()

    run(main())


@pytest.mark.skipif(not NATIVE, reason="the native behaviour shown here is CPython 3.12+'s")
def test_natively_a_task_in_a_context_entered_beneath_the_loop_never_runs(
    loop_name: str, base_loop_factory: Any
) -> None:
    # Why the refusal above: CPython's asyncio accepts the task, its first step
    # fails in a loop callback ("Exception in callback") and it stays pending;
    # uvloop and rloop break out of run_until_complete instead.
    ctx = contextvars.copy_context()

    async def child() -> None:  # pragma: no cover - never runs
        pass

    coro = child()

    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(coro, context=ctx)
        for _ in range(5):
            await asyncio.sleep(0)
        return task.done()

    loop = base_loop_factory()
    loop.set_exception_handler(lambda *args: None)  # rloop calls handler(context)
    try:
        if loop_name in ("uvloop", "rloop"):
            with pytest.raises(RuntimeError, match="cannot exit context"):
                ctx.run(loop.run_until_complete, main())
        else:
            assert ctx.run(loop.run_until_complete, main()) is False
    finally:
        coro.close()
        loop.close()
