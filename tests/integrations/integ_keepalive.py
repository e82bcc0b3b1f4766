"""Keep-alive requests with large bodies: does a request start with another request's contextvars?

A server that pauses reading while a request's body fills its buffer and
resumes reading from the request's own task (uvicorn over 64 KiB of body;
aiohttp over twice its read_bufsize of unread body) re-registers the
connection's reader in that task's context on asyncio before Python 3.15
(cpython gh-140947): the connection's next ``data_received`` runs there, and
a server that starts the next request's task from ``data_received``
(uvicorn) gives that request a copy of the previous request's context.

The application here reads ``SEEN`` at the start of every request, answers
with what it read, and then sets it to the request's id before reading the
body. The code that creates the server sets ``SEEN`` to ``"server"`` first
(C1: every connection runs in a copy of the context its server was created
in). So each request sees ``"server"`` (clean), another request's id (a
leak), or the default ``"unset"`` (the server's context was lost).
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import json
import sys
from typing import Any, Awaitable, Callable, Dict, List, NamedTuple, Tuple

import pytest

import ctxloop

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")
SERVER_VALUE = "server"

# Well over uvicorn's 64 KiB: every request's body pauses reading at least
# once, whatever the socket's chunks.
BODY_SIZE = 512 * 1024
CONNECTIONS = 2
REQUESTS_PER_CONNECTION = 6
IO_TIMEOUT = 30.0

# What the loops do natively, measured (see the tests' expectations).
PLAIN_ASYNCIO_LEAKS = sys.version_info < (3, 15)  # gh-140947, fixed in 3.15


class LoopKind(NamedTuple):
    """The server's loop: a ctxloop loop on *base*, or the plain *base* loop."""

    ctxloop: bool
    base: str

    @property
    def id(self) -> str:
        return f"{'ctxloop' if self.ctxloop else 'plain'}-{self.base}"

    def factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        if self.ctxloop:
            import ctxloop.loops

            return getattr(ctxloop.loops, f"{self.base}_loop")  # type: ignore[no-any-return]
        if self.base == "asyncio":
            return asyncio.SelectorEventLoop
        return importlib.import_module(self.base).new_event_loop  # type: ignore[no-any-return]

    def uvicorn_loop(self) -> str:
        """The ``--loop`` value that gives uvicorn (0.36+) this loop."""
        if self.ctxloop:
            return f"ctxloop.loops:{self.base}_loop"
        return {"asyncio": "asyncio", "uvloop": "uvloop"}.get(self.base, f"{self.base}:new_event_loop")


LOOP_KINDS = [LoopKind(wrapped, base) for wrapped in (True, False) for base in ("asyncio", "uvloop", "rloop")]
LOOP_PACKAGE_REASONS = {
    "uvloop": "uvloop is not installed (CPython only)",
    "rloop": "rloop is not installed (CPython 3.10+ only)",
}


# rloop 0.5 drops its self-pipe sockets unclosed at the end of every run (the
# warning is raised in rloop's own frame): a filter for each test using rloop.
RLOOP_SOCKETS = r"ignore:unclosed <socket\.socket:ResourceWarning:rloop\.loop"


def loop_kind(request: pytest.FixtureRequest) -> LoopKind:
    """A loop-kind fixture's value: skipped when its loop package is missing."""
    kind: LoopKind = request.param
    if kind.base != "asyncio" and importlib.util.find_spec(kind.base) is None:
        pytest.skip(LOOP_PACKAGE_REASONS[kind.base])
    if kind.ctxloop and kind.base == "rloop":
        import ctxloop.loops

        if not hasattr(ctxloop.loops, "rloop_loop"):
            pytest.skip("this ctxloop has no ctxloop.loops.rloop_loop")
    return kind


def request_plan(connections: int = CONNECTIONS, per_connection: int = REQUESTS_PER_CONNECTION) -> List[List[str]]:
    """The request ids, one list per keep-alive connection, sent in order on it."""
    return [[f"c{c}-r{r}" for r in range(per_connection)] for c in range(connections)]


# ---------------------------------------------------------------------------
# The applications: read SEEN, answer with it, set SEEN to the request's id.

Scope = Dict[str, Any]
Message = Dict[str, Any]


async def asgi_app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """An ASGI app: what it saw at its start, then the request's id set, then the body read."""
    if scope["type"] != "http":
        return
    seen = SEEN.get()
    rid = dict(scope["headers"]).get(b"x-request-id", b"-").decode()
    SEEN.set(rid)  # before reading the body: the task that resumes reading has it set
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"id": rid, "seen": seen, "size": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# aiohttp pauses reading once more than twice its read_bufsize of a request's
# body is buffered unread (read_bufsize: 64 KiB up to aiohttp 3.13, 256 KiB
# from 3.14), and resumes when the handler has read it down to read_bufsize.
# A handler that reads as the data arrives may never let that much pile up on
# loopback, so this one waits until it has; the bodies are larger than that.
AIOHTTP_BODY_SIZE = 1024 * 1024


