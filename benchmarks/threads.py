"""Threads with loops of their own: ctxloop's throughput without the GIL, against the same interpreter with it.

Run from the repository root on a free-threaded CPython (python3.13t)::

    python -m benchmarks threads                  # 8 threads, each its own ctxloop loop
    python -m benchmarks threads --threads 16 --tasks 20000

Each of THREADS threads runs its own ctxloop loop (``ctxloop.run`` with
``ctxloop.loop_factory()``) and creates TASKS tasks with ``context=`` a copy
of its context, in gathered batches, each task taking two steps; another
thread's context is read from each loop with ``call_soon_threadsafe``. The
same work runs in two child processes of this interpreter, one with
``PYTHON_GIL=0`` and one with ``PYTHON_GIL=1``, several times, interleaved;
it prints the tasks per second of each and their ratio (the median of the
per-repetition ratios). With the GIL, the threads take turns; without it,
they run at once on as many cores as there are. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The work of one child process: prints {"tasks": n, "seconds": s, "gil": bool}.
CHILD = r"""
import asyncio, contextvars, json, sys, threading, time
sys.path.insert(0, {root!r})
import ctxloop

var = contextvars.ContextVar("var", default=None)
THREADS, TASKS, BATCH = {threads}, {tasks}, 500


async def job(i):
    var.set(i)
    await asyncio.sleep(0)
    assert var.get() == i


async def worker(start):
    loop = asyncio.get_running_loop()
    start.wait()
    for first in range(0, TASKS, BATCH):
        tasks = [
            loop.create_task(job(i), context=contextvars.copy_context()) for i in range(first, first + BATCH)
        ]
        await asyncio.gather(*tasks)
    seen = loop.create_future()
    loop.call_soon_threadsafe(lambda: seen.set_result(var.get()))
    await seen


def body(start):
    ctxloop.run(worker(start), loop_factory=ctxloop.loop_factory())


start = threading.Barrier(THREADS + 1)
threads = [threading.Thread(target=body, args=(start,)) for _ in range(THREADS)]
for thread in threads:
    thread.start()
began = time.perf_counter()
start.wait()
for thread in threads:
    thread.join()
elapsed = time.perf_counter() - began
print(json.dumps({{"tasks": THREADS * TASKS, "seconds": elapsed, "gil": sys._is_gil_enabled()}}))
"""


def _child(gil: str, threads: int, tasks: int) -> Dict[str, float]:
    code = CHILD.format(root=ROOT, threads=threads, tasks=tasks)
    env = {**os.environ, "PYTHON_GIL": gil}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main(argv: "List[str] | None" = None) -> int:
    """Measure and print; 2 on a Python that is not free-threaded."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks threads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per thread (default 10000)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("benchmarks threads: needs a free-threaded CPython (python3.13t)", file=sys.stderr)
        return 2
    rates: Dict[str, List[float]] = {"0": [], "1": []}
    ratios = []
    for _ in range(args.reps):
        per_rep = {}
        for gil in ("0", "1"):
            result = _child(gil, args.threads, args.tasks)
            if result["gil"] != (gil == "1"):
                raise SystemExit(f"PYTHON_GIL={gil} ran with the GIL {'on' if result['gil'] else 'off'}")
            per_rep[gil] = result["tasks"] / result["seconds"]
            rates[gil].append(per_rep[gil])
        ratios.append(per_rep["0"] / per_rep["1"])
    python = sys.version.split()[0]
    print(f"{args.threads} threads x {args.tasks} tasks (context=, two steps each), {os.cpu_count()} cores, {python}")
    for gil, label in (("0", "without the GIL"), ("1", "with the GIL (PYTHON_GIL=1)")):
        print(f"  {label:<30} {statistics.median(rates[gil]):>12,.0f} tasks/s")
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    print(f"  without / with the GIL: {statistics.median(ratios):.2f}x (median of {args.reps}; {spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
