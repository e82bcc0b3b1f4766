"""sentry-sdk's AsyncioIntegration task factory on a ctxloop loop.

sentry-sdk sets a task factory on the running loop that wraps each task's
coroutine in one of its own, which forks sentry's isolation scope and opens a
span for the task. On a ctxloop loop:

* enabling the integration twice wraps tasks once (sentry recognises its own
  factory through ``loop.get_task_factory()``);
* a task given ``context=ctx`` runs sentry's wrapper and the coroutine both in
  ``ctx``: the coroutine sees the scope and span the wrapper set, what it sets
  in a contextvar is in ``ctx`` afterwards, and sentry's per-task state never
  leaks back to the creator.

Events go to an in-memory transport: nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("sentry_sdk", reason="needs sentry-sdk (pip install --group integrations)")

import sentry_sdk
from integ_support import CONTROL_EVERY, REQUEST_ID, ROUTES, pick_route, run_main
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.asyncio import enable_asyncio_integration
from sentry_sdk.transport import Transport

REQUESTS = 100


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return pick_route(request.param)


class MemoryTransport(Transport):
    """Keeps every envelope sentry-sdk would send."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: List[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self, kind: str) -> List[Dict[str, Any]]:
        return [item.payload.json for env in self.envelopes for item in env.items if item.type == kind]


@pytest.fixture
def transport() -> Iterator[MemoryTransport]:
    kept = MemoryTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",  # never contacted: the transport keeps everything
        transport=kept,
        default_integrations=False,
        auto_enabling_integrations=False,
        traces_sample_rate=1.0,
    )
    try:
        yield kept
    finally:
        client = sentry_sdk.get_client()
        client.close()
        sentry_sdk.get_global_scope().set_client(None)


def is_control(number: int) -> bool:
    return number % CONTROL_EVERY == CONTROL_EVERY - 1


async def handle(number: int, creator_scope: Any) -> Tuple[bool, str, str]:
    rid = f"req-{number:03d}"
    scope = sentry_sdk.get_isolation_scope()
    span = sentry_sdk.get_current_span()
    sentry_sdk.set_tag("request_id", rid)  # into the isolation scope sentry's wrapper forked
    REQUEST_ID.set(rid)  # into the context the task runs in
    await asyncio.sleep(0)
    sentry_sdk.capture_message(f"handled {rid}")
    assert span is not None
    return scope is not creator_scope, span.op or "", span.description or ""  # type: ignore[attr-defined]


async def server(enable_twice: bool) -> Dict[str, Any]:
    loop = asyncio.get_running_loop()
    enable_asyncio_integration()
    factory = loop.get_task_factory()
    if enable_twice:
        enable_asyncio_integration()  # again: sentry must see its own factory and do nothing
    creator_scope = sentry_sdk.get_isolation_scope()
    contexts = [contextvars.copy_context() for _ in range(REQUESTS)]
    with sentry_sdk.start_transaction(name="server", op="test"):
        tasks = []
        for number, ctx in enumerate(contexts):
            if is_control(number):
                tasks.append(ctx.run(asyncio.create_task, handle(number, creator_scope)))  # the usual wrong workaround
            else:
                tasks.append(loop.create_task(handle(number, creator_scope), context=ctx))
        seen = await asyncio.gather(*tasks)
    return {
        "factory_is_sentry's": getattr(factory, "_is_sentry_task_factory", False),
        "factory_kept": loop.get_task_factory() is factory,
        "seen": seen,
        "in_ctx": [ctx.get(REQUEST_ID, None) for ctx in contexts],
        "ctx_scope_back": [ctx.run(sentry_sdk.get_isolation_scope) is creator_scope for ctx in contexts],
        "creator_tags": dict(creator_scope._tags),
        "creator_id": REQUEST_ID.get(),
    }


def check_events(transport: MemoryTransport) -> None:
    """Each event carries its own request id; one task span per task: wrapped once."""
    rids = [f"req-{n:03d}" for n in range(REQUESTS)]
    messages = {e["message"]: e["tags"]["request_id"] for e in transport.events("event")}
    assert messages == {f"handled {rid}": rid for rid in rids}
    (transaction,) = transport.events("transaction")
    task_spans = [s for s in transaction["spans"] if s["op"] == "function"]
    assert [s["description"] for s in task_spans] == ["handle"] * REQUESTS


@pytest.mark.timeout(60)
def test_enabled_twice_wraps_once(route: str, loop_name: str, transport: MemoryTransport) -> None:
    result = run_main(route, loop_name, lambda: server(enable_twice=True))
    # sentry recognised its factory (loop.get_task_factory() returns it) and kept it.
    assert result["factory_is_sentry's"]
    assert result["factory_kept"]
    check_events(transport)


@pytest.mark.timeout(60)
def test_task_in_context_runs_wrapper_in_context(route: str, loop_name: str, transport: MemoryTransport) -> None:
    result = run_main(route, loop_name, lambda: server(enable_twice=False))
    rids = [f"req-{n:03d}" for n in range(REQUESTS)]
    # The coroutine ran under sentry's wrapper, in the scope and span it set up
    # (a wrapper run outside the task's context would leave it the creator's).
    assert result["seen"] == [(True, "function", "handle")] * REQUESTS
    # Nothing leaked back: not to the creator, and ctx is back to the creator's scope.
    assert result["creator_tags"] == {}
    assert result["creator_id"] == "-"
    assert result["ctx_scope_back"] == [True] * REQUESTS
    # What the coroutine set is in ctx afterwards; the control's never got there.
    assert result["in_ctx"] == [None if is_control(n) else rid for n, rid in enumerate(rids)]
    assert [result["in_ctx"][n] for n in range(REQUESTS) if is_control(n)] == [None] * (REQUESTS // CONTROL_EVERY)
    check_events(transport)
