"""new_event_loop / loop_factory: the base loop in every respect (S10), plus context=."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import sys
import threading
from typing import Any, Callable, List

import pytest

import ctxloop
from ctxloop._loop import named_loop_class
from tests.conftest import RLOOP_NO_DEBUG, RLOOP_REMOVE_SIGNAL_HANDLER, run_plain

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


STREAMS = {
    "create_server",
    "create_unix_server",
    "create_connection",
    "create_unix_connection",
    "connect_accepted_socket",
}
DATAGRAMS_AND_PIPES = {"create_datagram_endpoint", "connect_read_pipe", "connect_write_pipe"}
# What each base loop gets wrong, so what a ctxloop loop of it overrides
# (docs/connections.md): asyncio before 3.15 everything but subprocesses, 3.15
# datagrams and pipes; uvloop stream servers and clients; rloop everything.
CONNECTION_ENTRY_POINTS = {
    "asyncio": DATAGRAMS_AND_PIPES | (set() if sys.version_info >= (3, 15) else STREAMS),
    "uvloop": STREAMS,
    "rloop": STREAMS | DATAGRAMS_AND_PIPES | {"subprocess_exec", "subprocess_shell"},
}


def test_the_loop_is_the_base_loop(loop_name: str, base_loop_factory: Callable[[], Any]) -> None:
    plain = base_loop_factory()
    loop = ctxloop.new_event_loop(loop_name)
    try:
        # A subclass that only overrides create_task and the entry points of the
        # connections the base loop does not keep in their own contexts (C1-C3):
        # the base class, and every other loop of it, is untouched; the
        # instance carries nothing extra.
        assert isinstance(loop, type(plain)) and type(loop).__name__ == type(plain).__name__
        overridden = {name for name in vars(type(loop)) if not name.startswith("_")}
        assert overridden == {"create_task", *CONNECTION_ENTRY_POINTS[loop_name]}
        assert "create_task" not in vars(plain) and "create_task" not in vars(loop)
        assert repr(loop).split()[0] == repr(plain).split()[0]
        assert ctxloop.enable(loop) is loop  # idempotent
        assert loop.get_task_factory() is None
    finally:
        plain.close()
        loop.close()


def test_loop_factory_makes_fresh_loops(loop_name: str) -> None:
    factory = ctxloop.loop_factory(loop_name)
    first, second = factory(), factory()
    try:
        assert first is not second
        assert loop_name in repr(factory)
    finally:
        first.close()
        second.close()


def test_bad_base() -> None:
    with pytest.raises(ValueError, match="unknown loop 'trio'"):
        ctxloop.new_event_loop("trio")
    with pytest.raises(TypeError, match="not int"):
        ctxloop.loop_factory(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"loop must be an asyncio\.AbstractEventLoop, not object"):
        ctxloop.new_event_loop(object)


@pytest.mark.skipif(sys.implementation.name != "pypy", reason="uvloop is missing only where it does not build")
def test_missing_uvloop_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match=r"uvloop runs on CPython only, not on pypy: use base='asyncio' here"):
        ctxloop.loop_factory("uvloop")


def test_any_zero_argument_factory(loop_name: str, base_loop_factory: Callable[[], Any]) -> None:
    made: List[Any] = []

    def factory() -> Any:
        made.append(base_loop_factory())
        return made[-1]

    async def main() -> str:
        ctx = contextvars.copy_context()

        async def child() -> None:
            var.set("child")

        await asyncio.get_running_loop().create_task(child(), context=ctx)  # type: ignore[call-arg]
        return ctx[var]

    assert ctxloop.run(main(), loop_factory=ctxloop.loop_factory(factory)) == "child"
    assert len(made) == 1 and made[0].is_closed()


def test_a_task_factory_set_later_is_returned_as_set_and_called_the_312_way(run: Callable[..., Any]) -> None:
    created: List[str] = []

    def my_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        created.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def child() -> str:
        var.set("child")
        return var.get()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert loop.get_task_factory() is None
        loop.set_task_factory(my_factory)
        assert loop.get_task_factory() is my_factory  # exactly what was set
        ctx = contextvars.copy_context()
        task = loop.create_task(child(), context=ctx, name="named")  # type: ignore[call-arg]
        assert await task == "child"
        assert ctx[var] == "child" and task.get_name() == "named"
        assert task.get_context() is ctx  # type: ignore[attr-defined]
        assert created and created[-1].endswith("child")
        loop.set_task_factory(None)
        assert loop.get_task_factory() is None
        assert await loop.create_task(child()) == "child"

    run(main())


def test_a_factory_without_context_fails_as_on_312(
    run: Callable[..., Any], loop_name: str, base_loop_factory: Any
) -> None:
    # CPython 3.12 calls factory(loop, coro, context=ctx): a factory that
    # takes neither context= nor **kwargs raises TypeError there, and so it
    # does on a ctxloop loop on every Python; without context= it works.
    def legacy(loop: Any, coro: Any) -> Any:
        return asyncio.Task(coro, loop=loop)

    async def child() -> str:
        return "child"

    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(legacy)
        outcomes = [await loop.create_task(child())]
        coro = child()
        try:
            loop.create_task(coro, context=contextvars.copy_context())  # type: ignore[call-arg]  # noqa: RUF006 - refused
        except TypeError as error:
            outcomes.append("TypeError" + (": context" if "context" in str(error) else str(error)))
        finally:
            coro.close()
        loop.set_task_factory(None)
        return outcomes

    assert run(main()) == ["child", "TypeError: context"]
    if sys.version_info >= (3, 12) and loop_name == "asyncio":
        # (uvloop itself passes context=None even without one, so there the
        # factory fails natively in both cases; a ctxloop uvloop loop calls
        # factories as CPython's loop does.)
        assert run_plain(base_loop_factory, main()) == ["child", "TypeError: context"]


def test_io_over_loopback(run: Callable[..., Any]) -> None:
    async def main() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        answer = await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return answer

    assert run(main()) == b"PING\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocess")
def test_subprocess(run: Callable[..., Any]) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hello')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    assert run(main()).strip() == b"hello"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signal_handlers(loop_name: str, run: Callable[..., Any]) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_REMOVE_SIGNAL_HANDLER)

    async def main() -> str:
        loop = asyncio.get_running_loop()
        got: "asyncio.Future[str]" = loop.create_future()
        var.set("at add_signal_handler")
        loop.add_signal_handler(signal.SIGUSR1, lambda: got.set_result(var.get()))
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            return await got
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    assert run(main()) == "at add_signal_handler"


def test_run_in_executor(run: Callable[..., Any]) -> None:
    async def main() -> int:
        return await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2, 3])

    assert run(main()) == 6


@pytest.mark.skipif(sys.version_info < (3, 9), reason="shutdown_default_executor() is 3.9+")
def test_shutdown_default_executor(loop_name: str) -> None:
    loop = ctxloop.new_event_loop(loop_name)
    try:
        assert loop.run_until_complete(loop.run_in_executor(None, int, "7")) == 7
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def test_debug_mode(loop_name: str) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_NO_DEBUG)

    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert ctxloop.run(main(), debug=True, loop_factory=ctxloop.loop_factory(loop_name)) is True
    assert ctxloop.run(main(), debug=False, loop_factory=ctxloop.loop_factory(loop_name)) is False


def test_threads_with_their_own_loops(loop_name: str) -> None:
    results: List[Any] = [None] * 4
    factory = ctxloop.loop_factory(loop_name)

    def worker(i: int) -> None:
        async def child() -> str:
            var.set(f"thread {i}")
            await asyncio.sleep(0)
            return var.get()

        async def main() -> Any:
            ctx = contextvars.copy_context()
            value = await asyncio.get_running_loop().create_task(child(), context=ctx)  # type: ignore[call-arg]
            return value, ctx[var], var.get()

        results[i] = ctxloop.run(main(), loop_factory=factory)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [(f"thread {i}", f"thread {i}", "unset") for i in range(4)]


def _instrumented_loop_class(loop_name: str, calls: List[Any]) -> Any:
    """A loop class of *loop_name* whose own create_task records each call."""
    base: Any = asyncio.SelectorEventLoop if loop_name == "asyncio" else named_loop_class(loop_name)

    class Instrumented(base):  # type: ignore[misc, valid-type]
        def create_task(self, coro: Any, **kwargs: Any) -> Any:
            calls.append(coro)
            return super().create_task(coro, **kwargs)

    return Instrumented


async def _child_sets_var() -> str:
    var.set("child")
    return var.get()


def test_a_loop_class_with_its_own_create_task_is_never_skipped(loop_name: str) -> None:
    calls: List[Any] = []
    Instrumented = _instrumented_loop_class(loop_name, calls)

    async def main() -> None:
        ctx = contextvars.copy_context()
        assert await ctxloop.create_task(_child_sets_var(), context=ctx) == "child"
        assert await ctxloop.create_task(_child_sets_var()) == "child"
        assert ctx[var] == "child" and var.get() == "unset"
        asyncio.get_running_loop().set_task_factory(None)  # still a distinct factory
        await ctxloop.create_task(_child_sets_var())

    ctxloop.run(main(), loop_factory=ctxloop.loop_factory(Instrumented))
    assert len(calls) >= 3


def test_create_task_on_a_plain_loop_class_with_its_own_create_task(loop_name: str) -> None:
    # Not a ctxloop loop: ctxloop.create_task must still go through its create_task.
    calls: List[Any] = []
    Instrumented = _instrumented_loop_class(loop_name, calls)

    async def main() -> None:
        ctx = contextvars.copy_context()
        coro = _child_sets_var()
        task = ctxloop.create_task(coro, context=ctx)
        assert await task == "child" and ctx[var] == "child" and var.get() == "unset"
        assert task.get_coro() is coro
        assert task.get_context() is ctx  # type: ignore[attr-defined]
        await ctxloop.create_task(_child_sets_var())

    loop = Instrumented()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(calls) == 3  # main, then the two tasks


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11+: asyncio's create_task with a factory (native)")
def test_debug_traceback_points_at_the_caller() -> None:
    async def child() -> None:
        pass

    async def main() -> Any:
        task = asyncio.get_running_loop().create_task(child(), context=contextvars.copy_context())  # type: ignore[call-arg]
        await task
        return task._source_traceback  # type: ignore[attr-defined]

    source = ctxloop.run(main(), debug=True, loop_factory=ctxloop.loop_factory("asyncio"))
    assert source[-1].filename == __file__ and source[-1].name == "main"


def test_enable_and_disable_a_loop_made_elsewhere(loop_name: str, base_loop_factory: Callable[[], Any]) -> None:
    async def child() -> str:
        var.set("child")
        return "done"

    async def main() -> str:
        ctx = contextvars.copy_context()
        task = asyncio.get_running_loop().create_task(child(), context=ctx)  # type: ignore[call-arg]
        assert task.get_context() is ctx  # type: ignore[attr-defined]
        await task
        return ctx[var]

    loop = base_loop_factory()
    other = base_loop_factory()
    try:
        my_factory = ctxloop.task_factory
        loop.set_task_factory(my_factory)
        assert ctxloop.enable(loop) is loop and ctxloop.enable(loop) is loop  # idempotent
        assert loop.get_task_factory() is my_factory  # kept as it was
        loop.set_task_factory(None)
        assert loop.run_until_complete(main()) == "child"
        assert "create_task" not in vars(other)  # only that instance changed
        assert ctxloop.disable(loop) is loop and ctxloop.disable(loop) is loop
        assert "create_task" not in vars(loop)
        assert type(loop).create_task is type(other).create_task
    finally:
        loop.close()
        other.close()
    made = ctxloop.new_event_loop(loop_name)
    try:
        with pytest.raises(ValueError, match="was created by ctxloop and stays a ctxloop loop"):
            ctxloop.disable(made)
    finally:
        made.close()
    with pytest.raises(TypeError, match=r"loop must be an asyncio\.AbstractEventLoop, not str"):
        ctxloop.enable("loop")  # type: ignore[arg-type]


@pytest.mark.timeout(30)
@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+: the Task of a ctxloop loop is asyncio's own class")
@pytest.mark.parametrize("with_context", [False, True])
def test_asyncio_loop_makes_the_task_class_asyncio_holds_at_the_call(
    monkeypatch: pytest.MonkeyPatch, with_context: bool
) -> None:
    # asyncio's create_task reads asyncio.tasks.Task at each call (CPython's
    # own tests replace it with the pure-Python Task); so does a ctxloop loop.
    class Replaced(asyncio.Task):  # type: ignore[type-arg]
        pass

    async def main() -> type:
        kwargs = {"context": contextvars.copy_context()} if with_context else {}
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0), **kwargs)
        await task
        return type(task)

    monkeypatch.setattr(asyncio.tasks, "Task", Replaced)
    for make in (asyncio.new_event_loop, ctxloop.new_event_loop):
        loop = make()
        try:
            assert loop.run_until_complete(main()) is Replaced, make
        finally:
            loop.close()
