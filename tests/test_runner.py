"""ctxloop.Runner / ctxloop.run: asyncio.Runner / asyncio.run of 3.12 on every Python."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import sys
import threading
from typing import Any, AsyncIterator, List

import pytest
from conftest import RLOOP_310_SIGNALS

import ctxloop
from ctxloop._loop import is_ctxloop_loop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_runs_share_the_runner_context(loop_name: str) -> None:
    async def set_it() -> None:
        var.set("first run")

    async def get_it() -> str:
        return var.get()

    with ctxloop.Runner(loop_factory=ctxloop.loop_factory(loop_name)) as runner:
        runner.run(set_it())
        assert runner.run(get_it()) == "first run"
        loop = runner.get_loop()
        assert is_ctxloop_loop(loop)
    assert loop.is_closed()
    assert var.get() == "unset"


def test_run_in_a_given_context(loop_name: str) -> None:
    ctx = contextvars.copy_context()

    async def main() -> Any:
        var.set("main")
        return asyncio.current_task().get_context()  # type: ignore[union-attr]

    assert ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name), context=ctx) is ctx
    assert ctx[var] == "main"
    coro = main()
    with pytest.raises(TypeError, match="not str"):
        ctxloop.run(coro, loop_factory=ctxloop.loop_factory(loop_name), context="ctx")  # type: ignore[arg-type]
    coro.close()


def test_default_loop_comes_from_the_policy() -> None:
    async def main() -> Any:
        return asyncio.get_running_loop()

    loop = ctxloop.run(main())
    assert is_ctxloop_loop(loop) and loop.is_closed()


def test_errors_as_asyncio(loop_name: str) -> None:
    async def main() -> None:
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            ctxloop.run(coro)
        coro.close()

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    if sys.version_info >= (3, 14):  # asyncio's Runner takes any awaitable from 3.14
        with pytest.raises(TypeError, match=r"An asyncio\.Future, a coroutine or an awaitable is required"):
            ctxloop.run(42)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match="a coroutine was expected"):
            ctxloop.run(42)  # type: ignore[arg-type]
    runner = ctxloop.Runner(loop_factory=ctxloop.loop_factory(loop_name))
    runner.close()  # never initialised: a no-op
    runner.get_loop()
    runner.close()
    with pytest.raises(RuntimeError, match="Runner is closed"):
        runner.get_loop()


def test_exceptions_propagate_and_tasks_are_cancelled_at_exit(loop_name: str) -> None:
    cancelled: List[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append("background")
            raise

    pending: List["asyncio.Future[None]"] = []

    async def main() -> None:
        pending.append(asyncio.ensure_future(background()))  # left for the runner to cancel
        await asyncio.sleep(0)
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    assert cancelled == ["background"]


def test_async_generators_and_executor_are_shut_down(loop_name: str) -> None:
    closed: List[str] = []
    executor_threads: List[threading.Thread] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("agen")

    async def main() -> None:
        gen = agen()
        await gen.__anext__()  # left suspended: the runner must finalise it
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: executor_threads.append(threading.current_thread())
        )

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    assert closed == ["agen"]
    assert executor_threads and not executor_threads[0].is_alive()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT handling is main-thread")
def test_ctrl_c_cancels_the_main_task_then_raises_keyboard_interrupt(loop_name: str) -> None:
    if loop_name == "rloop" and sys.version_info < (3, 11):
        pytest.skip(RLOOP_310_SIGNALS)
    cleanup: List[str] = []

    async def main() -> None:
        var.set("main")
        # raise_signal: to this thread (a signal to the process may reach another thread
        # and be handled only after the run, outside the Runner's handler)
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGINT)
        try:
            await asyncio.sleep(3600)
        finally:
            cleanup.append(var.get())

    with pytest.raises(KeyboardInterrupt) as info:
        ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
    assert cleanup == ["main"]
    # As 3.12's Runner: raised while handling the main task's CancelledError.
    assert isinstance(info.value.__context__, asyncio.CancelledError)
    assert not info.value.__suppress_context__
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
