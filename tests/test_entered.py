"""Whether a Context is entered, and where, read without entering it (ctxloop/_entered.py).

The answers are compared with what ``Context.run`` itself says (it raises
``RuntimeError`` for an entered context). Without the GIL, ctxloop must never
enter a context to find out: the stress test runs another thread's
legitimate ``Context.run`` of the same context thousands of times while
ctxloop asks, and none of those may fail.
"""

from __future__ import annotations

import _thread
import contextvars
import sys
import threading
from typing import Any, Callable, List

import pytest

from ctxloop import _entered
from ctxloop._checks import check_task_context
from ctxloop._entered import entered_chain, is_entered

pytestmark = pytest.mark.timeout(60)

CPYTHON = sys.implementation.name == "cpython"


def _inside(context: contextvars.Context, work: Callable[[], Any]) -> Any:
    return context.run(work)


def test_is_entered_answers_as_context_run_does() -> None:
    context, other = contextvars.Context(), contextvars.Context()
    assert is_entered(context) is False
    assert _inside(context, lambda: (is_entered(context), is_entered(other))) == (True, False)
    assert _inside(other, lambda: _inside(context, lambda: is_entered(other))) is True  # beneath
    assert is_entered(context) is False
    assert is_entered(contextvars.copy_context()) is False


def test_is_entered_sees_a_context_entered_in_another_thread() -> None:
    context = contextvars.Context()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        context.run(lambda: (entered.set(), release.wait(30)))

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(30)
        assert is_entered(context) is True
        with pytest.raises(RuntimeError, match="beneath the current context"):
            check_task_context(context)
    finally:
        release.set()
        thread.join(30)
    assert is_entered(context) is False


def test_pypy_reads_its_contexts_entered_attribute() -> None:
    if CPYTHON:
        assert _entered._attribute_reader() is None  # CPython's Context has no such attribute
        return
    reader = _entered._attribute_reader()
    assert reader is not None, "PyPy's Context has changed: the self-test refused its _is_entered"
    context = contextvars.Context()
    assert (reader(context), _inside(context, lambda: reader(context)), reader(context)) == (False, True, False)


@pytest.mark.skipif(not CPYTHON, reason="the entered flag is a field of CPython's context object")
def test_the_entered_flag_is_read_exactly_on_cpython() -> None:
    # The reader free-threaded CPython uses (the accelerator reads the same
    # field in C): it passes its self-test here, and agrees with Context.run.
    reader = _entered._field_reader()
    assert reader is not None, "CPython's context layout has changed: the self-test refused the field"
    context = contextvars.Context()
    assert (reader(context), _inside(context, lambda: reader(context)), reader(context)) == (False, True, False)


@pytest.mark.skipif(not CPYTHON, reason="the entered flag is a field of CPython's context object")
def test_a_reader_of_the_flag_that_reads_wrongly_is_never_used() -> None:
    # The self-test guarding the field read: readers that see nothing, always
    # something, or another context's state are refused.
    assert _entered._reads_entered_exactly(lambda context: False) is False
    assert _entered._reads_entered_exactly(lambda context: True) is False
    outer = contextvars.Context()
    assert outer.run(_entered._reads_entered_exactly, lambda context: is_entered(outer)) is False
    assert _entered._reads_entered_exactly(is_entered) is True


def test_the_chain_of_entered_contexts_is_read_exactly() -> None:
    # What tells a context entered during the step from one entered beneath it.
    outer, inner = contextvars.Context(), contextvars.Context()
    chains: List[Any] = []
    outer.run(inner.run, lambda: chains.append(entered_chain()))
    assert chains[0] is not None, "the chain must be readable on CPython and PyPy"
    assert chains[0][:2] == [inner, outer]
    assert all(type(c) is contextvars.Context for c in chains[0])
    assert outer not in (entered_chain() or [])  # exited: no longer in the chain


def test_a_chain_reader_that_reads_wrongly_is_never_used() -> None:
    # The self-test that guards reading CPython's context links: a reader
    # that finds nothing, or other contexts, is rejected.
    assert _entered._read_back_a_known_chain(lambda: []) is None
    assert _entered._read_back_a_known_chain(lambda: [contextvars.Context(), contextvars.Context()]) is None
    assert _entered._read_back_a_known_chain(lambda: list(reversed(entered_chain() or []))) is None


ROUNDS = 100_000


def test_asking_never_makes_another_threads_run_fail() -> None:
    # Another thread enters and leaves the context ROUNDS times while this
    # thread asks whether it is entered: asking must never be what makes that
    # thread's Context.run fail ("cannot enter context: ... is already
    # entered"). Entering to find out fails this test on free-threaded
    # CPython and on PyPy (thousands of failures a run); the GIL makes it
    # atomic on CPython.
    context = contextvars.Context()
    failures: List[str] = []
    start = threading.Barrier(2, timeout=30)
    done = threading.Event()

    def runner() -> None:
        start.wait()
        try:
            for _ in range(ROUNDS):
                try:
                    context.run(int)
                except RuntimeError as error:
                    failures.append(str(error))
        finally:
            done.set()

    is_entered(contextvars.Context())  # whatever is decided once is decided before the race
    thread = threading.Thread(target=runner)
    thread.start()
    start.wait()
    answers = 0
    while not done.is_set():
        is_entered(context)
        answers += 1
    thread.join(30)
    assert failures == [], f"{len(failures)} of {ROUNDS} runs failed while ctxloop asked {answers} times"


@pytest.mark.skipif(
    not CPYTHON, reason="PyPy's chain lists the contexts Context.run entered; a base context is not one"
)
def test_a_context_entered_on_top_of_itself_ends_the_chain() -> None:
    # A thread's base context is current without having been entered; entering
    # it then links it to itself (terminal IPython runs cells so). The chain
    # must end there, not repeat it up to a bound.
    # A bare thread: from 3.14, threading.Thread runs its target inside a Context.run().
    chains: List[Any] = []
    done = threading.Event()

    def in_a_thread() -> None:
        try:
            contextvars.copy_context()  # the thread's base context exists from now on
            base = (entered_chain() or [None])[0]  # it is current, not entered: the only one in the chain
            assert isinstance(base, contextvars.Context)
            chains.append(base.run(entered_chain))
        finally:
            done.set()

    _thread.start_new_thread(in_a_thread, ())
    assert done.wait(30)
    assert chains and chains[0] is not None and 1 <= len(chains[0]) <= 2
