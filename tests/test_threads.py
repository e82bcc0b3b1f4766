"""Threads: one ctxloop loop per thread, contexts crossing threads, no leakage between them."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from typing import Any, Callable, Dict, List

import pytest
from conftest import LOOPS, policy_deprecation

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("thread_var", default="unset")

THREADS = 8
TASKS = 1000  # bound tasks per thread (and as many on a shared context)

pytestmark = [pytest.mark.timeout(60), pytest.mark.parametrize("loop_name", LOOPS)]


async def _worker(thread: int, start: threading.Barrier) -> Dict[str, Any]:
    """Create TASKS bound tasks (own and shared contexts); check each sees only its own values."""
    errors: List[str] = []
    shared = contextvars.copy_context()
    var.set(f"thread {thread}")
    start.wait(30)  # every thread creates its tasks at the same time

    async def job(i: int) -> None:
        mine = f"t{thread}-{i}"
        if var.get() != f"seed {thread}-{i}":
            errors.append(f"{mine} started with {var.get()!r}")
        var.set(mine)
        await asyncio.sleep(0)
        if var.get() != mine:
            errors.append(f"{mine} reads {var.get()!r} after a step")

    async def shared_job(i: int) -> None:
        value = var.get()
        if value != "unset" and not value.startswith(f"s{thread}-"):
            errors.append(f"shared context of thread {thread} holds {value!r}")
        var.set(f"s{thread}-{i}")
        await asyncio.sleep(0)

    tasks = []
    for i in range(TASKS):
        ctx = contextvars.copy_context()
        ctx.run(var.set, f"seed {thread}-{i}")
        if sys.version_info < (3, 11) and i % 2:
            create: Callable[..., Any] = asyncio.create_task  # patched by install() on 3.8-3.10, else loop's
            if create is not ctxloop.create_task:
                create = asyncio.get_running_loop().create_task
        else:
            create = asyncio.get_running_loop().create_task if i % 2 else ctxloop.create_task
        tasks.append(create(job(i), context=ctx))
        tasks.append(ctxloop.create_task(shared_job(i), context=shared))
    await asyncio.gather(*tasks)
    final = shared.get(var)
    if final is None or not final.startswith(f"s{thread}-"):
        errors.append(f"shared context of thread {thread} ends with {final!r}")
    if var.get() != f"thread {thread}":
        errors.append(f"thread {thread}'s main task reads {var.get()!r}")
    return {"errors": errors, "tasks": len(tasks)}


def _run_threads(target: Callable[[int, threading.Barrier], Dict[str, Any]]) -> List[Dict[str, Any]]:
    start = threading.Barrier(THREADS)
    results: List[Any] = [None] * THREADS

    def body(thread: int) -> None:
        try:
            results[thread] = target(thread, start)
        except BaseException as exc:  # reported below, with the thread's number
            results[thread] = {"errors": [f"thread {thread} raised {exc!r}"], "tasks": 0}
            start.abort()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"
    return results


def _check(results: List[Dict[str, Any]]) -> None:
    errors = [error for result in results for error in result["errors"]]
    assert errors == []
    assert sum(result["tasks"] for result in results) == THREADS * TASKS * 2


def test_threads_with_loop_factory_loops(loop_name: str) -> None:
    factory = ctxloop.loop_factory(loop_name)

    def target(thread: int, start: threading.Barrier) -> Dict[str, Any]:
        return ctxloop.run(_worker(thread, start), loop_factory=factory)  # type: ignore[no-any-return]

    _check(_run_threads(target))


def test_threads_with_the_policy(loop_name: str) -> None:
    with policy_deprecation():
        ctxloop.install(loop_name)
    try:

        def target(thread: int, start: threading.Barrier) -> Dict[str, Any]:
            loop = asyncio.new_event_loop()  # from ctxloop's policy, in this thread
            asyncio.set_event_loop(loop)
            try:
                return loop.run_until_complete(_worker(thread, start))  # type: ignore[no-any-return]
            finally:
                asyncio.set_event_loop(None)
                loop.close()

        _check(_run_threads(target))
    finally:
        ctxloop.uninstall()


def _loop_in_thread(loop_name: str) -> Any:
    loop = ctxloop.new_event_loop(loop_name)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    return loop, thread


def _stop(loop: Any, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    assert not thread.is_alive()
    loop.close()


def test_run_coroutine_threadsafe_with_contexts(loop_name: str) -> None:
    loop, thread = _loop_in_thread(loop_name)
    try:
        bound = contextvars.copy_context()

        async def work(tag: str) -> str:
            seen = var.get()
            var.set(tag)
            await asyncio.sleep(0)
            return seen

        async def in_bound_task() -> str:
            # Created on the loop's thread, bound to a context made on this one.
            return await ctxloop.create_task(work("set in bound"), context=bound)

        # The submitting thread's context at submission is what the task copies (native).
        submitter = contextvars.copy_context()
        submitter.run(var.set, "submitter")
        copied = submitter.run(asyncio.run_coroutine_threadsafe, work("set in copy"), loop).result(10)
        assert copied == "submitter"
        assert submitter[var] == "submitter"  # the task wrote into its copy

        bound.run(var.set, "bound before")
        assert asyncio.run_coroutine_threadsafe(in_bound_task(), loop).result(10) == "bound before"
        assert bound[var] == "set in bound"  # S2, across threads
        assert var.get() == "unset"
    finally:
        _stop(loop, thread)


def test_call_soon_threadsafe_with_a_context(loop_name: str) -> None:
    loop, thread = _loop_in_thread(loop_name)
    try:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "ctx value")
        done: "asyncio.Future[Any]" = loop.create_future()
        seen: List[str] = []

        async def child() -> str:
            return var.get()

        async def in_ctx() -> None:
            var.set("set in ctx")

        def callback() -> None:
            seen.append(var.get())
            own_child = ctxloop.create_task(child())  # S1: a copy of ctx, taken now
            var.set("after the copy")
            # ctx is this callback's own context, exited before the task runs (S7).
            shared = ctxloop.create_task(in_ctx(), context=ctx)
            own_child.add_done_callback(lambda task: shared.add_done_callback(lambda _: done.set_result(task.result())))

        loop.call_soon_threadsafe(callback, context=ctx)
        result = asyncio.run_coroutine_threadsafe(asyncio.wait_for(done, 10), loop).result(10)
        assert seen == ["ctx value"]
        assert result == "ctx value"
        assert ctx[var] == "set in ctx"
    finally:
        _stop(loop, thread)


@pytest.mark.skipif(sys.version_info < (3, 9), reason="asyncio.to_thread is 3.9+")
def test_to_thread_keeps_copying_the_context(loop_name: str) -> None:
    ctx = contextvars.copy_context()

    def in_thread() -> str:
        seen = var.get()
        var.set("set in thread")  # in a copy: must not reach ctx
        return seen

    async def bound() -> List[str]:
        var.set("bound value")
        seen = await asyncio.to_thread(in_thread)  # type: ignore[attr-defined]
        return [seen, var.get()]

    async def main() -> List[str]:
        return await ctxloop.create_task(bound(), context=ctx)

    assert ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name)) == ["bound value", "bound value"]
    assert ctx[var] == "bound value"


def test_a_context_entered_in_another_thread_is_refused_at_creation(loop_name: str) -> None:
    # While another thread runs in ctx, a task given ctx could never run (its
    # step would fail to enter it): refused at creation, by reading whether ctx
    # is entered, never by entering it (which, without the GIL, races the
    # other thread's Context.run and on 3.13t can crash the interpreter).
    ctx = contextvars.copy_context()
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=ctx.run, args=(lambda: (entered.set(), release.wait(30)),))
    holder.start()

    async def nothing() -> None:
        pass

    async def main() -> List[str]:
        refusals = []
        for _ in range(200):
            coro = nothing()
            try:
                ctxloop.create_task(coro, context=ctx)
            except RuntimeError as error:
                refusals.append(str(error).split(",")[0])
                coro.close()
        return refusals

    try:
        assert entered.wait(30)
        refusals = ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    finally:
        release.set()
        holder.join(30)
    assert len(refusals) == 200
    assert set(refusals) == {
        f"{ctx!r} is entered beneath the current context (for example the event loop runs inside context.run(...)"
    }


class _FreshLoop(asyncio.SelectorEventLoop):  # type: ignore[misc, valid-type]
    """A loop class ctxloop has not seen, so the first loops made from it race to make its subclass."""


def test_the_first_loops_made_at_once_share_one_class(loop_name: str) -> None:
    # Without the GIL, threads making their first loop of a class at the same
    # time each made a subclass of it (up to 6 of 8) before the class cache
    # took a lock. Each round races THREADS threads on a class never seen.
    from ctxloop._loop import loop_class

    start = threading.Barrier(THREADS)
    rounds: List[int] = []
    for _ in range(ROUNDS):
        fresh = type("FreshLoop", (_FreshLoop,), {})
        classes: List[type] = []

        def first_loop(fresh: type = fresh, classes: List[type] = classes) -> None:
            start.wait(30)
            classes.append(loop_class(fresh))

        threads = [threading.Thread(target=first_loop) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(classes) == THREADS
        rounds.append(len({id(cls) for cls in classes}))
    assert rounds == [1] * ROUNDS


ROUNDS = 50
