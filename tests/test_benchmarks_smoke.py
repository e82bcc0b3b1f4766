"""The benchmark suite runs (in its tiny quick mode), so that it cannot rot.

It asserts the shape of what ``python -m benchmarks --quick --json`` reports,
never a time or a ratio: timings belong to the benchmark, not the test suite.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ctxloop

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (ROOT / "benchmarks" / "run.py").is_file(), reason="the benchmarks/ directory is not in this tree"
)


@pytest.mark.timeout(120)
def test_quick_benchmark_runs_and_reports_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--quick", "--json", str(out)],
        check=False,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    result = json.loads(out.read_text())

    # The ctxloop under test was measured: the tree's own, or the installed one when the tree has none.
    assert Path(result["ctxloop_path"]).resolve() == Path(ctxloop.__file__).resolve().parent
    assert result["quick"] is True
    impls = result["implementations"]
    # Pure Python always; the compiled accelerator too wherever it is built.
    assert "pure" in impls and impls["pure"]["implementation"].startswith("pure Python")
    compiled = speedups_built()
    assert ("compiled" in impls) is compiled
    if compiled:
        assert impls["compiled"]["implementation"].startswith("compiled accelerator")
    for impl, measured in impls.items():
        assert "asyncio" in measured["loops"]
        for loop_name, data in measured["loops"].items():
            section = proc.stdout.split(f"## {loop_name}")[1].split("\n## ")[0]
            groups = {row["group"] for row in data["rows"]}
            expected = {"create", "step", "enabled", "tree", "inline"}
            if loop_name == "uvloop" and sys.version_info < (3, 11):
                expected.add("uvloop")
            assert groups == expected, (impl, loop_name)
            for row in data["rows"]:
                for key in ("arm_ns", "baseline_ns", "ratio", "ratio_min", "ratio_max"):
                    assert math.isfinite(row[key]) and row[key] > 0, (impl, loop_name, row)
                assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
                assert len(data["times"][row["arm"]]) == result["reps"]
                # The table printed is the data written, with a verdict where there is a target.
                line = next(line for line in section.splitlines() if line.startswith(row["comparison"] + " "))
                assert (row["target"] is None) == ("(info)" in line)
                assert f"{row['ratio']:.3f}" in line
            memory = data["memory"]
            assert memory["tasks"] > 0 and memory["cycle_tasks"] > 0
            if sys.implementation.name == "cpython":
                assert isinstance(memory["cycles_freed"], int)
                assert isinstance(memory["traced_delta"], int)


def speedups_built() -> bool:
    """Whether this Python would use the compiled accelerator without CTXLOOP_NO_SPEEDUPS."""
    code = "from ctxloop._accel import speedups; print(speedups is not None)"
    env = {k: v for k, v in os.environ.items() if k != "CTXLOOP_NO_SPEEDUPS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=str(ROOT), env=env
    )
    return proc.stdout.strip() == "True"


@pytest.mark.timeout(120)
def test_quick_connection_benchmark_runs_and_reports_every_loop(tmp_path: Path) -> None:
    out = tmp_path / "connections.json"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "connections", "--quick", "--json", str(out)],
        check=False,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    result = json.loads(out.read_text())
    assert Path(result["ctxloop_path"]).resolve() == Path(ctxloop.__file__).resolve().parent
    assert result["quick"] is True
    installed = ["asyncio"] + [name for name in ("uvloop", "rloop") if importlib.util.find_spec(name)]
    assert list(result["loops"]) == installed
    for loop_name, data in result["loops"].items():
        section = proc.stdout.split(f"## {loop_name}")[1].split("\n## ")[0]
        assert data["target"] == (1.03 if loop_name == "asyncio" else 1.05)
        # Per workload: the plain loop against itself (the method's noise), then ctxloop against it.
        assert [(row["group"], row["target"]) for row in data["rows"]] == [
            ("small", None),
            ("small", data["target"]),
            ("large", None),
            ("large", data["target"]),
            ("churn", None),
            ("churn", None),
        ]
        for row in data["rows"]:
            for key in ("arm_ns", "baseline_ns", "ratio", "ratio_min", "ratio_max"):
                assert math.isfinite(row[key]) and row[key] > 0, (loop_name, row)
            assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
            assert len(data["times"][row["arm"]]) == result["reps"]
            line = next(line for line in section.splitlines() if line.startswith(row["comparison"] + " "))
            assert f"{row['ratio']:.3f}" in line
            assert (row["target"] is None) == ("(info)" in line)


@pytest.mark.timeout(120)
def test_connection_leak_mode_runs_and_reports_every_loop(tmp_path: Path) -> None:
    out = tmp_path / "leaks.json"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "connections", "--leaks", "100", "--json", str(out)],
        check=False,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    result = json.loads(out.read_text())
    assert result["measure"] == "leaks"
    for loop_name, arms in result["loops"].items():
        assert list(arms) == ["plain", "ctxloop"], loop_name
        for arm, measured in arms.items():
            assert measured["connections"] == 100
            assert measured["open_server_side"] == 0, (loop_name, arm, measured)
            assert isinstance(measured["contexts_delta"], int)
            assert f"## {loop_name}" in proc.stdout
