"""The instruction-count benchmark runs (in its tiny quick mode), so that it cannot rot.

It asserts the shape of what ``python -m benchmarks.instructions --quick --json``
reports, never a count or a ratio: those belong to the benchmark.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("CTXLOOP_VALGRIND_TESTS") != "1",
        reason="runs valgrind for minutes: set CTXLOOP_VALGRIND_TESTS=1 (the nox session benchmarks does)",
    ),
    pytest.mark.skipif(
        not (ROOT / "benchmarks" / "instructions.py").is_file(), reason="the benchmarks/ directory is not in this tree"
    ),
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
    pytest.mark.skipif(sys.implementation.name != "cpython", reason="callgrind counts CPython's instructions only"),
    # Four arms under valgrind (~20 s of CPU each, mostly valgrind translating the interpreter's start-up).
    pytest.mark.timeout(600),
]


def speedups_built() -> bool:
    """Whether this Python would use the compiled accelerator of this tree."""
    code = "from ctxloop._accel import speedups; print(speedups is not None)"
    env = {k: v for k, v in os.environ.items() if k != "CTXLOOP_NO_SPEEDUPS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=str(ROOT), env=env
    )
    return proc.stdout.strip() == "True"


def test_quick_instruction_counts_for_the_module_function(tmp_path: Path) -> None:
    out = tmp_path / "instructions.json"
    impl = "compiled" if speedups_built() else "pure"
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "benchmarks.instructions",
            "--quick",
            "--loops",
            "asyncio",
            "--entries",
            "module",
            "--impl",
            impl,
            "--jobs",
            "2",
            "--json",
            str(out),
        ],
        check=False,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" not in proc.stderr, proc.stderr
    data = json.loads(out.read_text())
    assert (data["n1"], data["n2"]) == (500, 1000)
    assert Path(data["tree"]) == ROOT
    [(label, loops)] = data["results"].items()
    assert label.startswith("CPython ")
    per = loops["asyncio"]["instructions"]

    native_context = sys.version_info >= (3, 11)
    expected = {"native/plain"} | ({"native/ctx"} if native_context else set())
    expected |= {f"module/ctx/{impl}", f"module/plain/{impl}"}
    assert set(per) == expected
    for key, figure in per.items():
        # A trivial task costs thousands of instructions on any CPython: not zero, not start-up.
        assert math.isfinite(figure["total"]) and 1_000 < figure["total"] < 1_000_000, (key, figure)

    # The tables printed are the data written: the module function's row, against the native baseline.
    baseline = per["native/ctx" if native_context else "native/plain"]["total"]
    module = per[f"module/ctx/{impl}"]["total"]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| module: "))
    assert f"{module:,.0f} {module - baseline:+,.0f}" in row
    rendered = subprocess.run(
        [sys.executable, "-m", "benchmarks.tables", "--instructions", str(out)],
        check=True,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert row in rendered
