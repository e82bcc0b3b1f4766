"""``python -m ctxloop``: check ctxloop's contract on this interpreter, for every installed loop.

The checks are small functions reproducing one behaviour of the contract
each (N1-N6 from the notebook and S1-S7 from the semantics in
``_task_checks.py``, C1-C4 for connections in ``_connection_checks.py``) on a
fresh ctxloop loop, raising ``CheckFailed`` when what they see differs from
CPython (3.12 for tasks, 3.15 for connections). Every check runs in its own
worker thread, on its own loop, under a deadline: a check that does not
finish in time is a failure ("timeout"), never a hang.
After the checks, a quick interleaved run measures what a task created with
``context=`` on a ctxloop loop costs against a native task on the plain loop,
and sets it beside the target for this Python. The output explains itself: a
legend gives each check id's rule (as docs/rules.md defines it), and on a
failure it says where to read and how to report it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import importlib
import importlib.util
import json
import os
import platform
import sys
import threading
import time
from typing import Any, Callable, Coroutine, Dict, List, Optional, Sequence, Tuple, TypeVar

from ._accel import gil_status, implementation
from ._connection_checks import check_c1, check_c2, check_c3, check_c4
from ._entered import entered_test
from ._loop import LOOP_NAMES, resolve_base
from ._task_checks import (
    CheckFailed,
    LoopFactory,
    check_n1,
    check_n2,
    check_n3,
    check_n4,
    check_n5,
    check_n5b,
    check_n6,
    check_s1,
    check_s2,
    check_s3,
    check_s4,
    check_s5,
    check_s6,
    check_s7,
)

__all__ = [
    "CHECKS",
    "LEGEND",
    "CheckFailed",
    "KNOWN_LOOPS",
    "abandoned_threads",
    "cost_line",
    "cost_target",
    "within_target",
    "installed_loops",
    "main",
]

_T = TypeVar("_T")

# Loop packages the report knows, in column order, each built by its module's
# new_event_loop(); a column appears only when the package is installed.
KNOWN_LOOPS = ("asyncio", "uvloop", "winloop", "rloop")

CHECK_TIMEOUT = 2.0  # seconds per check; the whole report stays well under 5 s
COST_BUDGET = 0.25  # seconds of measuring per loop
_WARMUP_BATCHES = 40 if platform.python_implementation() == "PyPy" else 1
COST_TIMEOUT = 4.0

# Private test hooks, read from the environment so that tests can drive the
# command in a subprocess (tests/test_main.py); not part of the public API:
#   _CTXLOOP_REPORT_FAIL="N4,S2:hang"  forces check N4 to fail, and S2 to block
#                                      its thread forever (so it hits the deadline);
#   _CTXLOOP_REPORT_TIMEOUT="0.5"      the per-check deadline, in seconds.
_FAIL_HOOK = "_CTXLOOP_REPORT_FAIL"
_TIMEOUT_HOOK = "_CTXLOOP_REPORT_TIMEOUT"

# Worker threads given up on after their deadline (they are daemons): the
# command then leaves with os._exit, so a stuck loop cannot block shutdown.
_abandoned: List[threading.Thread] = []


def abandoned_threads() -> List[threading.Thread]:
    """The worker threads that missed their deadline and were left running."""
    return list(_abandoned)


_Check = Callable[[LoopFactory, float], None]

# id -> (what it checks, as printed, check)
CHECKS: Dict[str, Tuple[str, _Check]] = {
    "N1": ("copy_context() snapshot; Context() is empty", check_n1),
    "N2": ("gather: each request sees only its own id", check_n2),
    "N3": ("awaiting a coroutine shares the context", check_n3),
    "N4": ("nested create_task: levels 2,1,0,0,1,2", check_n4),
    "N5": ("nested wrapper coroutine: levels 2,1,0,0,0,0", check_n5),
    "N5b": ("create_task(context=copy_context()): 2,1,0,0,1,2", check_n5b),
    "N6": ("ctx.run(main) confines changes to ctx", check_n6),
    "S1": ("no context=: a copy taken at creation", check_s1),
    "S2": ("context=ctx runs in ctx itself (ctx[var])", check_s2),
    "S3": ("callbacks capture the context when scheduled", check_s3),
    "S4": ("task.get_context() is ctx", check_s4),
    "S5": ("a real asyncio.Task (coro, repr, stack, name, ...)", check_s5),
    "S6": ("bad input: TypeError naming the type, ...", check_s6),
    "S7": ("an entered ctx: shared if CPython runs it, else RuntimeError", check_s7),
    "C1": ("each accepted connection in its own copy", check_c1),
    "C2": ("a client connection in a copy of the caller's", check_c2),
    "C3": ("keep-alive resumed from a task: next starts clean", check_c3),
    "C4": ("callbacks in context= (Context() too) / caller's", check_c4),
}


# id -> the rule it checks, in one line (the rules are defined in docs/rules.md).
LEGEND: Dict[str, str] = {
    "N1": "a task and copy_context() see the creator's values; a fresh Context() only the defaults",
    "N2": "concurrent requests under gather each see only their own id, nested coroutines too",
    "N3": "a coroutine awaited directly shares its caller's context",
    "N4": "nested create_task: each task runs in a copy (levels 2,1,0,0,1,2)",
    "N5": "nested plain wrapper coroutines share one context (levels 2,1,0,0,0,0)",
    "N5b": "N4 written with create_task(coro, context=copy_context()), the 3.11 line, on every Python",
    "N6": "ctx.run(main) keeps main's changes in ctx (spam spam spam ham ham ham spam)",
    "S1": "a task without context= runs in a copy of its creator's context, taken at creation",
    "S2": "a task with context=ctx runs every step in ctx itself, not a copy: its writes are in ctx",
    "S3": "callbacks scheduled from a task capture the context current when they are scheduled",
    "S4": "task.get_context() returns the context the task runs in (is ctx when one was given)",
    "S5": "the task is a real asyncio.Task: current_task, get_coro, repr, stack, names, cancel",
    "S6": "bad input fails at creation: TypeError for a non-Context, RuntimeError for a closed loop",
    "S7": "a context entered right now: shared where CPython runs the task, else RuntimeError",
    "C1": "a server's connections each run every callback in a copy of the context it was created in",
    "C2": "a client connection runs every callback in a copy of the caller's context; nothing leaks back",
    "C3": "whoever pauses, resumes, writes or closes a connection, its callbacks stay in its context",
    "C4": "call_soon, call_later, call_at, call_soon_threadsafe: in context= if given, else the caller's",
}

# The cost of a task created with context= on a ctxloop loop against a native
# task: on 3.8-3.10 ctxloop does the work (a binding per task), on 3.11+ asyncio.
BACKPORT_COST_TARGET = 1.10
NATIVE_COST_TARGET = 1.02


def cost_target(version: Optional[Tuple[int, ...]] = None) -> Tuple[float, str]:
    """The cost ratio a ctxloop task with context= should stay within on *version* (default: this Python)."""
    if (sys.version_info[:2] if version is None else version) < (3, 11):
        return BACKPORT_COST_TARGET, "Python 3.8-3.10"
    return NATIVE_COST_TARGET, "Python 3.11+"


def within_target(cost: float, target: float) -> bool:
    """Whether *cost* meets *target*, compared at the two decimals printed."""
    return round(cost, 2) <= target


def cost_line(loop: str, cost: Optional[float], error: Optional[str], target: float) -> str:
    """One loop's cost figure with its verdict against *target*."""
    if cost is None:
        return f"  {loop:<8} not measured ({error})"
    verdict = "within target" if within_target(cost, target) else "above target"
    return f"  {loop:<8} {cost:.2f}x  {verdict} (<= {target:.2f}x)"


