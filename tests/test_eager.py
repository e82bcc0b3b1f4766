"""Eager tasks (3.12+): ctxloop chained with asyncio's eager task factories keeps S1-S7.

An eager task runs its first step inside ``create_task``. Given a context that
is entered right now (the current task's own), CPython 3.12.1 and 3.13.0 fail
to enter it, corrupt the current-task record and hang ``asyncio.run``
(the versions installed here). Through ctxloop it is a
``RuntimeError`` at creation, and the loop carries on.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import sys
from typing import Any, Callable, List

import pytest
from conftest import LOOPS

import ctxloop

pytestmark = [
    pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+"),
    pytest.mark.timeout(20),
]

var: contextvars.ContextVar[str] = contextvars.ContextVar("eager_var", default="unset")


def _plain_loop(loop_name: str) -> asyncio.AbstractEventLoop:
    if loop_name != "asyncio":
        return importlib.import_module(loop_name).new_event_loop()  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop()


def _chain_eager_on_plain(loop_name: str) -> asyncio.AbstractEventLoop:
    loop = _plain_loop(loop_name)
    loop.set_task_factory(ctxloop.chain_task_factory(asyncio.eager_task_factory))  # type: ignore[attr-defined]
    return loop


def _eager_on_ctxloop_loop(loop_name: str) -> asyncio.AbstractEventLoop:
    loop = ctxloop.new_event_loop(loop_name)
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]  # chained by the loop
    return loop


def _eager_ctxloop_task_on_plain(loop_name: str) -> asyncio.AbstractEventLoop:
    loop = _plain_loop(loop_name)
    loop.set_task_factory(asyncio.create_eager_task_factory(ctxloop.Task))  # type: ignore[attr-defined]
    return loop


def _eager_ctxloop_task_on_ctxloop_loop(loop_name: str) -> asyncio.AbstractEventLoop:
    loop = ctxloop.new_event_loop(loop_name)
    loop.set_task_factory(asyncio.create_eager_task_factory(ctxloop.Task))  # type: ignore[attr-defined]
    return loop


CHAINS = {
    "chain_task_factory(eager_task_factory)": _chain_eager_on_plain,
    "ctxloop loop + eager_task_factory": _eager_on_ctxloop_loop,
    "create_eager_task_factory(ctxloop.Task)": _eager_ctxloop_task_on_plain,
    "ctxloop loop + create_eager_task_factory(ctxloop.Task)": _eager_ctxloop_task_on_ctxloop_loop,
}


@pytest.fixture(params=list(CHAINS))
def run_eager(request: pytest.FixtureRequest, loop_name: str) -> Callable[[Any], Any]:
    make = CHAINS[request.param]
    if make is _eager_ctxloop_task_on_plain and loop_name == "uvloop" and sys.version_info >= (3, 13):
        pytest.skip(
            "uvloop 0.23 passes eager_start= to the factory: on 3.13 this factory rejects it, on 3.14+ "
            "eager_start=None makes it lazy (uvloop's own behaviour; see below)"
        )

    def runner(coro: Any) -> Any:
        loop = make(loop_name)
        try:
            # The main task through the chain too (eager: it starts at once).
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return runner


def _create(coro: Any, **kwargs: Any) -> "asyncio.Task[Any]":
    return asyncio.get_running_loop().create_task(coro, **kwargs)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s1_eager_task_runs_in_a_copy_at_once(run_eager: Callable[[Any], Any]) -> None:
    async def child() -> str:
        seen = var.get()
        var.set("child")
        await asyncio.sleep(0)
        return seen + " / " + var.get()

    async def main() -> Any:
        var.set("before")
        task = _create(child())
        var.set("after")
        return [await task, var.get()]

    assert run_eager(main()) == ["before / child", "after"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s2_s3_s4_s5_eager_task_in_the_given_context(run_eager: Callable[[Any], Any]) -> None:
    async def child(log: List[Any]) -> str:
        log.append(("first step", var.get(), asyncio.current_task() is not None))
        var.set("child")
        asyncio.get_running_loop().call_soon(lambda: log.append(("callback", var.get())))
        await asyncio.sleep(0)
        log.append(("second step", var.get()))
        var.set("final")
        return "done"

    async def main() -> Any:
        log: List[Any] = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        main_task = asyncio.current_task()
        coro = child(log)
        task = _create(coro, name="eager child", context=ctx)
        # The first step ran inside create_task, inside ctx, as the task itself. (Its
        # name is set after the factory returns, natively, until 3.13.3/3.14 pass name=.)
        assert log == [("first step", "in ctx", True)]
        assert task.get_name() == "eager child"
        assert ctx[var] == "child"
        assert asyncio.current_task() is main_task
        ctx.run(var.set, "between steps")
        assert isinstance(task, asyncio.Task) and task.get_coro() is coro and task.get_context() is ctx
        assert task in asyncio.all_tasks()
        assert await task == "done"
        assert var.get() == "unset"
        return [log, ctx[var]]

    log, final = run_eager(main())
    assert log[1:] == [("callback", "child"), ("second step", "between steps")]
    assert final == "final"


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s2_eager_task_that_finishes_at_once(run_eager: Callable[[Any], Any]) -> None:
    async def child() -> str:
        var.set("child")
        return "sync"

    async def main() -> Any:
        ctx = contextvars.copy_context()
        task = _create(child(), context=ctx)
        return [task.done(), task.result(), ctx[var], var.get()]

    assert run_eager(main()) == [True, "sync", "child", "unset"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s6_bad_context(run_eager: Callable[[Any], Any]) -> None:
    async def child() -> None:
        pass

    async def main() -> None:
        coro = child()
        with pytest.raises(TypeError, match="not int"):
            _create(coro, context=42)
        coro.close()

    run_eager(main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s7_eager_task_given_the_current_tasks_own_context(run_eager: Callable[[Any], Any]) -> None:
    started: List[bool] = []

    async def child() -> str:
        started.append(True)
        await asyncio.sleep(0)
        return "after"

    async def main() -> Any:
        me = asyncio.current_task()
        own = me.get_context()  # type: ignore[union-attr]
        for create in (_create, ctxloop.create_task):
            coro = child()
            with pytest.raises(RuntimeError, match="is entered right now"):
                create(coro, context=own)
            coro.close()
            # The current-task record is intact and the loop carries on.
            assert asyncio.current_task() is me
        return await _create(child(), context=contextvars.copy_context())

    assert run_eager(main()) == "after"
    assert started == [True]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_s7_eager_task_in_a_context_shared_with_a_running_inline_binding(run_eager: Callable[[Any], Any]) -> None:
    async def child() -> None:
        pass

    async def inline(ctx: contextvars.Context) -> str:
        coro = child()
        try:
            _create(coro, context=ctx)  # ctx is entered by this very step
        except RuntimeError as exc:
            coro.close()
            # ctxloop's refusal, not the eager step's own "cannot enter context"
            return "refused" if "is entered right now" in str(exc) else repr(exc)
        return "created"

    async def main() -> str:
        ctx = contextvars.copy_context()
        return await ctxloop.run_in_context(ctx, inline(ctx))

    assert run_eager(main()) == "refused"


@pytest.mark.skipif(sys.version_info < (3, 13) or "uvloop" not in LOOPS, reason="uvloop 0.23 on 3.13+ only")
def test_uvloop_eager_start_keyword_and_an_eager_factory() -> None:
    # Native, without ctxloop: uvloop 0.23 calls factory(loop, coro, context=..., eager_start=None).
    # 3.13's create_eager_task_factory(...) takes no eager_start= (TypeError); 3.14's takes it,
    # and None makes the task lazy. A ctxloop loop calls the factory as CPython's loop does:
    # the factory's default, eager, holds.
    async def child() -> str:
        return "ran"

    async def main() -> str:
        coro = child()
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except TypeError as exc:
            coro.close()
            return "TypeError: eager_start" if "eager_start" in str(exc) else str(exc)
        started_eagerly = task.done()
        return f"{await task}, eager: {started_eagerly}"

    def run_main(loop: asyncio.AbstractEventLoop) -> str:
        try:
            loop.set_task_factory(asyncio.create_eager_task_factory(asyncio.Task))  # type: ignore[attr-defined]
            return loop.run_until_complete(asyncio.Task(main(), loop=loop))  # type: ignore[no-any-return]
        finally:
            loop.close()

    import uvloop

    if tuple(int(part) for part in uvloop.__version__.split(".")[:2]) < (0, 23):
        native = "ran, eager: True"  # uvloop before 0.23 passes no eager_start=
    else:
        native = "TypeError: eager_start" if sys.version_info < (3, 14) else "ran, eager: False"
    assert run_main(_plain_loop("uvloop")) == native
    assert run_main(ctxloop.new_event_loop("uvloop")) == "ran, eager: True"
    assert run_main(ctxloop.new_event_loop("asyncio")) == "ran, eager: True"
