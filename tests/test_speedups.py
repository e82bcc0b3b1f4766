"""The optional compiled accelerator: one switch, and the same behaviour as pure Python.

The whole suite runs once with the accelerator (where it is built) and once
with ``CTXLOOP_NO_SPEEDUPS=1``. These tests add what the suite cannot see from
outside: which implementation is in use and why, and, in one process, the
compiled ``create_task_on``, ``check_task_context`` and (3.8-3.10) binding
against the pure-Python functions they stand in for, on the inputs whose
handling they share out (errors, factories, foreign loop classes, debug mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import os
import pickle
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, List, Tuple

import pytest
from conftest import LOOPS, RLOOP_NO_DEBUG

import ctxloop
from ctxloop import _accel, _binding, _checks, _create, _task
from ctxloop._loop import is_ctxloop_loop

ROOT = Path(__file__).resolve().parent.parent
# The ctxloop under test: the source tree's, or the installed one when the
# tests run from an unpacked sdist without it (the subprocesses below import
# the same one: they run in ROOT).
PACKAGE = Path(ctxloop.__file__).resolve().parent
COMPILED = _accel.speedups is not None
BINDS = sys.version_info < (3, 11)  # the binding a Task steps exists on 3.8-3.10 only

needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled accelerator is not in use here")

var: contextvars.ContextVar[str] = contextvars.ContextVar("speedups_var", default="default")


def _implementation_in(env_value: str) -> str:
    env = dict(os.environ)
    env.pop(_accel.DISABLE_VARIABLE, None)
    if env_value:
        env[_accel.DISABLE_VARIABLE] = env_value
    code = "from ctxloop._accel import implementation; print(implementation())"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=50
    ).stdout.strip()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", ["1", "yes"])
def test_the_environment_variable_forces_pure_python(value: str) -> None:
    assert _implementation_in(value) == "pure Python (CTXLOOP_NO_SPEEDUPS is set)"


@pytest.mark.timeout(60)
def test_without_the_variable_the_accelerator_is_used_where_it_is_built() -> None:
    found = _implementation_in("") + "|" + _implementation_in("0")
    if sys.implementation.name != "cpython":
        assert found.count("pure Python (the accelerator is for CPython") == 2
    elif any(
        p.name.startswith("_speedups.") and p.suffix in (".so", ".pyd") and _built_for_this_python(p)
        for p in PACKAGE.iterdir()
    ):
        assert found.count("compiled accelerator (_speedups.") == 2
    else:
        assert found.count("pure Python (the compiled accelerator is not built for this Python)") == 2


def _built_for_this_python(path: Path) -> bool:
    import importlib.machinery

    return any(path.name.endswith(suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


@pytest.mark.timeout(60)
def test_python_m_ctxloop_names_the_implementation() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ctxloop", "--loop", "asyncio"],
        check=False,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=50,
    )
    assert f"implementation: {_accel.implementation()}\n" in proc.stdout, proc.stdout


def test_the_module_level_names_are_the_compiled_ones_when_in_use() -> None:
    if not COMPILED:
        assert _create.create_task_on.__module__ == "ctxloop._create"
        assert _checks.check_task_context is _checks._pure_check_task_context
        return
    assert type(_create.create_task_on).__name__ == "CreateTask"
    assert type(ctxloop.create_task).__name__ == "RunningCreateTask"
    assert _checks.check_task_context is _accel.speedups.check_task_context  # type: ignore[union-attr]
    assert (_binding.TaskCoroutine is not _binding._PureTaskCoroutine) is BINDS


# --------------------------------------------------------------------------
# create_task_on: compiled vs pure, on the same inputs.


def _pure_create_task_on() -> Callable[..., Any]:
    return getattr(_create.create_task_on, "__wrapped__", _create.create_task_on)  # type: ignore[no-any-return]


async def _child() -> str:
    var.set("child")
    await asyncio.sleep(0)
    return var.get()


def _outcome(call: Callable[[], Any]) -> Tuple[Any, ...]:
    """What a create_task call did: its error, or what the task reports once run."""
    try:
        task = call()
    except BaseException as error:
        return ("raised", type(error), str(error))
    return ("task", task)


async def _settle(task: Any) -> Tuple[Any, ...]:
    result = await task
    name = task.get_name()
    return (type(task).__name__, result, name if not name.startswith("Task-") else "Task-N")


def _ran_in(task: Any, given: Any) -> Tuple[Any, ...]:
    """Where a finished task ran: what its coroutine set in the given Context, and whether it says so."""
    if not isinstance(given, contextvars.Context):
        return ()
    get_context = getattr(task, "get_context", None)
    return (given.get(var, "unset"), get_context is not None and get_context() is given)


def _both(
    loop: Any,
    make_args: Callable[[], Tuple[Tuple[Any, ...], dict]],
    compiled: Any = None,
    on_loop: bool = True,
    pure: Any = None,
) -> List[Tuple[Any, ...]]:
    """The outcome of a compiled function and of its pure twin for fresh copies of the same arguments.

    *compiled* is create_task_on (called with *loop* first) unless given; with
    ``on_loop=False`` it is called without the loop, inside the running *loop*.
    The pure twin is *pure*, or the compiled one's ``__wrapped__``.
    """
    compiled = _create.create_task_on if compiled is None else compiled
    lead = (loop,) if on_loop else ()
    results = []
    for function in (compiled, getattr(compiled, "__wrapped__", compiled) if pure is None else pure):
        args, kwargs = make_args()

        async def run(args: Tuple[Any, ...] = args, kwargs: dict = kwargs, function: Any = function) -> Any:
            outcome = _outcome(lambda: function(*lead, *args, **kwargs))
            if outcome[0] == "task":
                return ("task", *await _settle(outcome[1]), _ran_in(outcome[1], kwargs.get("context")))
            for arg in args:
                if inspect.iscoroutine(arg):
                    arg.close()
            return outcome

        results.append(loop.run_until_complete(run()))
    return results


def _cases() -> List[Tuple[str, Callable[[], Tuple[Tuple[Any, ...], dict]]]]:
    ctx = contextvars.copy_context
    return [
        ("plain", lambda: ((_child(),), {})),
        ("context", lambda: ((_child(),), {"context": ctx()})),
        ("name and context", lambda: ((_child(),), {"name": "n", "context": ctx()})),
        ("context=None", lambda: ((_child(),), {"context": None})),
        ("not a Context", lambda: ((_child(),), {"context": {}})),
        ("not a coroutine", lambda: (("not a coroutine",), {"context": ctx()})),
        ("not a coroutine, no context", lambda: ((42,), {})),
        ("unknown keyword", lambda: ((_child(),), {"colour": "red"})),
        ("no coroutine", lambda: ((), {"context": ctx()})),
        ("two positional", lambda: ((_child(), "x"), {})),
        ("loop keyword", lambda: ((_child(),), {"loop": None})),
        ("keywords made at run time", lambda: ((_child(),), {_made("name"): None, _made("context"): ctx()})),
        ("loop keyword made at run time", lambda: ((_child(),), {_made("loop"): None})),
    ]


def _made(keyword: str) -> str:
    """*keyword* as a new string, not the interned one a call site's keyword is."""
    made = "".join(list(keyword))
    assert made is not keyword
    return made


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", [name for name, _ in _cases()])
def test_compiled_module_create_task_does_what_the_pure_function_does(
    loop_name: str, case: str, base_loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    # ctxloop.create_task(coro, ...) on the running loop, compiled and pure; on
    # a plain loop too, where it makes the task the ctxloop way all the same.
    make_args = dict(_cases())[case]
    for loop in (ctxloop.new_event_loop(loop_name), base_loop_factory()):
        try:
            compiled, pure = _both(loop, make_args, ctxloop.create_task, on_loop=False)
        finally:
            loop.close()
        assert compiled == pure


@needs_compiled
def test_compiled_module_create_task_looks_like_the_pure_function() -> None:
    compiled = ctxloop.create_task
    pure = compiled.__wrapped__  # type: ignore[attr-defined]
    assert (compiled.__name__, compiled.__qualname__, compiled.__module__) == (
        "create_task",
        "create_task",
        "ctxloop._create",
    )
    assert compiled.__doc__ == pure.__doc__ and inspect.signature(compiled) == inspect.signature(pure)
    coro = _child()
    with pytest.raises(RuntimeError, match="no running event loop"):
        compiled(coro)
    coro.close()


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", [name for name, _ in _cases()])
def test_compiled_create_task_on_does_what_the_pure_function_does(loop_name: str, case: str) -> None:
    make_args = dict(_cases())[case]
    loop = ctxloop.new_event_loop(loop_name)
    try:
        compiled, pure = _both(loop, make_args)
    finally:
        loop.close()
    assert compiled == pure


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", [name for name, _ in _cases()])
def test_compiled_create_task_on_with_ctxloops_own_factory_does_what_the_pure_function_does(
    loop_name: str, case: str
) -> None:
    # The compiled create_task calls ctxloop's own (compiled) task_factory itself, as the pure one does.
    make_args = dict(_cases())[case]
    loop = ctxloop.new_event_loop(loop_name)
    loop.set_task_factory(ctxloop.task_factory)
    try:
        compiled, pure = _both(loop, make_args)
        with _entered_in_another_thread() as ctx:
            held = _both(loop, lambda: ((_child(),), {"context": ctx, "name": "held"}))
    finally:
        loop.close()
    assert compiled == pure
    assert held[0] == held[1] and held[0][:2] == ("raised", RuntimeError), held


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("factory", [None, "ctxloop.task_factory"])
def test_compiled_create_task_on_refuses_a_closed_loop_as_the_pure_function(loop_name: str, factory: Any) -> None:
    loop = ctxloop.new_event_loop(loop_name)
    loop.set_task_factory(None if factory is None else ctxloop.task_factory)
    loop.close()
    for kwargs in ({}, {"context": contextvars.copy_context()}):
        outcomes = []
        for function in (_create.create_task_on, _pure_create_task_on()):
            coro = _child()
            call = functools.partial(function, loop, coro, **kwargs)
            outcomes.append(_outcome(call))
            coro.close()
        assert outcomes[0] == outcomes[1] == ("raised", RuntimeError, "Event loop is closed"), (kwargs, outcomes)


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_compiled_create_task_on_with_a_factory_a_closed_loop_and_a_foreign_class(loop_name: str) -> None:
    calls: List[Any] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        if getattr(coro, "__qualname__", "") == "_child":
            calls.append(sorted(kwargs))
        return ctxloop.task_factory(loop, coro, **kwargs)

    loop = ctxloop.new_event_loop(loop_name)
    try:
        loop.set_task_factory(factory)
        compiled, pure = _both(loop, lambda: ((_child(),), {"context": contextvars.copy_context(), "name": "f"}))
        assert compiled == pure and compiled[0] == "task"
        assert len(calls) == 2 and calls[0] == calls[1]  # the factory was called the same way
    finally:
        loop.close()
    closed = []
    for function in (_create.create_task_on, _pure_create_task_on()):
        coro = _child()
        closed.append(_outcome(lambda function=function, coro=coro: function(loop, coro)))
        coro.close()
    assert closed[0] == closed[1] == ("raised", RuntimeError, "Event loop is closed")

    class Instrumented(asyncio.SelectorEventLoop):  # a loop class with its own create_task
        made: ClassVar[List[str]] = []

        def create_task(self, coro: Any, **kwargs: Any) -> Any:
            Instrumented.made.append(coro.__qualname__)
            return super().create_task(coro, **kwargs)

    loop = ctxloop.enable(Instrumented())
    try:
        compiled, pure = _both(loop, lambda: ((_child(),), {"context": contextvars.copy_context()}))
        assert compiled == pure and Instrumented.made.count("_child") == 2
    finally:
        loop.close()


class _OwnCreateTask(asyncio.SelectorEventLoop):
    """A loop class with a create_task of its own, as rloop's: ctxloop calls it after its checks."""

    given: ClassVar[List[Any]] = []  # the keywords each _child task was made with

    def create_task(self, coro: Any, **kwargs: Any) -> Any:
        if getattr(coro, "__qualname__", "") == "_child":  # not _both's own task
            _OwnCreateTask.given.append(sorted((key, type(value).__name__) for key, value in kwargs.items()))
        return super().create_task(coro, **kwargs)


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", [name for name, _ in _cases()])
def test_compiled_create_task_on_calls_a_loops_own_create_task_as_the_pure_function(case: str) -> None:
    _OwnCreateTask.given.clear()
    loop = ctxloop.enable(_OwnCreateTask())
    try:
        compiled, pure = _both(loop, dict(_cases())[case])
    finally:
        loop.close()
    assert compiled == pure
    made = _OwnCreateTask.given
    assert len(made) in (0, 2) and made[:1] == made[1:]  # called with the same keywords, or not at all
    assert len(made) == 2 or compiled[0] == "raised"


@needs_compiled
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_compiled_create_task_on_strips_its_callers_frames_in_debug_mode(loop_name: str) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_NO_DEBUG)
    loop = ctxloop.new_event_loop(loop_name)
    loop.set_debug(True)

    async def main() -> List[str]:
        create = asyncio.get_running_loop().create_task
        tasks = [
            ctxloop.create_task(_child()),
            ctxloop.create_task(_child(), context=contextvars.copy_context()),
            create(_child()),
            create(_child(), context=contextvars.copy_context()),  # type: ignore[call-arg]
            ctxloop.Task(_child()),
            ctxloop.Task(_child(), context=contextvars.copy_context()),
        ]
        await asyncio.gather(*tasks)
        return [t._source_traceback[-1].name for t in tasks]  # type: ignore[attr-defined]

    try:
        assert loop.run_until_complete(main()) == ["main"] * 6
    finally:
        loop.close()


