"""anyio on a ctxloop loop (asyncio backend), and the same program on trio.

``anyio.run(main, backend="asyncio", backend_options={"loop_factory":
ctxloop.loop_factory("uvloop")})`` runs anyio on a ctxloop loop. anyio's task
groups give each task a *copy* (of the caller's context for ``start_soon``, of
ctx for ``create_task(context=ctx)``): anyio creates the task inside
``ctx.run(...)`` without passing ``context=`` to the loop. To run code in a
Context itself, await ``ctxloop.run_in_context(ctx, coro)`` inside the task:
that works on trio too. On the asyncio backend the loop's own
``create_task(coro, context=ctx)`` runs in ctx itself as well.

    python examples/anyio_app.py [BACKEND ...]   # asyncio (default), uvloop, trio
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import List

import anyio

import ctxloop

user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="anonymous")


async def login(name: str) -> None:
    await anyio.sleep(0)
    user.set(name)


async def main(backend: str) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(login, "copy")
    print(f"  start_soon(login): main sees user={user.get()}")

    session = contextvars.copy_context()

    async def login_in_session() -> None:
        await ctxloop.run_in_context(session, login("alice"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(login_in_session)
    print(f"  start_soon + run_in_context(session, ...): session has user={session[user]}")

    if backend != "trio":
        other = contextvars.copy_context()
        await asyncio.get_running_loop().create_task(login("bob"), context=other)  # type: ignore[call-arg]
        print(f"  loop.create_task(..., context=other): other has user={other[user]}")
    print(f"  main's own context: user={user.get()}")


def run(backend: str) -> None:
    """Run main() with anyio on *backend*: trio, or asyncio on a ctxloop loop of that name."""
    print(f"== {backend}")
    if backend == "trio":
        anyio.run(main, backend, backend="trio")
    else:
        factory = ctxloop.loop_factory(backend)
        anyio.run(main, backend, backend="asyncio", backend_options={"loop_factory": factory})


if __name__ == "__main__":
    backends: List[str] = sys.argv[1:] or ["asyncio"]
    for name in backends:
        run(name)
