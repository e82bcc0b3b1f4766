"""A Starlette app under uvicorn on a ctxloop loop, hit by a few hundred concurrent requests.

Routes onto the loop:

* ``policy``: ``ctxloop.install(loop)`` and ``uvicorn.Config(loop="none")`` (uvicorn's
  own ``asyncio.run`` then asks the policy); ``policy_run``: the same with ``uvicorn.run``;
* ``serve``: ``ctxloop.run(uvicorn.Server(config).serve(), loop_factory=...)``;
* ``config``: ``uvicorn.Config(app, loop="ctxloop.loops:<loop>_loop")`` and ``Server.run``;
* ``uvicorn_run``: ``uvicorn.run(app, port=0, loop="ctxloop.loops:<loop>_loop")``;
* ``cli``: ``python -m uvicorn ... --loop ctxloop.loops:<loop>_loop`` in a subprocess;
* ``native``: uvicorn's own loop (``--loop asyncio`` / ``uvloop``), no ctxloop:
  the reference, Python 3.12+.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

pytest.importorskip("uvicorn", reason="needs uvicorn (pip install --group integrations)")
pytest.importorskip("starlette", reason="needs starlette (pip install --group integrations)")
pytest.importorskip("httpx", reason="needs httpx (pip install --group integrations)")

import uvicorn
from integ_keepalive import (
    LOOP_KINDS,
    RLOOP_SOCKETS,
    SEEN,
    SERVER_VALUE,
    LoopKind,
    asgi_app,
    count_flow_control,
    exchange,
    expect,
    loop_kind,
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
    request_ids,
)

import ctxloop
import ctxloop.loops

HERE = Path(__file__).resolve().parent
UVICORN_VERSION = tuple(int(part) for part in re.findall(r"\d+", uvicorn.__version__)[:2])
# uvicorn 0.36 made --loop a loop factory, accepting "module:callable"; before
# it (0.33 is the last release for Python 3.8) --loop is one of a fixed set of names.
LOOP_OPTION_TAKES_FACTORY = UVICORN_VERSION >= (0, 36)
LOOP_OPTION_REASON = (
    f"uvicorn {uvicorn.__version__} takes no loop factory (--loop is one of none/auto/asyncio/uvloop before 0.36): "
    "use ctxloop.install() with --loop none, or ctxloop.run(server.serve())"
)

ROUTES = ["policy", "policy_run", "serve", "config", "uvicorn_run", "cli", "native"]


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name in ("config", "uvicorn_run", "cli") and not LOOP_OPTION_TAKES_FACTORY:
        pytest.skip(LOOP_OPTION_REASON)
    if name == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    return name


def listening_socket() -> socket.socket:
    """A socket on 127.0.0.1, ephemeral port, already listening: connections queue until uvicorn accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def config(loop: Any, **kwargs: Any) -> uvicorn.Config:
    from integ_starlette import app

    # log_config=None: uvicorn leaves this process's logging alone.
    return uvicorn.Config(app, loop=loop, log_config=None, access_log=False, lifespan="off", **kwargs)