@contextlib.contextmanager
def _entered_in_another_thread() -> Iterator[contextvars.Context]:
    """A fresh Context that another thread is inside of for the duration of the block."""
    ctx = contextvars.copy_context()
    entered, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: ctx.run(lambda: (entered.set(), release.wait(10))))
    thread.start()
    entered.wait(10)
    try:
        yield ctx
    finally:
        release.set()
        thread.join(10)


# --------------------------------------------------------------------------
# task_factory (3.11+): compiled vs pure, called as loops call it.

needs_compiled_factory = pytest.mark.skipif(not COMPILED, reason="the compiled task factory needs the accelerator")
needs_compiled_task = pytest.mark.skipif(not COMPILED, reason="the compiled Task class needs the accelerator")


def _factory_cases() -> List[Tuple[str, Callable[[], Tuple[Tuple[Any, ...], dict]]]]:
    """_cases(), and the keywords a task factory (and asyncio's Task) also takes."""
    ctx = contextvars.copy_context
    return [
        *_cases(),
        ("eager_start", lambda: ((_child(),), {"context": ctx(), "eager_start": True})),
        ("uvloop's keywords", lambda: ((_child(),), {"context": None, "eager_start": None})),
        ("eager, not a Context", lambda: ((_child(),), {"context": [], "eager_start": True})),
        ("coro keyword", lambda: ((), {"coro": _child()})),
    ]


