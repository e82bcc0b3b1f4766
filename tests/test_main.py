"""``python -m ctxloop``: the table, the exit status, ``--json``, ``--loop``, and failing checks."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import ctxloop
from ctxloop import _report

ROOT = Path(__file__).resolve().parent.parent
from conftest import LOOPS  # noqa: E402

CHECK_IDS = [
    "N1",
    "N2",
    "N3",
    "N4",
    "N5",
    "N5b",
    "N6",
    "S1",
    "S2",
    "S3",
    "S4",
    "S5",
    "S6",
    "S7",
    "C1",
    "C2",
    "C3",
    "C4",
]


def ctxloop_main(*args: str, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    """Run ``python -W error -m ctxloop ARGS`` on the source tree, in a subprocess."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("_CTXLOOP_REPORT")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "ctxloop", *args],
        cwd=ROOT,
        env=environ,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def rows(stdout: str) -> Dict[str, List[str]]:
    """The table's rows: check id -> its PASS/FAIL cells, one per loop column."""
    table = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in CHECK_IDS and not line.startswith(" "):  # the legend's lines are indented
            table[words[0]] = [w for w in words if w in ("PASS", "FAIL")]
    return table


def legend(stdout: str) -> Dict[str, str]:
    """The legend's lines: check id -> the rule it checks."""
    lines = stdout.splitlines()
    start = lines.index("What the checks mean (the rules, as docs/rules.md defines them):") + 1
    entries = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        check_id, text = line.split(None, 1)
        entries[check_id] = text
    return entries


def cost_lines(stdout: str) -> Dict[str, List[str]]:
    """The cost section's per-loop lines, split into words."""
    lines = stdout.splitlines()
    return {loop: next(line.split() for line in lines if line.startswith(f"  {loop} ")) for loop in LOOPS}


TARGET = 1.10 if sys.version_info < (3, 11) else 1.02


def test_the_main_command_checks_every_installed_loop() -> None:
    out = ctxloop_main()
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"ctxloop {ctxloop.__version__} on ")
    assert lines[0].endswith(f"on {', '.join(LOOPS)}")
    header = next(line for line in lines if line.startswith("check "))
    assert header.split()[2:] == LOOPS
    assert rows(out.stdout) == {check_id: ["PASS"] * len(LOOPS) for check_id in CHECK_IDS}
    assert list(legend(out.stdout)) == CHECK_IDS
    # The target for this interpreter, and a verdict beside each figure.
    here = "Python 3.8-3.10 (this interpreter)" if sys.version_info < (3, 11) else "Python 3.11+ (this interpreter)"
    assert sum(here in line for line in lines) == 1
    assert "Targets: <= 1.10x on Python 3.8-3.10" in out.stdout
    assert "<= 1.02x on Python 3.11+" in out.stdout
    for cost in cost_lines(out.stdout).values():
        assert cost[1].endswith("x") and float(cost[1][:-1]) > 0
        within = round(float(cost[1][:-1]), 2) <= TARGET
        assert " ".join(cost[2:]) == f"{'within' if within else 'above'} target (<= {TARGET:.2f}x)"
    # Nothing failed: no advice on what to do.
    assert "What to do:" not in out.stdout
    total = len(CHECK_IDS) * len(LOOPS)
    assert lines[-1] == f"{total}/{total} checks pass"


def test_json_for_machines() -> None:
    out = ctxloop_main("--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {
        "ctxloop",
        "python",
        "platform",
        "implementation",
        "gil",
        "ok",
        "checks",
        "cost_target",
        "loops",
    }
    assert report["ctxloop"] == ctxloop.__version__
    assert report["ok"] is True
    assert [check["id"] for check in report["checks"]] == CHECK_IDS
    assert all(isinstance(check["title"], str) and check["title"] for check in report["checks"])
    assert [check["rule"] for check in report["checks"]] == [_report.LEGEND[check_id] for check_id in CHECK_IDS]
    applies = "Python 3.8-3.10" if sys.version_info < (3, 11) else "Python 3.11+"
    assert report["cost_target"] == {"ratio": TARGET, "applies": applies}
    assert list(report["loops"]) == LOOPS
    for per_loop in report["loops"].values():
        assert per_loop["ok"] is True
        assert per_loop["results"] == {check_id: {"ok": True, "detail": None} for check_id in CHECK_IDS}
        assert isinstance(per_loop["cost_ratio"], float) and per_loop["cost_ratio"] > 0
        assert per_loop["cost_within_target"] is (round(per_loop["cost_ratio"], 2) <= TARGET)


