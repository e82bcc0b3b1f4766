"""Record the golden traces of the task-program corpus on CPython 3.12, native asyncio.

    .nox/tests-3-12/bin/python scripts/regen_golden.py

Writes ``tests/golden/programs.jsonl``: one line per program, ``{"id", "program",
"trace"}``. The corpus is the hand-written programs of ``tests/programs.py``
followed by ``SEEDS`` generated ones (``generate(random_chooser(seed))``).
Each trace is recorded with plain asyncio, no ctxloop (mode ``native``), and
checked against the independent pure-Python-Task reference (mode ``pytask``)
before it is written. ``tests/test_differential.py`` replays every program
under ctxloop on every Python and loop and requires the same trace.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import programs  # noqa: E402

SEEDS = range(240)
MAX_DEPTH = 3
MAX_OPS = 8
OUT = os.path.join(ROOT, "tests", "golden", "programs.jsonl")


def main() -> int:
    """Regenerate the golden file; refuse to run anywhere but CPython 3.12."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 12):
        print(f"regen_golden: needs CPython 3.12 (the reference), this is {sys.version}", file=sys.stderr)
        return 2
    corpus = list(programs.handcrafted().items())
    corpus += [(f"seed {seed}", programs.generate(programs.random_chooser(seed), MAX_DEPTH, MAX_OPS)) for seed in SEEDS]
    lines = []
    for program_id, program in corpus:
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


if __name__ == "__main__":
    sys.exit(main())
