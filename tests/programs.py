"""Task programs: a tiny language of contextvars and task operations, and its interpreter.

A program is JSON data: ``{"shared": ["A", "B"], "main": BODY}``, where a BODY is
a list of operations run by one coroutine:

===========================================  =====================================================
``["set", v, value]``                        set variable ``v`` (0, 1, 2) to ``value``
``["get", v]``                               read variable ``v`` (traced)
``["task"]``                                 trace which task is running (by label)
``["sleep"]``                                ``await asyncio.sleep(0)``: one loop iteration
``["spawn", slot, ctx, via, BODY]``          create a task running BODY (see ``ctx`` below);
                                             ``via`` picks ctxloop's entry point (replay only)
``["await", slot]``                          await the task in ``slot`` (traced outcome)
``["cancel", slot, msg]``                    ``task.cancel(msg)`` (msg dropped on 3.8; traced result)
``["call", how, BODY]``                      await BODY inline: ``how`` is ``direct`` (``await``),
                                             ``isolated``, ``new`` (a fresh ``Context()``),
                                             ``own`` (the current task's context: S7) or
                                             ``ctx:NAME`` (``run_in_context`` of a shared context)
``["gather", [BODY, ...]]``                  ``asyncio.gather`` of the bodies (each a task)
``["capture", NAME]``                        shared context NAME := the current task's context
``["peek", NAME, v]``                        read ``v`` in shared context NAME from outside (traced)
``["raise"]``                                raise ``ValueError``
===========================================  =====================================================

``ctx`` of a spawn is ``none`` (no ``context=``), ``copy`` (``copy_context()``),
``new`` (``Context()``), ``own`` (the creating task's ``get_context()``, entered
right now: S7) or ``shared:NAME``. Every shared context starts as a copy of the
main task's context. Slots are local to a body: a body awaits and cancels only
the tasks it created, so no program can deadlock. At the end, the main task
awaits every task ever created, in creation order, and the final values of
every shared context are traced.

The same program runs in three modes:

* ``native`` (CPython 3.12+): plain asyncio, no ctxloop. ``create_task(context=)``
  is asyncio's own; ``run_in_context`` / ``isolated`` are ``RefInContext``
  below (every step inside the context, in the same task), written here
  independently of ctxloop. This is the mode the golden traces are recorded in.
* ``pytask`` (every Python): plain asyncio, no ctxloop, every task asyncio's
  pure-Python Task (``asyncio.tasks._PyTask``) given its context the way 3.11
  does it (``self._context = context``): natively on 3.11+, on 3.8-3.10 by
  handing ``_PyTask.__init__`` the context in place of its ``copy_context()``.
  An independent reference that runs everywhere.
* ``ctxloop``: a ctxloop loop, tasks created through ctxloop's entry points.

Where CPython fails badly (S7: a task given a context that is entered right
now is accepted, then never finishes), the reference modes record what SPEC
prescribes: ``RuntimeError`` at creation, checked by entering the context.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Sequence

import ctxloop

__all__ = [
    "MODES",
    "RefInContext",
    "VARS",
    "generate",
    "handcrafted",
    "make_loop",
    "run_program",
]

VARS: List["contextvars.ContextVar[str]"] = [
    contextvars.ContextVar("p0", default="d0"),
    contextvars.ContextVar("p1", default="d1"),
    contextvars.ContextVar("p2"),  # no default: get() raises LookupError
]
UNSET = "!unset"
MODES = ("native", "pytask", "ctxloop")
VIAS = ("ctxloop.create_task", "loop.create_task", "ctxloop.Task", "asyncio.create_task")
SHARED = ("A", "B")

_PyTask: Any = getattr(asyncio.tasks, "_PyTask", asyncio.Task)


def _entered(ctx: contextvars.Context) -> bool:
    """SPEC S7's "entered right now": Context.run refuses an entered context."""
    try:
        ctx.run(int)  # type: ignore[call-arg]
    except RuntimeError:
        return True
    return False


