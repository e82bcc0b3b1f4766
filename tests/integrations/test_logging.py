"""structlog's bind_contextvars and a stdlib logging filter, across tasks with and without context=.

A "server" runs a few hundred requests concurrently, each in a Context of its
own (``loop.create_task(request(), context=ctx)``). Authentication runs first, as
a task given the request's context: the user it binds is in that context
afterwards, so every later line of the request carries it. Tasks the request
starts without ``context=`` or with a copy see the request's bindings, and
what they bind stays in their copy.

The negative control authenticates with the usual wrong workaround,
``ctx.run(asyncio.create_task, coro)``: the task runs in a copy of ``ctx``, so
the user it binds never reaches the request.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Dict, Iterator, List

import pytest

pytest.importorskip("structlog", reason="needs structlog (pip install --group integrations)")

import structlog
from integ_support import CONTROL_EVERY, REQUEST_ID, ROUTES, collect_log, pick_route, run_main
from structlog.contextvars import bind_contextvars, get_contextvars, merge_contextvars

REQUESTS = 200


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return pick_route(request.param)


@pytest.fixture
def events() -> Iterator[List[Dict[str, Any]]]:
    """structlog configured with merge_contextvars; every event dict is kept here."""
    kept: List[Dict[str, Any]] = []

    def keep(logger: Any, method: str, event_dict: Dict[str, Any]) -> Dict[str, Any]:
        kept.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[merge_contextvars, keep], cache_logger_on_first_use=False)
    try:
        yield kept
    finally:
        structlog.reset_defaults()


def is_control(number: int) -> bool:
    return number % CONTROL_EVERY == CONTROL_EVERY - 1


async def authenticate(number: int) -> None:
    await asyncio.sleep(0)
    bind_contextvars(user=f"user-{number}")


async def child(kind: str) -> None:
    await asyncio.sleep(0)
    bind_contextvars(child=kind)  # in the child's copy only
    structlog.get_logger().info("child")
    std_log().info("child %s", kind)


def std_log() -> Any:
    import logging

    return logging.getLogger("integ.std")


async def request(number: int) -> None:
    rid = f"req-{number:03d}"
    bind_contextvars(request_id=rid)
    REQUEST_ID.set(rid)
    log = structlog.get_logger()
    log.info("start")
    std_log().info("start")
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        loop.create_task(child("plain")),  # no context=: a copy taken now
        loop.create_task(child("copy"), context=contextvars.copy_context()),
    )
    log.info("end")


async def server() -> List[contextvars.Context]:
    loop = asyncio.get_running_loop()
    contexts = [contextvars.copy_context() for _ in range(REQUESTS)]
    logins = []
    for number, ctx in enumerate(contexts):
        if is_control(number):
            logins.append(ctx.run(asyncio.create_task, authenticate(number)))  # the usual wrong workaround
        else:
            logins.append(loop.create_task(authenticate(number), context=ctx))
    await asyncio.gather(*logins)
    await asyncio.gather(*(loop.create_task(request(n), context=ctx) for n, ctx in enumerate(contexts)))
    assert get_contextvars() == {}  # the server's own context: untouched
    return contexts


@pytest.mark.timeout(60)
def test_bind_contextvars_and_logging_filter(route: str, loop_name: str, events: List[Dict[str, Any]]) -> None:
    with collect_log("integ.std") as std_lines:
        contexts = run_main(route, loop_name, server)

    expected_events: List[Dict[str, Any]] = []
    expected_lines: List[str] = []
    for number, ctx in enumerate(contexts):
        rid = f"req-{number:03d}"
        bound = {"request_id": rid} if is_control(number) else {"request_id": rid, "user": f"user-{number}"}
        # What the tasks given ctx bound is in ctx afterwards; the children's copies are not.
        assert ctx.run(get_contextvars) == bound
        expected_events += [
            {**bound, "event": "start"},
            {**bound, "child": "plain", "event": "child"},
            {**bound, "child": "copy", "event": "child"},
            {**bound, "event": "end"},
        ]
        expected_lines += [f"{rid} start", f"{rid} child plain", f"{rid} child copy"]

    def key(event: Dict[str, Any]) -> str:
        return repr(sorted(event.items()))

    assert sorted(map(key, events)) == sorted(map(key, expected_events))
    assert sorted(std_lines) == sorted(expected_lines)
    # The control really lost the user: its requests' lines have none.
    controls = [e for e in events if is_control(int(e["request_id"][4:]))]
    assert controls
    assert all("user" not in e for e in controls)
