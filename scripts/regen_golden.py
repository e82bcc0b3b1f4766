"""Record the golden traces of the task-program corpus on CPython 3.12, native asyncio.

    .nox/tests-3-12/bin/python scripts/regen_golden.py            # record (CPython 3.12 only)
    python scripts/regen_golden.py --check                         # any Python: compare with the file
    python scripts/regen_golden.py --probe 20000                   # CPython 3.12+: look for native hangs

Writes ``tests/golden/programs.jsonl``: one line per program, ``{"id", "program",
"trace"}``. The corpus is the hand-written programs of ``tests/programs.py``
followed by ``SEEDS`` generated ones (``generate(random_chooser(seed))``).
Each trace is recorded with plain asyncio, no ctxloop (mode ``native``), and
checked against the independent pure-Python-Task reference (mode ``pytask``)
before it is written. ``tests/test_differential.py`` replays every program
under ctxloop on every Python and loop and requires the same trace.

``--check`` runs every program in the reference modes of this Python
(``native`` on CPython 3.12+, ``pytask`` everywhere) on asyncio's loop and on
uvloop when it is installed, and compares with the file. Recorded on CPython
3.12.1: 280 programs, 5,209 trace entries; ``--check`` found the same traces
natively and with ``pytask`` on CPython 3.12.1, 3.13.0, 3.14.10 and 3.15.2, and
with ``pytask`` on CPython 3.8.18, 3.10.13 and 3.11.7, on asyncio's loop and
uvloop, and on PyPy 3.9.16 (asyncio's loop).

``--probe N`` runs N more generated programs natively (and
``programs.nested_entered()``), each under a watchdog, and reports any program
that hangs, makes the loop report an error, or traces differently under
``pytask`` or under ctxloop. ``--probe 20000`` on CPython 3.12.1, 3.13.0,
3.14.10 and 3.15.2, on asyncio's loop and uvloop: no hang, no loop error, no
difference; 243 of the 20,003 programs give a task a context entered beneath
the current one during the step (``programs.nested_entered_sites``), and
CPython and ctxloop run them alike. So no program of the language needs a
reference that imitates ctxloop (see the docstring of ``tests/programs.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
from typing import Any, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import programs  # noqa: E402

SEEDS = range(250)
MAX_DEPTH = 3
MAX_OPS = 8
OUT = os.path.join(ROOT, "tests", "golden", "programs.jsonl")
NATIVE = sys.implementation.name == "cpython" and sys.version_info >= (3, 12)
LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


def corpus() -> List[Tuple[str, Dict[str, Any]]]:
    """The programs of the golden file, in order."""
    cases = list(programs.handcrafted().items())
    cases += [(f"seed {seed}", programs.generate(programs.random_chooser(seed), MAX_DEPTH, MAX_OPS)) for seed in SEEDS]
    return cases


def record() -> int:
    """Regenerate the golden file; refuse to run anywhere but CPython 3.12."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 12):
        print(f"regen_golden: needs CPython 3.12 (the reference), this is {sys.version}", file=sys.stderr)
        return 2
    lines = []
    for program_id, program in corpus():
        trace = programs.run_program(program, "native", "asyncio")
        check = programs.run_program(program, "pytask", "asyncio")
        if check != trace:
            print(f"regen_golden: {program_id}: the two references disagree", file=sys.stderr)
            return 1
        lines.append(json.dumps({"id": program_id, "program": program, "trace": trace}, separators=(",", ":")))
    with open(OUT, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    entries = sum(len(json.loads(line)["trace"]) for line in lines)
    print(f"regen_golden: {len(lines)} programs, {entries} trace entries, Python {sys.version.split()[0]} -> {OUT}")
    return 0


def check() -> int:
    """Compare the file with the reference modes of this Python, on every installed loop."""
    with open(OUT, encoding="utf-8") as golden:
        cases = [json.loads(line) for line in golden if line.strip()]
    modes = ["native", "pytask"] if NATIVE else ["pytask"]
    differ = 0
    for loop_name in LOOPS:
        for mode in modes:
            bad = [
                case["id"] for case in cases if programs.run_program(case["program"], mode, loop_name) != case["trace"]
            ]
            differ += len(bad)
            print(f"regen_golden --check: {mode} on {loop_name}: {len(cases) - len(bad)}/{len(cases)} traces equal")
            for program_id in bad:
                print(f"    differs: {program_id}")
    print(f"regen_golden --check: Python {sys.implementation.name} {sys.version.split()[0]}: {differ} differences")
    return 1 if differ else 0


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _run_watched(program: Dict[str, Any], mode: str, loop_name: str) -> Tuple[str, Any]:
    """Run *program* with a watchdog; ("ok", trace), ("hang", None) or ("error", what the loop reported)."""
    reported: List[str] = []
    make_loop = programs.make_loop

    def watched_loop(mode: str, loop_name: str) -> Any:
        loop = make_loop(mode, loop_name)
        loop.set_exception_handler(lambda loop, context: reported.append(str(context.get("message"))))
        return loop

    programs.make_loop = watched_loop
    unraisable: List[str] = []
    saved_hook = sys.unraisablehook
    sys.unraisablehook = lambda info: unraisable.append(repr(info.exc_value))
    signal.alarm(5)
    try:
        trace = programs.run_program(program, mode, loop_name)
    except _Hang:
        return "hang", None
    except BaseException as exc:  # the loop broke out of run_until_complete
        return "error", repr(exc)
    finally:
        signal.alarm(0)
        programs.make_loop = make_loop
        sys.unraisablehook = saved_hook
    if reported or unraisable:
        return "error", reported + unraisable
    return "ok", trace


def probe(count: int) -> int:
    """Look for native hangs and loop errors in many generated programs, and compare pytask and ctxloop."""
    if not NATIVE:
        print(f"regen_golden --probe: needs CPython 3.12+, this is {sys.version}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _alarm)
    cases = list(programs.nested_entered().items())
    cases += [
        (f"probe {seed}", programs.generate(programs.random_chooser(10_000 + seed), 3, 8)) for seed in range(count)
    ]
    nested = sum(1 for _, program in cases if programs.nested_entered_sites(program))
    bad = 0
    for loop_name in LOOPS:
        for program_id, program in cases:
            status, result = _run_watched(program, "native", loop_name)
            for other in ("pytask", "ctxloop"):
                if status == "ok":
                    status, got = _run_watched(program, other, loop_name)
                    if status == "ok" and got != result:
                        status, result = f"differs under {other}", None
            if status != "ok":
                bad += 1
                print(f"    {loop_name}: {program_id}: {status} {result or ''}")
        print(f"regen_golden --probe: native on {loop_name}: {len(cases)} programs run")
    print(
        f"regen_golden --probe: Python {sys.version.split()[0]}: {len(cases)} programs per loop, "
        f"{nested} with a task given a context entered beneath the current one, {bad} hung, failed or differed"
    )
    return 1 if bad else 0


def main() -> int:
    """Record by default; ``--check`` or ``--probe N`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="compare the file with this Python's references")
    group.add_argument("--probe", type=int, metavar="N", help="run N unrestricted programs natively, watchdogged")
    args = parser.parse_args()
    if args.check:
        return check()
    if args.probe is not None:
        return probe(args.probe)
    return record()


if __name__ == "__main__":
    sys.exit(main())
