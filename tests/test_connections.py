"""The connection corpus: every program on every loop, against CPython 3.15's own traces.

``tests/golden/connections.json`` holds, per program of
``tests/connection_programs.py``, the trace recorded natively with plain
asyncio on CPython 3.15 (``scripts/regen_connections.py``); for the pipe
programs, the trace with the one rule ctxloop keeps beyond 3.15 (C3 for pipes,
with native uvloop's values).

* ``test_ctxloop_loop_matches_reference``: each program on each ctxloop loop
  traces exactly the expected trace. Labels ``base.*`` record the base loop's
  own behaviour (what its exception handler gets, what a failed connection's
  peer reads): those are compared with the plain base loop instead.
* ``test_plain_loop_diverges_as_measured``: the plain loops of this Python
  differ from the reference in exactly the programs measured (kept below as
  data, one comment each), and cannot run exactly the programs listed: a
  corpus that a plain loop passes would prove nothing.
* ``test_table_row_is_caught``: each row of the table of how native loops
  disagree (docs) is seen by a program on the plain loops it names.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Tuple

import connection_programs as corpus
import pytest
from conftest import LOOPS, RLOOP_SELF_PIPE

# rloop 0.5's run_in_executor calls asyncio.iscoroutinefunction, deprecated from 3.14: rloop's warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:'asyncio.iscoroutinefunction' is deprecated:DeprecationWarning:rloop")

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "connections.json")

with open(GOLDEN, encoding="utf-8") as _golden:
    REFERENCE: Dict[str, Any] = json.load(_golden)["programs"]

CPYTHON = sys.implementation.name == "cpython"

# Programs a plain loop cannot run at all (measured; test_plain_loop_diverges_as_measured
# checks each claim on every run). On a ctxloop loop of that base they are skipped, never
# counted as matching, unless the ctxloop loop runs them after all.
UNRUNNABLE: Dict[str, Dict[str, str]] = {
    "asyncio": {},
    "uvloop": {
        "sendfile": "uvloop 0.23 has no loop.sendfile() (NotImplementedError)",
    },
    "rloop": {
        "unix_server": "rloop 0.5 has no create_unix_server() (NotImplementedError)",
        "stream_unix_server": "rloop 0.5 has no create_unix_server() (NotImplementedError)",
        "unix_client": "rloop 0.5 has no create_unix_connection() (NotImplementedError)",
        "ssl_server": "rloop 0.5 has no TLS (NotImplementedError)",
        "ssl_client": "rloop 0.5 has no TLS (NotImplementedError)",
        "start_tls_upgrade": "rloop 0.5 has no start_tls() (NotImplementedError)",
        "sendfile": "rloop 0.5 has no loop.sendfile() (NotImplementedError)",
        "connect_accepted_socket": "rloop 0.5 has no connect_accepted_socket() (NotImplementedError)",
        "set_protocol_upgrade": "rloop 0.5's TCP transport cannot change its protocol (NotImplementedError)",
        "server_factory_raises": corpus.ABORTS["rloop"]["server_factory_raises"],
        "client_factory_raises": corpus.ABORTS["rloop"]["client_factory_raises"],
        "callback_raises": (
            "rloop 0.5 swallows an exception raised by data_received: no exception handler call, "
            "no connection_lost, the connection stays open"
        ),
    },
}

# The programs whose trace differs from the reference on each plain loop, and why
# (python scripts/regen_connections.py --check prints the labels).
PIPES_BEYOND_315 = {
    "read_pipe": "after a resume from another task, the pipe's callbacks run in that task's context",
    "write_pipe": "pause_writing in the writer's context, resume_writing and connection_lost in the writer's/closer's",
    "subprocess_pipes_from_tasks": "stdout after a resume, stdin's end and connection_lost in the calling tasks'",
}
DATAGRAMS_BEYOND_315 = {
    "datagram_endpoints": "datagram_received misses connection_made's value; connection_lost follows close()",
}
ASYNCIO_315 = {**PIPES_BEYOND_315, **DATAGRAMS_BEYOND_315}
ASYNCIO_BEFORE_315 = {
    **ASYNCIO_315,
    "tcp_server": "data_received does not see what connection_made set",
    "unix_server": "data_received does not see what connection_made set",
    "server_started_later": "the connection sees the var at start_serving(), not at create_server()",
    "keepalive_resume": "each request starts in the previous request's context (gh-140947)",
    "tcp_client": "data_received does not see what connection_made set",
    "unix_client": "data_received does not see what connection_made set",
    "client_factory": "the connection's context is taken after the protocol factory ran, not before",
    "connect_accepted_socket": "data_received does not see what connection_made set",
    "close_and_abort_from_task": "connection_lost runs in the context of the task that closed or aborted",
    "pause_and_resume_writing": "resume_writing in the writer's context; eof/connection_lost miss connection_made's",
    "eof_from_peer": "connection_lost in the context of the task that closed",
    "set_protocol_upgrade": "after a resume from the websocket's task, its callbacks run in that task's context",
    "buffered_protocol": "get_buffer/buffer_updated miss connection_made's value, then follow the resuming task",
    "start_tls_upgrade": "after start_tls(), the callbacks run in the context of the task that called it",
    "sendfile": "after sendfile(), data_received runs in the sending task's context",
    "callback_raises": "data_received does not see what connection_made set",
}
# Before 3.12 (and on PyPy) the child watcher is a thread: process_exited runs in its empty context.
ASYNCIO_THREADED_WATCHER = {
    **ASYNCIO_BEFORE_315,
    "subprocess_exec": "process_exited (and so connection_lost) in the watcher thread's empty context",
    "subprocess_shell": "process_exited (and so connection_lost) in the watcher thread's empty context",
}
UVLOOP = {
    "tcp_server": "the next connection's factory and connection_made see the previous connection's values",
    "unix_server": "the next connection's factory and connection_made see the previous connection's values",
    "ssl_server": "the next connection sees the previous one's; connection_lost misses data_received's value",
    "server_started_later": "the connection sees the var at start_serving(), not at create_server()",
    "client_factory": "the connection's context is taken after the protocol factory ran, not before",
    "pause_and_resume_writing": "pause_writing in the connection's context (asyncio 3.15: the writing task's)",
    "write_pipe": "pause_writing in the pipe's context (asyncio: the writing task's)",
}
RLOOP = {
    "read_pipe": PIPES_BEYOND_315["read_pipe"],
    "write_pipe": PIPES_BEYOND_315["write_pipe"],
    "tcp_server": "no server context; every connection in the loop's own context, leaking into the next",
    "server_started_later": "no server context; the connection runs in the loop's own context",
    "stream_server": "the handler does not see the var set before start_server()",
    "keepalive_resume": "no server context: requests start with nothing set",
    "tcp_client": "connection_made in the caller's own context, data_received in an empty one",
    "client_factory": "connection_made in the caller's own context (after the factory), data_received empty",
    "datagram_endpoints": "datagram_received in another endpoint's or an empty context",
    "close_and_abort_from_task": "connection_made in the caller's context; connection_lost in the closer's",
    "pause_and_resume_writing": "no server context: the connection sees nothing set",
    "eof_from_peer": "no server context; connection_lost in the closing task's context",
    "buffered_protocol": "no server context: the connection sees nothing set",
    "subprocess_exec": "process_exited (and so connection_lost) in an empty context",
    "subprocess_shell": "process_exited (and so connection_lost) in an empty context",
    "subprocess_pipes_from_tasks": "process_exited in an empty context",
    "threadsafe_calls": "call_soon_threadsafe runs in the loop's context, not the calling thread's",
    "timers_with_context": "a timer due at once given context=Context() (falsy) runs in a copy of the caller's",
}


def native_divergences(loop_name: str) -> Dict[str, str]:
    """What the plain *loop_name* of this Python gets wrong, as measured."""
    if loop_name == "uvloop":
        return UVLOOP
    if loop_name == "rloop":
        return RLOOP
    if CPYTHON and sys.version_info >= (3, 15):
        return ASYNCIO_315
    if CPYTHON and sys.version_info >= (3, 12):
        return ASYNCIO_BEFORE_315
    return ASYNCIO_THREADED_WATCHER


# The rows of the table (docs/connections.md): (row, loops that get it wrong, program, label).
# A loop is "asyncio<3.15" (asyncio before CPython 3.15, PyPy included), "asyncio", "uvloop" or "rloop".
TABLE_ROWS: List[Tuple[str, Tuple[str, ...], str, str]] = [
    ("a keep-alive request after a resume from a task", ("asyncio<3.15",), "keepalive_resume", "request1.starts_in"),
    ("what connection_made set, seen by data_received", ("asyncio<3.15", "rloop"), "tcp_server", "conn1.data_received"),
    ("one connection's connection_made, seen by the next", ("uvloop",), "tcp_server", "conn2.connection_made"),
    ("a client's data_received sees the caller's vars", ("rloop",), "tcp_client", "client.data_received"),
    ("a client's connection_made, seen by the caller", ("rloop",), "tcp_client", "caller.after_connect"),
    ("a var set before create_server, seen by a connection", ("rloop",), "tcp_server", "conn1.connection_made"),
    ("a read pipe resumed from another task", ("asyncio", "rloop"), "read_pipe", "pipe.after_resume"),
    ("call_soon_threadsafe from another thread", ("rloop",), "threadsafe_calls", "threadsafe.none.sees"),
    ("a timer due at once, given an empty Context()", ("rloop",), "timers_with_context", "later_now.empty.sees"),
]


def _kinds(loop_name: str) -> Tuple[str, ...]:
    if loop_name != "asyncio":
        return (loop_name,)
    if CPYTHON and sys.version_info >= (3, 15):
        return ("asyncio",)
    return ("asyncio", "asyncio<3.15")


# Labels where a ctxloop loop keeps its base loop's own value, which ctxloop
# cannot change (compared with the plain base loop instead of the reference).
UVLOOP_PAUSE_WRITING = (
    "uvloop calls pause_writing, inside write(), in a copy of the connection's context "
    "(CPython 3.15: in the writing task's)"
)
KEPT_FROM_BASE: Dict[str, Dict[Tuple[str, str], str]] = {
    "asyncio": {},
    "uvloop": {
        ("pause_and_resume_writing", "conn.pause_writing"): UVLOOP_PAUSE_WRITING,
        ("write_pipe", "pipe.pause_writing"): UVLOOP_PAUSE_WRITING,
    },
    "rloop": {},
}


def _outcome(name: str, spec: str) -> Any:
    """The trace of *name* on loop *spec*, or the reason it has none."""
    return corpus.run_isolated_if_needed(name, spec)


def _explain(name: str, spec: str, diff: List[str]) -> str:
    entry = REFERENCE[name]
    lines = [f"{name} on {spec} differs from the reference (CPython 3.15, plain asyncio):"]
    lines += [f"    {line}" for line in diff]
    if "extension" in entry:
        lines.append(f"    (reference with the extension beyond 3.15 on {entry['extension']['labels']})")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(corpus.PROGRAMS))
def test_ctxloop_loop_matches_reference(name: str, loop_name: str) -> None:
    spec = f"ctxloop:{loop_name}"
    outcome = _outcome(name, spec)
    reason = corpus.not_run(outcome)
    if reason is not None:
        known = UNRUNNABLE[loop_name].get(name)
        if known is None:
            pytest.fail(f"{name} cannot run on {spec}: {reason}")
        pytest.skip(f"{known} ({name} on {spec}: {reason})")
    expected = REFERENCE[name]["expected"]
    kept = {label for (program, label) in KEPT_FROM_BASE[loop_name] if program == name}
    diff = corpus.difference(
        {label: value for label, value in outcome.items() if label not in kept},
        {label: value for label, value in expected.items() if label not in kept},
    )
    assert not diff, _explain(name, spec, diff)
    base_labels = sorted(label for label in expected if label.startswith("base.") or label in kept)
    if base_labels:
        plain = _outcome(name, loop_name)
        assert not isinstance(plain, str), f"{name} runs on {spec} but not on plain {loop_name}: {plain}"
        assert {label: outcome.get(label) for label in base_labels} == {
            label: plain.get(label) for label in base_labels
        }, f"{name}: the base loop's own behaviour differs under ctxloop"


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "plain", [pytest.param(name, marks=pytest.mark.filterwarnings(RLOOP_SELF_PIPE)) for name in LOOPS]
)
def test_plain_loop_diverges_as_measured(plain: str) -> None:
    differ: Dict[str, List[str]] = {}
    unrunnable: Dict[str, str] = {}
    for name in corpus.PROGRAMS:
        outcome = _outcome(name, plain)
        reason = corpus.not_run(outcome)
        if reason is not None:
            unrunnable[name] = reason
            continue
        diff = corpus.difference(outcome, REFERENCE[name]["expected"])
        if diff:
            differ[name] = diff
    assert sorted(unrunnable) == sorted(UNRUNNABLE[plain]), unrunnable
    expected = native_divergences(plain)
    unexplained = {name: differ[name] for name in differ if name not in expected}
    missed = sorted(name for name in expected if name not in differ)
    assert not unexplained and not missed, (
        f"plain {plain}: programs that differ but are not listed: {json.dumps(unexplained, indent=1)}; "
        f"listed but now match the reference: {missed}"
    )


@pytest.mark.parametrize("row, wrong_on, name, label", TABLE_ROWS, ids=[row[0] for row in TABLE_ROWS])
@pytest.mark.parametrize(
    "plain", [pytest.param(name, marks=pytest.mark.filterwarnings(RLOOP_SELF_PIPE)) for name in LOOPS]
)
def test_table_row_is_caught(plain: str, row: str, wrong_on: Tuple[str, ...], name: str, label: str) -> None:
    if not set(_kinds(plain)) & set(wrong_on):
        pytest.skip(f"plain {plain} on this Python keeps this row")
    outcome = _outcome(name, plain)
    assert not isinstance(outcome, str), outcome
    expected = REFERENCE[name]["expected"]
    assert outcome.get(label) != expected[label], f"{row}: {name} does not see it on plain {plain}"
