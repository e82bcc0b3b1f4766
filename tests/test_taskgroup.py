"""TaskGroups on ctxloop loops: asyncio.TaskGroup (3.11+) and the ``taskgroup`` backport (3.8-3.10).

asyncio.TaskGroup.create_task(coro, context=ctx) calls ``loop.create_task(coro,
context=ctx)``: on a ctxloop loop it keeps S2 (the task runs in ctx itself)
and S4 (``get_context() is ctx``). The backport's public TaskGroup does not
call the loop: it builds its own Task (``taskgroup.tasks.Task``), which steps
the coroutine inside ctx (S2 holds) but has no ``get_context()`` (S4 cannot
hold: the task is not ctxloop's, and asyncio's Task has no such method before
3.12).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, Callable, List

import pytest

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def child(value: str) -> str:
    seen = var.get()
    var.set(value)
    await asyncio.sleep(0)
    return seen


native = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup exists from Python 3.11")
backport = pytest.mark.skipif(
    sys.version_info >= (3, 11), reason="the taskgroup backport is for Python 3.8-3.10 (its test-group marker)"
)


@native
def test_asyncio_taskgroup_create_task_with_context_keeps_s2_s4(run: Callable[..., Any]) -> None:
    async def main() -> None:
        var.set("main")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            given = tg.create_task(child("by the task"), context=ctx)
            own = tg.create_task(child("by its copy"))
        assert given.get_context() is ctx
        assert (given.result(), ctx[var]) == ("in ctx", "by the task")
        assert (own.result(), own.get_context()[var]) == ("main", "by its copy")
        assert var.get() == "main"

    run(main())


@native
def test_asyncio_taskgroup_refuses_a_context_entered_beneath(run: Callable[..., Any]) -> None:
    outer = contextvars.copy_context()

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            coro = child("never")
            with pytest.raises(RuntimeError, match="is entered beneath the current context"):
                tg.create_task(coro, context=outer)
            coro.close()
            # The group is still usable: the refusal happened before it knew of a task.
            tg.create_task(child("fine"), context=contextvars.copy_context())
            # The task's own context is exited before the child runs: shared with it.
            tg.create_task(child("own"), context=asyncio.current_task().get_context())  # type: ignore[union-attr]
        assert var.get() == "own"

    outer.run(run, main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory exists from Python 3.12")
def test_asyncio_taskgroup_with_an_eager_factory_runs_the_first_step_in_ctx(run: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]  # chained by ctxloop
        ctx = contextvars.copy_context()
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            task = tg.create_task(child("eager"), context=ctx)
            assert ctx[var] == "eager"  # the eager first step already ran, inside ctx
        assert task.get_context() is ctx

    run(main())


def _backport_body(results: List[Any]) -> Callable[[], Any]:
    import taskgroup

    async def main() -> None:
        var.set("main")
        ctx = contextvars.copy_context()
        async with taskgroup.TaskGroup() as tg:
            results.append(var.get())  # the block sees main's context
            by_group = tg.create_task(child("by the group's task"), context=ctx)
        results.append((by_group.result(), ctx[var]))
        results.append(hasattr(by_group, "get_context"))
        loop = asyncio.get_running_loop()
        ctx2 = contextvars.copy_context()
        async with taskgroup.TaskGroup():
            by_loop = loop.create_task(child("by the loop's task"), context=ctx2)
            await by_loop
        results.append(ctx2[var])
        results.append(getattr(by_loop, "get_context", lambda: None)() is ctx2)

    return main


@backport
def test_backport_taskgroup_under_the_policy(loop_name: str) -> None:
    # ctxloop.install() + asyncio.run: the main task is a plain (copying) task,
    # so the backport's TaskGroup can take it over.
    results: List[Any] = []
    ctxloop.install(loop_name)
    try:
        asyncio.run(_backport_body(results)())
    finally:
        ctxloop.uninstall()
    assert results == [
        "main",
        ("main", "by the group's task"),  # S2: the group's task ran in ctx itself
        False,  # S4: taskgroup.tasks.Task has no get_context() (not ctxloop's Task)
        "by the loop's task",  # S2 through the ctxloop loop
        True,  # S4 through the ctxloop loop
    ]


@backport
def test_backport_taskgroup_runner_on_a_ctxloop_loop(loop_name: str) -> None:
    # taskgroup.Runner sets its own task factory on the loop; a ctxloop loop
    # chains it, so loop.create_task(context=) still runs in ctx (S2), and the
    # backport's task made that way reports it (S4). The TaskGroup's own
    # create_task does not go through ctxloop: no get_context() there.
    import taskgroup

    results: List[Any] = []
    with taskgroup.Runner(loop_factory=ctxloop.loop_factory(loop_name)) as runner:
        runner.run(_backport_body(results)())
    assert results == ["main", ("main", "by the group's task"), False, "by the loop's task", True]


@backport
@pytest.mark.xfail(
    strict=True,
    reason=(
        "taskgroup.TaskGroup re-hosts the current task's get_coro() in a task of its own, "
        "stepped in the C task's own context; a ctxloop task created with context= (such as "
        "ctxloop.run's main task) on 3.8-3.10 unwraps its binding in get_coro(), so inside "
        "the block the coroutine runs in the C task's copy instead of its context"
    ),
)
def test_backport_taskgroup_inside_a_context_task(run: Callable[..., Any]) -> None:
    results: List[Any] = []
    run(_backport_body(results)())
    assert results[0] == "main"