WHAT_TO_DO = [
    "What to do:",
    "  * Each check id is a rule; docs/rules.md in ctxloop's documentation defines it, and",
    '    docs/troubleshooting.md ("A check of python -m ctxloop fails") lists known causes.',
    "  * Run one loop at a time (--loop NAME): a failure on one loop points at that loop's package.",
    "  * To report it, save the report with: python -m ctxloop --json > ctxloop-report.json",
    "    and send that file with a bug report to ctxloop's maintainers, with the output of",
    "    python -m pip list and how this interpreter was installed.",
]


def installed_loops() -> List[str]:
    """The loops this interpreter can run: asyncio, then each known loop package installed."""
    return [name for name in KNOWN_LOOPS if name == "asyncio" or importlib.util.find_spec(name) is not None]


def _base_factory(name: str) -> LoopFactory:
    """A factory of plain (not ctxloop) loops of *name*."""
    if name == "asyncio":
        plain: LoopFactory = getattr(asyncio, "ProactorEventLoop" if sys.platform == "win32" else "SelectorEventLoop")
        return plain
    if name == "rloop":
        # rloop itself, closing the sockets rloop 0.5 leaves open after each run
        # (ResourceWarnings that are not what the report measures).
        from ._rloop import plain_rloop_class

        return plain_rloop_class()  # type: ignore[no-any-return]
    factory: LoopFactory = importlib.import_module(name).new_event_loop
    return factory


def _ctxloop_factory(name: str) -> LoopFactory:
    """A factory of the ctxloop loops of *name* a user gets."""
    return resolve_base(name if name in LOOP_NAMES else _base_factory(name))


