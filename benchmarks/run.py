"""ctxloop / native cost ratios, measured in one process with the arms interleaved.

Run from the repository root (so that the source tree's ctxloop is measured)::

    python -m benchmarks                 # every installed loop, the full run
    python -m benchmarks --quick         # a tiny run (the smoke test and CI use it)
    python -m benchmarks --json out.json --loops uvloop --reps 11

Each implementation of ctxloop (compiled accelerator, pure Python) is
measured in a process of its own (``--impl``). For each loop (asyncio's,
uvloop where installed) it builds one plain loop, one ctxloop loop
(``new_event_loop(name)``) and one loop passed to ``enable()``, then runs every
arm once per repetition, in a rotating order, and reports for each comparison
the median of the per-repetition ratios (arm / baseline of the same
repetition) with their min-max, next to the target of docs/performance.md
("The targets"). Times are CPU time of the process (``--clock wall`` for
``perf_counter``). Nothing here asserts a time: it prints what it measured.

The measurements:

1. create + finish N trivial tasks, gathered in batches: natively, through
   ``ctxloop.create_task(coro, context=copy_context())`` and through a ctxloop
   loop's ``create_task`` with and without ``context=``; on 3.11+ the native
   arm passes the same ``context=``.
2. per-step cost: one task doing N ``await asyncio.sleep(0)``, natively and
   bound to a context by ctxloop; and without a context, on a ctxloop loop
   and on a loop passed to ``enable()``.
3. a task tree (fan-out 10, depth 4) reading and writing a contextvar at every
   node.
4. ``isolated()`` / ``run_in_context()`` against awaiting the coroutine
   directly and against ``create_task(..., context=copy_context())``.
5. on 3.8-3.10 with uvloop: ctxloop's exact ``context=`` against uvloop's own
   ``create_task(context=)`` with a task factory set (which gives a copy).
6. memory: RSS and tracemalloc before and after 1,000,000 finished tasks
   created with ``context=``, and the objects the cycle collector frees per
   10,000 tasks (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Coroutine, Dict, List, Optional, Tuple

if __package__ in (None, ""):  # run as a script: measure the source tree next to it
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ctxloop

NATIVE_CONTEXT = sys.version_info >= (3, 11)  # asyncio's create_task takes context=
BACKPORT = not NATIVE_CONTEXT  # ctxloop's own step code runs (3.8-3.10, PyPy 3.9)

var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)
copy_context = contextvars.copy_context
gather = asyncio.gather
sleep = asyncio.sleep

# The targets of docs/performance.md, by kind of comparison.
TARGET_CREATE = 1.10 if BACKPORT else 1.02
TARGET_STEP = 1.03 if BACKPORT else 1.02
TARGET_NO_CONTEXT = 1.02
TARGET_STEP_PLAIN = TARGET_STEP  # a task without context= on a ctxloop loop
TARGET_UVLOOP_COPY = 1.00


class Sizes:
    """How much work each repetition does (``--quick`` shrinks everything)."""

    def __init__(self, quick: bool) -> None:
        self.create = 400 if quick else 20_000  # tasks per repetition
        self.batch = 100 if quick else 500  # tasks gathered at once
        self.steps = 400 if quick else 50_000  # sleep(0) steps of one task
        self.depth = 2 if quick else 4  # task tree: fan-out 10, this depth
        self.inline = 200 if quick else 20_000  # isolated()/run_in_context() awaits
        self.memory = 2_000 if quick else 1_000_000  # finished tasks for RSS/tracemalloc
        self.traced = 2_000 if quick else 1_000_000
        self.cycles = 1_000 if quick else 10_000  # tasks per cycle-collector count
        self.warmup = 500 if quick else 20_000


# --------------------------------------------------------------------------
# Workloads. Each returns the elapsed clock time of its measured part; every
# arm of one comparison runs the same code with only the creating call swapped.


async def trivial() -> None:
    pass


async def create_no_context(spawn: Callable[..., Any], n: int, batch: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n // batch):
        await gather(*[spawn(trivial()) for _ in range(batch)])
    return clock() - start


async def create_with_context(spawn: Callable[..., Any], n: int, batch: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n // batch):
        await gather(*[spawn(trivial(), context=copy_context()) for _ in range(batch)])
    return clock() - start


async def stepper(n: int) -> None:
    for _ in range(n):
        await sleep(0)


async def steps_no_context(spawn: Callable[..., Any], n: int, clock: Callable[[], float]) -> float:
    start = clock()
    await spawn(stepper(n))
    return clock() - start


async def steps_with_context(spawn: Callable[..., Any], n: int, clock: Callable[[], float]) -> float:
    start = clock()
    await spawn(stepper(n), context=copy_context())
    return clock() - start


async def node_no_context(spawn: Callable[..., Any], depth: int) -> int:
    seen = var.get()
    var.set(depth)
    if depth:
        await gather(*[spawn(node_no_context(spawn, depth - 1)) for _ in range(10)])
    return seen + var.get()


async def node_with_context(spawn: Callable[..., Any], depth: int) -> int:
    seen = var.get()
    var.set(depth)
    if depth:
        await gather(*[spawn(node_with_context(spawn, depth - 1), context=copy_context()) for _ in range(10)])
    return seen + var.get()


async def tree_no_context(spawn: Callable[..., Any], depth: int, clock: Callable[[], float]) -> float:
    start = clock()
    await node_no_context(spawn, depth)
    return clock() - start


async def tree_with_context(spawn: Callable[..., Any], depth: int, clock: Callable[[], float]) -> float:
    start = clock()
    await node_with_context(spawn, depth)
    return clock() - start


async def work() -> int:
    var.set(var.get() + 1)
    await sleep(0)
    return var.get()


async def inline_direct(n: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n):
        await work()
    return clock() - start


async def inline_isolated(n: int, clock: Callable[[], float]) -> float:
    isolated = ctxloop.isolated
    start = clock()
    for _ in range(n):
        await isolated(work())
    return clock() - start


async def inline_run_in_context(n: int, clock: Callable[[], float]) -> float:
    run_in_context = ctxloop.run_in_context
    ctx = copy_context()
    start = clock()
    for _ in range(n):
        await run_in_context(ctx, work())
    return clock() - start


async def inline_task(spawn: Callable[..., Any], n: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n):
        await spawn(work(), context=copy_context())
    return clock() - start


# --------------------------------------------------------------------------
# Arms and comparisons.

Arm = Tuple[str, Callable[[], float]]  # name, one measurement (seconds)


class Row:
    """One comparison: arm / baseline, with the target it is held to (or None)."""

    def __init__(  # noqa: PLR0917 - a record; every call site names its fields in order
        self, group: str, label: str, arm: str, baseline: str, per: int, unit: str, target: Optional[float]
    ) -> None:
        self.group, self.label, self.arm, self.baseline = group, label, arm, baseline
        self.per, self.unit, self.target = per, unit, target


def base_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop if sys.platform == "win32" else asyncio.SelectorEventLoop


def _copying_factory(loop: asyncio.AbstractEventLoop, coro: Any) -> "asyncio.Task[Any]":
    # The simplest task factory: uvloop then runs it inside context.run(...),
    # so the task gets a copy of the context (uvloop's own context= on 3.8-3.10).
    return asyncio.Task(coro, loop=loop)


def build(loop_name: str, sizes: Sizes, clock: Callable[[], float]) -> Tuple[List[Arm], List[Row], List[Any]]:
    """The arms to interleave and the rows to report, for one loop kind."""
    make = base_factory(loop_name)
    plain = make()
    # What users get: ctxloop.new_event_loop("asyncio" / "uvloop") is an
    # instance of a cached subclass of the base class (only create_task
    # differs); a loop made elsewhere and passed to enable() gets create_task
    # as an instance attribute instead (measured as information).
    ctx_loop = ctxloop.new_event_loop(loop_name)
    enabled = ctxloop.enable(make())
    loops: List[Any] = [plain, ctx_loop, enabled]
    s = sizes
    arms: List[Arm] = []

    def arm(name: str, loop: asyncio.AbstractEventLoop, factory: Callable[[], Coroutine[Any, Any, float]]) -> None:
        arms.append((name, lambda: loop.run_until_complete(factory())))

    # Native arms on the plain loop: on 3.11+ they pass the same context= as ctxloop's.
    native_create = create_with_context if NATIVE_CONTEXT else create_no_context
    native_steps = steps_with_context if NATIVE_CONTEXT else steps_no_context
    native_tree = tree_with_context if NATIVE_CONTEXT else tree_no_context
    arm("native asyncio.create_task", plain, lambda: native_create(asyncio.create_task, s.create, s.batch, clock))
    arm("native loop.create_task", plain, lambda: native_create(plain.create_task, s.create, s.batch, clock))
    arm("native loop.create_task()", plain, lambda: create_no_context(plain.create_task, s.create, s.batch, clock))
    arm(
        "ctxloop.create_task(ctx)",
        ctx_loop,
        lambda: create_with_context(ctxloop.create_task, s.create, s.batch, clock),
    )
    arm(
        "ctxloop.create_task(ctx) plain loop",
        plain,
        lambda: create_with_context(ctxloop.create_task, s.create, s.batch, clock),
    )
    arm(
        "ctxloop loop.create_task(ctx)",
        ctx_loop,
        lambda: create_with_context(ctx_loop.create_task, s.create, s.batch, clock),
    )
    arm(
        "ctxloop loop.create_task()",
        ctx_loop,
        lambda: create_no_context(ctx_loop.create_task, s.create, s.batch, clock),
    )
    arm("native steps", plain, lambda: native_steps(plain.create_task, s.steps, clock))
    arm("ctxloop steps(ctx)", ctx_loop, lambda: steps_with_context(ctx_loop.create_task, s.steps, clock))
    arm("native steps()", plain, lambda: steps_no_context(plain.create_task, s.steps, clock))
    arm("ctxloop loop steps()", ctx_loop, lambda: steps_no_context(ctx_loop.create_task, s.steps, clock))
    arm("enabled loop steps()", enabled, lambda: steps_no_context(enabled.create_task, s.steps, clock))
    arm(
        "enabled loop.create_task()",
        enabled,
        lambda: create_no_context(enabled.create_task, s.create, s.batch, clock),
    )
    arm("native tree", plain, lambda: native_tree(asyncio.create_task, s.depth, clock))
    arm("native tree()", plain, lambda: tree_no_context(asyncio.create_task, s.depth, clock))
    arm("ctxloop tree(ctx)", ctx_loop, lambda: tree_with_context(ctxloop.create_task, s.depth, clock))
    arm("ctxloop loop tree()", ctx_loop, lambda: tree_no_context(asyncio.create_task, s.depth, clock))
    arm("await coro", ctx_loop, lambda: inline_direct(s.inline, clock))
    arm("await isolated(coro)", ctx_loop, lambda: inline_isolated(s.inline, clock))
    arm("await run_in_context(ctx, coro)", ctx_loop, lambda: inline_run_in_context(s.inline, clock))
    arm("await create_task(coro, ctx)", ctx_loop, lambda: inline_task(ctxloop.create_task, s.inline, clock))

    tasks = s.create
    tree_tasks = sum(10**level for level in range(1, s.depth + 1))
    ctx_note = "context=ctx" if NATIVE_CONTEXT else "no context"
    rows = [
        Row(
            "create",
            f"ctxloop.create_task(coro, context=ctx) vs asyncio.create_task ({ctx_note})",
            "ctxloop.create_task(ctx)",
            "native asyncio.create_task",
            tasks,
            "task",
            TARGET_CREATE,
        ),
        Row(
            "create",
            f"ctxloop loop.create_task(coro, context=ctx) vs base loop.create_task ({ctx_note})",
            "ctxloop loop.create_task(ctx)",
            "native loop.create_task",
            tasks,
            "task",
            TARGET_CREATE,
        ),
        Row(
            "create",
            "ctxloop loop.create_task(coro) vs base loop.create_task(coro), no context",
            "ctxloop loop.create_task()",
            "native loop.create_task()",
            tasks,
            "task",
            TARGET_NO_CONTEXT,
        ),
        Row(
            "create",
            f"ctxloop.create_task(coro, context=ctx) on a plain loop vs asyncio.create_task ({ctx_note})",
            "ctxloop.create_task(ctx) plain loop",
            "native asyncio.create_task",
            tasks,
            "task",
            TARGET_CREATE,
        ),
        Row(
            "step",
            f"one task's sleep(0) step, bound to a context vs native ({ctx_note})",
            "ctxloop steps(ctx)",
            "native steps",
            s.steps,
            "step",
            TARGET_STEP,
        ),
        Row(
            "step",
            "one task's sleep(0) step on a ctxloop loop vs a plain loop, no context",
            "ctxloop loop steps()",
            "native steps()",
            s.steps,
            "step",
            TARGET_STEP_PLAIN,
        ),
        Row(
            "enabled",
            "a loop passed to enable(): create_task(coro) vs the base loop's, no context",
            "enabled loop.create_task()",
            "native loop.create_task()",
            tasks,
            "task",
            None,
        ),
        Row(
            "enabled",
            "a loop passed to enable(): sleep(0) step vs a plain loop, no context",
            "enabled loop steps()",
            "native steps()",
            s.steps,
            "step",
            None,
        ),
        Row(
            "tree",
            f"task tree 10^{s.depth}, ctxloop.create_task(context=copy) vs asyncio.create_task ({ctx_note})",
            "ctxloop tree(ctx)",
            "native tree",
            tree_tasks,
            "task",
            TARGET_CREATE,
        ),
        Row(
            "tree",
            f"task tree 10^{s.depth}, asyncio.create_task on a ctxloop loop vs a plain loop",
            "ctxloop loop tree()",
            "native tree()",
            tree_tasks,
            "task",
            TARGET_NO_CONTEXT,
        ),
        Row(
            "inline",
            "await isolated(coro) vs await coro",
            "await isolated(coro)",
            "await coro",
            s.inline,
            "await",
            None,
        ),
        Row(
            "inline",
            "await run_in_context(ctx, coro) vs await coro",
            "await run_in_context(ctx, coro)",
            "await coro",
            s.inline,
            "await",
            None,
        ),
        Row(
            "inline",
            "await isolated(coro) vs await create_task(coro, context=copy)",
            "await isolated(coro)",
            "await create_task(coro, ctx)",
            s.inline,
            "await",
            None,
        ),
    ]

    if loop_name == "uvloop" and BACKPORT:
        copying = make()
        copying.set_task_factory(_copying_factory)
        loops.append(copying)
        arm(
            "uvloop factory create_task(ctx)",
            copying,
            lambda: create_with_context(copying.create_task, s.create, s.batch, clock),
        )
        rows.append(
            Row(
                "uvloop",
                "ctxloop loop.create_task(coro, context=ctx) vs uvloop's (factory set: a copy)",
                "ctxloop loop.create_task(ctx)",
                "uvloop factory create_task(ctx)",
                tasks,
                "task",
                TARGET_UVLOOP_COPY,
            )
        )
        rows.append(
            Row(
                "uvloop",
                "ctxloop.create_task(coro, context=ctx) vs uvloop's (factory set: a copy)",
                "ctxloop.create_task(ctx)",
                "uvloop factory create_task(ctx)",
                tasks,
                "task",
                TARGET_UVLOOP_COPY,
            )
        )
    return arms, rows, loops


def measure(arms: List[Arm], reps: int) -> Dict[str, List[float]]:
    """Run every arm once per repetition, rotating the order; return the times."""
    times: Dict[str, List[float]] = {name: [] for name, _ in arms}
    for _, once in arms:  # warm-up: imports, free lists, PyPy's JIT
        once()
    for rep in range(reps):
        shift = rep % len(arms)
        for name, once in arms[shift:] + arms[:shift]:
            gc.collect()
            times[name].append(once())
    return times


def summarise(rows: List[Row], times: Dict[str, List[float]]) -> List[Dict[str, Any]]:
    out = []
    for row in rows:
        ratios = [a / b for a, b in zip(times[row.arm], times[row.baseline])]
        ratio = statistics.median(ratios)
        out.append(
            {
                "group": row.group,
                "comparison": row.label,
                "arm": row.arm,
                "baseline": row.baseline,
                "unit": row.unit,
                "arm_ns": statistics.median(times[row.arm]) / row.per * 1e9,
                "baseline_ns": statistics.median(times[row.baseline]) / row.per * 1e9,
                "ratio": ratio,
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "target": row.target,
                "meets": None if row.target is None else ratio <= row.target,
            }
        )
    return out


# --------------------------------------------------------------------------
# Memory.


def rss_bytes() -> Optional[int]:
    """The resident set size now (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


async def finish_tasks(n: int, batch: int) -> None:
    spawn = ctxloop.create_task
    for _ in range(max(1, n // batch)):
        await gather(*[spawn(trivial(), context=copy_context()) for _ in range(batch)])


async def finish_native_tasks(n: int, batch: int) -> None:
    spawn = asyncio.create_task
    for _ in range(max(1, n // batch)):
        await gather(*[spawn(trivial()) for _ in range(batch)])


def collected_per(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None]) -> Optional[int]:
    """Objects the cycle collector frees after *work* (None where gc cannot say)."""
    gc.collect()
    gc.disable()
    try:
        loop.run_until_complete(work)
        freed = gc.collect()
    finally:
        gc.enable()
    return freed if isinstance(freed, int) else None


def memory(loop_name: str, sizes: Sizes) -> Dict[str, Any]:
    make = base_factory(loop_name)
    plain = make()
    loop = ctxloop.new_event_loop(loop_name)
    batch = 1000 if sizes.memory >= 100_000 else 100
    try:
        loop.run_until_complete(finish_tasks(sizes.warmup, batch))
        gc.collect()
        rss_before = rss_bytes()
        start = time.perf_counter()
        loop.run_until_complete(finish_tasks(sizes.memory, batch))
        elapsed = time.perf_counter() - start
        gc.collect()
        rss_after = rss_bytes()

        traced_before = traced_after = None
        try:
            import tracemalloc

            tracemalloc.start()
        except (ImportError, RuntimeError, NotImplementedError):  # PyPy: not available
            tracemalloc = None  # type: ignore[assignment]
        if tracemalloc is not None and tracemalloc.is_tracing():
            try:
                loop.run_until_complete(finish_tasks(sizes.warmup, batch))
                gc.collect()
                traced_before = tracemalloc.get_traced_memory()[0]
                loop.run_until_complete(finish_tasks(sizes.traced, batch))
                gc.collect()
                traced_after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()

        cycles = collected_per(loop, finish_tasks(sizes.cycles, 100))
        native_cycles = collected_per(plain, finish_native_tasks(sizes.cycles, 100))
    finally:
        loop.close()
        plain.close()
    return {
        "tasks": sizes.memory,
        "seconds": elapsed,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_delta": None if rss_before is None or rss_after is None else rss_after - rss_before,
        "traced_tasks": sizes.traced,
        "traced_before": traced_before,
        "traced_after": traced_after,
        "traced_delta": None if traced_before is None or traced_after is None else traced_after - traced_before,
        "cycle_tasks": sizes.cycles,
        "cycles_freed": cycles,
        "native_cycles_freed": native_cycles,
    }


# --------------------------------------------------------------------------
# Reporting.


def python_label() -> str:
    impl = platform.python_implementation()
    return f"{impl} {platform.python_version()}"


def machine() -> Dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
    }


def installed_loops() -> List[str]:
    return ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


def _mib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2**20:+.2f} MiB"


def _verdict(row: Dict[str, Any]) -> str:
    if row["target"] is None:
        return "(info)"
    return ("meets" if row["meets"] else "MISSES") + f" <= {row['target']:.2f}"


def print_report(result: Dict[str, Any]) -> None:
    """The table of every comparison per loop: one column group per implementation."""
    print(f"ctxloop {result['ctxloop']} ({result['ctxloop_path']}) on {result['python']}, {result['machine']}")
    print(f"clock: {result['clock']}, {result['reps']} repetitions, arms interleaved; ratio = median [min-max]")
    impls = result["implementations"]
    for impl, data in impls.items():
        print(f"{impl}: {data['implementation']}")
    first = next(iter(impls.values()))
    for loop_name, loop_data in first["loops"].items():
        version = loop_data.get("version")
        print()
        print(f"## {loop_name}" + (f" {version}" if version else ""))
        width = max(len(r["comparison"]) for r in loop_data["rows"])
        header = f"{'comparison':<{width}}"
        for impl in impls:
            header += f"  | {impl + ': ctxloop':>18} {'native':>8} {'ratio':>23} {'verdict':<15}"
        print(header)
        for index, row in enumerate(loop_data["rows"]):
            line = f"{row['comparison']:<{width}}"
            for data in impls.values():
                r = data["loops"][loop_name]["rows"][index]
                spread = f"{r['ratio']:.3f} [{r['ratio_min']:.3f}-{r['ratio_max']:.3f}]"
                line += f"  | {r['arm_ns']:>18.0f} {r['baseline_ns']:>8.0f} {spread:>23} {_verdict(r):<15}"
            print(line + f"  (ns/{row['unit']})")
        for impl, data in impls.items():
            mem = data["loops"][loop_name].get("memory")
            if mem:
                print(
                    f"memory ({impl}): {mem['tasks']:,} finished tasks with context= in {mem['seconds']:.1f}s: "
                    f"RSS {_mib(mem['rss_delta'])}; tracemalloc over {mem['traced_tasks']:,}: "
                    f"{_mib(mem['traced_delta'])}; cycle collector frees {mem['cycles_freed']} objects "
                    f"per {mem['cycle_tasks']:,} tasks (native: {mem['native_cycles_freed']}; target 0)"
                )


def measure_here(args: argparse.Namespace) -> Dict[str, Any]:
    """Every loop's rows (and memory), with the implementation this process imported."""
    from ctxloop._accel import implementation

    sizes = Sizes(args.quick)
    reps = args.reps if args.reps is not None else (3 if args.quick else 9)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    loops = args.loops.split(",") if args.loops else installed_loops()
    out: Dict[str, Any] = {"implementation": implementation(), "reps": reps, "loops": {}}
    for loop_name in loops:
        arms, rows, made = build(loop_name, sizes, clock)
        try:
            times = measure(arms, reps)
        finally:
            for loop in made:
                loop.close()
        version = None
        if loop_name == "uvloop":
            import uvloop

            version = uvloop.__version__
        data: Dict[str, Any] = {"version": version, "rows": summarise(rows, times), "times": times}
        if not args.no_memory:
            data["memory"] = memory(loop_name, sizes)
        out["loops"][loop_name] = data
    return out


def measure_in_subprocess(impl: str, argv: List[str]) -> Dict[str, Any]:
    """Run this benchmark in a fresh interpreter with ctxloop's *impl* ("compiled" or "pure")."""
    import subprocess
    import tempfile

    env = dict(os.environ)
    env.pop("CTXLOOP_NO_SPEEDUPS", None)
    if impl == "pure":
        env["CTXLOOP_NO_SPEEDUPS"] = "1"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="ctxloop-bench-") as tmp:
        path = os.path.join(tmp, "out.json")
        command = [sys.executable, "-m", "benchmarks", *argv, "--impl", "here", "--json", path]
        subprocess.run(command, check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return json.load(f)["implementations"]["here"]  # type: ignore[no-any-return]


def _without(argv: List[str], option: str) -> List[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test, CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 9; 3 with --quick)")
    parser.add_argument("--loops", default=None, help="comma-separated loops (default: every installed one)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process_time or perf_counter")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--impl",
        choices=("both", "compiled", "pure", "here"),
        default="both",
        help="ctxloop's implementation(s) to measure, each in its own process (default: both where the "
        "accelerator is built); 'here' measures this process as imported",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="also count instructions per task and per step under valgrind (slow; see profile_callgrind.py)",
    )
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    child_argv = _without(_without(_without(argv, "--json"), "--impl"), "--callgrind")

    result: Dict[str, Any] = {
        "python": python_label(),
        "ctxloop": ctxloop.__version__,
        "ctxloop_path": os.path.dirname(ctxloop.__file__),
        "machine": machine(),
        "clock": "process_time" if args.clock == "cpu" else "perf_counter",
        "quick": args.quick,
        "implementations": {},
    }
    if args.impl == "here":
        result["implementations"]["here"] = measure_here(args)
    else:
        impls = ["compiled", "pure"] if args.impl == "both" else [args.impl]
        for impl in impls:
            data = measure_in_subprocess(impl, child_argv)
            if impl == "compiled" and data["implementation"].startswith("pure"):
                if args.impl == "compiled":
                    raise SystemExit(f"the compiled accelerator is not in use: {data['implementation']}")
                continue  # not built for this Python (or PyPy): pure Python only
            result["implementations"][impl] = data
    result["reps"] = next(iter(result["implementations"].values()))["reps"]
    print_report(result)
    if args.callgrind:
        from benchmarks import profile_callgrind

        print()
        profile_callgrind.main(
            ["--python", sys.executable, *(["--json", args.json + ".callgrind"] if args.json else [])]
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
