"""What the integration tests share: request ids in logs, the routes onto a ctxloop loop, an HTTP client.

A *route* is how the application gets a ctxloop loop:

* ``policy``: ``ctxloop.install(loop_name)`` and then the framework's own ``asyncio.run``;
* ``loop_factory``: ``ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))``,
  or the framework's own loop option given a ctxloop factory;
* ``native``: no ctxloop at all, asyncio's own ``context=`` on a plain loop: the
  reference behaviour (Python 3.12+), so that every scenario is first shown to
  pass where CPython does the work itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import importlib.util
import logging
import sys
import threading
import warnings
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, TypeVar, Union

import pytest

import ctxloop

T = TypeVar("T")

LOOPS = ["asyncio"] + [name for name in ("uvloop", "rloop") if importlib.util.find_spec(name)]
NATIVE = sys.version_info >= (3, 12)
NATIVE_REASON = "the native reference (asyncio's own context= and Task.get_context()) needs Python 3.12+"


ROUTES = ["policy", "loop_factory", "native"]


def pick_route(name: str) -> str:
    """A route fixture's value: ``native`` is skipped before Python 3.12."""
    if name == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    return name


# Requests hammered at each server, and how many of them use the usual wrong
# workaround (every CONTROL_EVERY-th): bounded, so every test ends quickly.
REQUESTS = 100
CONTROL_EVERY = 10
CLIENT_TIMEOUT = 30.0

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class LineCollector(logging.Handler):
    """Keeps every formatted record, in order (thread-safe: Handler.handle locks)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def log_handler(handler: logging.Handler) -> logging.Handler:
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    return handler


@contextlib.contextmanager
def collect_log(name: str) -> Iterator[List[str]]:
    """Collect the lines logged to logger *name* as ``"<request id> <message>"``."""
    logger = logging.getLogger(name)
    handler = log_handler(LineCollector())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler.lines  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def base_loop_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of plain loops (no ctxloop)."""
    if loop_name != "asyncio":
        return importlib.import_module(loop_name).new_event_loop  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop


@contextlib.contextmanager
def policy_warnings() -> Iterator[None]:
    # Python 3.14 deprecates event loop policies: setting one warns, as
    # asyncio.set_event_loop_policy does. That warning is the policy route's
    # own business (tested with ctxloop's core), not the integration's.
    with warnings.catch_warnings():
        if sys.version_info >= (3, 14):
            warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


@contextlib.contextmanager
def installed(loop_name: str) -> Iterator[None]:
    """``ctxloop.install(loop_name)`` for the duration, then ``uninstall()``."""
    with policy_warnings():
        ctxloop.install(loop_name)
    try:
        yield
    finally:
        with policy_warnings():
            ctxloop.uninstall()