class RefInContext:
    """Reference ``run_in_context``: await *coro* in the same task, each step inside *ctx*.

    Independent of ctxloop: a generator-based awaitable that sends into and
    throws into the coroutine through ``ctx.run``.
    """

    def __init__(self, ctx: contextvars.Context, coro: Any) -> None:
        if _entered(ctx):
            raise RuntimeError("context entered")
        self.ctx = ctx
        self.coro = coro

    def __await__(self) -> Any:
        ctx, coro = self.ctx, self.coro
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                if error is None:
                    yielded = ctx.run(coro.send, value)
                else:
                    pending, error = error, None
                    yielded = ctx.run(coro.throw, pending)
            except StopIteration as stop:
                return stop.value
            try:
                value = yield yielded
            except GeneratorExit:
                ctx.run(coro.close)
                raise
            except BaseException as exc:
                error, value = exc, None


class _Ref:
    """Plain-asyncio task creation for the reference modes."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def py_task(self, loop: Any, coro: Any, context: Optional[contextvars.Context] = None, **kw: Any) -> Any:
        if sys.version_info >= (3, 11):
            return _PyTask(coro, loop=loop, context=context, **kw)
        if context is None:
            return _PyTask(coro, loop=loop, **kw)
        # 3.8-3.10: _PyTask.__init__ takes `self._context = contextvars.copy_context()`
        # and schedules its first step in it; give it `context` there instead.
        tasks_module: Any = asyncio.tasks
        saved = tasks_module.contextvars
        tasks_module.contextvars = types.SimpleNamespace(copy_context=lambda: context)
        try:
            return _PyTask(coro, loop=loop, **kw)
        finally:
            tasks_module.contextvars = saved

    def create(self, loop: Any, coro: Any, context: Optional[contextvars.Context]) -> Any:
        if context is not None and _entered(context):
            raise RuntimeError("context entered")  # SPEC S7, where CPython would hang
        if self.mode == "native":
            return loop.create_task(coro, context=context)
        return self.py_task(loop, coro, context)

    def own_context(self) -> contextvars.Context:
        task: Any = asyncio.current_task()
        if self.mode == "native":
            return task.get_context()  # type: ignore[no-any-return]
        return task._context  # type: ignore[no-any-return]

    def in_context(self, ctx: contextvars.Context, coro: Any) -> Any:
        return RefInContext(ctx, coro)


class _Ctxloop:
    """Task creation through ctxloop's entry points."""

    mode = "ctxloop"

    def create(self, loop: Any, coro: Any, context: Optional[contextvars.Context], via: str) -> Any:
        if via == "ctxloop.create_task":
            return ctxloop.create_task(coro, context=context)
        if via == "ctxloop.Task":
            return ctxloop.Task(coro, loop=loop, context=context)
        if via == "asyncio.create_task" and (context is None or sys.version_info >= (3, 11)):
            if context is None:
                return asyncio.create_task(coro)
            return asyncio.create_task(coro, context=context)  # type: ignore[call-arg]
        return loop.create_task(coro, context=context)

    def own_context(self) -> contextvars.Context:
        return asyncio.current_task().get_context()  # type: ignore[no-any-return, union-attr]

    def in_context(self, ctx: contextvars.Context, coro: Any) -> Any:
        return ctxloop.run_in_context(ctx, coro)


def _read(var: "contextvars.ContextVar[str]") -> str:
    try:
        return var.get()
    except LookupError:
        return UNSET


