"""OpenTelemetry spans across tasks with and without context=: every parent as on native 3.12.

Each of a few hundred concurrent requests has a Context of its own. A session
task given that context opens a ``session`` span and leaves it current there;
the request, run in the same context, then opens a ``request`` span whose
parent is the session, and starts two tasks (no ``context=``, and a copy) whose
spans are children of the request. The negative control opens the session
with ``ctx.run(asyncio.create_task, coro)``: the span it makes current lands
in a copy, so the request's span has no parent.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Dict, List, Optional, Tuple

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs opentelemetry-sdk (pip install --group integrations)")

from integ_support import CONTROL_EVERY, ROUTES, pick_route, run_main
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REQUESTS = 200


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return pick_route(request.param)


def is_control(number: int) -> bool:
    return number % CONTROL_EVERY == CONTROL_EVERY - 1


def make_scenario(tracer: trace.Tracer) -> Any:
    async def open_session(number: int) -> trace.Span:
        await asyncio.sleep(0)
        span = tracer.start_span(f"session-{number}")
        otel_context.attach(trace.set_span_in_context(span))  # stays current in this context
        return span

    async def step(name: str) -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0)

    async def request(number: int) -> None:
        loop = asyncio.get_running_loop()
        with tracer.start_as_current_span(f"request-{number}"):
            await asyncio.gather(
                loop.create_task(step(f"plain-{number}")),  # no context=: a copy taken now
                loop.create_task(step(f"copy-{number}"), context=contextvars.copy_context()),
            )

    async def server() -> List[Optional[str]]:
        loop = asyncio.get_running_loop()
        contexts = [contextvars.copy_context() for _ in range(REQUESTS)]
        opened = []
        for number, ctx in enumerate(contexts):
            if is_control(number):
                opened.append(ctx.run(asyncio.create_task, open_session(number)))  # the usual wrong workaround
            else:
                opened.append(loop.create_task(open_session(number), context=ctx))
        sessions = await asyncio.gather(*opened)
        await asyncio.gather(*(loop.create_task(request(n), context=ctx) for n, ctx in enumerate(contexts)))
        # What is current in each request's context afterwards: its session (the
        # request span ended and was detached), or nothing for the control.
        current = []
        for ctx in contexts:
            span = ctx.run(trace.get_current_span)
            current.append(span.name if span.is_recording() else None)  # type: ignore[attr-defined]
        for span in sessions:
            span.end()
        assert not trace.get_current_span().is_recording()  # the server's own context: untouched
        return current

    return server


def parents(spans: Tuple[ReadableSpan, ...]) -> Dict[str, Optional[str]]:
    """Each span's name -> its parent's name (None for a root); one trace per tree."""
    by_id = {span.context.span_id: span for span in spans}  # type: ignore[union-attr]
    tree: Dict[str, Optional[str]] = {}
    for span in spans:
        parent = by_id[span.parent.span_id] if span.parent is not None else None
        if parent is not None:
            assert parent.context.trace_id == span.context.trace_id  # type: ignore[union-attr]
        tree[span.name] = parent.name if parent is not None else None
    return tree


def expected_parents() -> Dict[str, Optional[str]]:
    tree: Dict[str, Optional[str]] = {}
    for number in range(REQUESTS):
        tree[f"session-{number}"] = None
        tree[f"request-{number}"] = None if is_control(number) else f"session-{number}"
        tree[f"plain-{number}"] = tree[f"copy-{number}"] = f"request-{number}"
    return tree


def run_scenario(run: Any) -> Tuple[Dict[str, Optional[str]], List[Optional[str]]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        current = run(make_scenario(provider.get_tracer("ctxloop-integration")))
        return parents(exporter.get_finished_spans()), current
    finally:
        provider.shutdown()


@pytest.mark.timeout(60)
def test_span_parents(route: str, loop_name: str) -> None:
    tree, current = run_scenario(lambda server: run_main(route, loop_name, server))
    assert tree == expected_parents()
    assert current == [None if is_control(n) else f"session-{n}" for n in range(REQUESTS)]
    # The control really lost the session: its requests are roots.
    assert [tree[f"request-{n}"] for n in range(REQUESTS) if is_control(n)] == [None] * (REQUESTS // CONTROL_EVERY)
