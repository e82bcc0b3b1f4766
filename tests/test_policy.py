"""EventLoopPolicy, install() and uninstall(): opt-in, idempotent, reversible (S9, S10)."""

from __future__ import annotations

import asyncio
import asyncio.events
import contextvars
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest

import ctxloop
from ctxloop._loop import is_ctxloop_loop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(autouse=True)
def restore_policy() -> Iterator[None]:
    saved = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
    saved_create_task = asyncio.create_task
    yield
    ctxloop.uninstall()
    asyncio.set_event_loop_policy(saved)
    assert asyncio.create_task is saved_create_task


def _levels_with_context() -> Any:
    async def coro_func(level: int, seen: list) -> list:
        var.set(str(level))
        seen.append(var.get())
        if level:
            task = asyncio.get_running_loop().create_task(  # type: ignore[call-arg]
                coro_func(level - 1, seen), context=contextvars.copy_context()
            )
            await task
        seen.append(var.get())
        return seen

    return coro_func(2, [])


def test_policy_hands_out_ctxloop_loops(loop_name: str) -> None:
    policy = ctxloop.EventLoopPolicy(loop_name)
    asyncio.set_event_loop_policy(policy)
    assert asyncio.run(_levels_with_context()) == ["2", "1", "0", "0", "1", "2"]
    loop = policy.new_event_loop()
    try:
        assert is_ctxloop_loop(loop)
    finally:
        loop.close()


def test_policy_wraps_an_instance_and_forwards(loop_name: str) -> None:
    base = asyncio.DefaultEventLoopPolicy()
    policy = ctxloop.EventLoopPolicy(base)
    assert policy.base is base
    assert ctxloop.EventLoopPolicy(policy).base is base  # wrapping twice wraps the base once
    loop = policy.new_event_loop()
    try:
        policy.set_event_loop(loop)
        assert policy.get_event_loop() is loop
        assert base.get_event_loop() is loop
    finally:
        policy.set_event_loop(None)
        loop.close()


def test_policy_bad_base() -> None:
    with pytest.raises(TypeError, match="not int"):
        ctxloop.EventLoopPolicy(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown policy 'trio'"):
        ctxloop.EventLoopPolicy("trio")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocess")
def test_subprocess_under_the_policy(loop_name: str) -> None:
    # Child watchers (3.8-3.11) must keep working through the wrapper policy.
    asyncio.set_event_loop_policy(ctxloop.EventLoopPolicy(loop_name))

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(42)", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out

    assert asyncio.run(main()).strip() == b"42"


def test_install_and_uninstall_restore_exactly(loop_name: str) -> None:
    before_policy = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
    before_create_task = asyncio.create_task
    ctxloop.install(loop_name)
    ctxloop.install(loop_name)  # idempotent
    policy = asyncio.get_event_loop_policy()
    assert isinstance(policy, ctxloop.EventLoopPolicy)
    if sys.version_info < (3, 11):
        assert asyncio.create_task is ctxloop.create_task
    else:
        assert asyncio.create_task is before_create_task  # nothing to patch on 3.11+

    async def main() -> list:
        seen = []

        async def child() -> None:
            var.set("child")

        ctx = contextvars.copy_context()
        await asyncio.create_task(child(), context=ctx)  # type: ignore[call-arg]
        seen.append(ctx[var])
        return seen

    assert asyncio.run(main()) == ["child"]
    ctxloop.uninstall()
    ctxloop.uninstall()  # idempotent
    assert asyncio.events._event_loop_policy is before_policy  # type: ignore[attr-defined]
    assert asyncio.create_task is before_create_task


def test_install_without_patching_create_task() -> None:
    before = asyncio.create_task
    ctxloop.install(patch_create_task=False)
    assert asyncio.create_task is before
    ctxloop.uninstall()


def _run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stderr == ""
    return out.stdout


def test_importing_changes_nothing_and_warns_nothing() -> None:
    # S9, in a fresh interpreter with every warning an error.
    out = _run_python(
        """
        import asyncio, asyncio.events, asyncio.tasks, contextvars, sys
        before = (asyncio.events._event_loop_policy, asyncio.create_task, asyncio.Task,
                  asyncio.tasks.Task, contextvars.copy_context, asyncio.get_event_loop_policy)
        import ctxloop
        after = (asyncio.events._event_loop_policy, asyncio.create_task, asyncio.Task,
                 asyncio.tasks.Task, contextvars.copy_context, asyncio.get_event_loop_policy)
        assert before == after, (before, after)
        assert "ctxloop._policy" not in sys.modules
        print("unchanged")
        """
    )
    assert out == "unchanged\n"


def test_loop_factory_route_emits_no_warning() -> None:
    out = _run_python(
        """
        import asyncio, contextvars, sys, ctxloop
        async def main():
            ctx = contextvars.copy_context()
            await ctxloop.create_task(asyncio.sleep(0), context=ctx)
            await asyncio.get_running_loop().create_task(asyncio.sleep(0), context=ctx)
            return "ok"
        print(ctxloop.run(main(), loop_factory=ctxloop.loop_factory()))
        assert "ctxloop._policy" not in sys.modules
        """
    )
    assert out == "ok\n"


def test_uninstall_leaves_a_policy_set_after_install() -> None:
    ctxloop.install()
    mine = asyncio.DefaultEventLoopPolicy()
    asyncio.set_event_loop_policy(mine)
    ctxloop.uninstall()
    assert asyncio.get_event_loop_policy() is mine