class _Interpreter:
    def __init__(self, program: Dict[str, Any], mode: str) -> None:
        self.program = program
        self.mode = mode
        self.backend: Any = _Ctxloop() if mode == "ctxloop" else _Ref(mode)
        self.trace: List[Any] = []
        self.labels: Dict[Any, str] = {}
        self.created: List[Any] = []  # (label, task), creation order
        self.shared: Dict[str, contextvars.Context] = {}

    def log(self, *entry: Any) -> None:
        self.trace.append(list(entry))

    async def outcome(self, awaitable: Any) -> List[Any]:
        try:
            return ["ok", await awaitable]
        except BaseException as exc:  # the trace records every outcome, cancellation included
            return ["exc", type(exc).__name__]

    def context_for(self, spec: str) -> Optional[contextvars.Context]:
        if spec == "none":
            return None
        if spec == "copy":
            return contextvars.copy_context()
        if spec == "new":
            return contextvars.Context()
        if spec == "own":
            return self.backend.own_context()  # type: ignore[no-any-return]
        return self.shared[spec.split(":", 1)[1]]

    async def task_body(self, ops: List[Any], label: str) -> List[str]:
        self.labels[asyncio.current_task()] = label
        return await self.body(ops, label)

    async def body(self, ops: List[Any], label: str) -> List[str]:
        slots: Dict[int, Any] = {}
        for index, op in enumerate(ops):
            await self.step(op, index, label, slots)
        return [_read(var) for var in VARS]

    async def step(self, op: List[Any], index: int, label: str, slots: Dict[int, Any]) -> None:  # noqa: PLR0912
        # One branch per operation of the language: a table would hide the semantics.
        kind = op[0]
        if kind == "set":
            VARS[op[1]].set(op[2])
        elif kind == "get":
            self.log("get", label, op[1], _read(VARS[op[1]]))
        elif kind == "task":
            self.log("task", label, self.labels.get(asyncio.current_task(), "?"))
        elif kind == "sleep":
            await asyncio.sleep(0)
        elif kind == "raise":
            raise ValueError(label)
        elif kind == "capture":
            self.shared[op[1]] = self.backend.own_context()
        elif kind == "peek":
            self.log("peek", label, op[1], op[2], self.shared[op[1]].get(VARS[op[2]], UNSET))
        elif kind == "spawn":
            self.spawn(op, label, slots)
        elif kind == "await":
            task = slots.get(op[1])
            self.log("await", label, op[1], "missing" if task is None else await self.outcome(task))
        elif kind == "cancel":
            task = slots.get(op[1])
            if task is None:
                self.log("cancel", label, op[1], "missing")
            elif sys.version_info >= (3, 9) and op[2] is not None:
                self.log("cancel", label, op[1], task.cancel(op[2]))
            else:
                self.log("cancel", label, op[1], task.cancel())
        elif kind == "call":
            await self.call(op, index, label)
        elif kind == "gather":
            coros = [self.task_body(body, f"{label}*{index}.{k}") for k, body in enumerate(op[1])]
            results = await self.outcome(asyncio.gather(*coros, return_exceptions=True))
            if results[0] == "ok":
                results = ["ok", [r if isinstance(r, list) else ["exc", type(r).__name__] for r in results[1]]]
            self.log("gather", label, index, results)
        else:  # pragma: no cover - a malformed program
            raise ValueError(f"unknown operation {op!r}")

    def spawn(self, op: List[Any], label: str, slots: Dict[int, Any]) -> None:
        _, slot, spec, via, body = op
        child = f"{label}.{slot}"
        coro = self.task_body(body, child)
        try:
            context = self.context_for(spec)
            if self.mode == "ctxloop":
                task = self.backend.create(asyncio.get_running_loop(), coro, context, via)
            else:
                task = self.backend.create(asyncio.get_running_loop(), coro, context)
        except BaseException as exc:
            coro.close()
            self.log("spawn", label, slot, type(exc).__name__)
            return
        slots[slot] = task
        self.created.append((child, task))
        self.log("spawn", label, slot, "ok")

    async def call(self, op: List[Any], index: int, label: str) -> None:
        how = op[1]
        coro = self.body(op[2], f"{label}>{index}")
        try:
            if how == "direct":
                awaitable: Any = coro
            elif how == "isolated":
                awaitable = (
                    ctxloop.isolated(coro)
                    if self.mode == "ctxloop"
                    else self.backend.in_context(contextvars.copy_context(), coro)
                )
            else:
                awaitable = self.backend.in_context(self.context_for(how.replace("ctx:", "shared:")), coro)
        except BaseException as exc:
            coro.close()
            self.log("call", label, index, "refused", type(exc).__name__)
            return
        self.log("call", label, index, await self.outcome(awaitable))

    async def main(self) -> List[Any]:
        self.labels[asyncio.current_task()] = "m"
        for name in self.program["shared"]:
            self.shared[name] = contextvars.copy_context()
        self.log("main", await self.outcome(self.body(self.program["main"], "m")))
        i = 0
        while i < len(self.created):  # settling a task may create more
            label, task = self.created[i]
            self.log("settle", label, await self.outcome(task))
            i += 1
        for name in sorted(self.shared):
            self.log("final", name, [self.shared[name].get(var, UNSET) for var in VARS])
        return self.trace


