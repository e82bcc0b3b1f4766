"""The task-factory contract of every Python, 3.14 and uvloop 0.23 included; warnings hygiene.

3.8-3.10 call ``factory(loop, coro)``; 3.11-3.13.2 and 3.13.4+ add ``context=``
when one is given; 3.13.3 and 3.14 forward every keyword of ``create_task``
(``name=``, ``context=``, ``eager_start=``, ...); uvloop on 3.11+ always passes
``context=`` (None too) and, from 0.23 on 3.13+, ``eager_start=``. Python 3.14
cannot be installed here, so its calls are made by hand (see
``docs/python314.md``).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import pytest
from conftest import LOOPS

import ctxloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("contract_var", default="unset")

EAGER = sys.version_info >= (3, 12)  # Task(eager_start=) exists
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.timeout(30)


async def _child() -> str:
    seen = var.get()
    var.set("child")
    await asyncio.sleep(0)
    return seen


# Every calling convention a loop uses; each is (kwargs) given after (loop, coro).
def _conventions(ctx: contextvars.Context) -> Dict[str, Dict[str, Any]]:
    calls: Dict[str, Dict[str, Any]] = {
        "3.8-3.10: (loop, coro)": {},
        "3.11-3.13.2: context=ctx": {"context": ctx},
        "uvloop 3.11+: context=None": {"context": None},
        "3.13.3/3.14: name=, context=": {"name": "named", "context": ctx},
    }
    if EAGER:
        calls["3.14: name=, context=, eager_start=False"] = {"name": "named", "context": ctx, "eager_start": False}
        calls["uvloop 0.23 on 3.13+: context=None, eager_start=False"] = {"context": None, "eager_start": False}
    return calls


@pytest.mark.parametrize("loop_name", LOOPS)
def test_task_factory_called_every_way(loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for convention, kwargs in _conventions(contextvars.copy_context()).items():
            ctx = kwargs.get("context")
            if ctx is not None:
                ctx.run(var.set, "in ctx")
            var.set("creator")
            task = ctxloop.task_factory(loop, _child(), **kwargs)
            assert isinstance(task, asyncio.Task), convention
            var.set("creator changed")
            seen = await task
            if ctx is None:
                assert seen == "creator", convention  # a copy taken at creation (S1)
            else:
                assert (seen, ctx[var], task.get_context() is ctx) == ("in ctx", "child", True), convention
            if "name" in kwargs:
                assert task.get_name() == "named", convention

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))


@pytest.mark.skipif(not EAGER, reason="eager_start= is 3.12+")
@pytest.mark.parametrize("loop_name", LOOPS)
def test_task_factory_eager_start_as_314_passes_it(loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        task = ctxloop.task_factory(loop, _child(), name="eager", context=ctx, eager_start=True)
        assert ctx[var] == "child"  # ran up to its first await, inside ctx, before returning
        assert await task == "unset"
        coro = _child()
        with pytest.raises(RuntimeError, match="is entered right now"):
            ctxloop.task_factory(loop, coro, context=asyncio.current_task().get_context(), eager_start=True)  # type: ignore[union-attr]
        coro.close()

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))


def test_task_factory_refuses_a_bad_context() -> None:
    async def main() -> None:
        coro = _child()
        with pytest.raises(TypeError, match=r"context must be a contextvars\.Context, not dict"):
            ctxloop.task_factory(asyncio.get_running_loop(), coro, context={})
        coro.close()

    ctxloop.run(main())


class Recorder:
    """Inner factories of each signature; each records the keywords it was given."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []

    def positional(self, loop: Any, coro: Any) -> Any:
        self.calls.append({})
        return asyncio.Task(coro, loop=loop)

    def context_only(self, loop: Any, coro: Any, *, context: Any = None) -> Any:
        self.calls.append({"context": context})
        return ctxloop.Task(coro, loop=loop, context=context)

    def name_and_context(self, loop: Any, coro: Any, *, name: Any = None, context: Any = None) -> Any:
        self.calls.append({"name": name, "context": context})
        return ctxloop.Task(coro, loop=loop, name=name, context=context)

    def anything(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        self.calls.append(dict(kwargs))
        kwargs.pop("unknown", None)
        return ctxloop.task_factory(loop, coro, **kwargs)


INNERS = ["positional", "context_only", "name_and_context", "anything"]


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("inner", INNERS)
def test_chain_task_factory_forwards_only_what_the_inner_accepts(loop_name: str, inner: str) -> None:
    recorder = Recorder()
    factory = ctxloop.chain_task_factory(getattr(recorder, inner))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        kwargs: Dict[str, Any] = {"name": "named", "context": ctx, "unknown": 1}
        if EAGER:
            kwargs["eager_start"] = False
        task = factory(loop, _child(), **kwargs)
        assert await task == "in ctx"
        assert ctx[var] == "child"  # that context itself, whatever the inner takes
        assert task.get_name() == "named"  # type: ignore[attr-defined]
        given = recorder.calls[-1]
        accepted = {
            "positional": set(),
            "context_only": {"context"},
            "name_and_context": {"name", "context"},
            # Before 3.11 a factory that passes its keywords on would pass
            # context= to a Task that does not take it: it gets none, and its
            # task is made to step in ctx instead.
            "anything": set(kwargs) if sys.version_info >= (3, 11) else set(kwargs) - {"context"},
        }[inner]
        assert set(given) == accepted
        if "context" in given:
            assert given["context"] is ctx

        # uvloop and asyncio.run always pass context=, None included: no binding then.
        task = factory(loop, _child(), context=None)
        var.set("creator")
        assert await task == "unset"
        assert recorder.calls[-1].get("context") is None

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("inner", INNERS)
def test_chain_task_factory_and_an_entered_context(loop_name: str, inner: str) -> None:
    factory = ctxloop.chain_task_factory(getattr(Recorder(), inner))
    outer = contextvars.copy_context()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # The creating task's own context: exited before the child's first step (S7).
        own = asyncio.current_task().get_context()  # type: ignore[union-attr]
        var.set("parent")
        assert await factory(loop, _child(), context=own) == "parent"
        assert var.get() == "child"
        # A context entered beneath the loop stays entered: refused (S7).
        coro = _child()
        with pytest.raises(RuntimeError, match="is entered beneath the current context"):
            factory(loop, coro, context=outer)
        coro.close()

    outer.run(ctxloop.run, main(), loop_factory=ctxloop.loop_factory(loop_name))


@pytest.mark.parametrize("loop_name", LOOPS)
def test_the_loop_calls_a_chained_factory_its_own_way(loop_name: str) -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(recorder.anything)  # chained by the ctxloop loop, not overwritten
        ctx = contextvars.copy_context()
        task = loop.create_task(_child(), name="named", context=ctx)  # type: ignore[call-arg]
        assert (await task, ctx[var], task.get_name()) == ("unset", "child", "named")
        given = recorder.calls[-1]
        assert given.get("context") in (ctx, None)  # None where the coroutine was bound instead
        assert set(given) <= {"name", "context", "eager_start"}

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))


