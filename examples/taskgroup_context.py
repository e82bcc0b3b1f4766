"""TaskGroup.create_task(coro, context=ctx) on a ctxloop loop: tasks that run in a Context you choose.

Two uses: several tasks sharing one Context (their steps never nest, so they
take turns writing to it), and one Context per task whose results you read
after the group is done. Tasks created without ``context=`` run in copies:
their writes stay in them.

On Python 3.11+ this is ``asyncio.TaskGroup``; on 3.8-3.10 the ``taskgroup``
backport (``pip install taskgroup``), run under ``ctxloop.install()``: the
backport's TaskGroup takes over the task that opens it, which must then be a
plain task, not one created with ``context=`` as ``ctxloop.run``'s main task is.

    python examples/taskgroup_context.py
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, Dict, Tuple

import ctxloop

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup
else:
    from taskgroup import TaskGroup

done: contextvars.ContextVar[Tuple[str, ...]] = contextvars.ContextVar("done", default=())
status: contextvars.ContextVar[str] = contextvars.ContextVar("status", default="not run")


async def worker(name: str, items: int) -> None:
    for item in range(items):
        done.set((*done.get(), f"{name}{item}"))  # appended to the context it runs in
        await asyncio.sleep(0)


async def fetch(name: str, steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)
    status.set(f"{name}: fetched after {steps} steps")


async def main() -> None:
    shared = contextvars.copy_context()
    async with TaskGroup() as tg:
        for name, items in [("a", 3), ("b", 2), ("c", 1)]:
            tg.create_task(worker(name, items), context=shared)  # type: ignore[call-arg]
    print("one context shared by three tasks:", " ".join(shared[done]))

    contexts: Dict[str, contextvars.Context] = {name: contextvars.copy_context() for name in ("users", "orders")}
    async with TaskGroup() as tg:
        for steps, (name, ctx) in enumerate(contexts.items(), start=1):
            tg.create_task(fetch(name, steps), context=ctx)  # type: ignore[call-arg]
        tg.create_task(fetch("copy", 1))  # no context=: a copy of main's
    for ctx in contexts.values():
        print("a context per task:", ctx[status])
    print("main's own context:", done.get(), status.get())


def run(coro: Any) -> None:
    if sys.version_info >= (3, 11):
        ctxloop.run(coro, loop_factory=ctxloop.loop_factory())
    else:
        ctxloop.install()
        try:
            asyncio.run(coro)
        finally:
            ctxloop.uninstall()


if __name__ == "__main__":
    run(main())