def make_loop(mode: str, loop_name: str) -> asyncio.AbstractEventLoop:
    """A fresh loop for *mode*: a ctxloop loop, or a plain one (reference modes)."""
    if mode == "ctxloop":
        return ctxloop.new_event_loop(loop_name)
    if loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.SelectorEventLoop()
    if mode == "pytask":
        loop.set_task_factory(_Ref("pytask").py_task)
    elif sys.version_info < (3, 12):
        raise RuntimeError(f"mode 'native' needs CPython 3.12+, this is {sys.version.split()[0]}")
    return loop


def run_program(program: Dict[str, Any], mode: str, loop_name: str = "asyncio") -> List[Any]:
    """Run *program* in *mode* on a fresh loop of *loop_name*; return its trace (JSON data)."""
    interpreter = _Interpreter(program, mode)
    loop = make_loop(mode, loop_name)
    try:
        trace = loop.run_until_complete(interpreter.main())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return json.loads(json.dumps(trace))  # type: ignore[no-any-return]


# --- generating programs ---------------------------------------------------


class Chooser:
    """The choices a program generator makes; ``random.Random`` or hypothesis draws."""

    def __init__(self, randint: Callable[[int, int], int], choice: Callable[[Sequence[Any]], Any]) -> None:
        self.randint = randint
        self.choice = choice


def random_chooser(seed: int) -> Chooser:
    """Choices from ``random.Random(seed)``: the same program for the same seed."""
    rng = random.Random(seed)
    return Chooser(rng.randint, rng.choice)


# Weighted: the operation kinds, repeated by how often they are picked.
_LEAF_KINDS = ["set"] * 4 + ["get"] * 4 + ["sleep"] * 3 + ["task", "peek", "capture", "raise"]
_NEST_KINDS = ["spawn"] * 5 + ["call"] * 3 + ["gather"] + ["await"] * 3 + ["cancel"] * 2
_SPAWN_CONTEXTS = ["none", "copy", "copy", "new", "own", "shared:A", "shared:A", "shared:B"]
_CALL_HOWS = ["direct", "direct", "isolated", "isolated", "new", "own", "ctx:A", "ctx:B"]


def generate(ch: Chooser, max_depth: int = 3, max_ops: int = 6) -> Dict[str, Any]:
    """A random program, bounded by *max_depth* nested bodies of at most *max_ops* operations."""
    counter = [0]

    def body(depth: int) -> List[Any]:
        ops: List[Any] = []
        slots = 0
        for _ in range(ch.randint(1, max_ops)):
            kinds = _LEAF_KINDS + (_NEST_KINDS if depth < max_depth else ["await"] * 3 + ["cancel"])
            kind = ch.choice(kinds)
            if kind == "set":
                counter[0] += 1
                ops.append(["set", ch.randint(0, 2), f"x{counter[0]}"])
            elif kind == "get":
                ops.append(["get", ch.randint(0, 2)])
            elif kind in ("sleep", "task", "raise"):
                ops.append([kind])
            elif kind == "capture":
                ops.append(["capture", ch.choice(SHARED)])
            elif kind == "peek":
                ops.append(["peek", ch.choice(SHARED), ch.randint(0, 2)])
            elif kind == "spawn":
                ops.append(["spawn", slots, ch.choice(_SPAWN_CONTEXTS), ch.choice(VIAS), body(depth + 1)])
                slots += 1
            elif kind in ("await", "cancel"):
                if slots:
                    slot = ch.randint(0, slots - 1)
                    ops.append(["await", slot] if kind == "await" else ["cancel", slot, ch.choice([None, "why"])])
                else:
                    ops.append(["sleep"])
            elif kind == "call":
                ops.append(["call", ch.choice(_CALL_HOWS), body(depth + 1)])
            else:  # gather
                ops.append(["gather", [body(depth + 1) for _ in range(ch.randint(1, 3))]])
        return ops

    return {"shared": list(SHARED), "main": body(0)}