@needs_compiled_factory
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", [name for name, _ in _factory_cases()])
def test_compiled_task_factory_does_what_the_pure_function_does(
    loop_name: str, case: str, base_loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    make_args = dict(_factory_cases())[case]
    for loop in (base_loop_factory(), ctxloop.new_event_loop(loop_name)):
        try:
            compiled, pure = _both(loop, make_args, ctxloop.task_factory)
        finally:
            loop.close()
        assert compiled == pure


@needs_compiled_factory
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_compiled_task_factory_as_a_loops_factory_strips_its_frames_in_debug_mode(
    loop_name: str, base_loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    if loop_name == "rloop":
        pytest.skip(RLOOP_NO_DEBUG)

    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_child())]
        if sys.version_info >= (3, 11) or is_ctxloop_loop(loop):  # a plain loop's has no context= before
            tasks.append(loop.create_task(_child(), context=contextvars.copy_context()))
        # Called directly, with a keyword the compiled factory leaves to the pure function.
        named = ctxloop.task_factory(loop, _child(), name="named")
        await asyncio.gather(*tasks, named)
        return [t._source_traceback[-1] for t in tasks] + [named._source_traceback[-1]]  # type: ignore[attr-defined]

    for loop in (base_loop_factory(), ctxloop.new_event_loop(loop_name)):
        loop.set_debug(True)
        loop.set_task_factory(ctxloop.task_factory)
        try:
            frames = loop.run_until_complete(main())
        finally:
            loop.close()
        # The caller's frame; on a plain asyncio loop, which leaves its own create_task's frame when a
        # factory is set, that one. A ctxloop loop's create_task calls the factory from a frame of
        # ctxloop's: the factory strips it.
        leaves = loop_name == "asyncio" and not is_ctxloop_loop(loop)
        expected = "create_task" if leaves else "main"
        assert [frame.name for frame in frames] == [expected] * (len(frames) - 1) + ["main"], frames