@pytest.mark.parametrize(
    "args", [["--loop", "asyncio"], ["--loop", "asyncio,asyncio"], ["--loop=asyncio", "--loop", ""]]
)
def test_loop_picks_the_columns(args: List[str]) -> None:
    out = ctxloop_main(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert rows(out.stdout) == {check_id: ["PASS"] for check_id in CHECK_IDS}
    assert "  uvloop " not in out.stdout


@pytest.mark.skipif("uvloop" not in LOOPS, reason="uvloop is not installed for this Python")
@pytest.mark.parametrize("args", [["--loop", "uvloop,asyncio"], ["--loop", "uvloop", "--loop", "asyncio"]])
def test_loop_keeps_the_order_given(args: List[str]) -> None:
    out = ctxloop_main("--json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert list(json.loads(out.stdout)["loops"]) == ["uvloop", "asyncio"]


def test_unknown_loop_is_a_usage_error() -> None:
    out = ctxloop_main("--loop", "asyncio,nosuchloop")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "unknown loop 'nosuchloop': expected one of asyncio, uvloop, winloop, rloop" in out.stderr


def test_a_loop_that_is_not_installed_is_a_usage_error() -> None:
    missing = [name for name in _report.KNOWN_LOOPS if importlib.util.find_spec(name) is None]
    if not missing:
        pytest.skip("every loop the report knows is installed here")
    out = ctxloop_main("--loop", missing[0])
    assert out.returncode == 2
    assert out.stdout == ""
    assert f"loop {missing[0]!r} needs the {missing[0]} package, which is not installed" in out.stderr
    assert f"pip install {missing[0]}" in out.stderr


def test_a_failing_check_makes_it_exit_1() -> None:
    out = ctxloop_main(env={"_CTXLOOP_REPORT_FAIL": "N4"})
    assert out.returncode == 1, out.stdout + out.stderr
    table = rows(out.stdout)
    assert table.pop("N4") == ["FAIL"] * len(LOOPS)
    assert set(map(tuple, table.values())) == {("PASS",) * len(LOOPS)}
    for loop in LOOPS:
        assert f"FAIL N4 on {loop}: forced to fail by _CTXLOOP_REPORT_FAIL" in out.stdout
    total = len(CHECK_IDS) * len(LOOPS)
    assert out.stdout.splitlines()[-1] == f"{total - len(LOOPS)}/{total} checks pass; {len(LOOPS)} FAIL"
    # A failure says where to read and how to report it.
    advice = out.stdout[out.stdout.index("What to do:") :]
    expected = ["docs/rules.md", "docs/troubleshooting.md", "--loop NAME", "python -m ctxloop --json >", "bug report"]
    for words in expected:
        assert words in advice


def test_a_failing_check_in_json() -> None:
    out = ctxloop_main("--json", "--loop", "asyncio", env={"_CTXLOOP_REPORT_FAIL": "S6"})
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False
    assert report["loops"]["asyncio"]["ok"] is False
    assert report["loops"]["asyncio"]["results"]["S6"] == {
        "ok": False,
        "detail": "forced to fail by _CTXLOOP_REPORT_FAIL",
    }
    assert report["loops"]["asyncio"]["results"]["S5"] == {"ok": True, "detail": None}


@pytest.mark.timeout(30)
def test_a_check_that_never_returns_is_a_timeout_not_a_hang() -> None:
    # The injected check blocks its thread for good, as a stuck loop would
    # (CPython 3.11+ with an entered context hangs even under wait_for).
    out = ctxloop_main("--loop", "asyncio", env={"_CTXLOOP_REPORT_FAIL": "S2:hang", "_CTXLOOP_REPORT_TIMEOUT": "0.5"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert rows(out.stdout)["S2"] == ["FAIL"]
    assert rows(out.stdout)["S3"] == ["PASS"]
    assert "FAIL S2 on asyncio: timeout" in out.stdout


def test_help() -> None:
    out = ctxloop_main("--help")
    assert out.returncode == 0
    assert "--loop NAME" in out.stdout and "--json" in out.stdout
    assert "docs/rules.md" in out.stdout and "docs/troubleshooting.md" in out.stdout


def test_the_legend_names_the_rules_docs_define() -> None:
    assert list(_report.LEGEND) == list(_report.CHECKS) == CHECK_IDS
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for check_id in CHECK_IDS:
        defined = f"| {check_id} |" if check_id.startswith("N") else f"**{check_id} \u2014"
        assert defined in rules, f"docs/rules.md does not define {check_id}"
    assert all(len(f"  {check_id:<3}  {text}") <= 100 for check_id, text in _report.LEGEND.items())


@pytest.mark.parametrize(
    ("version", "target", "applies"),
    [((3, 8), 1.10, "Python 3.8-3.10"), ((3, 10, 13), 1.10, "Python 3.8-3.10"), ((3, 11), 1.02, "Python 3.11+")],
)
def test_cost_target_per_python(version: Tuple[int, ...], target: float, applies: str) -> None:
    assert _report.cost_target(version) == (target, applies)


def test_cost_line_gives_a_verdict() -> None:
    assert _report.cost_line("asyncio", 1.024, None, 1.02) == "  asyncio  1.02x  within target (<= 1.02x)"
    assert _report.cost_line("uvloop", 1.031, None, 1.02) == "  uvloop   1.03x  above target (<= 1.02x)"
    assert _report.cost_line("asyncio", 0.9, None, 1.10) == "  asyncio  0.90x  within target (<= 1.10x)"
    assert _report.cost_line("uvloop", None, "timeout", 1.10) == "  uvloop   not measured (timeout)"


# The checks themselves must fail where the contract is broken. A loop that
# gives a task a *copy* of ctx (what uvloop and anyio do) keeps N1-N6 and S1,
# but loses S2 (ctx[var]), S4 (get_context() is ctx) and S7 (a child given its
# parent's own context shares it).


def _copying_loop() -> asyncio.AbstractEventLoop:
    loop = ctxloop.new_event_loop()
    exact = loop.create_task

    def create_task(coro: Any, *, name: Optional[str] = None, context: Optional[contextvars.Context] = None) -> Any:
        if isinstance(context, contextvars.Context):
            context = context.run(contextvars.copy_context)
        return exact(coro, name=name, context=context)  # type: ignore[call-arg]

    loop.create_task = create_task  # type: ignore[method-assign]
    return loop


def test_the_checks_catch_a_loop_that_copies_the_context() -> None:
    results = {
        check_id: _report._bounded(lambda check=check: check(_copying_loop, 5.0), 10.0)
        for check_id, (_, check) in _report.CHECKS.items()
    }
    failed = {check_id for check_id, (ok, _) in results.items() if not ok}
    assert failed == {"S2", "S4", "S7"}, results
    # The task's writes never reach ctx; a between-steps write never reaches the task.
    assert results["S2"][1] == (
        "got [None, 'set by the task', 'set between its steps', 'unset'], "
        "expected ['set by the task', 'set between its steps', 'set between its steps', 'unset']"
    )
    assert results["S4"][1] == "got [False, False, True, True], expected [True, True, True, True]"


def test_the_checks_pass_on_ctxloop_loops(loop_name: str) -> None:
    results = _report.run_checks(loop_name, 5.0, {})
    assert results == dict.fromkeys(CHECK_IDS)


# Each connection check, run on a plain loop that breaks its rule natively,
# must fail: (check, plain loop, when that loop breaks it).
NATIVE_BREAKS = [
    ("C1", "uvloop", "uvloop shares one context between a server's connections"),
    ("C1", "rloop", "rloop runs a server's connections in the loop's own context"),
    ("C2", "rloop", "rloop runs a client's connection_made in the caller's own context"),
    ("C3", "asyncio", "asyncio before 3.15 resumes reading in the resuming task's context"),
    ("C4", "rloop", "rloop runs call_soon_threadsafe callbacks in the loop's context"),
]


@pytest.mark.parametrize(("check_id", "plain", "why"), NATIVE_BREAKS, ids=[f"{c}-{p}" for c, p, _ in NATIVE_BREAKS])
def test_a_connection_check_fails_on_a_plain_loop_that_breaks_its_rule(
    check_id: str, plain: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plain not in LOOPS:
        pytest.skip(f"{plain} is not installed for this Python")
    if plain == "asyncio" and sys.version_info >= (3, 15) and sys.implementation.name == "cpython":
        pytest.skip("asyncio keeps C3 natively from CPython 3.15")
    from ctxloop import _connection_checks

    def plain_main_task(make_loop: Any, coro: Any, timeout: float) -> Any:
        # As the report runs a check, but on the plain loop (the report's
        # baseline), which ctxloop.run would make a ctxloop loop.
        loop = make_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            loop.close()

    monkeypatch.setattr(_connection_checks, "main_task", plain_main_task)
    _, check = _report.CHECKS[check_id]
    with pytest.raises(_report.CheckFailed):
        check(_report._base_factory(plain), 5.0)
