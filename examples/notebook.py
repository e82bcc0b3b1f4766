"""The notebook ctxloop comes from, cell by cell, on every installed loop.

Prints, for each loop, the lines each cell of the notebook printed (Python
3.11, asyncio). Cell 23b is the line the notebook had to comment out because
it needs Python 3.11: with ctxloop it runs on 3.8+ and prints what cell 22
prints. Cell 13 slept 1, 3 and 5 seconds; here request i yields to the loop
1 + 2*i times instead, which gives the same order without waiting.

    python examples/notebook.py [LOOP ...]      # default: every installed loop
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import sys
from typing import Any, Coroutine, List

import ctxloop


def cell_4() -> Coroutine[Any, Any, None]:
    var = contextvars.ContextVar("var", default="default")

    async def print_var() -> None:
        print(f"In print_var, var = {var.get()}")

    async def main() -> None:
        var.set("main value")
        print(f"In main: var = {var.get()}")
        # an async task inherits its caller's context
        task = asyncio.create_task(print_var())
        await task
        # new_context is a copy of the current context
        new_context = contextvars.copy_context()
        new_context.run(lambda: print(f"In new context, var = {var.get()}"))
        # a brand-new context
        empty_context = contextvars.Context()
        empty_context.run(lambda: print(f"In empty context, var = {var.get()}"))

    return main()


def cell_13() -> Coroutine[Any, Any, None]:
    request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")

    async def handle_request(id: int) -> None:
        request_id.set(id)
        print(f"Start request {request_id.get()}")
        for _ in range(1 + id * 2):  # the notebook: await asyncio.sleep(1 + id * 2)
            await asyncio.sleep(0)

        async def nested() -> None:
            print(f"Nested in request {request_id.get()}")

        await nested()
        print(f"End request {request_id.get()}")

    async def main() -> None:
        tasks = [handle_request(idx) for idx in range(3)]
        await asyncio.gather(*tasks)

    return main()


def cell_21() -> Coroutine[Any, Any, None]:
    var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default={})

    async def sub2() -> None:
        print(f"in sub2, {var.get()=}")
        var.set("sub1 set")

    async def sub1() -> None:
        print(f"in sub1, {var.get()=}")
        var.set("sub1 set")
        await sub2()

    async def main() -> None:
        var.set("main set")
        await sub1()
        print(f"in main, {var.get()=}")

    return main()


def cell_22() -> Coroutine[Any, Any, None]:
    var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default={})

    async def coro_func(level: int) -> None:
        var.set(level)
        print(f"level = {level}, var.get() = {var.get()}")
        if level:
            await asyncio.create_task(coro_func(level - 1))
        print(f"level = {level}, var.get() = {var.get()}")

    return coro_func(2)


def cell_23() -> Coroutine[Any, Any, None]:
    var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default={})

    async def coro_func(level: int) -> None:
        var.set(level)
        print(f"level = {level}, var.get() = {var.get()}")
        if level:

            async def wrapper() -> None:
                var.set(level - 1)
                await coro_func(level - 1)

            await wrapper()
        print(f"level = {level}, var.get() = {var.get()}")

    return coro_func(2)


def cell_23b() -> Coroutine[Any, Any, None]:
    var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default={})

    async def coro_func(level: int) -> None:
        var.set(level)
        print(f"level = {level}, var.get() = {var.get()}")
        if level:
            # The notebook's commented-out 3.11 lines, unchanged:
            context = contextvars.copy_context() if asyncio.current_task() else None
            await asyncio.create_task(coro_func(level - 1), context=context)  # type: ignore[call-arg]
        print(f"level = {level}, var.get() = {var.get()}")

    return coro_func(2)


def cell_25() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("spam")
    print(var.get())  # 'spam'
    ctx = contextvars.copy_context()

    def main() -> None:
        print(var.get())  # 'spam'
        print(ctx[var])  # 'spam'
        var.set("ham")
        print(var.get())  # 'ham'
        print(ctx[var])  # 'ham'

    ctx.run(main)
    print(ctx[var])  # 'ham'
    print(var.get())  # 'spam'


ASYNC_CELLS = [("4", cell_4), ("13", cell_13), ("21", cell_21), ("22", cell_22), ("23", cell_23), ("23b", cell_23b)]


def installed_loops() -> List[str]:
    """The loop names ctxloop can build on in this interpreter."""
    return ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


def run_notebook(loop: str) -> None:
    """Print every cell's output, each async cell run by ctxloop.run on *loop*."""
    factory = ctxloop.loop_factory(loop)
    for number, cell in ASYNC_CELLS:
        print(f"In [{number}]:")
        # Each cell runs in its own copy of this context, as separate notebook
        # cells sharing one IPython loop would not: keeps the cells independent.
        ctxloop.run(cell(), loop_factory=factory)
    print("In [25]:")
    contextvars.copy_context().run(cell_25)


def main(argv: List[str]) -> None:
    # On 3.8-3.10 the application-level switch lets asyncio.create_task take
    # context= (cell 23b); on 3.11+ asyncio.create_task takes it natively and
    # the loop factory is all it takes.
    if sys.version_info < (3, 11):
        ctxloop.install()
    try:
        for loop in argv or installed_loops():
            print(f"# loop: {loop}")
            run_notebook(loop)
    finally:
        ctxloop.uninstall()


if __name__ == "__main__":
    main(sys.argv[1:])
