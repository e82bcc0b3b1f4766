"""The checks of N1-N6 and S1-S7 that ``python -m ctxloop`` runs on each loop, and what every check shares.

Each check is a function ``(make_loop, timeout)`` reproducing one behaviour
of the contract (N1-N6 from the notebook, S1-S7 from the semantics) on a fresh
ctxloop loop, raising ``CheckFailed`` when what it sees differs from CPython
3.12; the report (``_report.py``) runs it in a thread of its own, under a
deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Callable, Coroutine, List, Optional, Tuple, Type, TypeVar

from ._create import create_task
from ._runner import run

__all__ = [
    "CheckFailed",
    "LoopFactory",
    "check_n1",
    "check_n2",
    "check_n3",
    "check_n4",
    "check_n5",
    "check_n5b",
    "check_n6",
    "check_s1",
    "check_s2",
    "check_s3",
    "check_s4",
    "check_s5",
    "check_s6",
    "check_s7",
    "expect",
    "main_task",
]

_T = TypeVar("_T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class CheckFailed(Exception):
    """A check saw something other than what the contract says."""


def expect(got: object, want: object) -> None:
    """Raise ``CheckFailed`` unless *got* is *want*."""
    if got != want:
        raise CheckFailed(f"got {got!r}, expected {want!r}")


def main_task(make_loop: LoopFactory, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
    """Run *coro* as the main task of a fresh ctxloop loop, cancelled after *timeout*."""
    return run(asyncio.wait_for(coro, timeout), loop_factory=make_loop)


def _levels(make_loop: LoopFactory, timeout: float, spawn: str) -> List[int]:
    """The notebook's cells 22/23: the levels a nested coro_func prints on its way back."""
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    seen: List[int] = []

    async def coro_func(level: int) -> None:
        var.set(level)
        seen.append(var.get())
        if level:
            loop = asyncio.get_running_loop()
            if spawn == "task":
                await loop.create_task(coro_func(level - 1))
            elif spawn == "task-context":
                await loop.create_task(coro_func(level - 1), context=contextvars.copy_context())  # type: ignore[call-arg]
            else:

                async def wrapper() -> None:
                    var.set(level - 1)
                    await coro_func(level - 1)

                await wrapper()
        seen.append(var.get())

    main_task(make_loop, coro_func(2), timeout)
    return seen


def check_n1(make_loop: LoopFactory, timeout: float) -> None:
    """A task, copy_context() and a fresh Context() see main's value, then the default."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")
    seen: List[str] = []

    async def print_var() -> None:
        seen.append(var.get())

    async def main() -> None:
        var.set("main value")
        seen.append(var.get())
        await asyncio.get_running_loop().create_task(print_var())
        seen.append(contextvars.copy_context().run(var.get))
        seen.append(contextvars.Context().run(var.get))

    main_task(make_loop, main(), timeout)
    expect(seen, ["main value"] * 3 + ["default"])


def check_n2(make_loop: LoopFactory, timeout: float) -> None:
    """Three gathered requests each see only their own id, in nested coroutines too."""
    request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")
    log: List[str] = []

    async def handle(i: int) -> None:
        request_id.set(i)
        log.append(f"start {i}={request_id.get()}")
        for _ in range(1 + 2 * i):  # the notebook slept 1 + 2*i seconds
            await asyncio.sleep(0)

        async def nested() -> None:
            log.append(f"nested {i}={request_id.get()}")

        await nested()
        log.append(f"end {i}={request_id.get()}")

    async def main() -> None:
        await asyncio.gather(*[handle(i) for i in range(3)])
        log.append(f"main={request_id.get(None)}")

    main_task(make_loop, main(), timeout)
    want = [f"start {i}={i}" for i in range(3)]
    for i in range(3):
        want += [f"nested {i}={i}", f"end {i}={i}"]
    expect(log, [*want, "main=None"])


def check_n3(make_loop: LoopFactory, timeout: float) -> None:
    """Awaiting coroutines directly shares one context: main set / sub1 set / sub1 set."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen: List[str] = []

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

    main_task(make_loop, main(), timeout)
    expect(seen, ["main set", "sub1 set", "sub1 set"])


def check_n4(make_loop: LoopFactory, timeout: float) -> None:
    """Nested create_task: each task runs in a copy, levels 2,1,0,0,1,2."""
    expect(_levels(make_loop, timeout, "task"), [2, 1, 0, 0, 1, 2])


def check_n5(make_loop: LoopFactory, timeout: float) -> None:
    """A nested plain wrapper coroutine shares the context: levels 2,1,0,0,0,0."""
    expect(_levels(make_loop, timeout, "wrapper"), [2, 1, 0, 0, 0, 0])