# --- warnings hygiene: no DeprecationWarning; policies off the import path ---

_SCRIPT = textwrap.dedent(
    """
    import asyncio, contextvars, sys
    import ctxloop
    assert "ctxloop._policy" not in sys.modules, "import ctxloop imported the policy module"
    var = contextvars.ContextVar("v", default="unset")

    async def child():
        var.set("child")
        return asyncio.current_task().get_context() if sys.version_info >= (3, 11) else None

    async def main():
        ctx = contextvars.copy_context()
        task = ctxloop.create_task(child(), context=ctx)
        await task
        assert ctx[var] == "child"
        await ctxloop.isolated(child())
        return "ok"

    for base in BASES:
        factory = ctxloop.loop_factory(base)
        assert ctxloop.run(main(), loop_factory=factory) == "ok"
        with ctxloop.Runner(loop_factory=factory) as runner:
            assert runner.run(main(), context=contextvars.copy_context()) == "ok"
        if sys.version_info >= (3, 12):
            assert asyncio.run(main(), loop_factory=factory) == "ok"
            with asyncio.Runner(loop_factory=factory) as runner:
                assert runner.run(main()) == "ok"
        loop = ctxloop.new_event_loop(base)
        assert loop.run_until_complete(main()) == "ok"
        loop.close()
    assert "ctxloop._policy" not in sys.modules, "the loop-factory route imported the policy module"
    print("clean")
    """
)


def test_loop_factory_route_emits_no_warning_and_imports_no_policy() -> None:
    script = _SCRIPT.replace("BASES", repr(LOOPS))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "clean", "")


def test_chain_task_factory_with_a_foreign_task_keeps_s4_s5() -> None:
    def inner(loop: Any, coro: Any) -> Any:
        return asyncio.Task(coro, loop=loop)  # a factory from before context= existed

    async def main() -> None:
        ctx = contextvars.copy_context()
        coro = _child()
        task = ctxloop.chain_task_factory(inner)(asyncio.get_running_loop(), coro, context=ctx)
        await task
        assert ctx[var] == "child"  # S2 holds
        assert task.get_coro() is coro  # S5
        assert task.get_context() is ctx  # type: ignore[attr-defined]  # S4

    ctxloop.run(main())
