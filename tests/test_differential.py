"""Differential tests: task programs under ctxloop trace exactly as under CPython 3.12.

The golden corpus (``tests/golden/programs.jsonl``, recorded by
``scripts/regen_golden.py`` on CPython 3.12 with plain asyncio) is replayed
under ctxloop on this Python and every installed loop. Hypothesis then
generates more programs (derandomized: the same ones on every run of a given
hypothesis version) and compares ctxloop against a reference run in the same
process: native asyncio on 3.12+, asyncio's pure-Python Task given its context
the 3.11 way elsewhere (see ``tests/programs.py``).

Both hold tasks given a context that a ``run_in_context`` entered beneath the
current context, during the current step (``programs.nested_entered_sites``):
CPython runs them, and so must ctxloop.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

import programs
import pytest
from conftest import LOOPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "programs.jsonl")
REFERENCE = "native" if sys.version_info >= (3, 12) and sys.implementation.name == "cpython" else "pytask"


def _load() -> List[Dict[str, Any]]:
    with open(GOLDEN, encoding="utf-8") as golden:
        return [json.loads(line) for line in golden if line.strip()]


CORPUS = _load()


def _first_difference(got: List[Any], expected: List[Any]) -> str:
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return f"entry {i}: got {a!r}, expected {b!r}"
    return f"lengths differ: got {len(got)} entries, expected {len(expected)}"


def test_corpus_is_large_and_covers_every_operation() -> None:
    assert len(CORPUS) >= 250
    kinds = {entry[0] for case in CORPUS for entry in case["trace"]}
    assert kinds >= {
        "get",
        "task",
        "peek",
        "spawn",
        "soon",
        "await",
        "cancel",
        "call",
        "gather",
        "main",
        "settle",
        "final",
    }
    outcomes = json.dumps([case["trace"] for case in CORPUS])
    # RuntimeError: run_in_context of an entered context (call own, call ctx:A inside A).
    for needle in ('["exc", "RuntimeError"]', '["exc", "CancelledError"]', '["exc", "ValueError"]', '"missing"'):
        assert needle in outcomes, needle
    shapes = json.dumps([case["program"] for case in CORPUS])
    for needle in (
        '"own"',
        '"shared:A"',
        '"shared:B"',
        '"copy"',
        '"new"',
        '"none"',
        '"isolated"',
        '"ctx:A"',
        '"capture"',
    ):
        assert needle in shapes, needle


def test_every_task_of_the_corpus_is_accepted_natively() -> None:
    # Entered contexts included (own, current, a callback's): CPython creates
    # every task the language asks for, so ctxloop must too.
    creations = [entry for case in CORPUS for entry in case["trace"] if entry[0] in ("spawn", "soon")]
    assert len(creations) >= 500
    assert {entry[3] for entry in creations} == {"ok"}


def test_corpus_holds_tasks_given_a_context_entered_beneath_the_current_one() -> None:
    # The shape that tells a context entered during the step from one entered
    # beneath the loop: named programs and generated ones.
    named = [case["id"] for case in CORPUS if case["id"].startswith("S7 shared context entered beneath")]
    generated = [case["id"] for case in CORPUS if programs.nested_entered_sites(case["program"])]
    assert len(named) == len(programs.nested_entered()) and set(named) <= set(generated)
    assert len(generated) > len(named), generated  # the generator makes them too


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_golden_trace_under_ctxloop(case: Dict[str, Any], loop_name: str) -> None:
    got = programs.run_program(case["program"], "ctxloop", loop_name)
    assert got == case["trace"], _first_difference(got, case["trace"])


@pytest.mark.parametrize("loop_name", LOOPS)
def test_golden_trace_under_the_reference_of_this_python(loop_name: str) -> None:
    # The reference (no ctxloop) agrees with the golden traces here too: a
    # ctxloop mismatch above is then ctxloop's, not this asyncio version's.
    for case in CORPUS:
        got = programs.run_program(case["program"], REFERENCE, loop_name)
        assert got == case["trace"], f"{case['id']}: {_first_difference(got, case['trace'])}"


@st.composite
def task_programs(draw: Any) -> Dict[str, Any]:
    """Programs drawn by hypothesis with the corpus generator (so they shrink)."""
    chooser = programs.Chooser(
        lambda lo, hi: draw(st.integers(lo, hi)),
        lambda seq: draw(st.sampled_from(list(seq))),
    )
    return programs.generate(chooser, max_depth=3, max_ops=6)


@pytest.mark.parametrize("loop_name", LOOPS)
@settings(
    derandomize=True,
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=task_programs())
def test_generated_programs_match_the_reference(program: Dict[str, Any], loop_name: str) -> None:
    expected = programs.run_program(program, REFERENCE, loop_name)
    got = programs.run_program(program, "ctxloop", loop_name)
    assert got == expected, _first_difference(got, expected)
