"""Instruction counts per task, native vs ctxloop, with valgrind's callgrind.

Run from the repository root (valgrind must be installed; nothing else is
needed)::

    python benchmarks/profile_callgrind.py                       # this interpreter
    python benchmarks/profile_callgrind.py --python .nox/tests-3-10/bin/python \\
        --python .nox/tests-3-12/bin/python --json /tmp/profile.json

Timings on a shared virtual machine move by a few percent; instruction counts
under callgrind repeat to a few parts per million, so they show where the
extra cost of a ctxloop task goes. Each arm (a way of creating tasks) runs
twice under ``valgrind --tool=callgrind``, with N1 and N2 tasks after the same
warm-up; everything that is not per task (start-up, imports, loop creation,
warm-up) is the same in both runs, so::

    instructions per task = (Ir(N2) - Ir(N1)) / (N2 - N1)

and the same difference of every C function's self cost and call count gives
the per-task breakdown. Python code shows up as the interpreter's C functions
(``_PyEval_EvalFrameDefault`` and friends), so the number of Python-level calls
per task comes from a separate run under ``sys.setprofile`` (``--pycalls``).

The arms mirror ``python -m benchmarks`` (measurement 1, create + finish N
trivial tasks gathered in batches of 500, and measurement 2, one task's
``sleep(0)`` steps). On 3.11+ the native arms pass ``context=copy_context()``
as the benchmark's do.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# arm name -> (loop it runs on, what it measures). A "ctxloop" loop is
# ctxloop.new_event_loop(name): the cached subclass of the base loop class.
ARMS = {
    "native": ("plain", "asyncio.create_task(coro[, context=copy_context() on 3.11+])"),
    "native-loop": ("plain", "plain loop.create_task(coro), no context"),
    "native-loop-ctx": ("plain", "plain loop.create_task(coro, context=copy_context()) (3.11+)"),
    "ctxloop": ("ctxloop", "ctxloop.create_task(coro, context=copy_context()) on a ctxloop loop"),
    "ctxloop-loop-ctx": ("ctxloop", "ctxloop loop.create_task(coro, context=copy_context())"),
    "ctxloop-loop": ("ctxloop", "ctxloop loop.create_task(coro), no context"),
    "uvloop-copy": ("copying", "uvloop loop with a task factory: create_task(coro, context=copy_context()) (a copy)"),
    "step-native": ("plain", "one task's await sleep(0) step, native task [context= on 3.11+]"),
    "step-ctxloop": ("ctxloop", "one task's await sleep(0) step, task made with context= on a ctxloop loop"),
    "step-native-plain": ("plain", "one task's await sleep(0) step, no context, plain loop"),
    "step-ctxloop-plain": ("ctxloop", "one task's await sleep(0) step, no context, ctxloop loop"),
}
# Arms whose figures depend on ctxloop's implementation (pure Python or compiled).
CTXLOOP_ARMS = {"ctxloop", "ctxloop-loop-ctx", "ctxloop-loop", "step-ctxloop", "step-ctxloop-plain"}
IMPLEMENTATIONS = ("pure", "compiled")


def arms_for(version: Tuple[int, int], loop_name: str) -> List[str]:
    """The arms that mean something on this Python and loop."""
    arms = ["native", "native-loop", "ctxloop", "ctxloop-loop-ctx", "ctxloop-loop", "step-native", "step-ctxloop"]
    if version >= (3, 11):
        arms += ["native-loop-ctx", "step-native-plain", "step-ctxloop-plain"]
    elif loop_name == "uvloop":
        arms.append("uvloop-copy")
    return arms


def comparisons(version: Tuple[int, int]) -> List[Tuple[str, str, str, float]]:
    """(arm, baseline, label, target) of each comparison the targets are about."""
    if version < (3, 11):
        return [
            ("ctxloop", "native", "ctxloop.create_task(coro, context=ctx) vs asyncio.create_task(coro)", 1.10),
            (
                "ctxloop-loop-ctx",
                "native-loop",
                "loop.create_task(coro, context=ctx) vs base loop.create_task(coro)",
                1.10,
            ),
            ("ctxloop-loop", "native-loop", "loop.create_task(coro) vs base loop.create_task(coro)", 1.02),
            ("step-ctxloop", "step-native", "per step: task with context= vs native task", 1.03),
            ("ctxloop-loop-ctx", "uvloop-copy", "loop.create_task(coro, context=ctx) vs uvloop's copy", 1.00),
        ]
    return [
        ("ctxloop", "native", "ctxloop.create_task(coro, context=ctx) vs asyncio.create_task(coro, context=ctx)", 1.02),
        ("ctxloop-loop-ctx", "native-loop-ctx", "loop.create_task(coro, context=ctx) vs base loop's", 1.02),
        ("ctxloop-loop", "native-loop", "loop.create_task(coro) vs base loop.create_task(coro)", 1.02),
        ("step-ctxloop", "step-native", "per step: task with context= vs native (context=)", 1.02),
        ("step-ctxloop-plain", "step-native-plain", "per step: plain task, ctxloop loop vs plain loop", 1.02),
    ]


# Rough groups of C functions, by name, first match wins (for the summary line).
CATEGORIES = [
    (
        "cycle GC (collections, traversal)",
        r"gc_collect|^visit_|_traverse$|update_refs|subtract_refs|move_unreachable|move_legacy|deduce_unreachable"
        r"|gc_list|validate_list|finalize_garbage|check_garbage|delete_garbage|clear_freelists|handle_legacy"
        r"|collect_with_callback|_PyGC_Collect|gc_collect_main|gc_collect_generations|untrack_dicts|untrack_tuples",
    ),
    (
        "Python frames (bytecode, frame set-up)",
        r"EvalFrame|_PyEval_Vector|_PyEvalFramePush|_PyFrame|frame_dealloc|_PyFunction_Vectorcall"
        r"|function_code_fastcall|_PyEval_MakeFrame|_PyEval_EvalCode|clear_thread_frame|_PyThreadState_PushFrame"
        r"|_PyThreadState_PopFrame|_PyEvalFrameClearAndPop|initialize_locals|frame_alloc|_PyFrame_New",
    ),
    ("contexts", r"context|Context|contextvar|hamt"),
    (
        "exceptions (StopIteration)",
        r"Err|Exception|StopIteration|exc_|_PyGen_SetStopIterationValue|_PyGen_FetchStopIterationValue",
    ),
    (
        "tasks, futures, generators",
        r"^task_|^future_|^TaskStep|^FutureObj|^FutureIter|^gen_|Gen|coro|enter_task|leave_task|register_task|unregister_task",
    ),
    (
        "allocation and deallocation",
        r"Malloc|Free|alloc|dealloc|_New\b|_New_|GC_New|GC_Del|pymalloc|_Py_Dealloc|PyMem_|GC_Track|GC_UnTrack"
        r"|ClearWeakRefs|clear_slots|tp_free|_PyObject_Init",
    ),
    (
        "calls (vectorcall, tp_call, bound methods)",
        r"vectorcall|Vectorcall|MakeTpCall|_PyObject_Call|PyObject_Call|^method_|^meth_|cfunction|CheckFunctionResult"
        r"|slot_tp_|wrapperdescr|wrap_init|PyCMethod_New|_PyStack|PyMethod_New|_PyArg_|vgetargs|_PyTuple_FromArray"
        r"|tupledealloc|tuple_",
    ),
    (
        "attribute and type lookups, dicts",
        r"GetAttr|SetAttr|_PyType_Lookup|PyType_IsSubtype|Member|lookdict|dict|Dict|getattro|setattro|_PyObject_LookupAttr"
        r"|_PyUnicode_Equal|unicode_eq|PyObject_IsInstance|object_isinstance|recursive_isinstance|PyObject_RichCompare",
    ),
]
_CATEGORIES = [(name, re.compile(pattern)) for name, pattern in CATEGORIES]


def category(function: str) -> str:
    for name, pattern in _CATEGORIES:
        if pattern.search(function):
            return name
    return "other"


BATCH = 500
WARMUP = 1000


# --------------------------------------------------------------------------
# The workload (runs inside valgrind, or under sys.setprofile for --pycalls).


def workload(arm: str, loop_name: str, n: int, pycalls: bool) -> None:  # noqa: PLR0915 - one flat script
    """Create + finish *n* tasks (or *n* steps) the way *arm* does, after a warm-up."""
    sys.path.insert(0, ROOT)
    import asyncio
    import contextvars

    import ctxloop

    native_context = sys.version_info >= (3, 11)
    copy_context = contextvars.copy_context
    gather = asyncio.gather
    sleep = asyncio.sleep

    if loop_name == "uvloop":
        import uvloop

        make = uvloop.new_event_loop
    else:
        make = asyncio.SelectorEventLoop
    where = ARMS[arm][0]
    if where == "ctxloop":
        loop = ctxloop.new_event_loop(loop_name)
    else:
        loop = make()
        if where == "copying":
            loop.set_task_factory(lambda loop, coro: asyncio.Task(coro, loop=loop))

    async def trivial() -> None:
        pass

    async def stepper(steps: int) -> None:
        for _ in range(steps):
            await sleep(0)

    # arm -> (the callable making a task, whether it is passed context=copy_context())
    spawners = {
        "native": (asyncio.create_task, native_context),
        "native-loop": (loop.create_task, False),
        "native-loop-ctx": (loop.create_task, True),
        "ctxloop": (ctxloop.create_task, True),
        "ctxloop-loop-ctx": (loop.create_task, True),
        "ctxloop-loop": (loop.create_task, False),
        "uvloop-copy": (loop.create_task, True),
        "step-native": (loop.create_task, native_context),
        "step-ctxloop": (loop.create_task, True),
        "step-native-plain": (loop.create_task, False),
        "step-ctxloop-plain": (loop.create_task, False),
    }
    spawn, with_context = spawners[arm]

    # No lambda between the loop and the call: each arm pays only its own call.
    async def create(count: int) -> None:
        if with_context:
            for _ in range(count // BATCH):
                await gather(*[spawn(trivial(), context=copy_context()) for _ in range(BATCH)])
        else:
            for _ in range(count // BATCH):
                await gather(*[spawn(trivial()) for _ in range(BATCH)])

    async def steps(count: int) -> None:
        if with_context:
            await spawn(stepper(count), context=copy_context())
        else:
            await spawn(stepper(count))

    run = steps if arm.startswith("step-") else create
    loop.run_until_complete(run(WARMUP))
    if not pycalls:
        loop.run_until_complete(run(n))
        loop.close()
        return
    counts: Dict[str, int] = collections.Counter()

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            counts[f"py {code.co_name} ({os.path.basename(code.co_filename)})"] += 1
        elif event == "c_call":
            counts[f"c {getattr(arg, '__qualname__', arg)}"] += 1

    sys.setprofile(profiler)
    loop.run_until_complete(run(n))
    sys.setprofile(None)
    loop.close()
    json.dump(dict(counts), sys.stdout)


# --------------------------------------------------------------------------
# Reading callgrind's output: self cost and call count per function name.

_NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")
_LEVEL = re.compile(r"'\d+$")


def parse_callgrind(path: str) -> Tuple[int, Dict[str, int], Dict[str, int]]:
    """Return (total Ir, self Ir per function, calls per function) of one callgrind.out file."""
    names: Dict[str, str] = {}

    def name_of(spec: str) -> str:
        match = _NAME.match(spec.strip())
        if not match:
            return spec.strip()
        ident, name = match.groups()
        if name is not None:
            names[ident] = name
        return names[ident]

    def merged(name: str) -> str:
        # callgrind names recursion levels f'2, f'3, ...: one function here.
        return _LEVEL.sub("", name)

    self_cost: Dict[str, int] = collections.Counter()
    calls: Dict[str, int] = collections.Counter()
    total = 0
    fn = ""
    pending_call = False
    callee = ""
    with open(path) as f:
        for line in f:
            if not line or line[0] == "\n":
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                cost = int(line.split()[-1]) if len(line.split()) > 1 else 0
                if pending_call:
                    pending_call = False  # the inclusive cost of the call: not self cost
                else:
                    self_cost[fn] += cost
                    total += cost
                continue
            if line.startswith("fn="):
                fn = merged(name_of(line[3:]))
            elif line.startswith("cfn="):
                callee = merged(name_of(line[4:]))
            elif line.startswith("calls="):
                calls[callee] += int(line[6:].split()[0])
                pending_call = True
            elif line.startswith(("cfi=", "cfl=")) or line.startswith(("fl=", "fi=", "fe=")):
                # file names share the compression table of functions only by
                # syntax; keep them apart so an id never maps to a file.
                pass
    return total, self_cost, calls


def environment(impl: str) -> Dict[str, str]:
    """The environment of a workload run with ctxloop's *impl* ("pure" or "compiled")."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONMALLOC="pymalloc")
    env.pop("CTXLOOP_NO_SPEEDUPS", None)
    if impl == "pure":
        env["CTXLOOP_NO_SPEEDUPS"] = "1"
    return env