@pytest.fixture
def uvicorn_info() -> Iterator[List[logging.LogRecord]]:
    """uvicorn's own INFO records ("Uvicorn running on ..."), kept for the test."""
    records: List[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("uvicorn.error")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def serve_in_process(
    route: str, loop_name: str, uvicorn_info: List[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> List[Dict[str, Any]]:
    factory_name = f"ctxloop.loops:{loop_name}_loop"
    with collect_log("integ.app") as log_lines:
        if route in ("uvicorn_run", "policy_run"):
            # uvicorn binds port 0 itself and says which port it got.
            class PortWatcher(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", record.getMessage())
                    if found:
                        client.set_port(int(found.group(1)))

            watcher = PortWatcher()
            logging.getLogger("uvicorn.error").addHandler(watcher)
            # uvicorn.run makes its own Server, which stops itself past its request
            # limit; should the client fail first, it stops that Server too.
            servers: List[uvicorn.Server] = []

            class KeptServer(uvicorn.Server):
                def __init__(self, config: uvicorn.Config) -> None:
                    super().__init__(config)
                    servers.append(self)

            def stop() -> None:
                for server in servers:
                    server.should_exit = True

            # (uvicorn.main is also the name of its click command: take the module.)
            monkeypatch.setattr(importlib.import_module("uvicorn.main"), "Server", KeptServer)
            client = Client("httpx", stop=stop).start()
            try:
                with installed(loop_name) if route == "policy_run" else contextlib.nullcontext():
                    uvicorn.run(
                        "integ_starlette:app",
                        host="127.0.0.1",
                        port=0,
                        loop="none" if route == "policy_run" else factory_name,
                        log_config=None,
                        access_log=False,
                        lifespan="off",
                        limit_max_requests=len(client.requests),
                    )
            finally:
                logging.getLogger("uvicorn.error").removeHandler(watcher)
            results = client.join()
        else:
            sock = listening_socket()
            port = sock.getsockname()[1]
            if route == "policy":
                server = uvicorn.Server(config("none"))
            elif route == "config":
                server = uvicorn.Server(config(factory_name))
            elif route == "native":
                # uvicorn's own loop, no ctxloop (rloop by its factory: uvicorn has no name for it)
                server = uvicorn.Server(config("rloop:new_event_loop" if loop_name == "rloop" else loop_name))
            else:
                server = uvicorn.Server(config("none"))

            def stop() -> None:
                server.should_exit = True

            client = Client("httpx", stop=stop).start(port)
            try:
                if route == "policy":
                    with installed(loop_name):
                        server.run(sockets=[sock])
                elif route == "serve":
                    ctxloop.run(server.serve(sockets=[sock]), loop_factory=ctxloop.loop_factory(loop_name))
                else:
                    server.run(sockets=[sock])
            finally:
                sock.close()
            results = client.join()
    check_exchange(client.requests, results, log_lines)
    return results


def serve_cli(loop_name: str, tmp_path: Path) -> None:
    requests = request_ids()
    stdout_path = tmp_path / "server-stdout.txt"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "integ_starlette:make_cli_app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--loop",
        f"ctxloop.loops:{loop_name}_loop",
        "--no-access-log",
        "--lifespan",
        "off",
        "--limit-max-requests",
        str(len(requests)),
    ]
    client = Client("httpx", stop=lambda: None, requests=requests)
    stderr_lines: List[str] = []
    with stdout_path.open("w") as stdout:
        proc = subprocess.Popen(
            command,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(tmp_path),
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            assert proc.stderr is not None

            def read_stderr() -> None:
                assert proc.stderr is not None
                for line in proc.stderr:
                    stderr_lines.append(line)
                    found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
                    if found:
                        client.set_port(int(found.group(1)))

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            client.start()
            results = client.join()
            # --limit-max-requests: the server stops itself once every request was served.
            assert proc.wait(timeout=60) == 0, "".join(stderr_lines)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stderr.close()  # type: ignore[union-attr]
    log_lines = stdout_path.read_text().splitlines()
    check_exchange(requests, results, log_lines)
    errors = [line for line in stderr_lines if "Traceback" in line or "ERROR" in line]
    assert not errors, "".join(stderr_lines)


@pytest.mark.timeout(120)
def test_request_ids(
    route: str, loop_name: str, uvicorn_info: List[logging.LogRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if route == "cli":
        serve_cli(loop_name, tmp_path)
    else:
        serve_in_process(route, loop_name, uvicorn_info, monkeypatch)
    errors = [r.getMessage() for r in uvicorn_info if r.levelno >= logging.ERROR]
    assert not errors


def test_loops_module_factories(loop_name: str) -> None:
    # Each call gives a new ctxloop loop on its base: a task given context=ctx runs in ctx itself.
    factory = getattr(ctxloop.loops, f"{loop_name}_loop")
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def child() -> None:
        await asyncio.sleep(0)
        var.set("set by the task")

    async def main() -> str:
        ctx = contextvars.copy_context()
        await asyncio.get_running_loop().create_task(child(), context=ctx)
        return ctx[var]

    first, second, plain = factory(), factory(), base_loop_factory(loop_name)()
    plain.close()
    try:
        assert first is not second
        assert isinstance(first, type(plain))  # the base loop's class (or ctxloop's subclass of it)
        assert first.run_until_complete(main()) == "set by the task"
    finally:
        first.close()
        second.close()
    assert sorted(ctxloop.loops.__all__) == ["asyncio_loop", "rloop_loop", "uvloop_loop"]
    assert all(getattr(ctxloop.loops, name).__doc__ for name in ctxloop.loops.__all__)


# ---------------------------------------------------------------------------
# Keep-alive connections whose request bodies pause reading: no request may
# start with another request's contextvars (C1, C3), on every ctxloop loop.


@pytest.fixture(params=LOOP_KINDS, ids=lambda kind: kind.id)
def kind(request: pytest.FixtureRequest) -> LoopKind:
    return loop_kind(request)


class KeepAliveServer(uvicorn.Server):
    """Sets SEEN before it creates its server: what every connection must start from (C1)."""

    async def serve(self, sockets: Any = None) -> None:
        SEEN.set(SERVER_VALUE)
        await super().serve(sockets=sockets)


# uvicorn 0.39-0.44 start every request's task in an empty Context (0.45 made
# that the opt-in --reset-contextvars): a request sees neither another request's
# values nor the server's, on every loop, so there is nothing to compare.
EMPTY_CONTEXT_PER_REQUEST = (0, 39) <= UVICORN_VERSION < (0, 45)


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings(RLOOP_SOCKETS)
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_keepalive_requests_never_see_each_other(kind: LoopKind, http: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if EMPTY_CONTEXT_PER_REQUEST:
        pytest.skip(f"uvicorn {uvicorn.__version__} starts every request in an empty Context")
    if http == "httptools":
        pytest.importorskip("httptools", reason="needs httptools (pip install --group integrations)")
    from uvicorn.protocols.http.flow_control import FlowControl

    counters = count_flow_control(monkeypatch, FlowControl, "read_paused")
    plan = request_plan()
    sock = listening_socket()
    options: Dict[str, Any] = {"http": http, "log_config": None, "access_log": False, "lifespan": "off"}
    # uvicorn 0.36+ makes the loop from --loop (ctxloop.loops:<base>_loop, or the
    # plain loop's name); before it, serve on a loop of our own (no global policy).
    by_option = LOOP_OPTION_TAKES_FACTORY
    server = KeepAliveServer(uvicorn.Config(asgi_app, loop=kind.uvicorn_loop() if by_option else "none", **options))

    def stop() -> None:
        server.should_exit = True

    client = Client(exchange, stop=stop, requests=plan).start(sock.getsockname()[1])
    try:
        if by_option:
            server.run(sockets=[sock])
        else:
            run_on(kind, lambda: server.serve(sockets=[sock]))
    finally:
        sock.close()
    expect(kind, "uvicorn", tally(plan, client.join()), plan, counters)
