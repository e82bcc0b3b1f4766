"""N1-N6: the notebook's behaviours, checked directly and through examples/notebook.py."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, List

import ctxloop

ROOT = Path(__file__).resolve().parent.parent

# What each cell of ../shared/notebook-cells.md printed (Python 3.11, asyncio).
NOTEBOOK = {
    "4": [
        "In main: var = main value",
        "In print_var, var = main value",
        "In new context, var = main value",
        "In empty context, var = default",
    ],
    "13": [
        "Start request 0",
        "Start request 1",
        "Start request 2",
        "Nested in request 0",
        "End request 0",
        "Nested in request 1",
        "End request 1",
        "Nested in request 2",
        "End request 2",
    ],
    "21": ["in sub1, var.get()='main set'", "in sub2, var.get()='sub1 set'", "in main, var.get()='sub1 set'"],
    "22": [f"level = {a}, var.get() = {b}" for a, b in [(2, 2), (1, 1), (0, 0), (0, 0), (1, 1), (2, 2)]],
    "23": [f"level = {a}, var.get() = {b}" for a, b in [(2, 2), (1, 1), (0, 0), (0, 0), (1, 0), (2, 0)]],
    "25": ["spam", "spam", "spam", "ham", "ham", "ham", "spam"],
}
NOTEBOOK["23b"] = NOTEBOOK["22"]  # the commented-out 3.11 line, working


def _expected(loop: str) -> List[str]:
    lines = [f"# loop: {loop}"]
    for cell in ["4", "13", "21", "22", "23", "23b", "25"]:
        lines += [f"In [{cell}]:", *NOTEBOOK[cell]]
    return lines


def test_example_prints_the_notebook(loop_name: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), loop_name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stderr == ""
    assert out.stdout.splitlines() == _expected(loop_name)


def test_notebook_text_matches_the_shared_demonstration() -> None:
    # The expectations above are the notebook's own lines, where it is at hand.
    shared = ROOT.parent / "shared" / "notebook-cells.md"
    if not shared.exists():
        import pytest

        pytest.skip("../shared/notebook-cells.md is not beside this checkout")
    text = shared.read_text(encoding="utf-8")
    for cell, lines in NOTEBOOK.items():
        if cell != "23b":
            assert "\n".join(lines) in text, cell


def test_n1_copy_context_snapshot_and_empty_context(run: Callable[..., Any]) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")
    seen = []

    async def print_var() -> None:
        seen.append(var.get())

    async def main() -> None:
        var.set("main value")
        seen.append(var.get())
        await asyncio.create_task(print_var())
        seen.append(contextvars.copy_context().run(var.get))
        seen.append(contextvars.Context().run(var.get))

    run(main())
    assert seen == ["main value"] * 3 + ["default"]


def test_n2_gather_requests_see_only_their_own_id(run: Callable[..., Any]) -> None:
    request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")
    log = []

    async def handle(i: int) -> None:
        request_id.set(i)
        log.append(("start", i, request_id.get()))
        for _ in range(1 + 2 * i):
            await asyncio.sleep(0)

        async def nested() -> None:
            log.append(("nested", i, request_id.get()))

        await nested()
        log.append(("end", i, request_id.get()))

    async def main() -> None:
        await asyncio.gather(*[handle(i) for i in range(3)])
        assert request_id.get(None) is None

    run(main())
    assert all(i == seen for _, i, seen in log)
    assert [step for step, _, _ in log] == ["start"] * 3 + ["nested", "end"] * 3


def test_n3_awaiting_a_coroutine_shares_the_context(run: Callable[..., Any]) -> None:
    var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default={})
    seen = []

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

    run(main())
    assert seen == ["main set", "sub1 set", "sub1 set"]


def _levels(run: Callable[..., Any], spawn: Callable[..., Any]) -> List[int]:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    seen: List[int] = []

    async def coro_func(level: int) -> None:
        var.set(level)
        seen.append(var.get())
        if level:
            await spawn(coro_func, level, var)
        seen.append(var.get())

    run(coro_func(2))
    return seen


def test_n4_nested_tasks_each_run_in_a_copy(run: Callable[..., Any]) -> None:
    async def spawn(coro_func: Any, level: int, var: Any) -> None:
        await asyncio.create_task(coro_func(level - 1))

    assert _levels(run, spawn) == [2, 1, 0, 0, 1, 2]


def test_n5_nested_plain_wrapper_shares_the_context(run: Callable[..., Any]) -> None:
    async def spawn(coro_func: Any, level: int, var: Any) -> None:
        async def wrapper() -> None:
            var.set(level - 1)
            await coro_func(level - 1)

        await wrapper()

    assert _levels(run, spawn) == [2, 1, 0, 0, 0, 0]


def test_n5b_create_task_with_copied_context(run: Callable[..., Any]) -> None:
    async def spawn(coro_func: Any, level: int, var: Any) -> None:
        await ctxloop.create_task(coro_func(level - 1), context=contextvars.copy_context())

    assert _levels(run, spawn) == [2, 1, 0, 0, 1, 2]


def test_n5b_loop_create_task_with_copied_context(run: Callable[..., Any]) -> None:
    async def spawn(coro_func: Any, level: int, var: Any) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_task(coro_func(level - 1), context=contextvars.copy_context())

    assert _levels(run, spawn) == [2, 1, 0, 0, 1, 2]


def test_n6_ctx_run_confines_changes() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen = []

    def body() -> None:
        var.set("spam")
        seen.append(var.get())
        ctx = contextvars.copy_context()

        def main() -> None:
            seen.extend([var.get(), ctx[var]])
            var.set("ham")
            seen.extend([var.get(), ctx[var]])

        ctx.run(main)
        seen.extend([ctx[var], var.get()])

    contextvars.copy_context().run(body)
    assert seen == ["spam", "spam", "spam", "ham", "ham", "ham", "spam"]
