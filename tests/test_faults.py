"""Faults: context-bound tasks under cancellation, exceptions, interrupts, closing and bad factories.

Each scenario runs twice in one process: once on a plain loop with no ctxloop
(the reference: asyncio's own ``context=`` on 3.11+, asyncio's pure-Python
Task given its context the 3.11 way on 3.8-3.10, see ``programs.py``) and once
on a ctxloop loop. Both runs must record the same outcomes; where CPython
fails badly (S7) ctxloop's documented error is required instead. Every test
is bounded by a timeout: a hang is a failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib
import sys
import threading
from typing import Any, Callable, Coroutine, Dict, List, Optional

import programs
import pytest
from conftest import LOOPS, RLOOP_BASE_EXCEPTIONS

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("fault_var", default="unset")

REFERENCE = "native" if sys.version_info >= (3, 11) and sys.implementation.name == "cpython" else "pytask"
if sys.version_info >= (3, 11) and REFERENCE == "pytask":  # pragma: no cover - PyPy 3.11+
    REFERENCE = "native"

pytestmark = [pytest.mark.timeout(20), pytest.mark.parametrize("loop_name", LOOPS)]


class Env:
    """How a scenario creates bound tasks and inline bindings, per mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._ref = programs._Ref("native" if mode == "native" else "pytask")

    def spawn(self, coro: Coroutine[Any, Any, Any], context: Optional[contextvars.Context]) -> "asyncio.Task[Any]":
        if self.mode == "ctxloop":
            return ctxloop.create_task(coro, context=context)
        loop = asyncio.get_running_loop()
        if self.mode == "native":
            return loop.create_task(coro, context=context)  # type: ignore[call-arg, no-any-return]
        return self._ref.py_task(loop, coro, context)  # type: ignore[no-any-return]

    def in_context(self, ctx: contextvars.Context, coro: Coroutine[Any, Any, Any]) -> Any:
        if self.mode == "ctxloop":
            return ctxloop.run_in_context(ctx, coro)
        return programs.RefInContext(ctx, coro)


def _loop(mode: str, loop_name: str) -> asyncio.AbstractEventLoop:
    if mode == "ctxloop":
        return ctxloop.new_event_loop(loop_name)
    if mode == "pytask":
        return programs.make_loop("pytask", loop_name)
    if loop_name != "asyncio":  # native asyncio (3.11+): a plain loop, asyncio's own Task
        return importlib.import_module(loop_name).new_event_loop()  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop()


def run_both(scenario: Callable[[Env], Coroutine[Any, Any, Any]], loop_name: str) -> Any:
    """Run *scenario* on the reference and under ctxloop; require equal records; return them."""
    records = []
    for mode in (REFERENCE, "ctxloop"):
        loop = _loop(mode, loop_name)
        try:
            records.append(loop.run_until_complete(scenario(Env(mode))))
        finally:
            loop.close()
    reference, under_ctxloop = records
    assert under_ctxloop == reference
    return reference


def _exc(exc: BaseException) -> List[Any]:
    return [type(exc).__name__, [str(a) for a in exc.args]]


# --- cancellation at every await point --------------------------------------

POINTS = ["sleep", "inline run_in_context", "bound child task", "future", "finally"]


def _cancel_at(step: int, msg: Optional[str]) -> Callable[[Env], Coroutine[Any, Any, Any]]:
    async def scenario(env: Env) -> Dict[str, Any]:
        log: List[Any] = []
        ctx = contextvars.copy_context()
        other = contextvars.copy_context()
        fut = asyncio.get_running_loop().create_future()

        async def inner() -> None:
            var.set("inner")
            await asyncio.sleep(0)
            log.append(("inner resumed", var.get()))

        async def child() -> str:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return var.get()

        async def victim() -> str:
            var.set("victim")
            try:
                await asyncio.sleep(0)
                log.append(("after sleep", var.get()))
                await env.in_context(other, inner())
                log.append(("after inline", var.get()))
                log.append(("child", await env.spawn(child(), contextvars.copy_context())))
                asyncio.get_running_loop().call_soon(lambda: fut.done() or fut.set_result("fut"))
                log.append(("future", await fut))
                return "done"
            except asyncio.CancelledError as exc:
                log.append(("cancelled", var.get(), _exc(exc)))
                raise
            finally:
                var.set("cleanup")
                await asyncio.sleep(0)  # an await point inside the cleanup
                log.append(("finally", var.get()))

        task = env.spawn(victim(), ctx)
        for _ in range(step):
            await asyncio.sleep(0)
        cancelled = task.cancel() if msg is None else task.cancel(msg)
        try:
            outcome: List[Any] = ["ok", await task]
        except asyncio.CancelledError as exc:
            outcome = _exc(exc)
        record = {"cancel()": cancelled, "outcome": outcome, "log": log, "ctx": ctx.get(var)}
        record["other"] = other.get(var)
        if sys.version_info >= (3, 11):
            record["cancelling"] = task.cancelling()
        return record

    return scenario