def check_n5b(make_loop: LoopFactory, timeout: float) -> None:
    """The notebook's 3.11 line, create_task(..., context=copy_context()): 2,1,0,0,1,2."""
    expect(_levels(make_loop, timeout, "task-context"), [2, 1, 0, 0, 1, 2])


def check_n6(make_loop: LoopFactory, timeout: float) -> None:
    """ctx.run(main) keeps main's changes in ctx: spam spam spam ham ham ham spam."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen: List[str] = []

    async def main() -> None:
        var.set("spam")
        seen.append(var.get())
        ctx = contextvars.copy_context()

        def body() -> None:
            seen.extend([var.get(), ctx[var]])
            var.set("ham")
            seen.extend([var.get(), ctx[var]])

        ctx.run(body)
        seen.extend([ctx[var], var.get()])

    main_task(make_loop, main(), timeout)
    expect(seen, ["spam", "spam", "spam", "ham", "ham", "ham", "spam"])


def check_s1(make_loop: LoopFactory, timeout: float) -> None:
    """Without context=, a task runs in a copy taken at creation, not at its first step."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")

    async def child() -> Tuple[str, str]:
        seen = var.get()
        var.set("set by the task")
        await asyncio.sleep(0)
        return seen, var.get()

    async def main() -> Tuple[str, str, str]:
        var.set("at creation")
        task = asyncio.get_running_loop().create_task(child())
        var.set("after creation")
        first, last = await task
        return first, last, var.get()

    expect(main_task(make_loop, main(), timeout), ("at creation", "set by the task", "after creation"))


def check_s2(make_loop: LoopFactory, timeout: float) -> None:
    """With context=ctx, a task runs in ctx itself: its writes are in ctx[var], others' reach it."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> List[Optional[str]]:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        started, resume = asyncio.Event(), asyncio.Event()

        async def writer() -> str:
            var.set("set by the task")
            started.set()
            await resume.wait()
            return var.get()

        async def reader() -> str:
            return var.get()

        task = loop.create_task(writer(), context=ctx)  # type: ignore[call-arg]
        await started.wait()
        seen = [ctx.get(var)]
        ctx.run(var.set, "set between its steps")
        resume.set()
        seen.append(await task)
        seen.append(await loop.create_task(reader(), context=ctx))  # type: ignore[call-arg]
        seen.append(var.get())
        return seen

    expect(
        main_task(make_loop, main(), timeout),
        ["set by the task", "set between its steps", "set between its steps", "unset"],
    )


def check_s3(make_loop: LoopFactory, timeout: float) -> None:
    """call_soon and add_done_callback capture the context current when they are scheduled."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: List[str] = []

    async def child() -> str:
        loop = asyncio.get_running_loop()
        var.set("when scheduled")
        called: asyncio.Future[None] = loop.create_future()

        def callback() -> None:
            seen.append(var.get())
            var.set("set by a callback")  # in the callback's own copy
            called.set_result(None)

        loop.call_soon(callback)
        await called
        seen.append(var.get())
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(lambda _: seen.append(var.get()))
        var.set("after scheduling")
        done.set_result(None)
        await asyncio.sleep(0)
        return var.get()

    async def main() -> str:
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().create_task(child(), context=ctx)  # type: ignore[call-arg]

    expect(main_task(make_loop, main(), timeout), "after scheduling")
    expect(seen, ["when scheduled", "when scheduled", "when scheduled"])