def run_valgrind(
    python: str, arm: str, loop_name: str, n: int, tmp: str, *, impl: str
) -> Tuple[int, Dict[str, int], Dict[str, int]]:
    out = os.path.join(tmp, f"cg.{arm}.{loop_name}.{n}.{impl}")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-instr=no",
        "--dump-line=no",
        "--compress-pos=no",
        "--compress-strings=no",
        f"--callgrind-out-file={out}",
        python,
        os.path.abspath(__file__),
        "--workload",
        arm,
        loop_name,
        str(n),
    ]
    subprocess.run(
        cmd, check=True, cwd=ROOT, env=environment(impl), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return parse_callgrind(out)


def per_unit(
    small: Tuple[int, Dict[str, int], Dict[str, int]], large: Tuple[int, Dict[str, int], Dict[str, int]], dn: int
) -> Dict[str, Any]:
    total = (large[0] - small[0]) / dn
    self_cost = {k: (large[1].get(k, 0) - small[1].get(k, 0)) / dn for k in set(large[1]) | set(small[1])}
    calls = {k: (large[2].get(k, 0) - small[2].get(k, 0)) / dn for k in set(large[2]) | set(small[2])}
    return {
        "total": total,
        "self": {k: v for k, v in self_cost.items() if abs(v) >= 0.5},
        "calls": {k: v for k, v in calls.items() if abs(v) >= 0.01},
    }


def pycalls(python: str, arm: str, loop_name: str, n: int, impl: str) -> Dict[str, float]:
    cmd = [python, os.path.abspath(__file__), "--workload", arm, loop_name, str(n), "--pycalls"]
    proc = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True, env=environment(impl))
    return {k: v / n for k, v in json.loads(proc.stdout).items()}


