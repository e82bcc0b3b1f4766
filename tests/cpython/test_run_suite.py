"""The CPython-suite runner itself: it sorts outcomes right and runs end to end.

The full run (every module, every mode) is ``python -m nox -s cpython-suite``;
here only test_runners runs, natively and with ctxloop, on each loop.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest
import run_suite


def _has_cpython_tests() -> bool:
    try:
        return importlib.util.find_spec("test.test_asyncio") is not None
    except ImportError:  # no test package at all
        return False


HAS_CPYTHON_TESTS = _has_cpython_tests()


def _record(outcome: str, detail: str = "") -> Dict[str, Any]:
    return {"outcome": outcome, "detail": detail}


def test_compare_sorts_each_outcome_against_the_reference() -> None:
    reference = {
        "t.a": _record("pass"),
        "t.b": _record("pass"),
        "t.c": _record("fail"),
        "t.d": _record("fail"),
        "t.e": _record("skip"),
        "t.f": _record("pass"),
    }
    results = {
        "t.a": _record("pass"),
        "t.b": _record("fail"),
        "t.c": _record("fail"),
        "t.d": _record("pass"),
        "t.e": _record("pass"),
        "t.f": _record("hang"),
        "cpython312.t.g": _record("pass"),
    }
    categories = run_suite.compare(reference, results)
    assert categories == {
        "both": ["t.a"],
        "fail_both": ["t.c"],
        "skip": ["t.e"],
        "fixed": ["t.d"],
        "diverge": ["t.b", "t.f"],
        "extra": ["cpython312.t.g"],
    }


def test_summarize_gives_the_exception_and_where_it_was_raised() -> None:
    detail = (
        "Traceback (most recent call last):\n"
        '  File "/x/test_tasks.py", line 12, in test_one\n'
        "    self.assertEqual(a, b)\n"
        "AssertionError: 1 != 2\n"
        "\nStderr:\nException in callback f()\nmore\n"
    )
    assert run_suite.summarize(detail) == [
        "AssertionError: 1 != 2",
        'File "/x/test_tasks.py", line 12, in test_one',
        "stderr: Exception in callback f()",
    ]


@pytest.mark.skipif(not HAS_CPYTHON_TESTS, reason="this interpreter ships no test.test_asyncio package")
def test_runs_cpython_tests_natively_and_with_ctxloop(loop_name: str, tmp_path: Any) -> None:
    reference, mode = ("native", "factory") if loop_name == "asyncio" else ("uvloop", "policy-uvloop")
    report_file = tmp_path / "report.json"
    command = [sys.executable, run_suite.__file__, "--modes", f"{reference},{mode}", "--modules", "test_runners"]
    command += ["--json", str(report_file), "--no-recheck", "--no-fail"]
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    subprocess.run(command, check=True, timeout=50, env=env, stdout=subprocess.DEVNULL)
    report = json.loads(report_file.read_text())
    native = report["modes"][reference]["results"]
    ctx = report["modes"][mode]
    # CPython's own test_runners ran natively (they pass there) and once more
    # with ctxloop, test for test; every ctxloop outcome is counted once.
    assert len(native) >= 8
    assert all(r["outcome"] == "pass" for r in native.values())
    assert sorted(i for i in ctx["results"] if i.startswith("test.")) == sorted(native)
    assert sum(ctx["counts"].values()) == len(ctx["results"])
    assert [d["id"] for d in ctx["divergences"]] == sorted(
        i for i, r in ctx["results"].items() if i in native and r["outcome"] in ("fail", "hang", "crash")
    )
