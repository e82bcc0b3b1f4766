"""Instructions per task for every entry point that creates a task, by valgrind's callgrind.

Run from the repository root (valgrind must be installed)::

    python -m benchmarks.instructions                              # this interpreter, every loop it has
    python -m benchmarks.instructions --python /path/to/python3.10 --python ... --json out.json
    python -m benchmarks.instructions --loops uvloop --entries module loop --impl compiled
    python -m benchmarks.instructions --tree /path/to/another/checkout     # measure that ctxloop
    python -m benchmarks.tables --instructions out.json            # the tables again, from the JSON

Each arm creates trivial tasks in gathered batches of 500 (a TaskGroup per
batch for the TaskGroup arms) and runs them to completion, under
``valgrind --tool=callgrind``: one process runs a warm-up, then N1 tasks, then
N2 tasks, and callgrind counts each run apart, so that start-up, imports,
warm-up and whatever one run costs besides its tasks cancel out::

    instructions per task = (Ir(N2) - Ir(N1)) / (N2 - N1)      (N1 = 20,000, N2 = 60,000)

The native baseline is the plain loop's own ``loop.create_task(coro,
context=copy_context())`` (on 3.8-3.10, which have no ``context=``, its
``loop.create_task(coro)``); the rows without ``context=`` compare with
``loop.create_task(coro)`` on the same plain loop. A ctxloop entry point runs on
the same kind of loop: a ctxloop loop (``new_event_loop(name)``) or the plain
one, as the entry point is used. Each ctxloop arm runs with the compiled
accelerator (when built for that Python) and with the pure-Python
implementation (``CTXLOOP_NO_SPEEDUPS=1``), each in its own process.

The entry points (``--entries``):

* ``native``: plain loop ``loop.create_task(coro[, context=ctx])``, the baseline;
* ``module``: ``ctxloop.create_task(coro[, context=ctx])`` on a ctxloop loop;
* ``module@plain``: the same on the plain loop (3.11+; on 3.8-3.10 that is
  ``install@plain``);
* ``loop``: a ctxloop loop's ``loop.create_task(coro[, context=ctx])``;
* ``Task``: ``ctxloop.Task(coro[, context=ctx])`` on the plain loop;
* ``factory``: ``loop.set_task_factory(ctxloop.task_factory)``, then the loop's
  ``create_task``, on the plain loop (3.8-3.10 with ``context=``: on a ctxloop
  loop, the only one that passes ``context=`` to a factory there);
* ``chain``: ``ctxloop.chain_task_factory(inner)`` as the factory, *inner* a
  user factory ``inner(loop, coro, **kwargs)`` returning an ``asyncio.Task``,
  on the loop ``factory`` uses; its baseline is ``native-inner``, *inner*
  itself set on the plain loop;
* ``install`` (3.8-3.10): ``asyncio.create_task(...)`` after
  ``ctxloop.install()``, on a loop made by ``asyncio.new_event_loop()``;
  ``install@plain``: the same on a plain loop made by the program;
* ``taskgroup`` (3.11+): ``TaskGroup.create_task(coro[, context=ctx])`` on a
  ctxloop loop; its baseline is ``native-tg``, the same on the plain loop.

``native-copy`` (3.8-3.10) is the native arm plus the ``copy_context()`` the
``context=`` arms make per task (discarded at once): what of their cost is the
benchmark's own. ``native-Task`` is ``asyncio.Task(coro[, context=ctx])`` on
the plain loop, beside ``ctxloop.Task``: it skips the loop's ``create_task``.

Callgrind dumps its counters whenever the workload calls libc's ``getppid()``
(``--dump-before=getppid``), which it does between the warm-up and the two
runs. ``--detail`` keeps the per-function self cost and call counts in the
JSON (``benchmarks/profile_callgrind.py``'s ``report_comparison`` reads them);
``--jobs 2`` runs two valgrind processes at once. The JSON is rewritten after
each Python x loop, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 500
WARMUP = 2000
N1, N2 = 20_000, 60_000
QUICK_N1, QUICK_N2 = 500, 1000

Version = Tuple[int, int]

# entry -> (label, where it runs: "ctxloop" / "plain" / "installed", baseline entry, Pythons it exists on)
ENTRIES: Dict[str, Tuple[str, str, str, str]] = {
    "native": ("plain loop.create_task(coro{ctx})", "plain", "", "all"),
    "native-copy": ("plain loop.create_task(coro) + copy_context()", "plain", "native", "backport"),
    "native-inner": ("plain loop, factory inner(): loop.create_task(coro{ctx})", "plain", "", "all"),
    "native-Task": ("asyncio.Task(coro{ctx})", "plain", "", "all"),
    "native-tg": ("plain loop, TaskGroup.create_task(coro{ctx})", "plain", "", "native"),
    "module": ("ctxloop.create_task(coro{ctx})", "ctxloop", "native", "all"),
    "module@plain": ("ctxloop.create_task(coro{ctx}) on a plain loop", "plain", "native", "native"),
    "loop": ("ctxloop loop.create_task(coro{ctx})", "ctxloop", "native", "all"),
    "Task": ("ctxloop.Task(coro{ctx})", "plain", "native", "all"),
    "factory": ("factory=ctxloop.task_factory: loop.create_task(coro{ctx})", "plain", "native", "all"),
    "chain": ("factory=chain_task_factory(inner): loop.create_task(coro{ctx})", "plain", "native-inner", "all"),
    "install": ("install(); asyncio.create_task(coro{ctx})", "installed", "native", "backport"),
    "install@plain": ("install(); asyncio.create_task(coro{ctx}) on a plain loop", "plain", "native", "backport"),
    "taskgroup": ("ctxloop loop, TaskGroup.create_task(coro{ctx})", "ctxloop", "native-tg", "native"),
}
NATIVE_ENTRIES = ("native", "native-copy", "native-inner", "native-Task", "native-tg")
IMPLEMENTATIONS = ("compiled", "pure")
LOOPS = ("asyncio", "uvloop", "rloop")


def native_context(version: Version) -> bool:
    """Whether asyncio's create_task takes context= (3.11+)."""
    return version >= (3, 11)


