"""anyio on ctxloop loops (asyncio backend, every installed loop) and on trio.

``anyio.run(main, backend="asyncio", backend_options={"loop_factory":
ctxloop.loop_factory(...)})`` runs anyio on a ctxloop loop: the notebook's
behaviours hold, and ``loop.create_task(coro, context=ctx)`` keeps S2-S7.
anyio's own task groups give every task a *copy* (``start_soon`` of the
caller's context, ``create_task(context=ctx)`` of ctx): they create the task
inside ``ctx.run(...)`` without passing ``context=`` to the loop. On trio the
same copies hold and no task can run in a given context; in both,
``ctxloop.run_in_context`` awaited inside the task is the exact way.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
from typing import Any, Awaitable, Callable, List, Tuple

import pytest

import ctxloop
from ctxloop._loop import is_ctxloop_loop

anyio = pytest.importorskip("anyio")
anyio_abc = pytest.importorskip("anyio.abc")

var: contextvars.ContextVar[Any] = contextvars.ContextVar("var", default="unset")

from conftest import LOOPS  # noqa: E402

BACKENDS = [f"asyncio-{loop}" for loop in LOOPS] + (["trio"] if importlib.util.find_spec("trio") else [])
ASYNCIO_BACKENDS = [b for b in BACKENDS if b.startswith("asyncio-")]


def anyio_run(backend: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run *main* with anyio on *backend*: ``trio`` or ``asyncio-<loop>`` (a ctxloop loop)."""
    if backend == "trio":
        return anyio.run(main, backend="trio")
    factory = ctxloop.loop_factory(backend.split("-", 1)[1])
    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": factory})


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=ASYNCIO_BACKENDS)
def asyncio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def test_anyio_runs_on_the_ctxloop_loop_it_was_given(asyncio_backend: str) -> None:
    async def main() -> Tuple[str, bool]:
        loop = asyncio.get_running_loop()
        return type(loop).__module__.split(".")[0], is_ctxloop_loop(loop)

    assert anyio_run(asyncio_backend, main) == (asyncio_backend.split("-", 1)[1], True)


def test_n2_requests_in_a_task_group_see_only_their_own_id(backend: str) -> None:
    request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")
    log: List[Tuple[str, int, int]] = []

    async def handle(i: int) -> None:
        request_id.set(i)
        log.append(("start", i, request_id.get()))
        for _ in range(1 + 2 * i):
            await anyio.sleep(0)

        async def nested() -> None:
            log.append(("nested", i, request_id.get()))

        await nested()
        log.append(("end", i, request_id.get()))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(handle, i)
        assert request_id.get(None) is None

    anyio_run(backend, main)
    # trio runs ready tasks in an order of its choosing: compare per request.
    assert sorted(log) == sorted((step, i, i) for i in range(3) for step in ("start", "nested", "end"))


def test_n3_awaiting_shares_the_context(backend: str) -> None:
    seen: List[object] = []

    async def sub2() -> None:
        seen.append(var.get())
        var.set("sub1 set")

    async def sub1() -> None:
        seen.append(var.get())
        var.set("sub1 set")
        await sub2()

    async def main() -> None:
        var.set("main set")
        await sub1()
        seen.append(var.get())

    anyio_run(backend, main)
    assert seen == ["main set", "sub1 set", "sub1 set"]


def _levels(backend: str, spawn: str) -> List[int]:
    seen: List[int] = []

    async def coro_func(level: int) -> None:
        var.set(level)
        seen.append(var.get())
        if level:
            if spawn == "task group":
                async with anyio.create_task_group() as tg:
                    tg.start_soon(coro_func, level - 1)
            elif spawn == "loop.create_task(context=)":
                loop = asyncio.get_running_loop()
                await loop.create_task(coro_func(level - 1), context=contextvars.copy_context())  # type: ignore[call-arg]
            else:

                async def wrapper() -> None:
                    var.set(level - 1)
                    await coro_func(level - 1)

                await wrapper()
        seen.append(var.get())

    anyio_run(backend, lambda: coro_func(2))
    return seen


def test_n4_nested_tasks_run_in_copies(backend: str) -> None:
    assert _levels(backend, "task group") == [2, 1, 0, 0, 1, 2]