def check_s4(make_loop: LoopFactory, timeout: float) -> None:
    """task.get_context() is the given ctx (inside and outside); else the task's own copy."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")

    async def child() -> contextvars.Context:
        var.set("mine")
        task = asyncio.current_task()
        assert task is not None
        return task.get_context()  # type: ignore[attr-defined, no-any-return]

    async def main() -> List[bool]:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        given = loop.create_task(child(), context=ctx)  # type: ignore[call-arg]
        own = loop.create_task(child())
        inside_given, inside_own = await given, await own
        return [
            given.get_context() is ctx,  # type: ignore[attr-defined]
            inside_given is ctx,
            own.get_context() is inside_own,  # type: ignore[attr-defined]
            inside_own.get(var) == "mine" and var.get(None) is None,
        ]

    expect(main_task(make_loop, main(), timeout), [True] * 4)


def check_s5(make_loop: LoopFactory, timeout: float) -> None:
    """A real asyncio.Task: current_task, all_tasks, get_coro, repr, stack, names, errors, cancel."""

    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        problems: List[str] = []
        gate = asyncio.Event()

        async def body() -> str:
            await gate.wait()
            return "result"

        coro = body()
        task = loop.create_task(coro, name="checked", context=contextvars.copy_context())  # type: ignore[call-arg]
        await asyncio.sleep(0)
        facts = {
            "isinstance asyncio.Task": isinstance(task, asyncio.Task),
            "in all_tasks()": task in asyncio.all_tasks(),
            "get_coro() is the coroutine": task.get_coro() is coro,
            "repr shows the coroutine": "body" in repr(task),
            "get_stack() shows its frame": [f.f_code for f in task.get_stack()] == [coro.cr_code],  # type: ignore[attr-defined]
            "get_name()": task.get_name() == "checked",
        }
        problems += [name for name, ok in facts.items() if not ok]
        task.set_name("renamed")
        if task.get_name() != "renamed":
            problems.append("set_name()")
        gate.set()
        if await task != "result":
            problems.append("result")

        async def current() -> bool:
            return asyncio.current_task() is inner

        inner = loop.create_task(current(), context=contextvars.copy_context())  # type: ignore[call-arg]
        if not await inner:
            problems.append("current_task()")

        async def fails() -> None:
            raise LookupError("raised by the task")

        try:
            await loop.create_task(fails(), context=contextvars.copy_context())  # type: ignore[call-arg]
            problems.append("exception lost")
        except LookupError:
            pass
        blocked = loop.create_task(asyncio.Event().wait(), context=contextvars.copy_context())  # type: ignore[call-arg]
        await asyncio.sleep(0)
        blocked.cancel()
        try:
            await blocked
            problems.append("cancel() ignored")
        except asyncio.CancelledError:
            pass
        return problems

    problems = main_task(make_loop, main(), timeout)
    if problems:
        raise CheckFailed("wrong: " + ", ".join(problems))


def _raises(
    kind: Type[BaseException], create: Callable[[Coroutine[Any, Any, None]], Any], *words: str
) -> Optional[str]:
    """None if create(coro) raises *kind* with every word in its message, else what happened."""

    async def never_run() -> None:  # pragma: no cover - refused before it runs
        pass

    coro = never_run()
    try:
        create(coro)
    except kind as error:
        missing = [w for w in words if w not in str(error)]
        return f"{kind.__name__} without {missing}: {error}" if missing else None
    except BaseException as error:
        return f"{type(error).__name__}: {error} (expected {kind.__name__})"
    finally:
        coro.close()
    return f"no {kind.__name__}"


def check_s6(make_loop: LoopFactory, timeout: float) -> None:
    """Bad input fails at creation: TypeError naming a non-Context, TypeError, closed loop RuntimeError."""

    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        outcomes = [
            _raises(TypeError, lambda c: loop.create_task(c, context=42), "Context", "int"),  # type: ignore[call-arg, arg-type]
            _raises(TypeError, lambda c: create_task(c, context={}), "Context", "dict"),  # type: ignore[arg-type]
        ]
        not_a_coroutine = _raises(TypeError, lambda c: loop.create_task(42))  # type: ignore[arg-type]
        outcomes.append(not_a_coroutine and f"non-coroutine: {not_a_coroutine}")
        return [o for o in outcomes if o]

    problems = main_task(make_loop, main(), timeout)
    closed = make_loop()
    closed.close()
    outcome = _raises(RuntimeError, lambda c: closed.create_task(c, context=contextvars.copy_context()))  # type: ignore[call-arg]
    if outcome:
        problems.append(f"closed loop: {outcome}")
    if problems:
        raise CheckFailed("; ".join(problems))


def check_s7(make_loop: LoopFactory, timeout: float) -> None:
    """An entered ctx: what CPython runs works (shared with the parent); one entered beneath is refused."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    outer = contextvars.copy_context()

    async def child(value: str) -> None:
        var.set(value)

    def spawn(coro: Coroutine[Any, Any, None], context: contextvars.Context) -> Any:
        try:
            return asyncio.get_running_loop().create_task(coro, context=context)  # type: ignore[call-arg]
        except BaseException:
            coro.close()  # refused: never run, so never awaited
            raise

    async def shares() -> List[str]:
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        await spawn(child("own"), own)
        seen = [var.get()]
        inline = contextvars.copy_context()
        await inline.run(spawn, child("inline"), inline)
        seen.append(inline[var])
        return seen

    expect(main_task(make_loop, shares(), timeout), ["own", "inline"])

    async def beneath() -> List[str]:
        loop = asyncio.get_running_loop()
        outcomes = [
            _raises(RuntimeError, lambda c: loop.create_task(c, context=outer), "entered beneath"),  # type: ignore[call-arg]
            _raises(RuntimeError, lambda c: create_task(c, context=outer), "entered beneath"),
        ]
        labels = ["loop.create_task", "ctxloop.create_task"]
        return [f"{label}: {o}" for label, o in zip(labels, outcomes) if o]

    # The whole loop runs inside outer.run(...): outer is entered throughout.
    problems = outer.run(main_task, make_loop, beneath(), timeout)
    if problems:
        raise CheckFailed("; ".join(problems))