def _bounded(work: Callable[[], _T], timeout: float) -> Tuple[bool, Any]:
    """Run *work* in a daemon thread; (True, result) or (False, error text, "timeout" included)."""
    box: List[Tuple[bool, Any]] = []

    def target() -> None:
        try:
            box.append((True, work()))
        except CheckFailed as error:
            box.append((False, str(error)))
        except (asyncio.TimeoutError, TimeoutError):
            box.append((False, "timeout"))
        except BaseException as error:
            box.append((False, f"{type(error).__name__}: {error}"))

    thread = threading.Thread(target=target, name="ctxloop-report", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _abandoned.append(thread)
        return False, "timeout"
    return box[0]


def _forced(spec: str) -> Dict[str, str]:
    """Parse the private failure hook: {"N4": "fail", "S2": "hang"}."""
    forced = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        check_id, _, how = item.partition(":")
        forced[check_id] = how or "fail"
    return forced


def _forced_check(how: str) -> _Check:
    def check(make_loop: LoopFactory, timeout: float) -> None:
        if how == "hang":
            threading.Event().wait()  # blocks its thread for good, like a stuck loop
        raise CheckFailed(f"forced to fail by {_FAIL_HOOK}")

    return check


def run_checks(loop: str, timeout: float, forced: Dict[str, str]) -> Dict[str, Optional[str]]:
    """Run every check on *loop*: {check id: None when it passes, else why it failed}."""
    results: Dict[str, Optional[str]] = {}
    try:
        make_loop = _ctxloop_factory(loop)
    except Exception as error:
        return dict.fromkeys(CHECKS, f"cannot build the loop: {type(error).__name__}: {error}")

    for check_id, (_, listed) in CHECKS.items():
        check = _forced_check(forced[check_id]) if check_id in forced else listed
        ok, detail = _bounded(lambda check=check: check(make_loop, timeout), timeout)  # type: ignore[misc]
        results[check_id] = None if ok else (detail or "failed")
    return results


def measure_cost(loop: str, budget: float = COST_BUDGET) -> float:
    """Time to create and finish a trivial task with context= on a ctxloop loop, over a native one.

    Batches alternate between a plain loop (``create_task(coro)``) and a
    ctxloop loop of the same kind (``create_task(coro, context=ctx)``) until
    *budget* seconds are spent; the ratio is of the fastest batch of each.
    """
    plain, ours = _base_factory(loop)(), _ctxloop_factory(loop)()
    batch = 300

    async def noop() -> None:
        pass

    async def native_batch() -> None:
        create = asyncio.get_running_loop().create_task
        for _ in range(batch):
            await create(noop())

    async def context_batch() -> None:
        create = asyncio.get_running_loop().create_task
        ctx = contextvars.copy_context()
        for _ in range(batch):
            await create(noop(), context=ctx)  # type: ignore[call-arg]

    def timed(target: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> float:
        start = time.perf_counter()
        target.run_until_complete(coro)
        return time.perf_counter() - start

    try:
        # Warm-up: first runs pay for imports and caches, and on PyPy for the
        # JIT, which otherwise times its own compilation, not the tasks.
        for _ in range(_WARMUP_BATCHES):
            timed(plain, native_batch())
            timed(ours, context_batch())
        native: List[float] = []
        context: List[float] = []
        deadline = time.perf_counter() + budget
        while len(native) < 5 or (time.perf_counter() < deadline and len(native) < 200):
            native.append(timed(plain, native_batch()))
            context.append(timed(ours, context_batch()))
        return min(context) / min(native)
    finally:
        plain.close()
        ours.close()


def _python() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def _parse_loops(parser: argparse.ArgumentParser, given: Optional[List[str]]) -> List[str]:
    if not given:
        return installed_loops()
    installed = installed_loops()
    chosen: List[str] = []
    for name in (part.strip() for item in given for part in item.split(",")):
        if not name:
            continue
        if name not in KNOWN_LOOPS:
            parser.error(f"unknown loop {name!r}: expected one of {', '.join(KNOWN_LOOPS)}")
        if name not in installed:
            parser.error(
                f"loop {name!r} needs the {name} package, which is not installed "
                f"for {sys.executable} (pip install {name})"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        parser.error("--loop: no loop named")
    return chosen


def _table(loops: Sequence[str], results: Dict[str, Dict[str, Optional[str]]]) -> List[str]:
    title_width = max(len(title) for title, _ in CHECKS.values())
    widths = [max(len(loop), 7) for loop in loops]
    header = "check  " + "behaviour".ljust(title_width) + "  " + "  ".join(n.ljust(w) for n, w in zip(loops, widths))
    lines = [header.rstrip()]
    for check_id, (title, _) in CHECKS.items():
        cells = ["PASS" if results[loop][check_id] is None else "FAIL" for loop in loops]
        row = f"{check_id:<5}  {title.ljust(title_width)}  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths))
        lines.append(row.rstrip())
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:  # noqa: PLR0915
    """Run the report; return the exit status (0: every check passes, 1: a failure)."""
    parser = argparse.ArgumentParser(
        prog="python -m ctxloop",
        description=(
            "Check ctxloop's contract (the notebook's N1-N6, the semantics S1-S7) on this "
            "interpreter for every installed event loop, and measure what a task created "
            "with context= costs against a native one, beside the target for this Python."
        ),
        epilog=(
            "Exit status: 0 when every check passes, 1 when one fails, 2 on a usage error. "
            "The rules each check id names are defined in docs/rules.md; when a check fails, "
            "docs/troubleshooting.md says what to do and how to report it."
        ),
    )
    parser.add_argument(
        "--loop",
        action="append",
        metavar="NAME",
        help=f"check only this loop (repeatable, or a comma list); known: {', '.join(KNOWN_LOOPS)}",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    loops = _parse_loops(parser, args.loop)

    from . import __version__

    timeout = float(os.environ.get(_TIMEOUT_HOOK) or CHECK_TIMEOUT)
    forced = _forced(os.environ.get(_FAIL_HOOK, ""))
    results = {loop: run_checks(loop, timeout, forced) for loop in loops}
    costs: Dict[str, Optional[float]] = {}
    cost_errors: Dict[str, str] = {}
    for loop in loops:
        ok, value = _bounded(lambda loop=loop: measure_cost(loop), COST_TIMEOUT)  # type: ignore[misc]
        costs[loop] = round(value, 3) if ok else None
        if not ok:
            cost_errors[loop] = value
    passed = all(detail is None for per_loop in results.values() for detail in per_loop.values())
    target, applies = cost_target()

    if args.json:
        report = {
            "ctxloop": __version__,
            "python": _python(),
            "platform": sys.platform,
            "implementation": implementation(),
            "gil": gil_status(),
            "ok": passed,
            "checks": [
                {"id": check_id, "title": title, "rule": LEGEND[check_id]} for check_id, (title, _) in CHECKS.items()
            ],
            "cost_target": {"ratio": target, "applies": applies},
            "loops": {
                loop: {
                    "ok": all(detail is None for detail in results[loop].values()),
                    "results": {
                        check_id: {"ok": detail is None, "detail": detail} for check_id, detail in results[loop].items()
                    },
                    "cost_ratio": costs[loop],
                    "cost_within_target": None if costs[loop] is None else within_target(costs[loop], target),  # type: ignore[arg-type]
                }
                for loop in loops
            },
        }
        print(json.dumps(report, indent=2))
        return 0 if passed else 1

    print(f"ctxloop {__version__} on {_python()} ({sys.platform}): N1-N6, S1-S7 and C1-C4 on {', '.join(loops)}")
    print(f"implementation: {implementation()}")
    print(f"GIL: {gil_status()}; contexts entered: {entered_test()}")
    print()
    for line in _table(loops, results):
        print(line)
    failures = [(loop, check_id, detail) for loop in loops for check_id, detail in results[loop].items() if detail]
    if failures:
        print()
        for loop, check_id, detail in failures:
            print(f"FAIL {check_id} on {loop}: {detail}")
    print()
    print("What the checks mean (the rules, as docs/rules.md defines them):")
    id_width = max(len(check_id) for check_id in LEGEND)
    for check_id in CHECKS:
        print(f"  {check_id:<{id_width}}  {LEGEND[check_id]}")
    print()
    print("Cost of a task created with context= on a ctxloop loop, against a native task on the plain loop")
    print("(create + finish a trivial task; fastest of interleaved batches: a quick measure, rerun to confirm).")
    backport, backport_applies = cost_target((3, 10))
    native, native_applies = cost_target((3, 11))
    here = " (this interpreter)"
    print(
        f"Targets: <= {backport:.2f}x on {backport_applies}{here if applies == backport_applies else ''}, "
        "where ctxloop backports context=;"
    )
    native_here = here if applies == native_applies else ""
    print(f"         <= {native:.2f}x on {native_applies}{native_here}, where asyncio runs it.")
    for loop in loops:
        print(cost_line(loop, costs[loop], cost_errors.get(loop), target))
    if any(cost is not None and not within_target(cost, target) for cost in costs.values()):
        print("Above target: docs/performance.md has careful figures, and says what is known to cost more and why.")
    if failures:
        print()
        for line in WHAT_TO_DO:
            print(line)
    print()
    checks = len(CHECKS) * len(loops)
    print(f"{checks - len(failures)}/{checks} checks pass" + ("" if passed else f"; {len(failures)} FAIL"))
    return 0 if passed else 1