@needs_compiled_factory
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_compiled_task_factory_refuses_a_context_another_thread_holds_as_the_pure_one(
    loop_name: str, base_loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    loop = base_loop_factory()
    try:
        with _entered_in_another_thread() as ctx:
            compiled, pure = _both(loop, lambda: ((_child(),), {"context": ctx}), ctxloop.task_factory)
    finally:
        loop.close()
    assert compiled == pure and compiled[:2] == ("raised", RuntimeError), compiled


# ctxloop.Task (3.12+): the class with a compiled __init__ vs the pure class.


def _task_cases() -> List[Tuple[str, Callable[[], Tuple[Tuple[Any, ...], dict]]]]:
    ctx = contextvars.copy_context
    return [
        *_factory_cases(),
        ("everything", lambda: ((_child(),), {"loop": None, "name": "t", "context": ctx(), "eager_start": False})),
    ]


@needs_compiled_task
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", [name for name, _ in _task_cases()])
def test_compiled_task_does_what_the_pure_class_does(loop_name: str, case: str) -> None:
    make_args = dict(_task_cases())[case]
    loop = ctxloop.new_event_loop(loop_name)
    try:
        compiled, pure = _both(loop, make_args, ctxloop.Task, on_loop=False, pure=_task._PureTask)
    finally:
        loop.close()
    assert compiled == pure


@needs_compiled_task
@pytest.mark.timeout(30)
def test_compiled_task_refuses_a_context_another_thread_holds_and_keeps_its_subclasses() -> None:
    loop = ctxloop.new_event_loop()
    with _entered_in_another_thread() as ctx:
        compiled, pure = _both(
            loop, lambda: ((_child(),), {"context": ctx}), ctxloop.Task, on_loop=False, pure=_task._PureTask
        )
    assert compiled == pure and compiled[:2] == ("raised", RuntimeError), compiled

    class Mine(ctxloop.Task):  # type: ignore[misc, valid-type]
        def __init__(self, coro: Any, **kwargs: Any) -> None:
            super().__init__(coro, **kwargs)
            self.mine = True

    async def main() -> Any:
        task = Mine(_child(), context=contextvars.copy_context())
        return type(task).__name__, task.mine, await task, isinstance(task, asyncio.Task)

    try:
        assert loop.run_until_complete(main()) == ("Mine", True, "child", True)
    finally:
        loop.close()


@needs_compiled_task
def test_compiled_task_looks_like_the_pure_class() -> None:
    compiled, pure = ctxloop.Task, _task._PureTask
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
        assert getattr(compiled, attribute) == getattr(pure, attribute)
    if sys.version_info >= (3, 12):  # asyncio's Task has every method: the class adds only __init__
        assert compiled.__mro__[1:] == pure.__mro__[1:] and compiled.__mro__[1] is asyncio.Task
    else:  # the methods the pure class adds (get_context(); before 3.11, get_coro()) are inherited
        assert compiled.__mro__[1:] == pure.__mro__
        assert compiled.__dict__.keys() <= {"__init__", "__doc__", "__module__", "__signature__"}
    assert list(inspect.signature(compiled).parameters) == list(inspect.signature(pure).parameters)
    assert pickle.loads(pickle.dumps(compiled)) is compiled

    async def main() -> str:  # asyncio's C repr prints the class's C-level name
        task = compiled(_child())
        text = repr(task)
        await task
        return text

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main()).startswith("<Task pending name=")
    finally:
        loop.close()