def run_main(route: str, loop_name: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` as the main task of a fresh loop reached by *route*."""
    if route == "policy":
        with installed(loop_name):
            return asyncio.run(main())  # type: ignore[arg-type]
    if route == "loop_factory":
        return ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))  # type: ignore[arg-type]
    assert route == "native", route
    return asyncio.run(main(), loop_factory=base_loop_factory(loop_name))  # type: ignore[arg-type, call-arg]


# ---------------------------------------------------------------------------
# The HTTP exchange every server test makes, and what it must show.


def request_ids(count: int = REQUESTS) -> List[Dict[str, str]]:
    """The requests: an id each; every CONTROL_EVERY-th uses the wrong workaround."""
    return [
        {"x-request-id": f"req-{i:03d}", "x-mode": "ctx-run" if i % CONTROL_EVERY == CONTROL_EVERY - 1 else "context"}
        for i in range(count)
    ]


async def _hammer_httpx(port: int, requests: List[Dict[str, str]]) -> List[Dict[str, Any]]:
    import httpx

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:

        async def one(number: int, headers: Dict[str, str]) -> Dict[str, Any]:
            response = await client.get(f"http://127.0.0.1:{port}/work/{number}", headers=headers)
            body = response.json() if response.status_code == 200 else response.text
            return {"status": response.status_code, "header": response.headers.get("x-request-id"), "body": body}

        return list(await asyncio.gather(*(one(n, h) for n, h in enumerate(requests))))


async def _hammer_aiohttp(port: int, requests: List[Dict[str, str]]) -> List[Dict[str, Any]]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(number: int, headers: Dict[str, str]) -> Dict[str, Any]:
            async with session.get(f"http://127.0.0.1:{port}/work/{number}", headers=headers) as response:
                body = await response.json() if response.status == 200 else await response.text()
                return {"status": response.status, "header": response.headers.get("x-request-id"), "body": body}

        return list(await asyncio.gather(*(one(n, h) for n, h in enumerate(requests))))


Hammer = Callable[[int, Any], Awaitable[List[Dict[str, Any]]]]


class Client:
    """Sends the requests from a thread of its own, on a plain asyncio loop, then calls *stop*.

    *kind* is ``"httpx"``, ``"aiohttp"`` or an ``async (port, requests) -> results``
    function of its own. ``port`` is either known at once or handed over later
    with ``set_port`` (a server that binds port 0 itself says which it got).
    """

    def __init__(self, kind: Union[str, Hammer], stop: Callable[[], None], requests: Optional[Any] = None) -> None:
        self.requests = request_ids() if requests is None else requests
        self._hammer: Hammer
        if callable(kind):
            self._hammer = kind
        else:
            self._hammer = _hammer_httpx if kind == "httpx" else _hammer_aiohttp
        self._stop = stop
        self._port: Optional[int] = None
        self._port_known = threading.Event()
        self.results: List[Dict[str, Any]] = []
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="integration-client", daemon=True)

    def start(self, port: Optional[int] = None) -> "Client":
        if port is not None:
            self.set_port(port)
        self._thread.start()
        return self

    def set_port(self, port: int) -> None:
        self._port = port
        self._port_known.set()

    def _run(self) -> None:
        try:
            if not self._port_known.wait(CLIENT_TIMEOUT):
                raise TimeoutError("the server never said which port it listens on")
            assert self._port is not None
            loop = asyncio.SelectorEventLoop()  # plain: the client is not under test
            try:
                self.results = loop.run_until_complete(self._hammer(self._port, self.requests))
            finally:
                loop.close()
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self._stop()

    def join(self) -> List[Dict[str, Any]]:
        self._thread.join(CLIENT_TIMEOUT * 2)
        assert not self._thread.is_alive(), "the client did not finish"
        if self.error is not None:
            raise self.error
        return self.results


def expected_log(headers: Dict[str, str]) -> List[str]:
    """The lines one request logs, sorted: each carries the request's own id."""
    rid = headers["x-request-id"]
    # The access line is the middleware's, after the handler's task finished:
    # what the handler's own-context task set is visible there only when the
    # handler ran in the request's context itself (context=), not in a copy.
    outcome = f"done {rid}" if headers["x-mode"] == "context" else "unset"
    lines = ["handler", "copy task", "own task", "plain task", f"access outcome={outcome} copy_note=unset"]
    return sorted(f"{rid} {line}" for line in lines)


def check_exchange(requests: List[Dict[str, str]], results: List[Dict[str, Any]], log_lines: List[str]) -> None:
    """Every response and every log line carries its own request id; the control shows the failure."""
    assert len(results) == len(requests)
    for headers, result in zip(requests, results):
        rid = headers["x-request-id"]
        assert result["status"] == 200, (rid, result)
        assert result["header"] == rid, (rid, result)
        # Every task the handler started saw the request's id; the handler saw
        # what its own-context task set (in either mode: it is that context).
        assert result["body"] == {
            "handler": rid,
            "copy": rid,
            "own": rid,
            "plain": rid,
            "outcome": f"done {rid}",
        }, (rid, result)
    by_request: Dict[str, List[str]] = {}
    for line in log_lines:
        by_request.setdefault(line.split(" ", 1)[0], []).append(line)
    assert "-" not in by_request, by_request.get("-")
    assert sorted(by_request) == sorted(h["x-request-id"] for h in requests)
    for headers in requests:
        assert sorted(by_request[headers["x-request-id"]]) == expected_log(headers)
    # The negative control: ctx.run(loop.create_task, coro) gives the handler
    # a copy of the request's context, so the middleware never sees what the
    # handler's task set there. It really happened, in every such request:
    controls = [h for h in requests if h["x-mode"] == "ctx-run"]
    assert controls
    for headers in controls:
        assert f"{headers['x-request-id']} access outcome=unset copy_note=unset" in by_request[headers["x-request-id"]]


# ---------------------------------------------------------------------------
# The application logic both servers run (framework-free): a request-id
# middleware runs the handler in the request's context, and the handler starts
# background tasks with loop.create_task(..., context=...).

APP_LOG = logging.getLogger("integ.app")
OUTCOME: contextvars.ContextVar[str] = contextvars.ContextVar("outcome", default="unset")
COPY_NOTE: contextvars.ContextVar[str] = contextvars.ContextVar("copy_note", default="unset")


async def _note(what: str) -> str:
    await asyncio.sleep(0)
    APP_LOG.info(what)
    COPY_NOTE.set("leaked")  # a copy's change: never seen by the request
    return REQUEST_ID.get()


async def _finish() -> str:
    await asyncio.sleep(0)
    APP_LOG.info("own task")
    OUTCOME.set(f"done {REQUEST_ID.get()}")  # the request's context: seen afterwards
    return REQUEST_ID.get()


def start(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> "asyncio.Task[Any]":
    """``loop.create_task(coro, **kwargs)``; a refused coroutine is closed (no "never awaited" noise)."""
    try:
        return loop.create_task(coro, **kwargs)
    except BaseException:
        coro.close()
        raise


async def work() -> Dict[str, str]:
    """The handler: three background tasks, each logging with the request's id."""
    loop = asyncio.get_running_loop()
    own = asyncio.current_task().get_context()  # type: ignore[union-attr]  # the context this request runs in
    APP_LOG.info("handler")
    tasks = [
        start(loop, _note("copy task"), context=contextvars.copy_context()),  # a copy of the request's context
        start(loop, _finish(), context=own),  # the request's own context
        start(loop, _note("plain task")),  # no context=: a copy taken now
    ]
    copy, own_seen, plain = await asyncio.gather(*tasks)
    return {"handler": REQUEST_ID.get(), "copy": copy, "own": own_seen, "plain": plain, "outcome": OUTCOME.get()}


async def in_request_context(rid: str, mode: str, call: Callable[[], Awaitable[T]]) -> T:
    """The middleware: set the request id, run the rest of the request in a context of its own.

    ``mode == "context"``: ``loop.create_task(call(), context=ctx)``, so the
    handler runs in ``ctx`` itself; ``"ctx-run"``: the usual wrong workaround,
    ``ctx.run(loop.create_task, call())``, which runs it in a copy of ``ctx``.
    """
    REQUEST_ID.set(rid)
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    if mode == "ctx-run":  # noqa: SIM108 - the two ways side by side
        task = ctx.run(start, loop, call())
    else:
        task = start(loop, call(), context=ctx)
    try:
        return await task  # type: ignore[no-any-return]
    finally:
        APP_LOG.info("access outcome=%s copy_note=%s", ctx.get(OUTCOME, "unset"), ctx.get(COPY_NOTE, "unset"))


def log_to_stdout() -> None:
    """For a server in a subprocess: the application's log lines go to stdout."""
    handler = log_handler(logging.StreamHandler(sys.stdout))
    APP_LOG.addHandler(handler)
    APP_LOG.setLevel(logging.INFO)
    APP_LOG.propagate = False
