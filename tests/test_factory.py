"""task_factory and chain_task_factory on plain loops: chain, never overwrite."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, Callable, Dict, List

import pytest

import ctxloop
from tests.conftest import run_plain

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def _child() -> str:
    var.set("child")
    await asyncio.sleep(0)
    return var.get()


def test_task_factory_on_a_plain_loop(base_loop_factory: Callable[[], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(ctxloop.task_factory)
        ctx = contextvars.copy_context()
        task = ctxloop.create_task(_child(), context=ctx, name="bound")
        assert await task == "child"
        assert ctx[var] == "child" and task.get_name() == "bound"
        assert task.get_context() is ctx  # type: ignore[attr-defined]
        assert var.get() == "unset"

    run_plain(base_loop_factory, main())


def test_create_task_on_a_plain_loop_without_factory(base_loop_factory: Callable[[], Any]) -> None:
    async def main() -> None:
        ctx = contextvars.copy_context()
        task = ctxloop.create_task(_child(), context=ctx)
        assert await task == "child"
        assert ctx[var] == "child" and task.get_context() is ctx  # type: ignore[attr-defined]

    run_plain(base_loop_factory, main())


def test_chain_none_and_idempotence() -> None:
    assert ctxloop.chain_task_factory(None) is ctxloop.task_factory
    assert ctxloop.chain_task_factory(ctxloop.task_factory) is ctxloop.task_factory

    def inner(loop: Any, coro: Any) -> Any:
        return asyncio.Task(coro, loop=loop)

    chained = ctxloop.chain_task_factory(inner)
    assert ctxloop.chain_task_factory(chained) is chained
    assert chained.__wrapped__ is inner  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="task factory must be a callable or None, not int"):
        ctxloop.chain_task_factory(42)  # type: ignore[arg-type]


def test_chained_legacy_factory_gets_a_bound_coroutine(base_loop_factory: Callable[[], Any]) -> None:
    calls: List[Dict[str, Any]] = []

    def legacy(loop: Any, coro: Any) -> Any:  # takes neither context= nor name=
        calls.append({"coro": coro})
        return asyncio.Task(coro, loop=loop)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(ctxloop.chain_task_factory(legacy))
        ctx = contextvars.copy_context()
        coro = _child()
        task = ctxloop.create_task(coro, context=ctx, name="named")
        assert await task == "child"
        assert ctx[var] == "child"
        assert task.get_name() == "named"  # set afterwards, as asyncio does
        assert var.get() == "unset"
        assert task.get_coro() is coro  # S5, although the legacy factory made the task
        assert task.get_context() is ctx  # type: ignore[attr-defined]  # S4

    run_plain(base_loop_factory, main())
    assert type(calls[0]["coro"]).__name__ == "TaskCoroutine"


def test_chained_factory_taking_kwargs_gets_them(base_loop_factory: Callable[[], Any]) -> None:
    seen: List[Dict[str, Any]] = []

    def modern(loop: Any, coro: Any, **kwargs: Any) -> Any:
        seen.append(dict(kwargs))
        return ctxloop.Task(coro, loop=loop, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        chained = ctxloop.chain_task_factory(modern)
        ctx = contextvars.copy_context()
        task = chained(loop, _child(), context=ctx, name="n")
        assert await task == "child" and ctx[var] == "child"
        coro = _child()
        with pytest.raises(TypeError, match="not int"):
            chained(loop, coro, context=42)
        coro.close()  # refused, not consumed: the caller still owns it

    run_plain(base_loop_factory, main())
    if sys.version_info >= (3, 11):
        assert seen == [{"context": seen[0]["context"], "name": "n"}]
        assert type(seen[0]["context"]) is contextvars.Context
    else:
        # It passes its keywords on (to a Task that takes no context= before
        # 3.11): it gets none, and its task is made to step in ctx instead.
        assert seen == [{"name": "n"}]


def test_a_raising_factory_propagates(run: Callable[..., Any]) -> None:
    def broken(loop: Any, coro: Any, **kwargs: Any) -> Any:
        coro.close()
        raise LookupError("factory failed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(broken)
        try:
            with pytest.raises(LookupError, match="factory failed"):
                ctxloop.create_task(_child(), context=contextvars.copy_context())
        finally:
            loop.set_task_factory(None)

    run(main())


def test_a_keyword_forwarding_factory_on_a_ctxloop_loop_keeps_s4_s5(run: Callable[..., Any]) -> None:
    def forwarding(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(forwarding)
        try:
            for create in (ctxloop.create_task, loop.create_task):
                ctx = contextvars.copy_context()
                coro = _child()
                task = create(coro, context=ctx)  # type: ignore[operator]
                assert await task == "child" and ctx[var] == "child"
                assert task.get_coro() is coro
                assert task.get_context() is ctx  # type: ignore[attr-defined]
        finally:
            loop.set_task_factory(None)

    run(main())


def test_a_factorys_task_has_get_context_on_every_python(run: Callable[..., Any]) -> None:
    def plain(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def child() -> Any:
        var.set("child")
        return asyncio.current_task().get_context()  # type: ignore[union-attr]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(plain)
        try:
            task = loop.create_task(child())
            own = await task
            assert own is task.get_context() and own[var] == "child"  # type: ignore[attr-defined]
            assert var.get() == "unset"
        finally:
            loop.set_task_factory(None)

    run(main())