@needs_compiled_factory
def test_compiled_task_factory_looks_like_the_pure_function() -> None:
    compiled = ctxloop.task_factory
    pure = compiled.__wrapped__  # type: ignore[attr-defined]
    assert inspect.isfunction(pure) and not inspect.isfunction(compiled)
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
        assert getattr(compiled, attribute) == getattr(pure, attribute)
    assert inspect.signature(compiled) == inspect.signature(pure)
    assert ctxloop.chain_task_factory(None) is compiled and ctxloop.chain_task_factory(compiled) is compiled
    for function in (compiled, ctxloop.create_task):
        assert pickle.loads(pickle.dumps(function)) is function
        assert weakref.ref(function)() is function  # as a function is: a cache keyed on factories works


@needs_compiled
def test_a_ctxloop_loops_create_task_looks_like_the_pure_method() -> None:
    loop = ctxloop.new_event_loop()
    enabled = ctxloop.enable(asyncio.SelectorEventLoop())
    pure = _pure_create_task_on()
    try:
        for owner in (loop, enabled):
            method = owner.create_task
            assert method.__name__ == pure.__name__ and method.__doc__ == pure.__doc__
            assert inspect.signature(method) == inspect.signature(pure.__get__(owner))
            assert method.__self__ is owner
        assert type(loop).__dict__["create_task"] is _create.create_task_on
    finally:
        loop.close()
        enabled.close()