def make_aiohttp_app() -> Any:
    """The same application for aiohttp's web server (which must keep its default read_bufsize)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        seen = SEEN.get()
        rid = request.headers.get("x-request-id", "-")
        SEEN.set(rid)
        high_water = request.content.get_read_buffer_limits()[1]
        while request.content.total_bytes <= high_water and not request.content.is_eof():
            await asyncio.sleep(0)  # the protocol pauses reading once this much is buffered
        size = len(await request.read())
        return web.json_response({"id": rid, "seen": seen, "size": size})

    app = web.Application(client_max_size=2 * AIOHTTP_BODY_SIZE)
    app.router.add_post("/{tail:.*}", handler)
    return app


# ---------------------------------------------------------------------------
# The client: raw HTTP/1.1 on asyncio streams, one task per connection, its
# requests one after the other on that connection (keep-alive).


async def _read_response(reader: asyncio.StreamReader) -> Dict[str, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    assert "content-length" in headers, head
    body = await reader.readexactly(int(headers["content-length"]))
    assert status_line.split()[1] == "200", (status_line, body)
    assert headers.get("connection", "keep-alive").lower() != "close", head
    return json.loads(body)  # type: ignore[no-any-return]


async def _one_connection(port: int, ids: List[str], body: bytes) -> List[Dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for rid in ids:
            head = (
                f"POST /{rid} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-request-id: {rid}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            answers.append(await asyncio.wait_for(_read_response(reader), IO_TIMEOUT))
    finally:
        writer.close()
    return answers


async def exchange(port: int, plan: List[List[str]], body_size: int = BODY_SIZE) -> List[Dict[str, Any]]:
    """Send every connection's requests (connections in parallel); every answer, in plan order."""
    body = b"x" * body_size
    per_connection = await asyncio.gather(*(_one_connection(port, ids, body) for ids in plan))
    return [answer for answers in per_connection for answer in answers]


class Tally(NamedTuple):
    """What the requests saw at their start."""

    clean: int  # the server's value
    leaked: List[Tuple[str, str]]  # (request, the other request whose value it saw)
    lost: List[str]  # requests that saw the default: not even the server's value


def tally(plan: List[List[str]], answers: List[Dict[str, Any]], body_size: int = BODY_SIZE) -> Tally:
    """Sort the answers into clean, leaked and lost; check that every request was answered whole."""
    expected = [rid for ids in plan for rid in ids]
    assert [a["id"] for a in answers] == expected
    assert {a["size"] for a in answers} == {body_size}
    clean = sum(1 for a in answers if a["seen"] == SERVER_VALUE)
    leaked = [(a["id"], a["seen"]) for a in answers if a["seen"] in expected]
    lost = [a["id"] for a in answers if a["seen"] == "unset"]
    assert clean + len(leaked) + len(lost) == len(answers), answers
    return Tally(clean, leaked, lost)


def run_on(kind: LoopKind, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` as the main task of a new loop of *kind* (``ctxloop.run`` or plain)."""
    if kind.ctxloop:
        return ctxloop.run(main(), loop_factory=kind.factory())  # type: ignore[arg-type]
    loop = kind.factory()()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class FlowCounters:
    """How often a server paused reading, and how often a task resumed it: the path under test was taken."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed_from_task = 0


def count_flow_control(monkeypatch: pytest.MonkeyPatch, cls: type, flag: str) -> FlowCounters:
    """Count *cls*'s ``pause_reading``/``resume_reading`` calls that flip its boolean attribute *flag*."""
    counters = FlowCounters()
    pause, resume = cls.pause_reading, cls.resume_reading  # type: ignore[attr-defined]

    def counted_pause(self: Any, *args: Any, **kwargs: Any) -> Any:
        before = getattr(self, flag)
        try:
            return pause(self, *args, **kwargs)
        finally:
            counters.paused += not before and getattr(self, flag)

    def counted_resume(self: Any, *args: Any, **kwargs: Any) -> Any:
        before = getattr(self, flag)
        try:
            return resume(self, *args, **kwargs)
        finally:
            if before and not getattr(self, flag) and _in_task():
                counters.resumed_from_task += 1

    monkeypatch.setattr(cls, "pause_reading", counted_pause)
    monkeypatch.setattr(cls, "resume_reading", counted_resume)
    return counters


def _in_task() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:
        return False


class Native(NamedTuple):
    """What a server on a plain loop shows, measured."""

    leaks: bool  # some requests see the previous request's values
    loses_server_context: bool  # every request sees the default, not what was set before the server started


def native(server: str, base: str) -> Native:
    """The measured native outcome of *server* on the plain *base* loop.

    * uvicorn starts each request's task from ``data_received``: on asyncio
      before 3.15 that is the previous request's task context (gh-140947);
    * aiohttp starts each request's task from the connection's own task, so
      the context ``data_received`` runs in never reaches a handler;
    * rloop 0.5 runs an accepted connection's callbacks in the loop's context,
      not in the context the server was created in.
    """
    return Native(
        leaks=server == "uvicorn" and base == "asyncio" and PLAIN_ASYNCIO_LEAKS,
        loses_server_context=base == "rloop",
    )


def expect(kind: LoopKind, server: str, result: Tally, plan: List[List[str]], counters: FlowCounters) -> None:
    """ctxloop loops: every request starts in the server's context (C1, C3); plain loops: as measured."""
    everyone = [rid for ids in plan for rid in ids]
    # Shown with pytest -rP: the figures behind the assertions below.
    print(f"{server} on {kind.id}: {result.clean} clean, {len(result.leaked)} leaked, {len(result.lost)} lost")
    # Every request's body paused reading, and a request's task resumed it.
    assert counters.paused >= len(everyone), vars(counters)
    assert counters.resumed_from_task >= len(everyone), vars(counters)
    if kind.ctxloop:
        assert result.leaked == [], result
        if server == "aiohttp" and kind.base == "rloop":
            # A known limit (docs/connections.md): on rloop ctxloop binds each
            # protocol's callbacks to its connection's context, and aiohttp's
            # protocol has __slots__ and no instance dictionary to bind them
            # in: its requests keep rloop's own (empty) context.
            assert result.lost == everyone, result
            return
        assert result.lost == [], result
        assert result.clean == len(everyone)
        return
    outcome = native(server, kind.base)
    if outcome.leaks:
        # The negative control: the bug this loop exists to remove, on this very server.
        assert len(result.leaked) > 0, result
    else:
        assert result.leaked == [], result
    assert result.lost == (everyone if outcome.loses_server_context else []), result
