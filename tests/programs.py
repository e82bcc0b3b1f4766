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
``["soon", slot, NAME, via, BODY]``          ``loop.call_soon(cb, context=C)``, C the shared
                                             context NAME: the callback creates a task running
                                             BODY with ``context=C``, its own (current) context
``["await", slot]``                          await the task in ``slot`` (traced outcome)
``["cancel", slot, msg]``                    ``task.cancel(msg)`` (msg dropped on 3.8; traced result)
``["call", how, BODY]``                      await BODY inline: ``how`` is ``direct`` (``await``),
                                             ``isolated``, ``new`` (a fresh ``Context()``),
                                             ``own`` (the current task's context) or
                                             ``ctx:NAME`` (``run_in_context`` of a shared context)
``["gather", [BODY, ...]]``                  ``asyncio.gather`` of the bodies (each a task)
``["capture", NAME]``                        shared context NAME := the current task's context
``["peek", NAME, v]``                        read ``v`` in shared context NAME from outside (traced)
``["raise"]``                                raise ``ValueError``
===========================================  =====================================================

``ctx`` of a spawn is ``none`` (no ``context=``), ``copy`` (``copy_context()``),
``new`` (``Context()``), ``own`` (the creating task's ``get_context()``) or
``shared:NAME``. Every shared context starts as a copy of the main task's
context. Slots are local to a body: a body awaits and cancels only the tasks it
created, so no program can deadlock; a ``soon`` slot is filled when its
callback runs (until then ``await`` and ``cancel`` trace ``missing``). At the end, the main task lets every
scheduled callback run, awaits every task ever created, in creation order, and
the final values of every shared context are traced.

The same program runs in three modes:

* ``native`` (CPython 3.12+): plain asyncio, no ctxloop. ``create_task(context=)``
  is asyncio's own; ``run_in_context`` / ``isolated`` are ``RefInContext``
  below (every step inside the context, in the same task), written here
  independently of ctxloop. This is the mode the golden traces are recorded in.
* ``pytask`` (every Python): plain asyncio, no ctxloop, every task asyncio's
  pure-Python Task (``asyncio.tasks._PyTask``) given its context the way 3.11
  does it (``self._context = context``): natively on 3.11+, on 3.8-3.10 by
  handing ``_PyTask.__init__`` the context in place of its ``copy_context()``
  (on 3.14+ the current task is read with the pure-Python ``current_task()``,
  the only one that sees a ``_PyTask``). An independent reference that runs
  everywhere.
* ``ctxloop``: a ctxloop loop, tasks created through ctxloop's entry points.

The reference modes do exactly what CPython does; nothing in them imitates
ctxloop. Contexts that are entered when a task is created (S7):

* A lazy task given an entered context works natively: the creating task's own
  context (``spawn own``, or ``shared:NAME`` naming it), whether it is current
  or a ``call`` has entered another context on top of it; the context a
  ``call`` entered (``call ctx:A [spawn shared:A]``); a callback's own context
  (``soon``). The context is no longer entered when the child's first step
  runs: parent and child share it and their steps never nest.
* ``call`` of a context that is entered (``call own``; ``call ctx:A`` inside
  ``call ctx:A`` or inside a task running in A): ``RefInContext`` fails at its
  first step with CPython's ``RuntimeError`` ("cannot enter context"), while
  ctxloop's ``run_in_context`` raises ``RuntimeError`` at creation. ``call``
  awaits right after creating and nothing runs in between, so the trace
  records one outcome for both: ``["call", label, index, ["exc", "RuntimeError"]]``
  (an exception at creation is traced as the outcome of the await).

Where CPython hangs or corrupts its state, a reference would have to imitate
ctxloop instead; the language cannot produce either case, so there is no
imitation at all:

* a task given a context entered *beneath* the running loop (the loop runs
  inside ``ctx.run``) never finishes natively: every context a program can
  name is created inside the main task, and a context is entered only while a
  step of a task runs, so when a lazy task's first step runs nothing is
  entered but its own context;
* an eager task (3.12+) given an entered context corrupts the loop's
  current-task record natively: the language creates no eager task.

(Both confirmed outside the language on CPython 3.12.1-3.15.2; inside it,
``scripts/regen_golden.py --probe`` finds no program that hangs natively.)

A ``spawn shared:NAME`` whose context was entered by a ``call ctx:*`` *beneath*
the current context, that is with another ``call`` (not ``direct``) of the
same task in between, e.g. ``call ctx:A [call isolated [spawn shared:A]]``,
is a context entered beneath the current one but during the current step:
CPython runs the task (the context is exited before its first step), and so
does ctxloop, which tells that context from one entered beneath the running
loop by the chain of entered contexts. The generator produces that shape
(``nested_entered_sites`` finds it) and ``nested_entered()`` holds named
examples, which are in the corpus.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import json
import random
import sys
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import ctxloop

__all__ = [
    "MODES",
    "RefInContext",
    "VARS",
    "generate",
    "handcrafted",
    "nested_entered",
    "nested_entered_sites",
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
if sys.version_info >= (3, 14):
    # The pure-Python Task records itself as current for the pure-Python
    # current_task() only: the C one no longer sees it.
    _py_current_task: Callable[[], Any] = asyncio.tasks._py_current_task  # type: ignore[attr-defined]
else:
    _py_current_task = asyncio.current_task


class RefInContext:
    """Reference ``run_in_context``: await *coro* in the same task, each step inside *ctx*.

    Independent of ctxloop: a generator-based awaitable that sends into and
    throws into the coroutine through ``ctx.run``. A context that is entered
    fails at the step that enters it, with ``Context.run``'s own ``RuntimeError``.
    """

    def __init__(self, ctx: contextvars.Context, coro: Any) -> None:
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
            except BaseException:
                if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                    coro.close()  # never entered: no "never awaited" warning
                raise
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
        if self.mode == "native":
            return loop.create_task(coro, context=context)
        return self.py_task(loop, coro, context)

    def current_task(self) -> Any:
        return asyncio.current_task() if self.mode == "native" else _py_current_task()

    def own_context(self) -> contextvars.Context:
        task: Any = self.current_task()
        if self.mode == "native":
            return task.get_context()  # type: ignore[no-any-return]
        return task._context  # type: ignore[no-any-return]

    def in_context(self, ctx: contextvars.Context, coro: Any) -> Any:
        return RefInContext(ctx, coro)


class _Ctxloop:
    """Task creation through ctxloop's entry points."""

    mode = "ctxloop"

    def current_task(self) -> Any:
        return asyncio.current_task()

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
        self.pending_callbacks = 0

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
        self.labels[self.backend.current_task()] = label
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
            self.log("task", label, self.labels.get(self.backend.current_task(), "?"))
        elif kind == "sleep":
            await asyncio.sleep(0)
        elif kind == "raise":
            raise ValueError(label)
        elif kind == "capture":
            self.shared[op[1]] = self.backend.own_context()
        elif kind == "peek":
            self.log("peek", label, op[1], op[2], self.shared[op[1]].get(VARS[op[2]], UNSET))
        elif kind == "spawn":
            self.spawn(op, label, slots, lambda: self.context_for(op[2]))
        elif kind == "soon":
            self.soon(op, label, slots)
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

    def spawn(
        self, op: List[Any], label: str, slots: Dict[int, Any], context: Callable[[], Optional[contextvars.Context]]
    ) -> None:
        """Create the task of a ``spawn`` or ``soon`` operation, in the context ``context()`` gives."""
        kind, slot, _, via, body = op
        child = f"{label}.{slot}"
        coro = self.task_body(body, child)
        try:
            loop = asyncio.get_running_loop()
            if self.mode == "ctxloop":
                task = self.backend.create(loop, coro, context(), via)
            else:
                task = self.backend.create(loop, coro, context())
        except BaseException as exc:
            coro.close()
            self.log(kind, label, slot, type(exc).__name__)
            return
        slots[slot] = task
        self.created.append((child, task))
        self.log(kind, label, slot, "ok")

    def soon(self, op: List[Any], label: str, slots: Dict[int, Any]) -> None:
        ctx = self.shared[op[2]]

        def callback() -> None:
            # Runs inside ctx (entered and current): the task is given ctx itself.
            self.pending_callbacks -= 1
            self.spawn(op, label, slots, lambda: ctx)

        self.pending_callbacks += 1
        asyncio.get_running_loop().call_soon(callback, context=ctx)

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
            # Refused at creation: the same outcome as failing at the first
            # step of the await that follows at once (see the module docstring).
            coro.close()
            self.log("call", label, index, ["exc", type(exc).__name__])
            return
        self.log("call", label, index, await self.outcome(awaitable))

    async def main(self) -> List[Any]:
        self.labels[self.backend.current_task()] = "m"
        for name in self.program["shared"]:
            self.shared[name] = contextvars.copy_context()
        self.log("main", await self.outcome(self.body(self.program["main"], "m")))
        i = 0
        while i < len(self.created) or self.pending_callbacks:  # settling a task may create more
            if i == len(self.created):
                await asyncio.sleep(0)  # let the scheduled callbacks create their tasks
                continue
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
    if loop_name == "asyncio":
        loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop()
    else:
        loop = importlib.import_module(loop_name).new_event_loop()
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


# --- tasks given a context entered beneath the current one, during the step ---


def _walk(ops: List[Any], under_ctx: bool, beneath: bool) -> Iterator[Tuple[List[Any], bool, bool]]:
    """Every operation of a task's body with its call state (see ``nested_entered_sites``)."""
    for op in ops:
        yield op, under_ctx, beneath
        if op[0] in ("spawn", "soon"):
            yield from _walk(op[4], False, False)  # a new task: nothing of ours is entered when it steps
        elif op[0] == "gather":
            for body in op[1]:
                yield from _walk(body, False, False)
        elif op[0] == "call":
            yield from _walk(op[2], *_call_state(op[1], under_ctx, beneath))


def _call_state(how: str, under_ctx: bool, beneath: bool) -> Tuple[bool, bool]:
    """The state inside ``call how``: ``under_ctx``, a ``call ctx:*`` context is
    entered; ``beneath``, one is entered beneath the current context."""
    if how == "direct":
        return under_ctx, beneath
    return under_ctx or how.startswith("ctx:"), beneath or under_ctx


def nested_entered_sites(program: Dict[str, Any]) -> List[List[Any]]:
    """The spawns of *program* that may be given a context entered beneath the current one.

    A ``spawn shared:NAME`` with a ``call ctx:*`` and then another ``call`` that
    is not ``direct`` around it in the same task: when NAME is the context the
    outer call entered, it is entered beneath the current context, during the
    current step. CPython runs such a task, and so must ctxloop.
    """
    return [
        op
        for op, _, beneath in _walk(program["main"], False, False)
        if beneath and op[0] == "spawn" and op[2].startswith("shared:")
    ]


def nested_entered() -> Dict[str, Dict[str, Any]]:
    """Named programs of that shape (in the corpus, after ``handcrafted()``'s)."""
    child = [["get", 0], ["set", 1, "child"]]
    return {
        "shared context entered beneath an isolated call": {
            "shared": ["A"],
            "main": [["call", "ctx:A", [["call", "isolated", [["spawn", 0, "shared:A", "loop.create_task", child]]]]]],
        },
        "shared context entered beneath another shared one": {
            "shared": ["A", "B"],
            "main": [
                ["set", 0, "main"],
                ["call", "ctx:A", [["call", "ctx:B", [["spawn", 0, "shared:A", "ctxloop.Task", child], ["await", 0]]]]],
                ["peek", "A", 1],
            ],
        },
        "shared context entered beneath a fresh one, through direct calls": {
            "shared": ["A"],
            "main": [
                [
                    "call",
                    "ctx:A",
                    [["call", "direct", [["call", "new", [["spawn", 0, "shared:A", "ctxloop.create_task", child]]]]]],
                ]
            ],
        },
    }


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
_NEST_KINDS = ["spawn"] * 5 + ["soon"] + ["call"] * 3 + ["gather"] + ["await"] * 3 + ["cancel"] * 2
_SPAWN_CONTEXTS = ["none", "copy", "copy", "new", "own", "own", "shared:A", "shared:A", "shared:B"]
_CALL_HOWS = ["direct", "direct", "isolated", "isolated", "new", "own", "ctx:A", "ctx:A", "ctx:B"]


def generate(ch: Chooser, max_depth: int = 3, max_ops: int = 6) -> Dict[str, Any]:
    """A random program, bounded by *max_depth* nested bodies of at most *max_ops* operations."""
    counter = [0]

    def body(depth: int) -> List[Any]:  # noqa: PLR0912
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
            elif kind == "soon":
                ops.append(["soon", slots, ch.choice(SHARED), ch.choice(VIAS), body(depth + 1)])
                slots += 1
            elif kind in ("await", "cancel"):
                if slots:
                    slot = ch.randint(0, slots - 1)
                    ops.append(["await", slot] if kind == "await" else ["cancel", slot, ch.choice([None, "why"])])
                else:
                    ops.append(["sleep"])
            elif kind == "call":
                how = ch.choice(_CALL_HOWS)
                ops.append(["call", how, body(depth + 1)])
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

    def sharer(value: str) -> List[Any]:
        # A child sharing its creator's context: reads, writes, yields, reads again.
        return [["get", 0], ["set", 0, value], ["sleep"], ["get", 0], ["set", 1, value]]

    programs: Dict[str, Dict[str, Any]] = {
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
    # S7, accepted: a lazy task given an entered context, which natively is
    # no longer entered when the task's first step runs.
    for via in VIAS:
        programs[f"S7 own context shared with the child ({via})"] = {
            "shared": ["A"],
            "main": [
                ["capture", "A"],
                ["set", 0, "parent"],
                ["spawn", 0, "own", via, sharer(f"child via {via}")],
                ["sleep"],
                ["get", 0],
                ["set", 0, "parent again"],
                ["await", 0],
                ["get", 0],
                ["get", 1],
                ["peek", "A", 1],
            ],
        }
    for how in ("ctx:A", "isolated", "new", "direct"):
        programs[f"S7 own context, beneath call {how}"] = {
            "shared": ["A"],
            "main": [
                ["set", 0, "parent"],
                ["call", how, [["set", 0, "in call"], ["spawn", 0, "own", "loop.create_task", sharer("child")]]],
                ["get", 0],
                ["sleep"],
                ["get", 0],
                ["get", 1],
                ["peek", "A", 0],
            ],
        }
    programs.update(
        {
            "S7 current context: spawn into the context a call entered": {
                "shared": ["A"],
                "main": [
                    ["set", 0, "main"],
                    [
                        "call",
                        "ctx:A",
                        [
                            ["set", 0, "in A"],
                            ["spawn", 0, "shared:A", "ctxloop.create_task", sharer("child in A")],
                            ["spawn", 1, "shared:A", "ctxloop.Task", [["get", 0], ["set", 2, "second"]]],
                            ["sleep"],
                            ["get", 0],
                            ["await", 0],
                            ["get", 1],
                            ["get", 2],
                        ],
                    ],
                    ["get", 0],
                    ["peek", "A", 0],
                    ["peek", "A", 1],
                    ["peek", "A", 2],
                ],
            },
            "S7 current context: run_in_context's task spawns into it, every entry point": {
                "shared": ["B"],
                "main": [
                    [
                        "call",
                        "ctx:B",
                        [["spawn", k, "shared:B", via, [["set", 1, via], ["get", 0]]] for k, via in enumerate(VIAS)]
                        + [["await", k] for k in range(len(VIAS))],
                    ],
                    ["peek", "B", 1],
                ],
            },
            "S7 a task spawns into its own context under a shared name": {
                "shared": ["A"],
                "main": [
                    [
                        "spawn",
                        0,
                        "copy",
                        "ctxloop.Task",
                        [
                            ["capture", "A"],
                            ["set", 0, "t0"],
                            ["spawn", 0, "shared:A", "loop.create_task", sharer("t0.0")],
                            ["sleep"],
                            ["get", 0],
                            ["await", 0],
                        ],
                    ],
                    ["await", 0],
                    ["peek", "A", 0],
                    ["peek", "A", 1],
                ],
            },
            "S7 a task in a shared context spawns into it, directly and beneath calls": {
                "shared": ["A", "B"],
                "main": [
                    [
                        "spawn",
                        0,
                        "shared:A",
                        "ctxloop.create_task",
                        [
                            ["set", 1, "t0"],
                            ["spawn", 0, "shared:A", "ctxloop.create_task", [["get", 1], ["set", 1, "t0.0"]]],
                            ["call", "isolated", [["spawn", 1, "shared:A", "ctxloop.Task", [["get", 1]]]]],
                            ["call", "ctx:B", [["spawn", 2, "shared:A", "loop.create_task", [["get", 0]]]]],
                            ["sleep"],
                            ["get", 1],
                            ["await", 0],
                        ],
                    ],
                    ["await", 0],
                    ["peek", "A", 1],
                ],
            },
            "S7 the main task's context under a shared name, beneath a call": {
                "shared": ["A", "B"],
                "main": [
                    ["capture", "A"],
                    ["set", 0, "main"],
                    [
                        "call",
                        "ctx:B",
                        [["spawn", 0, "shared:A", "asyncio.create_task", sharer("child")], ["sleep"], ["await", 0]],
                    ],
                    ["get", 0],
                    ["get", 1],
                ],
            },
            "S7 callback's own context hosts a task, every entry point": {
                "shared": ["A"],
                "main": [
                    ["call", "ctx:A", [["set", 0, "A before"]]],
                    *[["soon", k, "A", via, [["get", 0], ["set", 1, via], ["task"]]] for k, via in enumerate(VIAS)],
                    ["sleep"],
                    *[["await", k] for k in range(len(VIAS))],
                    ["peek", "A", 0],
                    ["peek", "A", 1],
                ],
            },
            "S7 callback in the main task's context": {
                "shared": ["A"],
                "main": [
                    ["capture", "A"],
                    ["set", 0, "main"],
                    ["soon", 0, "A", "loop.create_task", sharer("from callback")],
                    ["await", 0],
                    ["sleep"],
                    ["get", 0],
                    ["await", 0],
                    ["get", 0],
                    ["get", 1],
                ],
            },
            "S7 callback scheduled beneath calls, never awaited by its creator": {
                "shared": ["A", "B"],
                "main": [
                    ["call", "ctx:A", [["call", "isolated", [["soon", 0, "A", "ctxloop.Task", [["get", 0]]]]]]],
                    ["call", "new", [["soon", 0, "B", "ctxloop.create_task", [["set", 0, "in B"], ["raise"]]]]],
                ],
            },
            # S7, refused by both: run_in_context of an entered context.
            "S7 run_in_context of an entered context fails (at creation or first step: one outcome)": {
                "shared": ["A", "B"],
                "main": [
                    ["call", "own", [["get", 0]]],
                    ["call", "ctx:A", [["call", "ctx:A", [["get", 0]]], ["set", 0, "A after"]]],
                    ["capture", "B"],
                    ["call", "ctx:B", [["get", 0]]],
                    ["spawn", 0, "shared:A", "loop.create_task", [["call", "ctx:A", [["get", 0]]], ["get", 0]]],
                    ["await", 0],
                    ["call", "isolated", [["call", "own", [["get", 0]]]]],
                    ["peek", "A", 0],
                ],
            },
        }
    )
    programs.update({f"S7 {name}": program for name, program in nested_entered().items()})
    return programs