@needs_compiled
@pytest.mark.timeout(30)
def test_compiled_check_task_context_refuses_and_accepts_as_the_pure_check() -> None:
    compiled, pure = _checks.check_task_context, _checks._pure_check_task_context
    ctx = contextvars.copy_context()

    def outcomes(context: Any, *args: Any) -> List[Tuple[Any, ...]]:
        return [_outcome(lambda f=f: f(context, *args)) for f in (compiled, pure)]

    assert outcomes(ctx) == [("task", ctx)] * 2
    assert outcomes(ctx, True) == [("task", ctx)] * 2
    first, second = outcomes(object())
    assert first == second and first[1] is TypeError
    # entered: current (accepted unless eager), and beneath (refused)
    inside = ctx.run(lambda: [outcomes(ctx), outcomes(ctx, True)])
    assert inside[0][0] == inside[0][1] == ("task", ctx)
    assert inside[1][0] == inside[1][1] and inside[1][0][1] is RuntimeError
    outer = contextvars.copy_context()
    beneath = outer.run(lambda: contextvars.copy_context().run(lambda: outcomes(outer)))
    assert beneath[0] == beneath[1] and beneath[0][1] is RuntimeError
    assert _outcome(lambda: compiled(ctx, eager=True)) == ("task", ctx)  # keywords: the pure function's


