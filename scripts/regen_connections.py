"""Record the reference traces of the connection corpus on CPython 3.15, native asyncio.

    python scripts/regen_connections.py            # record (CPython 3.15 with uvloop installed)
    python scripts/regen_connections.py --check    # any Python: this Python's plain loops against the file

Writes ``tests/golden/connections.json``: a header (interpreter, platform,
loops) and, per program of ``tests/connection_programs.py``, the trace
recorded with plain asyncio (``asyncio.SelectorEventLoop``, no ctxloop).
Every program is recorded twice and both runs must agree.

One rule goes beyond CPython 3.15: ctxloop keeps a pipe's and a subprocess
pipe's callbacks in the pipe's own context whoever pauses, resumes, writes or
closes it (C3 for pipes), as uvloop does. For the programs of ``EXTENSION``
the file keeps the native 3.15 trace (``native``) and an ``expected`` trace
that differs from it only in the labels where native uvloop 0.23 on the same
CPython 3.15 differs: those values are uvloop's, and the entry says so. No
other trace comes from anything but native CPython 3.15 asyncio.

``--check`` runs every program on each plain loop installed here (asyncio,
uvloop, rloop), a program that aborts the process in a child process, and
prints how each differs from ``expected``: the native divergences that
``tests/test_connections.py`` keeps as data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from typing import Any, Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import connection_programs as corpus  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "connections.json")
PIPES = (
    "C3 for pipes and subprocess pipes (beyond CPython 3.15): the callbacks stay in the pipe's context "
    "whoever pauses, resumes, writes or closes it"
)
# Program -> the rule beyond CPython 3.15 its expected trace keeps (with uvloop's values).
DATAGRAMS = (
    "C2 and C3 for datagram endpoints (beyond CPython 3.15): every callback of an endpoint runs in one context, "
    "a copy of the caller's, whoever closes it"
)
EXTENSION = {
    "read_pipe": PIPES,
    "write_pipe": PIPES,
    "subprocess_pipes_from_tasks": PIPES,
    "datagram_endpoints": DATAGRAMS,
}
# Labels of an extension's programs that keep 3.15's value although uvloop's
# differs: pause_writing, which a transport calls inside write(), runs in the
# writer's context, as 3.15's stream sockets run it (uvloop runs it in the
# connection's own).
NATIVE_KEPT = {"write_pipe": ("pipe.pause_writing",)}


def _record_twice(name: str, factory: Callable[[], asyncio.AbstractEventLoop]) -> Dict[str, Any]:
    program = corpus.PROGRAMS[name]
    first = corpus.run_program(program, factory)
    second = corpus.run_program(program, factory)
    if first != second:
        raise SystemExit(f"regen_connections: {name} traced differently on two runs:\n{first}\n{second}")
    return first


def record(force: bool) -> int:
    """Regenerate the file; refuse anything but CPython 3.15 unless forced."""
    if (sys.implementation.name, sys.version_info[:2]) != ("cpython", (3, 15)) and not force:
        print(f"regen_connections: needs CPython 3.15 (the reference), this is {sys.version}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        print("regen_connections: the pipe extension's values come from uvloop: install uvloop 0.23", file=sys.stderr)
        return 2
    python = f"{sys.implementation.name} {platform.python_version()}"
    source = f"uvloop {uvloop.__version__} on {python}"
    programs: Dict[str, Any] = {}
    for name in corpus.PROGRAMS:
        native = _record_twice(name, asyncio.SelectorEventLoop)
        if name not in EXTENSION:
            programs[name] = {"expected": native}
            continue
        uv = _record_twice(name, uvloop.new_event_loop)
        kept = NATIVE_KEPT.get(name, ())
        keys = sorted(
            label for label in set(native) | set(uv) if native.get(label) != uv.get(label) and label not in kept
        )
        missing = [label for label in keys if label not in uv or label not in native]
        if missing:
            raise SystemExit(f"regen_connections: {name}: uvloop and asyncio trace different labels: {missing}")
        expected = dict(native)
        expected.update((label, uv[label]) for label in keys)
        programs[name] = {
            "expected": expected,
            "native": native,
            "extension": {"rule": EXTENSION[name], "labels": keys, "source": source},
        }
    header = {
        "recorded_by": "scripts/regen_connections.py",
        "interpreter": f"{python} ({sys.version})",
        "platform": platform.platform(),
        "loop": "asyncio.SelectorEventLoop (plain asyncio, no ctxloop)",
        "extension": {"rules": sorted(set(EXTENSION.values())), "programs": list(EXTENSION), "source": source},
    }
    with open(OUT, "w", encoding="utf-8") as out:
        out.write(_dump({"header": header, "programs": programs}) + "\n")
    labels = sum(len(entry["expected"]) for entry in programs.values())
    print(f"regen_connections: {len(programs)} programs, {labels} labels, {python} -> {OUT}")
    return 0


def _dump(value: Any, indent: str = "") -> str:
    """JSON with one trace label a line: dicts spread out, lists and scalars inline."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value)
    inner = indent + "  "
    items = [f"{inner}{json.dumps(key)}: {_dump(item, inner)}" for key, item in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"


def plain_loops() -> Dict[str, str]:
    """The plain loops installed here, by name."""
    loops = {"asyncio": "asyncio"}
    for name in ("uvloop", "rloop"):
        try:
            __import__(name)
        except ImportError:
            continue
        loops[name] = name
    return loops


def check() -> int:
    """Print how each plain loop here differs from the file's expected traces."""
    with open(OUT, encoding="utf-8") as golden:
        programs = json.load(golden)["programs"]
    python = f"{sys.implementation.name} {platform.python_version()}"
    for loop_name in plain_loops():
        differ: List[str] = []
        unrunnable: List[str] = []
        for name, entry in programs.items():
            outcome = corpus.run_isolated_if_needed(name, loop_name)
            reason = corpus.not_run(outcome)
            if reason is not None:
                unrunnable.append(name)
                print(f"{python} {loop_name}: {name}: cannot run: {reason}")
                continue
            diff = corpus.difference(outcome, entry["expected"])
            if diff:
                differ.append(name)
                print(f"{python} {loop_name}: {name}:")
                for line in diff:
                    print(f"    {line}")
        matched = len(programs) - len(differ) - len(unrunnable)
        print(
            f"{python} {loop_name}: {matched}/{len(programs)} match, {len(differ)} differ, "
            f"{len(unrunnable)} cannot run; differ: {differ}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare this Python's plain loops with the file")
    parser.add_argument("--force", action="store_true", help="record on another interpreter than CPython 3.15")
    args = parser.parse_args()
    return check() if args.check else record(args.force)


if __name__ == "__main__":
    sys.exit(main())
