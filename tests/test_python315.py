"""Where 3.15's asyncio changes meet ctxloop's promises: servers' contexts, TaskGroup.cancel().

3.15 gives every connection a server accepts its own copy of the context the
server was created in, and creates the connection's handler task with
``context=``; it adds ``TaskGroup.cancel()``. A ctxloop loop must do what the
base loop does on each Python (S10), with the handler task and the group's
tasks made by ctxloop's ``create_task`` (S1-S7), and give a server's
connections that copy on every loop (C1; rloop 0.5 does not).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, List

import pytest
from conftest import run_plain

var: contextvars.ContextVar[str] = contextvars.ContextVar("py315_var", default="unset")

pytestmark = pytest.mark.timeout(30)


async def _serve_three_connections() -> List[str]:
    seen: List[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(var.get())
        var.set("by a handler")  # its own context: never the server's or the next connection's
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    var.set("at start_server")
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    var.set("after start_server")
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await writer.drain()
        assert await reader.readline() == b"ping\n"
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return [*seen, var.get()]


def test_a_server_handler_sees_what_it_sees_on_the_base_loop(run: Any, loop_name: str, base_loop_factory: Any) -> None:
    ours = run(_serve_three_connections())
    # Each connection: a copy of the context the server was created in (C1).
    assert ours == ["at start_server"] * 3 + ["after start_server"]
    native = run_plain(base_loop_factory, _serve_three_connections())
    if loop_name == "rloop":  # rloop 0.5 starts a server's connections in an empty context: C1 is ctxloop's
        assert native == ["unset"] * 3 + ["after start_server"]
    else:
        assert ours == native


@pytest.mark.skipif(sys.version_info < (3, 15), reason="TaskGroup.cancel() is new in Python 3.15")
def test_taskgroup_cancel_cancels_tasks_given_a_context(run: Any, loop_name: str, base_loop_factory: Any) -> None:
    async def sleeper() -> None:
        var.set("sleeping")
        try:
            await asyncio.sleep(3600)
        finally:
            var.set("cleaned up in ctx")

    async def main() -> Any:
        ctx = contextvars.copy_context()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(sleeper(), context=ctx)
            await asyncio.sleep(0)
            tg.cancel()
        return [task.cancelled(), ctx[var], task.get_context() is ctx, var.get()]

    expected = [True, "cleaned up in ctx", True, "unset"]
    assert run(main()) == expected
    assert run_plain(base_loop_factory, main()) == expected


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+")
def test_an_eager_task_failing_at_once_aborts_its_group(run: Any, loop_name: str, base_loop_factory: Any) -> None:
    # 3.15 fixed a group that such a task aborted before it joined the group.
    # (uvloop 0.23 on 3.13 passes eager_start= to the eager factory, which
    # rejects it there: natively only asyncio's loop runs this on every version.)
    async def fails() -> None:
        var.set("failed in ctx")
        raise ValueError("at once")

    async def main() -> Any:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        ctx = contextvars.copy_context()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fails(), context=ctx)
                await asyncio.sleep(3600)
        except ExceptionGroup as group:  # type: ignore[name-defined]  # noqa: F821
            return [type(e).__name__ for e in group.exceptions] + [ctx[var], var.get()]
        return "not aborted"

    expected = ["ValueError", "failed in ctx", "unset"]
    assert run(main()) == expected
    if loop_name == "asyncio":
        assert run_plain(base_loop_factory, main()) == expected
