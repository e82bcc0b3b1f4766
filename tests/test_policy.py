"""EventLoopPolicy, install() and uninstall(): opt-in, idempotent, reversible (S9, S10).

Policies are deprecated from Python 3.14: there ``install()`` warns exactly as
asyncio's ``set_event_loop_policy()`` does, at the caller's line, and nothing
else in ctxloop warns (``policy_deprecation`` in conftest checks both).
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextvars
import subprocess
import sys
import textwrap
import warnings
from typing import Any, Iterator

import pytest
from conftest import POLICIES_DEPRECATED, DefaultPolicy, get_policy, policy_deprecation, set_policy

import ctxloop
from ctxloop._loop import is_ctxloop_loop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(autouse=True)
def restore_policy() -> Iterator[None]:
    saved = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
    saved_create_task = asyncio.create_task
    yield
    ctxloop.uninstall()
    asyncio.events._event_loop_policy = saved  # type: ignore[attr-defined]
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # making the policy object warns nothing, on any Python
        policy = ctxloop.EventLoopPolicy(loop_name)
    set_policy(policy)
    assert asyncio.run(_levels_with_context()) == ["2", "1", "0", "0", "1", "2"]
    loop = policy.new_event_loop()
    try:
        assert is_ctxloop_loop(loop)
        assert type(loop).__module__.split(".")[0] == loop_name
    finally:
        loop.close()


def test_policy_wraps_an_instance_and_forwards(loop_name: str) -> None:
    base = DefaultPolicy()
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
    set_policy(ctxloop.EventLoopPolicy(loop_name))

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(42)", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out

    assert asyncio.run(main()).strip() == b"42"


def test_install_and_uninstall_restore_exactly(loop_name: str) -> None:
    before_policy = asyncio.events._event_loop_policy  # type: ignore[attr-defined]
    before_create_task = asyncio.create_task
    with policy_deprecation():
        ctxloop.install(loop_name)
    policy = get_policy()
    with policy_deprecation():
        ctxloop.install(loop_name)  # idempotent: the same policy object, so the same current loop
    assert get_policy() is policy
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uninstall() warns nothing of its own
        ctxloop.uninstall()
        ctxloop.uninstall()  # idempotent
    assert asyncio.events._event_loop_policy is before_policy  # type: ignore[attr-defined]
    assert asyncio.create_task is before_create_task


def test_install_wraps_the_policy_in_force(loop_name: str) -> None:
    # As after uvloop.install(): install() with no base keeps the chosen policy.
    chosen = DefaultPolicy() if loop_name == "asyncio" else ctxloop.EventLoopPolicy(loop_name).base
    set_policy(chosen)
    with policy_deprecation():
        ctxloop.install()
    policy = get_policy()
    assert isinstance(policy, ctxloop.EventLoopPolicy) and policy.base is chosen
    loop = policy.new_event_loop()
    policy.set_event_loop(loop)
    try:
        with policy_deprecation():
            ctxloop.install()  # again: the same policy object, and its current loop
        assert get_policy() is policy
        assert policy.get_event_loop() is loop
        assert type(loop).__module__.split(".")[0] == loop_name
    finally:
        policy.set_event_loop(None)
        loop.close()
    ctxloop.uninstall()
    assert get_policy() is chosen


def test_install_with_another_base_replaces_the_policy() -> None:
    with policy_deprecation():
        ctxloop.install("asyncio")
    first = get_policy()
    with policy_deprecation():
        ctxloop.install(DefaultPolicy())
    assert get_policy() is not first and isinstance(get_policy(), ctxloop.EventLoopPolicy)


def test_install_without_patching_create_task() -> None:
    before = asyncio.create_task
    with policy_deprecation():
        ctxloop.install(patch_create_task=False)
    assert asyncio.create_task is before
    ctxloop.uninstall()


def test_install_inside_a_loop_ctxloop_did_not_create_warns() -> None:
    # A server that makes its own loop and imports the application inside it
    # (uvicorn's default) makes install() in the application too late.
    async def main() -> None:
        with pytest.warns(RuntimeWarning, match="a loop ctxloop did not create, is running") as caught:
            ctxloop.install()
        assert caught[0].filename == __file__
        ctxloop.uninstall()

    loop = asyncio.new_event_loop() if not POLICIES_DEPRECATED else DefaultPolicy().new_event_loop()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop.run_until_complete(main())
    finally:
        loop.close()


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
                  asyncio.tasks.Task, contextvars.copy_context)
        import ctxloop
        after = (asyncio.events._event_loop_policy, asyncio.create_task, asyncio.Task,
                 asyncio.tasks.Task, contextvars.copy_context)
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


def test_the_policy_route_warns_only_as_asyncio_does(loop_name: str) -> None:
    # In a fresh interpreter (uvloop's own policy class warns once, when first
    # made, on 3.14+: ctxloop's uvloop policy does not use it there).
    out = _run_python(
        f"""
        import warnings
        warnings.simplefilter("error")
        import asyncio, ctxloop
        policy = ctxloop.EventLoopPolicy({loop_name!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ctxloop.install({loop_name!r})
        print(len(caught), caught and caught[0].category.__name__, caught and caught[0].filename)
        print(asyncio.run(asyncio.sleep(0, "ran")))
        ctxloop.uninstall()
        """
    )
    expected = "1 DeprecationWarning <string>" if POLICIES_DEPRECATED else "0 [] []"
    assert out.splitlines() == [expected, "ran"]


def test_uninstall_leaves_a_policy_set_after_install() -> None:
    with policy_deprecation():
        ctxloop.install()
    mine = DefaultPolicy()
    set_policy(mine)
    ctxloop.uninstall()
    assert get_policy() is mine
