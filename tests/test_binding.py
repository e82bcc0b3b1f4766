"""run_in_context() and isolated(): awaiting inline with every step in another Context."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from typing import Any, Callable, Generator, List

import pytest

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_isolated_changes_do_not_leak_back(run: Callable[..., Any]) -> None:
    async def child() -> str:
        assert var.get() == "outer"  # a copy of the caller's context
        var.set("inner")
        await asyncio.sleep(0)
        return var.get()

    async def main() -> None:
        var.set("outer")
        assert await ctxloop.isolated(child()) == "inner"
        assert var.get() == "outer"

    run(main())


def test_run_in_context_uses_that_context_itself(run: Callable[..., Any]) -> None:
    ctx = contextvars.Context()
    seen: List[str] = []

    async def child() -> None:
        seen.append(var.get())
        var.set("one")
        await asyncio.sleep(0)
        seen.append(var.get())  # set in ctx by main between our steps
        var.set("two")

    async def main() -> None:
        var.set("outer")
        awaitable = ctxloop.run_in_context(ctx, child())
        task = asyncio.ensure_future(awaitable)
        await asyncio.sleep(0)
        assert ctx[var] == "one"
        ctx.run(var.set, "between")
        await task
        assert var.get() == "outer"

    run(main())
    assert seen == ["unset", "between"]
    assert ctx[var] == "two"


def test_inline_same_task_no_extra_iteration(run: Callable[..., Any]) -> None:
    async def child() -> Any:
        return asyncio.current_task()

    async def main() -> None:
        me = asyncio.current_task()
        order: List[str] = []
        asyncio.get_running_loop().call_soon(order.append, "callback")
        # No new task and no loop iteration: the callback has not run yet.
        assert await ctxloop.isolated(child()) is me
        assert await ctxloop.run_in_context(contextvars.copy_context(), child()) is me
        assert order == []

    run(main())


def test_results_exceptions_and_cancellation_pass_through(run: Callable[..., Any]) -> None:
    class Boom(Exception):
        pass

    async def fails() -> None:
        await asyncio.sleep(0)
        raise Boom("inner")

    cleanup: List[str] = []

    async def sleeps() -> None:
        var.set("bound")
        try:
            await asyncio.sleep(3600)
        finally:
            cleanup.append(var.get())  # the finally runs in the bound context

    async def main() -> None:
        with pytest.raises(Boom, match="inner"):
            await ctxloop.isolated(fails())
        task = asyncio.ensure_future(ctxloop.isolated(sleeps()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert cleanup == ["bound"]


def test_exception_thrown_into_the_awaiting_coroutine(run: Callable[..., Any]) -> None:
    async def child(fut: "asyncio.Future[None]") -> str:
        var.set("child")
        try:
            await fut
        except ValueError:
            return var.get()
        return "no exception"

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_exception, ValueError("x"))
        assert await ctxloop.isolated(child(fut)) == "child"

    run(main())


@types.coroutine
def _suspend() -> Generator[None, None, None]:
    yield


def test_close_runs_cleanup_in_the_bound_context() -> None:
    ctx = contextvars.copy_context()
    seen: List[str] = []

    async def child() -> None:
        token = var.set("bound")
        try:
            await _suspend()
        finally:
            seen.append(var.get())
            var.reset(token)  # only valid in the context that set it

    async def outer() -> None:
        await ctxloop.run_in_context(ctx, child())

    coro = outer()
    coro.send(None)  # suspended inside child, no loop needed
    coro.close()
    assert seen == ["bound"]
    assert ctx.get(var, "unset") == "unset"


def test_introspection_is_forwarded() -> None:
    async def child() -> None:
        pass

    coro = child()
    bound = ctxloop.isolated(coro)
    assert bound.__qualname__.endswith("child")  # type: ignore[attr-defined]
    assert bound.cr_code is coro.cr_code  # type: ignore[attr-defined]
    assert asyncio.iscoroutine(bound)
    assert "child" in repr(bound)
    coro.close()


def test_bad_input() -> None:
    async def child() -> None:
        pass

    coro = child()
    with pytest.raises(TypeError, match=r"context must be a contextvars\.Context, not int"):
        ctxloop.run_in_context(42, coro)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a coroutine was expected, got 42"):
        ctxloop.isolated(42)  # type: ignore[arg-type]
    coro.close()


def test_entered_context_is_refused(run: Callable[..., Any]) -> None:
    async def child() -> None:
        pass

    async def main() -> None:
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        coro = child()
        with pytest.raises(RuntimeError, match="is entered right now"):
            ctxloop.run_in_context(own, coro)
        coro.close()

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+ deprecates the three-argument throw()")
def test_three_argument_throw_warns_as_natively() -> None:
    async def child() -> None:
        await asyncio.sleep(0)

    bound = ctxloop.isolated(child())
    bound.send(None)  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError):
        bound.throw(ValueError, ValueError("x"), None)  # type: ignore[attr-defined]