@pytest.mark.parametrize("msg", [None, "stop"] if sys.version_info >= (3, 9) else [None])
def test_cancellation_at_every_await_point(loop_name: str, msg: Optional[str]) -> None:
    reached = set()
    for step in range(12):
        record = run_both(_cancel_at(step, msg), loop_name)
        # Once started, its cleanup ran inside its own context; never started: untouched.
        assert record["ctx"] == ("cleanup" if record["log"] else None)
        reached.add(tuple(entry[0] for entry in record["log"]))
        if msg is not None and record["outcome"][0] == "CancelledError" and sys.version_info >= (3, 11):
            assert record["outcome"][1] == [msg]
    # Cancelled before its first step, at each await point, and not at all.
    assert len(reached) >= 5, reached
    assert ("after sleep", "inner resumed", "after inline", "child", "future", "finally") in reached


# --- exceptions thrown into awaited futures and children --------------------


def test_exception_set_on_an_awaited_future(loop_name: str) -> None:
    async def scenario(env: Env) -> Any:
        ctx = contextvars.copy_context()
        fut = asyncio.get_running_loop().create_future()

        async def victim() -> Any:
            var.set("victim")
            try:
                await fut
            except ValueError as exc:
                var.set("handled " + str(exc))
                await asyncio.sleep(0)
                raise KeyError(var.get()) from exc

        task = env.spawn(victim(), ctx)
        await asyncio.sleep(0)
        fut.set_exception(ValueError("boom"))
        try:
            await task
        except KeyError as exc:
            return [_exc(exc), type(exc.__cause__).__name__, ctx.get(var), var.get()]

    assert run_both(scenario, loop_name) == [["KeyError", ["handled boom"]], "ValueError", "handled boom", "unset"]


def test_exception_from_an_inline_binding_inside_a_bound_task(loop_name: str) -> None:
    async def scenario(env: Env) -> Any:
        ctx, other = contextvars.copy_context(), contextvars.copy_context()

        async def inner() -> None:
            var.set("inner")
            await asyncio.sleep(0)
            raise ValueError(var.get())

        async def victim() -> Any:
            var.set("victim")
            try:
                await env.in_context(other, inner())
            except ValueError as exc:
                return [str(exc), var.get()]
            return None

        result = await env.spawn(victim(), ctx)
        return [result, ctx.get(var), other.get(var)]

    assert run_both(scenario, loop_name) == [["inner", "victim"], "victim", "inner"]


# --- KeyboardInterrupt and SystemExit --------------------------------------


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["task", "inline"])
def test_base_exceptions_leave_the_loop(loop_name: str, exc_type: type, where: str) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_BASE_EXCEPTIONS)
    records = []
    for mode in (REFERENCE, "ctxloop"):
        env = Env(mode)
        ctx, other = contextvars.copy_context(), contextvars.copy_context()

        async def inner() -> None:
            var.set("inner")
            await asyncio.sleep(0)
            raise exc_type("interrupt")

        async def victim(env: Env = env, other: contextvars.Context = other) -> None:
            var.set("victim")
            await asyncio.sleep(0)
            if where == "inline":
                await env.in_context(other, inner())
            raise exc_type("interrupt")

        async def main(env: Env = env, ctx: contextvars.Context = ctx) -> None:
            await env.spawn(victim(), ctx)

        loop = _loop(mode, loop_name)
        try:
            with pytest.raises(exc_type) as info:
                loop.run_until_complete(main())
            pending = asyncio.all_tasks(loop)
            records.append([_exc(info.value), ctx.get(var), other.get(var), len(pending)])
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()
    assert records[0] == records[1]
    assert records[0][:3] == [[exc_type.__name__, ["interrupt"]], "victim", "inner" if where == "inline" else None]


# --- a coroutine that catches CancelledError and keeps running --------------


def test_cancellation_swallowed_task_keeps_running(loop_name: str) -> None:
    async def scenario(env: Env) -> Any:
        ctx = contextvars.copy_context()

        async def stubborn() -> Any:
            var.set("stubborn")
            seen = []
            for _ in range(3):
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    seen.append("swallowed " + var.get())
            var.set("finished")
            return seen

        task = env.spawn(stubborn(), ctx)
        await asyncio.sleep(0)
        first = task.cancel()
        await asyncio.sleep(0)
        second = task.cancel()
        result = await task
        record = [first, second, result, task.cancelled(), ctx.get(var)]
        if sys.version_info >= (3, 11):
            record.append(task.cancelling())
        return record

    record = run_both(scenario, loop_name)
    assert record[:5] == [True, True, ["swallowed stubborn", "swallowed stubborn"], False, "finished"]


# --- closing: the coroutine of a pending task, and the loop ------------------