def interpreter_info(python: str) -> Tuple[str, List[str], bool]:
    code = (
        "import sys, platform, importlib.util as u; "
        "print(platform.python_implementation() + ' ' + platform.python_version()); "
        "print(' '.join(['asyncio'] + (['uvloop'] if u.find_spec('uvloop') else []))); "
        "print(u.find_spec('ctxloop._speedups') is not None)"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split("\n")
    return out[0], out[1].split(), out[2] == "True"


# --------------------------------------------------------------------------
# Report.


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def report_comparison(
    label: str,
    *,
    arm: Dict[str, Any],
    base: Dict[str, Any],
    py_arm: Dict[str, float],
    py_base: Dict[str, float],
    top: int,
) -> List[str]:
    lines = [
        f"**{label}**: {fmt(arm['total'])} vs {fmt(base['total'])} instructions "
        f"(+{fmt(arm['total'] - base['total'])}, ratio {arm['total'] / base['total']:.3f})",
        "",
        "| C function | self Ir Δ/unit | calls ctxloop | calls native |",
        "|---|---:|---:|---:|",
    ]
    keys = set(arm["self"]) | set(base["self"])
    deltas = sorted(((arm["self"].get(k, 0) - base["self"].get(k, 0), k) for k in keys), key=lambda d: -abs(d[0]))
    shown = 0.0
    for delta, key in deltas[:top]:
        shown += delta
        lines.append(f"| `{key}` | {delta:+,.0f} | {arm['calls'].get(key, 0):.2f} | {base['calls'].get(key, 0):.2f} |")
    rest = arm["total"] - base["total"] - shown
    lines.append(f"| (all other functions) | {rest:+,.0f} | | |")
    lines.append("")
    groups: Dict[str, float] = collections.Counter()
    for delta, key in deltas:
        groups[category(key)] += delta
    lines += ["| group of C functions (by name) | Ir Δ/unit |", "|---|---:|"]
    lines += [f"| {name} | {value:+,.0f} |" for name, value in sorted(groups.items(), key=lambda g: -abs(g[1]))]
    lines.append("")
    if py_arm or py_base:
        lines += ["| Python-level call (sys.setprofile) | ctxloop | native |", "|---|---:|---:|"]
        keys = set(py_arm) | set(py_base)
        diff = sorted(keys, key=lambda k: -abs(py_arm.get(k, 0) - py_base.get(k, 0)))
        for key in diff:
            a, b = py_arm.get(key, 0), py_base.get(key, 0)
            if abs(a - b) >= 0.01:
                lines.append(f"| `{key}` | {a:.2f} | {b:.2f} |")
        py_a = sum(v for k, v in py_arm.items() if k.startswith("py "))
        py_b = sum(v for k, v in py_base.items() if k.startswith("py "))
        c_a = sum(v for k, v in py_arm.items() if k.startswith("c "))
        c_b = sum(v for k, v in py_base.items() if k.startswith("c "))
        lines.append(
            f"| all Python frames / C calls seen by the profiler | {py_a:.2f} / {c_a:.2f} | {py_b:.2f} / {c_b:.2f} |"
        )
        lines.append("")
    return lines


def summary_table(version: Tuple[int, int], loop_name: str, per: Dict[str, Any], impls: List[str]) -> List[str]:
    """One row per comparison: native, each implementation, their ratios, the target."""
    head = "| comparison | native Ir | " + " | ".join(f"{impl} Ir | ratio" for impl in impls) + " | target |"
    lines = [head, "|---|---:|" + "---:|---:|" * len(impls) + "---|"]
    for arm, base, label, target in comparisons(version):
        if base not in per or not any(f"{arm}/{impl}" in per for impl in impls):
            continue
        cells = [label, fmt(per[base]["total"])]
        for impl in impls:
            figure = per.get(f"{arm}/{impl}")
            if figure is None:
                cells += ["", ""]
                continue
            ratio = figure["total"] / per[base]["total"]
            cells += [fmt(figure["total"]), f"{ratio:.3f} " + ("✓" if ratio <= target else "✗")]
        cells.append(f"≤ {target:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="interpreter(s) to profile (default: this one)")
    parser.add_argument("--loops", nargs="*", help="loops to profile (default: every installed one)")
    parser.add_argument("--arms", nargs="*", help="arms to run (default: every arm that applies)")
    parser.add_argument(
        "--impl", nargs="*", choices=IMPLEMENTATIONS, help="ctxloop implementations (default: both where built)"
    )
    parser.add_argument("--n1", type=int, default=1000, help="tasks (steps) in the small run")
    parser.add_argument("--n2", type=int, default=3000, help="tasks (steps) in the large run")
    parser.add_argument("--detail", action="store_true", help="per-function breakdown of each comparison")
    parser.add_argument("--top", type=int, default=16, help="functions listed per comparison (--detail)")
    parser.add_argument("--json", help="write the per-task figures here")
    parser.add_argument("--workload", nargs=3, metavar=("ARM", "LOOP", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--pycalls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        arm, loop_name, n = args.workload
        workload(arm, loop_name, int(n), args.pycalls)
        return 0

    pythons = args.python or [sys.executable]
    results: Dict[str, Any] = {}
    lines: List[str] = []
    with tempfile.TemporaryDirectory(prefix="ctxloop-callgrind-") as tmp:
        for python in pythons:
            label, loops, compiled = interpreter_info(python)
            version = tuple(int(x) for x in label.split()[1].split(".")[:2])
            impls = [i for i in (args.impl or IMPLEMENTATIONS) if i == "pure" or compiled]
            loops = [name for name in loops if not args.loops or name in args.loops]
            results[label] = {}
            for loop_name in loops:
                per: Dict[str, Any] = {}
                py: Dict[str, Dict[str, float]] = {}
                arms = [a for a in arms_for(version, loop_name) if not args.arms or a in args.arms]  # type: ignore[arg-type]
                for arm in arms:
                    for impl in impls if arm in CTXLOOP_ARMS else impls[-1:]:
                        key = f"{arm}/{impl}" if arm in CTXLOOP_ARMS else arm
                        print(f"{label} {loop_name} {key} ...", file=sys.stderr, flush=True)
                        small = run_valgrind(python, arm, loop_name, args.n1, tmp, impl=impl)
                        large = run_valgrind(python, arm, loop_name, args.n2, tmp, impl=impl)
                        per[key] = per_unit(small, large, args.n2 - args.n1)
                        if args.detail:
                            py[key] = pycalls(python, arm, loop_name, args.n1, impl)
                results[label][loop_name] = {"instructions": per, "pycalls": py}
                lines += [f"#### {label}, {loop_name}: instructions per task (per step for steps)", ""]
                lines += summary_table(version, loop_name, per, impls)  # type: ignore[arg-type]
                lines.append("")
                if args.detail:
                    for a, b, title, _ in comparisons(version):  # type: ignore[arg-type]
                        for impl in impls:
                            key = f"{a}/{impl}"
                            if key in per and b in per:
                                lines += report_comparison(
                                    f"{title} ({impl})",
                                    arm=per[key],
                                    base=per[b],
                                    py_arm=py[key],
                                    py_base=py[b],
                                    top=args.top,
                                )
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n1": args.n1, "n2": args.n2, "results": results}, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