def test_n5_a_nested_wrapper_shares_the_context(backend: str) -> None:
    assert _levels(backend, "wrapper") == [2, 1, 0, 0, 0, 0]


def test_n5b_loop_create_task_with_a_copied_context(asyncio_backend: str) -> None:
    assert _levels(asyncio_backend, "loop.create_task(context=)") == [2, 1, 0, 0, 1, 2]


def test_s2_s4_loop_create_task_with_context_under_anyio(asyncio_backend: str) -> None:
    async def child() -> Any:
        before = var.get()
        var.set("by the task")
        await anyio.sleep(0)
        return before

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        task = loop.create_task(child(), context=ctx)  # type: ignore[call-arg]
        assert task.get_context() is ctx  # type: ignore[attr-defined]
        assert await task == "in ctx"
        assert ctx[var] == "by the task"
        also = ctxloop.create_task(child(), context=ctx)
        assert await also == "by the task"
        assert var.get() == "unset"

    anyio_run(asyncio_backend, main)


def test_s6_s7_bad_and_entered_contexts_under_anyio(asyncio_backend: str) -> None:
    outer = contextvars.copy_context()

    async def child() -> None:
        var.set("child")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        coro = anyio.sleep(0)
        with pytest.raises(TypeError, match=r"context must be a contextvars\.Context, not int"):
            loop.create_task(coro, context=42)  # type: ignore[call-arg]  # noqa: RUF006 - refused
        # outer is entered beneath the loop (anyio.run runs inside outer.run): refused.
        with pytest.raises(RuntimeError, match="is entered beneath the current context"):
            loop.create_task(coro, context=outer)  # type: ignore[call-arg]  # noqa: RUF006 - refused
        coro.close()
        # The task's own context is exited before the child's first step: shared.
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        await loop.create_task(child(), context=own)  # type: ignore[call-arg]
        assert var.get() == "child"

    outer.run(anyio_run, asyncio_backend, main)


def test_s1_start_soon_gives_a_copy_taken_when_it_is_called(backend: str) -> None:
    async def main() -> None:
        seen: List[str] = []

        async def child() -> None:
            seen.append(var.get())
            var.set("by the task")

        var.set("at start_soon")
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            var.set("after start_soon")
        assert seen == ["at start_soon"]
        assert var.get() == "after start_soon"

    anyio_run(backend, main)


@pytest.mark.skipif(
    not hasattr(anyio_abc.TaskGroup, "create_task"),
    reason="anyio has TaskGroup.create_task(context=) from 4.14 (Python 3.10+)",
)
def test_anyio_create_task_with_context_gives_a_copy(backend: str) -> None:
    # anyio >= 4.14 (Python 3.10+) has TaskGroup.create_task(coro, context=ctx);
    # it creates the task inside ctx.run() without passing context= on, so the
    # task runs in a copy of ctx: its writes do not reach ctx.
    async def main() -> None:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        seen: List[str] = []

        async def child() -> None:
            seen.append(var.get())
            var.set("by the task")

        async with anyio.create_task_group() as tg:
            tg.create_task(child(), context=ctx)
        assert seen == ["in ctx"]
        assert ctx[var] == "in ctx"

    anyio_run(backend, main)


def test_run_in_context_is_the_exact_way_in_a_task_group(backend: str) -> None:
    async def main() -> None:
        ctx = contextvars.copy_context()

        async def child() -> None:
            var.set("by the task")
            await anyio.sleep(0)

        async def in_ctx() -> None:
            await ctxloop.run_in_context(ctx, child())

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_ctx)
        assert ctx[var] == "by the task"
        assert var.get() == "unset"

    anyio_run(backend, main)


@pytest.mark.skipif(importlib.util.find_spec("trio") is None, reason="trio is not installed")
def test_trio_tasks_have_their_own_context_and_no_asyncio_loop() -> None:
    import trio

    async def main() -> None:
        parent = trio.lowlevel.current_task().context
        contexts: List[contextvars.Context] = []

        async def child() -> None:
            contexts.append(trio.lowlevel.current_task().context)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
        assert contexts[0] is not parent
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="no running event loop"):
            ctxloop.create_task(coro, context=contextvars.copy_context())
        coro.close()

    anyio.run(main, backend="trio")
