"""An aiohttp app on a ctxloop loop, hit by a few hundred concurrent requests (aiohttp's client).

Routes onto the loop:

* ``policy``: ``ctxloop.install(loop)`` and ``web.run_app(app)`` (which asks the policy for its loop);
* ``run_app_loop``: ``web.run_app(app, loop=ctxloop.new_event_loop(loop))``;
* ``loop_factory``: ``ctxloop.run(main(), loop_factory=...)`` with ``web.AppRunner`` and a site;
* ``native``: ``web.run_app(app, loop=<plain loop>)``, no ctxloop: the reference, Python 3.12+.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from typing import Any, List, Optional

import pytest

pytest.importorskip("aiohttp", reason="needs aiohttp (pip install --group integrations)")

from aiohttp import web
from integ_aiohttp import make_app
from integ_keepalive import (
    AIOHTTP_BODY_SIZE,
    LOOP_KINDS,
    RLOOP_SOCKETS,
    SEEN,
    SERVER_VALUE,
    LoopKind,
    count_flow_control,
    exchange,
    expect,
    loop_kind,
    make_aiohttp_app,
    request_plan,
    run_on,
    tally,
)
from integ_support import (
    NATIVE,
    NATIVE_REASON,
    Client,
    base_loop_factory,
    check_exchange,
    collect_log,
    installed,
)

import ctxloop

ROUTES = ["policy", "run_app_loop", "loop_factory", "native"]


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    if request.param == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    return request.param  # type: ignore[no-any-return]


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def _graceful_exit() -> None:
    raise web.GracefulExit()  # what aiohttp's own SIGINT handler raises: run_app returns


# rloop logs an exception raised in a callback or signal handler instead of
# letting it out of run_until_complete, even a SystemExit such as aiohttp's
# GracefulExit: web.run_app on rloop does not stop (on a signal either).
RUN_APP_ON_RLOOP = "web.run_app cannot be stopped on rloop (it swallows the GracefulExit raised in a callback)"


@pytest.mark.timeout(120)
def test_request_ids(route: str, loop_name: str) -> None:
    if loop_name == "rloop" and route != "loop_factory":
        pytest.skip(RUN_APP_ON_RLOOP)
    sock = listening_socket()
    port = sock.getsockname()[1]
    app = make_app()
    server_loop: List[asyncio.AbstractEventLoop] = []
    stopped: List[Optional[asyncio.Event]] = [None]

    async def remember_loop(app: web.Application) -> None:
        server_loop.append(asyncio.get_running_loop())

    app.on_startup.append(remember_loop)

    def stop() -> None:  # from the client's thread
        for loop in server_loop:
            if route == "loop_factory":
                event = stopped[0]
                assert event is not None
                loop.call_soon_threadsafe(event.set)
            else:
                loop.call_soon_threadsafe(_graceful_exit)

    run_app_options: Any = {"sock": sock, "print": None, "access_log": None, "handle_signals": False}
    with collect_log("integ.app") as log_lines:
        client = Client("aiohttp", stop=stop).start(port)
        try:
            if route == "policy":
                with installed(loop_name):
                    web.run_app(app, **run_app_options)
            elif route == "run_app_loop":
                web.run_app(app, loop=ctxloop.new_event_loop(loop_name), **run_app_options)
            elif route == "native":
                web.run_app(app, loop=base_loop_factory(loop_name)(), **run_app_options)
            else:

                async def main() -> None:
                    stopped[0] = asyncio.Event()
                    runner = web.AppRunner(app, access_log=None, handle_signals=False)
                    await runner.setup()
                    try:
                        await web.SockSite(runner, sock).start()
                        await stopped[0].wait()
                    finally:
                        await runner.cleanup()

                ctxloop.run(main(), loop_factory=ctxloop.loop_factory(loop_name))
        finally:
            sock.close()
        results = client.join()
    assert len(server_loop) == 1
    assert isinstance(server_loop[0], type(plain_loop(loop_name)))  # the base asked for
    check_exchange(client.requests, results, log_lines)


def plain_loop(loop_name: str) -> asyncio.AbstractEventLoop:
    loop = base_loop_factory(loop_name)()
    loop.close()
    return loop


# ---------------------------------------------------------------------------
# Keep-alive connections whose request bodies pause reading: no request may
# start with another request's contextvars (C1, C3), on every ctxloop loop.


@pytest.fixture(params=LOOP_KINDS, ids=lambda kind: kind.id)
def kind(request: pytest.FixtureRequest) -> LoopKind:
    return loop_kind(request)


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings(RLOOP_SOCKETS)
def test_keepalive_requests_never_see_each_other(kind: LoopKind, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp.base_protocol import BaseProtocol

    counters = count_flow_control(monkeypatch, BaseProtocol, "_reading_paused")
    plan = request_plan()
    sock = listening_socket()
    port = sock.getsockname()[1]
    client: List[Client] = []

    async def main() -> None:
        SEEN.set(SERVER_VALUE)  # before the server is created: what every connection must start from (C1)
        loop, stopped = asyncio.get_running_loop(), asyncio.Event()
        runner = web.AppRunner(make_aiohttp_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            stop = lambda: loop.call_soon_threadsafe(stopped.set)  # noqa: E731
            client.append(Client(functools.partial(exchange, body_size=AIOHTTP_BODY_SIZE), stop=stop, requests=plan))
            client[0].start(port)
            await stopped.wait()
        finally:
            await runner.cleanup()

    try:
        run_on(kind, main)
    finally:
        sock.close()
    expect(kind, "aiohttp", tally(plan, client[0].join(), AIOHTTP_BODY_SIZE), plan, counters)