def handcrafted() -> Dict[str, Dict[str, Any]]:
    """Named programs for the notebook's cells and the S-rules, first in the corpus."""

    def level(n: int, how: str) -> List[Any]:
        # N4/N5: set the level, recurse through a task (or a plain await), read after.
        inner: List[Any] = []
        if n:
            inner = (
                [["spawn", 0, how, "loop.create_task", level(n - 1, how)], ["await", 0]]
                if how != "direct"
                else [["call", "direct", level(n - 1, how)]]
            )
        return [["set", 0, f"level{n}"], ["get", 0], *inner, ["get", 0]]

    return {
        "N3 await shares the caller's context": {
            "shared": [],
            "main": [["set", 0, "main set"], ["get", 0], ["call", "direct", [["set", 0, "sub1 set"]]], ["get", 0]],
        },
        "N4 nested create_task copies": {"shared": [], "main": level(2, "none")},
        "N5 nested plain coroutine shares": {"shared": [], "main": level(2, "direct")},
        "N5b nested create_task with copy_context()": {"shared": [], "main": level(2, "copy")},
        "N1 fresh Context sees defaults": {
            "shared": [],
            "main": [["set", 0, "main value"], ["spawn", 0, "new", "ctxloop.create_task", [["get", 0]]], ["await", 0]],
        },
        "S1 copy taken at creation": {
            "shared": [],
            "main": [
                ["set", 0, "before"],
                ["spawn", 0, "none", "ctxloop.create_task", [["get", 0], ["set", 0, "child"]]],
                ["set", 0, "after"],
                ["await", 0],
                ["get", 0],
            ],
        },
        "S2 steps inside the shared context": {
            "shared": ["A"],
            "main": [
                ["spawn", 0, "shared:A", "ctxloop.Task", [["set", 1, "by child"], ["sleep"], ["get", 1]]],
                ["sleep"],
                ["peek", "A", 1],
                ["call", "ctx:A", [["set", 1, "between steps"]]],
                ["await", 0],
                ["peek", "A", 1],
            ],
        },
        "S2 two tasks share one context": {
            "shared": ["A"],
            "main": [
                ["spawn", 0, "shared:A", "loop.create_task", [["set", 0, "t0"], ["sleep"], ["get", 0]]],
                ["spawn", 1, "shared:A", "ctxloop.create_task", [["get", 0], ["set", 0, "t1"], ["sleep"]]],
                ["await", 0],
                ["await", 1],
                ["peek", "A", 0],
            ],
        },
        "S4 a captured task context hosts another task": {
            "shared": ["A"],
            "main": [
                ["spawn", 0, "copy", "ctxloop.Task", [["set", 2, "in t0"], ["capture", "A"], ["sleep"], ["get", 2]]],
                ["sleep"],
                ["spawn", 1, "shared:A", "loop.create_task", [["get", 2], ["set", 2, "t1 wrote"]]],
                ["await", 1],
                ["await", 0],
            ],
        },
        "S7 own context refused": {
            "shared": [],
            "main": [
                ["spawn", 0, "own", "ctxloop.create_task", [["get", 0]]],
                ["spawn", 1, "own", "loop.create_task", [["get", 0]]],
                ["spawn", 2, "own", "ctxloop.Task", [["get", 0]]],
                ["call", "own", [["get", 0]]],
            ],
        },
        "S7 shared context entered by an inline call": {
            "shared": ["A"],
            "main": [["call", "ctx:A", [["spawn", 0, "shared:A", "loop.create_task", [["get", 0]]]]]],
        },
        "cancel with and without a message": {
            "shared": [],
            "main": [
                ["spawn", 0, "copy", "ctxloop.create_task", [["sleep"], ["get", 0]]],
                ["spawn", 1, "none", "loop.create_task", [["sleep"], ["get", 0]]],
                ["sleep"],
                ["cancel", 0, "why"],
                ["cancel", 1, None],
                ["await", 0],
                ["await", 1],
                ["cancel", 1, None],
            ],
        },
    }