# --------------------------------------------------------------------------
# The compiled binding (3.8-3.10).

needs_binding = pytest.mark.skipif(
    not (COMPILED and BINDS), reason="the compiled binding exists on CPython 3.8-3.10 with the accelerator"
)


def _drive(binding: Any) -> List[Any]:
    """Step a binding as a Task does; return what each step gave and the final value."""
    seen = []
    try:
        while True:
            seen.append(binding.send(None))
    except StopIteration as stop:
        seen.append(("returned", stop.value))
    return seen


async def _yields_twice() -> Tuple[str, ...]:
    var.set("inside")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return ("done", var.get())


@needs_binding
def test_the_compiled_binding_steps_send_throw_close_like_the_pure_one() -> None:
    for cls in (_binding.TaskCoroutine, _binding._PureTaskCoroutine):
        ctx = contextvars.copy_context()
        binding = _binding.bind(cls, _yields_twice(), ctx)
        assert _drive(binding) == [None, None, ("returned", ("done", "inside"))]
        assert ctx[var] == "inside" and var.get() == "default"

        binding = _binding.bind(cls, _yields_twice(), contextvars.copy_context())
        binding.send(None)
        with pytest.raises(KeyError, match="boom"):
            binding.throw(KeyError("boom"))
        binding = _binding.bind(cls, _yields_twice(), contextvars.copy_context())
        binding.send(None)
        binding.close()
        assert binding.cr_frame is None

        # Entered when a step needs it: the step fails with RuntimeError (S7), never a hang.
        ctx = contextvars.copy_context()
        binding = _binding.bind(cls, _yields_twice(), ctx)
        with pytest.raises(RuntimeError, match="cannot enter context"):
            ctx.run(binding.send, None)
        binding.close()


@needs_binding
def test_the_compiled_binding_introspects_as_its_coroutine() -> None:
    coro = _yields_twice()
    ctx = contextvars.copy_context()
    binding = _binding.bind_task(coro, ctx)
    try:
        assert type(binding) is _binding.TaskCoroutine and type(binding).__name__ == "TaskCoroutine"
        assert binding._coro is coro and binding._context is ctx
        for name in ("cr_code", "cr_frame", "cr_running", "cr_await", "__name__", "__qualname__"):
            assert getattr(binding, name) == getattr(coro, name), name
        assert not hasattr(binding, "gi_code")
        assert repr(binding) == f"<TaskCoroutine {coro!r} in {ctx!r}>"
        assert asyncio.iscoroutine(binding) and inspect.isawaitable(binding)
    finally:
        binding.close()
    with pytest.raises(TypeError, match="a coroutine was expected, got 42"):
        _binding.bind_task(42, ctx)  # type: ignore[arg-type]
    coro = _yields_twice()
    with pytest.raises(TypeError, match=r"context must be a contextvars\.Context, not dict"):
        _binding.bind_task(coro, {})  # type: ignore[arg-type]
    coro.close()


@needs_binding
@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_task_whose_context_another_thread_holds_fails_instead_of_hanging(loop_name: str) -> None:
    ctx = contextvars.copy_context()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        ctx.run(lambda: (entered.set(), release.wait(10)))

    async def main() -> Any:
        task = asyncio.get_running_loop().create_task(_yields_twice(), context=ctx)
        await asyncio.sleep(0)  # its first step ran in ctx
        thread = threading.Thread(target=hold)
        thread.start()
        entered.wait(10)
        try:
            with pytest.raises(RuntimeError, match="cannot enter context"):
                await asyncio.wait_for(task, 5)
        finally:
            release.set()
            thread.join(10)
        return task.get_coro()

    loop = ctxloop.new_event_loop(loop_name)
    try:
        loop.run_until_complete(main()).close()
    finally:
        loop.close()