def entries_for(version: Version) -> List[str]:
    """The entry points that exist on this Python."""
    backport = not native_context(version)
    return [name for name, (_, _, _, where) in ENTRIES.items() if where == "all" or (where == "backport") == backport]


def arm_key(entry: str, with_context: bool) -> str:
    return f"{entry}/{'ctx' if with_context else 'plain'}"


def arms_for(version: Version, entries: Optional[Sequence[str]] = None) -> List[str]:
    """Every arm (entry/ctx, entry/plain) that means something on this Python."""
    chosen = set(entries_for(version))
    if entries:  # the entries asked for, and the baselines they are compared with
        chosen = {e for e in chosen if e in entries or e == "native" or any(ENTRIES[x][2] == e for x in entries)}
    arms = []
    for entry in entries_for(version):
        if entry not in chosen:
            continue
        for with_context in (True, False):
            if entry == "native-copy" and not with_context:
                continue
            natively_without = entry in ("native", "native-inner", "native-Task") and not native_context(version)
            if with_context and natively_without:
                continue  # 3.8-3.10: asyncio has no context=; the ctx rows compare with /plain
            arms.append(arm_key(entry, with_context))
    return arms


def baseline_of(arm: str, version: Version) -> Optional[str]:
    """The native arm an arm is compared with (same loop kind, same kind of call)."""
    entry, variant = arm.split("/")
    base = ENTRIES[entry][2]
    if not base:
        return None
    if base in ("native", "native-inner") and not native_context(version):
        return arm_key(base, False)
    return f"{base}/{variant}"


