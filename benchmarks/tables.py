"""Markdown tables for docs/performance.md from the JSON of ``python -m benchmarks`` and the callgrind profile.

python -m benchmarks.tables bench-3.10.json bench-3.12.json ...          # timing tables
python -m benchmarks.tables --summary bench-*.json                        # one row per Python x loop
python -m benchmarks.tables --callgrind cg-3.12-uvloop.json ...           # instruction counts
python -m benchmarks.tables --instructions ins-3.12.json ...              # per entry point (benchmarks.instructions)
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional

# The targeted comparisons, by the label the benchmark gives them (prefix match), for the summary.
SUMMARY_ROWS = [
    ("create, ctx", "ctxloop.create_task(coro, context=ctx) vs asyncio.create_task"),
    ("loop.create_task ctx", "ctxloop loop.create_task(coro, context=ctx) vs base loop.create_task"),
    ("loop.create_task", "ctxloop loop.create_task(coro) vs base loop.create_task(coro)"),
    ("step, ctx", "one task's sleep(0) step, bound to a context"),
    ("step, plain", "one task's sleep(0) step on a ctxloop loop"),
    ("vs uvloop copy", "ctxloop loop.create_task(coro, context=ctx) vs uvloop's"),
]


def _cell(row: Optional[Dict[str, Any]]) -> str:
    if row is None:
        return "-"
    mark = "" if row["target"] is None else (" ✓" if row["meets"] else " ✗")
    return f"{row['ratio']:.3f}{mark}"


def _find(rows: List[Dict[str, Any]], prefix: str) -> Optional[Dict[str, Any]]:
    return next((r for r in rows if r["comparison"].startswith(prefix)), None)


def summary(results: List[Dict[str, Any]]) -> List[str]:
    head = "| Python, loop | implementation | " + " | ".join(name for name, _ in SUMMARY_ROWS) + " | memory |"
    lines = [head, "|---|---|" + "---:|" * len(SUMMARY_ROWS) + "---|"]
    for result in results:
        for impl, data in result["implementations"].items():
            for loop_name, loop_data in data["loops"].items():
                cells = [_cell(_find(loop_data["rows"], prefix)) for _, prefix in SUMMARY_ROWS]
                mem = loop_data.get("memory") or {}
                traced = mem.get("traced_delta")
                memory = (
                    f"RSS {mem['rss_delta'] / 2**20:+.2f} MiB, "
                    + ("" if traced is None else f"traced {traced / 2**20:+.2f} MiB, ")
                    + f"cycles {mem['cycles_freed']}"
                    if mem and mem.get("rss_delta") is not None
                    else "-"
                )
                python = result["python"].replace("CPython ", "")
                lines.append(f"| {python} {loop_name} | {impl} | " + " | ".join(cells) + f" | {memory} |")
    return lines


def full(result: Dict[str, Any]) -> List[str]:
    lines = [f"#### {result['python']}", ""]
    impls = list(result["implementations"])
    first = result["implementations"][impls[0]]
    for loop_name, loop_data in first["loops"].items():
        version = loop_data.get("version")
        lines += [f"{loop_name}{' ' + version if version else ''}:", ""]
        head = "| comparison | target | " + " | ".join(
            f"{impl}: ctxloop / native ns, ratio [min-max]" for impl in impls
        )
        lines += [head + " |", "|---|---|" + "---|" * len(impls)]
        for index, row in enumerate(loop_data["rows"]):
            target = "info" if row["target"] is None else f"≤ {row['target']:.2f}"
            cells = []
            for impl in impls:
                r = result["implementations"][impl]["loops"][loop_name]["rows"][index]
                mark = "" if r["target"] is None else (" ✓" if r["meets"] else " ✗")
                cells.append(
                    f"{r['arm_ns']:.0f} / {r['baseline_ns']:.0f} ns/{r['unit']}, "
                    f"**{r['ratio']:.3f}**{mark} [{r['ratio_min']:.3f}-{r['ratio_max']:.3f}]"
                )
            lines.append(f"| {row['comparison']} | {target} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def callgrind(data: Dict[str, Any]) -> List[str]:
    from benchmarks.profile_callgrind import summary_table

    lines: List[str] = []
    for label, loops in data["results"].items():
        version = tuple(int(x) for x in label.split()[1].split(".")[:2])
        for loop_name, figures in loops.items():
            per = figures["instructions"]
            impls = [i for i in ("pure", "compiled") if any(k.endswith("/" + i) for k in per)]
            lines += [f"{label}, {loop_name}:", ""]
            lines += summary_table(version, loop_name, per, impls)  # type: ignore[arg-type]
            lines.append("")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args(argv)
    loaded = []
    for path in args.files:
        with open(path) as f:
            loaded.append(json.load(f))
    if args.instructions:
        from benchmarks.instructions import tables

        lines = [line for data in loaded for line in tables(data)]
    elif args.callgrind:
        lines = [line for data in loaded for line in callgrind(data)]
    elif args.summary:
        lines = summary(loaded)
    else:
        lines = [line for result in loaded for line in full(result)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