def test_closing_the_coroutine_of_a_pending_bound_task(loop_name: str) -> None:
    async def scenario(env: Env) -> Any:
        ctx = contextvars.copy_context()
        var.set("main")
        log: List[str] = []

        async def victim() -> None:
            var.set("victim")
            try:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            except GeneratorExit:
                log.append("GeneratorExit in " + var.get())
                raise

        task = env.spawn(victim(), ctx)
        await asyncio.sleep(0)
        task.get_coro().close()  # type: ignore[union-attr]
        try:
            await task
        except BaseException as exc:
            return [log, _exc(exc)[0], ctx.get(var)]
        return [log, "no error", ctx.get(var)]

    log, outcome, ctx_value = run_both(scenario, loop_name)
    # close() runs where it is called (natively too): the caller's context.
    assert log == ["GeneratorExit in main"]
    assert outcome == "RuntimeError"
    assert ctx_value == "victim"


def test_loop_closed_with_bound_tasks_pending(loop_name: str) -> None:
    records = []
    for mode in (REFERENCE, "ctxloop"):
        env = Env(mode)
        errors: List[str] = []
        finalised: List[str] = []

        async def victim(finalised: List[str] = finalised) -> None:
            var.set("victim")
            try:
                await asyncio.get_running_loop().create_future()  # never completes
            finally:
                finalised.append(var.get())

        async def main(env: Env = env) -> None:
            for _ in range(3):
                env.spawn(victim(), contextvars.copy_context())
            await asyncio.sleep(0)

        loop = _loop(mode, loop_name)
        # *args: rloop calls handler(context), asyncio handler(loop, context).
        loop.set_exception_handler(lambda *args, errors=errors: errors.append(args[-1]["message"]))
        loop.run_until_complete(main())
        loop.close()
        del loop
        gc.collect()
        records.append([sorted(errors), finalised])
    assert records[0] == records[1]
    assert records[0][0] == ["Task was destroyed but it is pending!"] * 3


# --- a task factory that raises ---------------------------------------------


def test_a_task_factory_that_raises(loop_name: str) -> None:
    class FactoryError(Exception):
        pass

    def broken(loop: Any, coro: Any, **kwargs: Any) -> Any:
        raise FactoryError(f"refused {sorted(kwargs)}")

    async def child() -> None:
        pass

    records = []
    for mode in (REFERENCE, "ctxloop"):
        loop = _loop(mode, loop_name)
        loop.set_task_factory(broken)

        async def main(mode: str = mode) -> Any:
            loop = asyncio.get_running_loop()
            before = len(asyncio.all_tasks())
            coro = child()
            try:
                if mode == "ctxloop":
                    made = ctxloop.create_task(coro, context=contextvars.copy_context())
                elif sys.version_info >= (3, 11):
                    made = loop.create_task(coro, context=contextvars.copy_context())  # type: ignore[call-arg]
                else:
                    made = loop.create_task(coro)
                outcome = f"no error: {made!r}"
            except FactoryError as exc:
                outcome = type(exc).__name__
            coro.close()
            loop.set_task_factory(None)
            ok = await loop.create_task(asyncio.sleep(0, "still works"))
            return [outcome, len(asyncio.all_tasks()) - before, ok]

        try:
            # The main task itself must not go through the broken factory.
            task = asyncio.Task(main(), loop=loop)
            records.append(loop.run_until_complete(task))
        finally:
            loop.close()
    assert records[0] == records[1] == ["FactoryError", 0, "still works"]


# --- S7: a context entered elsewhere ----------------------------------------


def test_context_entered_in_another_thread_is_refused(loop_name: str) -> None:
    ctx = contextvars.copy_context()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    holder = threading.Thread(target=ctx.run, args=(hold,))
    holder.start()
    try:
        assert entered.wait(10)

        async def child() -> None:
            pass

        async def main() -> None:
            coro = child()
            with pytest.raises(RuntimeError, match="another thread is running in it"):
                ctxloop.create_task(coro, context=ctx)
            coro.close()
            coro = child()
            with pytest.raises(RuntimeError, match="is entered right now"):
                ctxloop.run_in_context(ctx, coro)
            coro.close()

        ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    finally:
        release.set()
        holder.join(10)


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11+: asyncio steps the task itself (S7 in docs/rules.md)")
def test_context_entered_by_another_thread_between_steps_fails_the_task(loop_name: str) -> None:
    ctx = contextvars.copy_context()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    async def victim() -> None:
        var.set("victim")
        await asyncio.sleep(0)

    async def main() -> Any:
        task = ctxloop.create_task(victim(), context=ctx)
        await asyncio.sleep(0)  # first step done; now another thread enters ctx
        holder = threading.Thread(target=ctx.run, args=(hold,))
        holder.start()
        try:
            assert entered.wait(10)
            with pytest.raises(RuntimeError, match="already entered"):
                await task
        finally:
            release.set()
            holder.join(10)
        task.get_coro().close()  # type: ignore[union-attr]
        return ctx.get(var)

    assert ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name)) == "victim"