# --------------------------------------------------------------------------
# The workload: runs inside valgrind, in its own process, with the tree to measure first on sys.path.


def workload(arm: str, loop_name: str, counts: Sequence[int], tree: str) -> None:  # noqa: PLR0912, PLR0915
    """Create and finish trivial tasks the way *arm* does: a warm-up, then *counts* tasks, each count a segment."""
    sys.path.insert(0, tree)
    import asyncio
    import contextvars

    import ctxloop

    if not os.path.abspath(ctxloop.__file__).startswith(os.path.join(os.path.abspath(tree), "")):
        raise SystemExit(f"ctxloop came from {ctxloop.__file__}, not from {tree}")
    entry, variant = arm.split("/")
    with_context = variant == "ctx"
    backport = sys.version_info < (3, 11)
    copy_context = contextvars.copy_context
    gather = asyncio.gather

    if loop_name == "uvloop":
        import uvloop

        make_plain: Any = uvloop.new_event_loop
    elif loop_name == "rloop":
        import rloop

        make_plain = rloop.new_event_loop
    else:
        make_plain = asyncio.SelectorEventLoop

    def make_ctxloop() -> Any:
        try:
            return ctxloop.new_event_loop(loop_name)
        except ValueError:  # a ctxloop that does not know this loop by name: enable() a plain one
            return ctxloop.new_event_loop(make_plain)

    def inner(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    where = ENTRIES[entry][1]
    if entry in ("factory", "chain") and with_context and backport:
        where = "ctxloop"  # a plain loop of 3.8-3.10 passes no context= to its factory
    if where == "installed":
        try:
            ctxloop.install(None if loop_name == "asyncio" else loop_name)
        except ValueError:  # a ctxloop that does not know this loop by name: its policy as the base
            ctxloop.install(sys.modules[loop_name].EventLoopPolicy())
        loop = asyncio.new_event_loop()
    elif where == "ctxloop":
        loop = make_ctxloop()
    else:
        loop = make_plain()
    if entry == "install@plain":
        ctxloop.install()
    if entry == "factory":
        loop.set_task_factory(ctxloop.task_factory)
    elif entry == "chain":
        loop.set_task_factory(ctxloop.chain_task_factory(inner))
    elif entry == "native-inner":
        loop.set_task_factory(inner)

    if entry in ("module", "module@plain"):
        spawn: Any = ctxloop.create_task
    elif entry.startswith("install"):
        spawn = asyncio.create_task  # the patched one
        if spawn is not ctxloop.create_task:
            raise SystemExit("install() did not patch asyncio.create_task")
    elif entry == "Task":
        spawn = ctxloop.Task
    elif entry == "native-Task":
        spawn = asyncio.Task
    else:
        spawn = loop.create_task

    async def trivial() -> None:
        pass

    # No lambda or helper between the loop and the call: each arm pays only its own call.
    if entry in ("taskgroup", "native-tg"):
        task_group = asyncio.TaskGroup  # type: ignore[attr-defined]

        async def create(count: int) -> None:
            for _ in range(count // BATCH):
                async with task_group() as group:
                    spawn_in_group = group.create_task
                    if with_context:
                        for _ in range(BATCH):
                            spawn_in_group(trivial(), context=copy_context())
                    else:
                        for _ in range(BATCH):
                            spawn_in_group(trivial())

    elif entry == "native-copy":

        async def create(count: int) -> None:
            for _ in range(count // BATCH):
                await gather(*[spawn(trivial()) for _ in range(BATCH) if copy_context() is not None])

    elif with_context:

        async def create(count: int) -> None:
            for _ in range(count // BATCH):
                await gather(*[spawn(trivial(), context=copy_context()) for _ in range(BATCH)])

    else:

        async def create(count: int) -> None:
            for _ in range(count // BATCH):
                await gather(*[spawn(trivial()) for _ in range(BATCH)])

    # callgrind dumps its counters at each call of libc's getppid() (--dump-before), so the
    # second dump holds exactly the N1 tasks and the third the N2 tasks: the start-up and
    # warm-up of one process cancel out, and are paid once.
    asyncio.set_event_loop(loop)
    loop.run_until_complete(create(min(WARMUP, counts[0])))
    for count in counts:
        os.getppid()
        loop.run_until_complete(create(count))
    os.getppid()
    asyncio.set_event_loop(None)
    loop.close()


# --------------------------------------------------------------------------
# The driver.


def run_arm(python: str, arm: str, loop_name: str, *, counts: Tuple[int, int], impl: str, tree: str, tmp: str) -> Any:
    """Per-task figures of *arm*: (Ir, self cost, calls) of segment N2 minus segment N1, over N2 - N1."""
    from benchmarks.profile_callgrind import environment, parse_callgrind, per_unit

    out = os.path.join(tmp, f"cg.{arm.replace('/', '-')}.{loop_name}.{impl}")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--dump-instr=no",
        "--dump-line=no",
        "--compress-pos=no",
        "--compress-strings=no",
        "--dump-before=getppid",
        f"--callgrind-out-file={out}",
        python,
        os.path.abspath(__file__),
        "--workload",
        arm,
        loop_name,
        ",".join(map(str, counts)),
        tree,
    ]
    proc = subprocess.run(command, cwd=tree, env=environment(impl), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    # Dump 1: start-up and warm-up; 2: the N1 tasks; 3: the N2 tasks; the last file: the shutdown.
    small, large = parse_callgrind(f"{out}.2"), parse_callgrind(f"{out}.3")
    for path in glob.glob(out + "*"):
        os.remove(path)
    return per_unit(small, large, counts[1] - counts[0])


def interpreter(python: str, tree: str) -> Dict[str, Any]:
    """What *python* is, which loops it has, and whether it would use the tree's accelerator."""
    code = (
        "import sys, json, platform, importlib.util as u\n"
        f"sys.path.insert(0, {tree!r})\n"
        "from ctxloop import _accel\n"
        "print(json.dumps({'label': platform.python_implementation() + ' ' + platform.python_version(),"
        " 'version': list(sys.version_info[:2]), 'compiled': _accel.speedups is not None,"
        " 'loops': ['asyncio'] + [m for m in ('uvloop', 'rloop') if u.find_spec(m)],"
        " 'versions': {m: __import__(m).__version__ for m in ('uvloop', 'rloop') if u.find_spec(m)}}))\n"
    )
    from benchmarks.profile_callgrind import environment

    out = subprocess.run(
        [python, "-c", code], cwd=tree, env=environment("compiled"), capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def _delta(value: float, base: float) -> str:
    return f"{value - base:+,.0f} ({(value / base - 1) * 100:+.1f} %)"


def cell_table(version: Version, per: Dict[str, Any], impls: Sequence[str]) -> List[str]:
    """One row per entry point: instructions per task with and without context=, against the baseline."""
    head = "| entry point | " + " | ".join(f"{impl}: with context= | {impl}: without" for impl in impls) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(impls)]
    for entry in entries_for(version):
        cells = []
        found = False
        for impl in impls:
            for with_context in (True, False):
                arm = arm_key(entry, with_context)
                key = arm if entry in NATIVE_ENTRIES else f"{arm}/{impl}"
                figure = per.get(key)
                if figure is None:
                    cells.append("-")
                    continue
                found = True
                base = baseline_of(arm, version)
                base_figure = per.get(base) if base else None
                text = fmt(figure["total"])
                if base_figure is not None:
                    text += " " + _delta(figure["total"], base_figure["total"])
                cells.append(text)
        if found:
            label = ENTRIES[entry][0].format(ctx="[, context=ctx]")
            lines.append(f"| {entry}: `{label}` | " + " | ".join(cells) + " |")
    return lines


def cheapest_table(version: Version, per: Dict[str, Any], impl: str) -> List[str]:
    """Each ctxloop entry point against the cheapest of them (entries with the same workload)."""
    lines = []
    for with_context in (True, False):
        same_work = [e for e in entries_for(version) if e not in NATIVE_ENTRIES and ENTRIES[e][2] == "native"]
        figures = {
            e: per[f"{arm_key(e, with_context)}/{impl}"]["total"]
            for e in same_work
            if f"{arm_key(e, with_context)}/{impl}" in per
        }
        if not figures:
            continue
        cheapest = min(figures, key=figures.__getitem__)
        over = ", ".join(f"{e} {figures[e] - figures[cheapest]:+,.0f}" for e in figures if e != cheapest)
        which = "with context=" if with_context else "without context="
        lines.append(f"* {impl}, {which}: cheapest `{cheapest}` {fmt(figures[cheapest])}; others: {over}")
    return lines


def issue_table(results: Dict[str, Any]) -> List[str]:
    """The summary of issue 19's shape: one row per Python x loop, compiled accelerator."""
    lines = [
        "| cell | native | `ctxloop.create_task(coro, context=ctx)` | ctxloop loop's "
        "`loop.create_task(coro, context=ctx)` | plain loop `create_task(coro)` → ctxloop loop's |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, loops in results.items():
        version = tuple(int(x) for x in label.split()[1].split(".")[:2])
        for loop_name, data in loops.items():
            per = data["instructions"]
            impl = "compiled" if any(k.endswith("/compiled") for k in per) else "pure"
            base = per.get(baseline_of("module/ctx", version) or "")  # type: ignore[arg-type]
            module = per.get(f"module/ctx/{impl}")
            loop = per.get(f"loop/ctx/{impl}")
            plain = per.get("native/plain")
            loop_plain = per.get(f"loop/plain/{impl}")
            if not (base and module and loop and plain and loop_plain):
                continue
            short = label.split()[1].rsplit(".", 1)[0]
            lines.append(
                f"| {short} {loop_name} ({impl}) | {fmt(base['total'])} | {fmt(module['total'])} "
                f"({(module['total'] / base['total'] - 1) * 100:+.1f} %) | {fmt(loop['total'])} "
                f"({(loop['total'] / base['total'] - 1) * 100:+.1f} %) | {fmt(plain['total'])} → "
                f"{fmt(loop_plain['total'])} ({(loop_plain['total'] / plain['total'] - 1) * 100:+.1f} %) |"
            )
    return lines


def tables(data: Dict[str, Any]) -> List[str]:
    """Every table, from the JSON this command writes."""
    lines = [
        f"Instructions per task, (Ir(N={data['n2']:,}) - Ir(N={data['n1']:,})) / {data['n2'] - data['n1']:,}; "
        "in parentheses: against the native baseline of the row (see `python -m benchmarks.instructions --help`).",
        "",
    ]
    lines += issue_table(data["results"])
    lines.append("")
    for label, loops in data["results"].items():
        version = tuple(int(x) for x in label.split()[1].split(".")[:2])
        for loop_name, figures in loops.items():
            per = figures["instructions"]
            impls = [i for i in IMPLEMENTATIONS if any(k.endswith("/" + i) for k in per)]
            lines += [f"#### {label}, {loop_name}", ""]
            lines += cell_table(version, per, impls)  # type: ignore[arg-type]
            lines.append("")
            for impl in impls:
                lines += cheapest_table(version, per, impl)  # type: ignore[arg-type]
            lines.append("")
    return lines


def measure_cell(
    python: str, info: Dict[str, Any], loop_name: str, args: argparse.Namespace, *, tree: str, tmp: str
) -> Dict[str, Any]:
    """Every arm of one Python and loop: {arm or arm/impl: per-task figures}."""
    version: Version = tuple(info["version"])  # type: ignore[assignment]
    impls = [i for i in (args.impl or IMPLEMENTATIONS) if i == "pure" or info["compiled"]]
    jobs = []
    for arm in arms_for(version, args.entries):
        native = arm.split("/")[0] in NATIVE_ENTRIES
        for impl in impls[:1] if native else impls:
            if impl == "pure" and args.pure_entries is not None and arm.split("/")[0] not in args.pure_entries:
                continue
            jobs.append((arm if native else f"{arm}/{impl}", arm, impl))

    def measure(job: Tuple[str, str, str]) -> Tuple[str, Any]:
        key, arm, impl = job
        print(f"{info['label']} {loop_name} {key} ...", file=sys.stderr, flush=True)
        try:
            figure = run_arm(python, arm, loop_name, counts=(args.n1, args.n2), impl=impl, tree=tree, tmp=tmp)
        except RuntimeError as error:  # an arm this tree or loop cannot run: said, not fatal
            print(f"  skipped {key}: {error}", file=sys.stderr, flush=True)
            return key, None
        return key, figure if args.detail else {"total": figure["total"]}

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return {key: figure for key, figure in pool.map(measure, jobs) if figure is not None}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="interpreter(s) to measure (default: this one)")
    parser.add_argument("--loops", nargs="*", choices=LOOPS, help="loops (default: every one installed)")
    parser.add_argument("--entries", nargs="*", choices=list(ENTRIES), help="entry points (default: all)")
    parser.add_argument("--impl", nargs="*", choices=IMPLEMENTATIONS, help="ctxloop implementations (default: both)")
    parser.add_argument(
        "--pure-entries",
        nargs="*",
        choices=list(ENTRIES),
        help="entry points measured in pure Python too (default: all)",
    )
    parser.add_argument("--n1", type=int, default=N1, help="tasks in the small run")
    parser.add_argument("--n2", type=int, default=N2, help="tasks in the large run")
    parser.add_argument("--quick", action="store_true", help=f"N1={QUICK_N1}, N2={QUICK_N2}: checks that it runs")
    parser.add_argument("--tree", default=ROOT, help="the source tree whose ctxloop is measured (default: this one)")
    parser.add_argument("--detail", action="store_true", help="keep per-function self cost and calls in the JSON")
    parser.add_argument("--jobs", type=int, default=1, help="valgrind processes at once (default 1)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--workload", nargs=4, metavar=("ARM", "LOOP", "N1,N2", "TREE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        arm, loop_name, counts, tree = args.workload
        workload(arm, loop_name, [int(c) for c in counts.split(",")], tree)
        return 0
    if args.quick:
        args.n1, args.n2 = QUICK_N1, QUICK_N2
    if args.n1 % BATCH or args.n2 % BATCH or args.n2 <= args.n1:
        parser.error(f"N1 < N2, both multiples of {BATCH}")
    sys.path.insert(0, ROOT)  # benchmarks.profile_callgrind, whichever directory this runs from

    tree = os.path.abspath(args.tree)
    results: Dict[str, Any] = {}
    data = {"n1": args.n1, "n2": args.n2, "tree": tree, "results": results}
    with tempfile.TemporaryDirectory(prefix="ctxloop-instructions-") as tmp:
        for python in args.python or [sys.executable]:
            info = interpreter(python, tree)
            results[info["label"]] = {}
            for loop_name in info["loops"]:
                if args.loops and loop_name not in args.loops:
                    continue
                per = measure_cell(python, info, loop_name, args, tree=tree, tmp=tmp)
                results[info["label"]][loop_name] = {
                    "instructions": per,
                    "loop_version": info["versions"].get(loop_name, ""),
                }
                if args.json:  # after each cell: a long run interrupted keeps what it measured
                    with open(args.json, "w") as f:
                        json.dump(data, f, indent=1, sort_keys=True)
    print("\n".join(tables(data)))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script (the workload): the driver's imports need the root
        sys.path.insert(0, ROOT)
    sys.exit(main())
