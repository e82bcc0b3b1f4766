"""Connection programs: what every callback a loop runs sees of a ContextVar.

A program is ``async def name(env) -> None`` written with plain asyncio API
only (``env.loop``, ``asyncio``), so the same program runs on a plain loop and
on a ctxloop loop. Programs set ``conn_var`` to distinct strings at distinct
places (before ``create_server``, in ``connection_made``, in a request task, in
another thread...) and record what each callback sees:

* ``env.see(label)`` adds the value current now to the set traced under
  *label* (a callback that runs several times, however the loop chunks the
  data, traces one sorted list of distinct values);
* ``env.trace(label, value)`` traces one JSON value, once.

``run_program(program, loop_factory)`` runs a program as the main task of a
fresh loop and returns its trace, a dict label -> JSON value. Exceptions are
traced as ``["exc", "TypeName"]``. A program that the loop cannot run at all
(it raises ``NotImplementedError``) raises ``Unsupported``; programs that
abort the process on a plain loop (``ABORTS``) run in a child process
(``run_isolated_if_needed``). The loop runs inside a fresh ``Context``:
``runner.after`` traces what a callback left in the context the loop was run
from. Labels ``base.*`` trace the base loop's own behaviour (what its
exception handler gets, what the peer of a failed connection reads): a ctxloop
loop must do there what its plain base loop does, whatever the reference says.

The rules the programs check (docs/rules.md):

* C1 a server keeps a copy of the context it was created in; each accepted
  connection runs every callback in its own copy of it;
* C2 a client connection runs every callback in a copy of the caller's
  context; nothing it sets reaches the caller;
* C3 whoever calls ``pause_reading()``/``resume_reading()``/``write()``/
  ``close()``/``set_protocol()``/``start_tls()``, the callbacks stay in the
  connection's context (CPython 3.15 for sockets; pipes and subprocess pipes
  too in ctxloop, as uvloop does);
* C4 ``call_soon``/``call_later``/``call_at``/``call_soon_threadsafe`` run in
  the ``context=`` given, an empty ``Context()`` included, else in a copy of
  the calling thread's context;
* C5 ``run_in_executor`` carries no context.

``PROGRAMS`` lists them all, in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import warnings
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, TypeVar

__all__ = [
    "ABORTS",
    "PROGRAMS",
    "Env",
    "Unsupported",
    "conn_var",
    "difference",
    "loop_factory",
    "not_run",
    "run_isolated_if_needed",
    "run_or_reason",
    "run_program",
]

T = TypeVar("T")

conn_var: contextvars.ContextVar[str] = contextvars.ContextVar("conn_var", default="-")

STEP_TIMEOUT = 5.0
PROGRAM_TIMEOUT = 10.0
HOST = "127.0.0.1"
CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
# Over the 64 KiB a server buffers before pausing, as uvicorn does for bodies.
BIG_BODY = 1024 * 1024
PAUSE_AT = 64 * 1024

Program = Callable[["Env"], Awaitable[None]]


class Unsupported(Exception):
    """The loop cannot run this program at all (it raised ``NotImplementedError``)."""


class Env:
    """What a program gets: the loop, a scratch directory, and the trace."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tmpdir: str) -> None:
        self.loop = loop
        self.tmpdir = tmpdir
        self.errors: List[Dict[str, Any]] = []
        self.recording = True
        self.failed = False
        self._trace: Dict[str, Any] = {}
        self._seen: Dict[str, Set[str]] = {}
        self._resources: List[Any] = []

    def trace(self, label: str, value: Any) -> None:
        """Trace *value* under *label* (once)."""
        if label in self._trace or label in self._seen:
            raise AssertionError(f"traced twice: {label}")
        self._trace[label] = value

    def see(self, label: str) -> None:
        """Add the value of ``conn_var`` current now to the set traced under *label*."""
        if label in self._trace:
            raise AssertionError(f"traced twice: {label}")
        self._seen.setdefault(label, set()).add(conn_var.get())

    def keep(self, resource: T) -> T:
        """Remember a server, transport, stream writer or socket (or a tuple of them):
        if the program fails half-way, the runner closes them."""
        self._resources.append(resource)
        return resource

    async def open(self, awaitable: Awaitable[T]) -> T:
        """``wait`` for a server or connection and ``keep`` it."""
        return self.keep(await self.wait(awaitable))

    def close_kept(self) -> None:
        for resource in reversed(self._resources):
            for item in resource if isinstance(resource, tuple) else (resource,):
                if hasattr(item, "close"):
                    try:
                        item.close()
                    except Exception:  # closed already, or the loop is past caring
                        pass

    async def wait(self, awaitable: Awaitable[T], timeout: float = STEP_TIMEOUT) -> T:
        """Await one step of a program, bounded, in the current task (``wait_for``
        before 3.12 would run a coroutine in a task of its own, with a context of its own)."""
        return await _bounded(awaitable, timeout)

    def path(self, name: str) -> str:
        """A path in the program's scratch directory."""
        return os.path.join(self.tmpdir, name)

    def server_ssl(self) -> ssl.SSLContext:
        """The server side of TLS: the self-signed certificate of tests/certs/."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(CERTS, "cert.pem"), os.path.join(CERTS, "key.pem"))
        return context

    def client_ssl(self) -> ssl.SSLContext:
        """The client side of TLS, trusting only that certificate."""
        return ssl.create_default_context(cafile=os.path.join(CERTS, "cert.pem"))

    def record_error(self, *args: Any) -> None:
        """The loop's exception handler, ``(loop, context)``: what it reports while
        the program runs. (rloop 0.5 passes the context alone.)"""
        context = args[-1]
        if self.recording:
            self.errors.append({"keys": sorted(context), "exception": exc_name(context.get("exception"))})

    def result(self) -> Dict[str, Any]:
        out = dict(self._trace)
        out.update((label, sorted(values)) for label, values in self._seen.items())
        return dict(sorted(out.items()))


if sys.version_info >= (3, 11):

    async def _bounded(awaitable: Awaitable[T], timeout: float) -> T:
        async with asyncio.timeout(timeout):
            return await awaitable

else:

    async def _bounded(awaitable: Awaitable[T], timeout: float) -> T:
        task = asyncio.current_task()
        assert task is not None
        expired: List[bool] = []

        def expire() -> None:
            expired.append(True)
            task.cancel()

        handle = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if expired:
                raise asyncio.TimeoutError from None
            raise
        finally:
            handle.cancel()


def exc_name(exc: Optional[BaseException]) -> Optional[List[str]]:
    """``["exc", "TypeName"]`` (asyncio's ``TimeoutError`` is the builtin's name on every Python)."""
    if exc is None:
        return None
    return ["exc", "TimeoutError" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__]


def _resolve(fut: "asyncio.Future[Any]", value: Any = None) -> None:
    if not fut.done():
        fut.set_result(value)


async def _in_task(env: Env, value: str, fn: Callable[[], Any]) -> Any:
    """Call *fn* from a new task that set ``conn_var`` to *value* first; return what it returns (awaited)."""

    async def body() -> Any:
        conn_var.set(value)
        result = fn()
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return await env.wait(env.loop.create_task(body()))


# --- protocols ---------------------------------------------------------------


class Probe(asyncio.Protocol):
    """Traces every callback under ``name.<callback>``.

    ``connection_made`` sets ``name:made``, the first ``data_received`` sets
    ``name:data``. ``data_received`` is traced under ``name.<phase>``; a
    program moves the phase on (``phase = "after_resume"``) to trace the
    calls after an event separately.
    """

    def __init__(
        self, env: Env, name: str, *, echo: bool = False, trace_eof: bool = True, half_open: bool = False
    ) -> None:
        self.env = env
        self.name = name
        self.echo = echo
        self.trace_eof = trace_eof
        self.half_open = half_open
        self.phase = "data_received"
        self.transport: Any = None
        self.received = bytearray()
        loop = env.loop
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Any] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.paused: asyncio.Future[None] = loop.create_future()
        self.resumed: asyncio.Future[None] = loop.create_future()
        self._want: List[Tuple[int, asyncio.Future[None]]] = []

    def _see(self, callback: str) -> None:
        self.env.see(f"{self.name}.{callback}")

    def connection_made(self, transport: Any) -> None:
        self._see("connection_made")
        conn_var.set(f"{self.name}:made")
        self.transport = transport
        _resolve(self.made)

    def data_received(self, data: bytes) -> None:
        self._see(self.phase)
        if not self.received:
            conn_var.set(f"{self.name}:data")
        self.received += data
        if self.echo:
            self.transport.write(data)
        self._wake()

    def _wake(self) -> None:
        for n, fut in self._want:
            if len(self.received) >= n:
                _resolve(fut)

    async def until(self, n: int) -> bytes:
        """Wait until *n* bytes have arrived in all."""
        if len(self.received) < n:
            fut = self.env.loop.create_future()
            self._want.append((n, fut))
            await self.env.wait(fut)
        return bytes(self.received)

    def eof_received(self) -> bool:
        if self.trace_eof:
            self._see("eof_received")
        _resolve(self.eof)
        if not self.half_open:
            # Explicitly: rloop 0.5 does not close when eof_received returns a false value.
            self.transport.close()
        return self.half_open

    def pause_writing(self) -> None:
        self._see("pause_writing")
        _resolve(self.paused)

    def resume_writing(self) -> None:
        self._see("resume_writing")
        _resolve(self.resumed)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._see("connection_lost")
        _resolve(self.lost, exc_name(exc))
        if self.transport is not None and not self.transport.is_closing():
            # A TLS transport of asyncio before 3.11 stays open (and warns when
            # collected) until its protocol closes it, even after connection_lost.
            self.transport.close()


class DatagramProbe(asyncio.DatagramProtocol):
    """Traces a datagram endpoint's callbacks; ``echo`` sends every datagram back."""

    def __init__(self, env: Env, name: str, *, echo: bool = False) -> None:
        self.env = env
        self.name = name
        self.echo = echo
        self.transport: Any = None
        self.datagrams: List[bytes] = []
        self.got: asyncio.Future[None] = env.loop.create_future()
        self.error: asyncio.Future[Any] = env.loop.create_future()
        self.lost: asyncio.Future[Any] = env.loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.env.see(f"{self.name}.connection_made")
        conn_var.set(f"{self.name}:made")
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.env.see(f"{self.name}.datagram_received")
        if not self.datagrams:
            conn_var.set(f"{self.name}:data")
        self.datagrams.append(data)
        if self.echo:
            self.transport.sendto(data, addr)
        _resolve(self.got)

    def error_received(self, exc: Exception) -> None:
        self.env.see(f"{self.name}.error_received")
        _resolve(self.error, exc_name(exc))

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.env.see(f"{self.name}.connection_lost")
        _resolve(self.lost, exc_name(exc))


class ProcessProbe(asyncio.SubprocessProtocol):
    """Traces a subprocess protocol's callbacks, per pipe."""

    def __init__(self, env: Env, name: str) -> None:
        self.env = env
        self.name = name
        self.phase = "pipe_data_received"
        self.output: Dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.transport: Any = None
        self.lost: asyncio.Future[Any] = env.loop.create_future()
        self.exited: asyncio.Future[None] = env.loop.create_future()
        self._want: List[Tuple[bytes, asyncio.Future[None]]] = []

    def _see(self, callback: str) -> None:
        self.env.see(f"{self.name}.{callback}")

    def connection_made(self, transport: Any) -> None:
        self._see("connection_made")
        conn_var.set(f"{self.name}:made")
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._see(f"{self.phase}.{fd}")
        self.output[fd] += data
        for text, fut in self._want:
            if bytes(self.output[1]).endswith(text):
                _resolve(fut)

    async def until(self, text: bytes) -> None:
        """Wait until stdout ends with *text*."""
        if not bytes(self.output[1]).endswith(text):
            fut = self.env.loop.create_future()
            self._want.append((text, fut))
            await self.env.wait(fut)

    def pipe_connection_lost(self, fd: int, exc: Optional[BaseException]) -> None:
        self._see(f"pipe_connection_lost.{fd}")

    def process_exited(self) -> None:
        self._see("process_exited")
        _resolve(self.exited)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._see("connection_lost")
        _resolve(self.lost, exc_name(exc))


# --- helpers -------------------------------------------------------------------


# Programs end a connection with write_eof() and wait for the peer's callbacks,
# never for a close() to reach the peer: rloop 0.5 does not close the socket
# on transport.close() (connection_lost runs, the peer sees nothing).


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stream server handler that echoes until EOF, then half-closes (TLS: closes)."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        # Also when the runner cancels a handler whose peer went away unseen.
        writer.close()


async def _echo_server(env: Env, **kwargs: Any) -> Tuple[asyncio.AbstractServer, int]:
    server = await env.open(asyncio.start_server(_echo_handler, HOST, 0, **kwargs))
    return server, server.sockets[0].getsockname()[1]


async def _close_server(env: Env, server: asyncio.AbstractServer) -> None:
    server.close()
    await env.wait(server.wait_closed())


async def _close_writer(env: Env, writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await env.wait(writer.wait_closed())
    except (ConnectionError, ssl.SSLError):
        pass


async def _exchange(
    env: Env, open_conn: Callable[[], Awaitable[Any]], server_done: Callable[[], Awaitable[Any]], tls: bool = False
) -> None:
    """One client connection: send ``ping``, read the echo, half-close (TLS:
    close), wait until the server side is done, close."""
    reader, writer = await env.open(open_conn())
    writer.write(b"ping")
    assert await env.wait(reader.readexactly(4)) == b"ping"
    if tls:
        writer.close()
    else:
        writer.write_eof()
    await env.wait(server_done())
    await _close_writer(env, writer)


# --- C1: servers and accepted connections ------------------------------------------


async def _server_two_connections(
    env: Env, start: Callable[[Callable[[], Probe]], Awaitable[asyncio.AbstractServer]], connect: Any, tls: bool
) -> None:
    conn_var.set("creator")
    probes: List[Probe] = []

    def factory() -> Probe:
        name = f"conn{len(probes) + 1}"
        env.see(f"{name}.factory")
        probe = Probe(env, name, echo=True, trace_eof=not tls)
        probes.append(probe)
        return probe

    server = await env.open(start(factory))
    conn_var.set("creator:later")
    for _ in range(2):
        await _exchange(env, lambda: connect(server), lambda: probes[-1].lost, tls)
        env.trace(f"{probes[-1].name}.lost_with", probes[-1].lost.result())
    await _close_server(env, server)
    env.trace("caller.after", conn_var.get())


def _tcp_connect(env: Env, **kwargs: Any) -> Callable[[asyncio.AbstractServer], Awaitable[Any]]:
    def connect(server: asyncio.AbstractServer) -> Awaitable[Any]:
        return asyncio.open_connection(HOST, server.sockets[0].getsockname()[1], **kwargs)

    return connect


async def tcp_server(env: Env) -> None:
    """C1 over TCP: a var set before ``create_server`` is seen by each connection
    (rloop: no); ``connection_made``'s writes reach ``data_received`` (asyncio
    <= 3.14: no) but not the next connection (uvloop: yes)."""
    await _server_two_connections(env, lambda f: env.loop.create_server(f, HOST, 0), _tcp_connect(env), tls=False)


async def unix_server(env: Env) -> None:
    """C1 over a Unix socket (``create_unix_server``)."""
    path = env.path("s")
    await _server_two_connections(
        env,
        lambda f: env.loop.create_unix_server(f, path),
        lambda server: asyncio.open_unix_connection(path),
        tls=False,
    )


async def ssl_server(env: Env) -> None:
    """C1 over TLS: the application protocol's callbacks, as for TCP."""
    server_ctx = env.server_ssl()
    await _server_two_connections(
        env,
        lambda f: env.loop.create_server(f, HOST, 0, ssl=server_ctx),
        _tcp_connect(env, ssl=env.client_ssl(), server_hostname="localhost"),
        tls=True,
    )


async def server_started_later(env: Env) -> None:
    """C1: ``create_server(start_serving=False)`` then ``start_serving()`` after
    the caller changed the var: the connection sees the value at creation."""
    conn_var.set("at-create")
    probes: List[Probe] = []

    def factory() -> Probe:
        probes.append(Probe(env, "conn", echo=True))
        return probes[-1]

    server = await env.open(env.loop.create_server(factory, HOST, 0, start_serving=False))
    conn_var.set("at-start")
    await env.wait(server.start_serving())
    conn_var.set("at-connect")
    await _exchange(env, lambda: _tcp_connect(env)(server), lambda: probes[0].lost)
    env.trace("conn.lost_with", probes[0].lost.result())
    await _close_server(env, server)


async def _stream_server(env: Env, unix: bool) -> None:
    conn_var.set("creator")
    count = [0]
    done: List[asyncio.Future[None]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count[0] += 1
        name = f"handler{count[0]}"
        env.trace(f"{name}.sees", conn_var.get())
        conn_var.set(name)
        await _echo_handler(reader, writer)
        env.trace(f"{name}.after_echo", conn_var.get())
        _resolve(done[-1])

    path = env.path("s")
    if unix:
        server = await env.open(asyncio.start_unix_server(handler, path))
    else:
        server = await env.open(asyncio.start_server(handler, HOST, 0))
    conn_var.set("creator:later")
    for _ in range(2):
        done.append(env.loop.create_future())
        if unix:
            await _exchange(env, lambda: asyncio.open_unix_connection(path), lambda: done[-1])
        else:
            await _exchange(env, lambda: _tcp_connect(env)(server), lambda: done[-1])
    await _close_server(env, server)
    env.trace("caller.after", conn_var.get())


async def stream_server(env: Env) -> None:
    """C1 with streams: ``start_server``'s handler task sees the var set before
    it, and what a handler sets reaches neither the next handler nor the caller."""
    await _stream_server(env, unix=False)


async def stream_unix_server(env: Env) -> None:
    """C1 with ``start_unix_server``."""
    await _stream_server(env, unix=True)


async def keepalive_resume(env: Env) -> None:
    """C3, gh-140947: three keep-alive requests with bodies large enough that
    the server pauses reading in ``data_received`` and resumes it from the
    request's task, as uvicorn does. Each request must start clean (asyncio
    <= 3.14: request N+1 starts in request N's context)."""
    conn_var.set("server")
    requests = 3
    lost: asyncio.Future[Any] = env.loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = bytearray()
            self.paused = False
            self.pauses = 0
            self.count = 0
            self.request: Optional[asyncio.Task[None]] = None
            self.wake = asyncio.Event()

        def data_received(self, data: bytes) -> None:
            if self.request is None:
                env.trace(f"request{self.count}.starts_in", conn_var.get())
                self.request = env.loop.create_task(self.handle(self.count))
                self.count += 1
                self.pauses = 0
            self.buffer += data
            if len(self.buffer) >= PAUSE_AT and not self.paused:
                self.transport.pause_reading()
                self.paused = True
                self.pauses += 1
            self.wake.set()

        async def handle(self, n: int) -> None:
            conn_var.set(f"request{n}")
            got = 0
            while got < BIG_BODY:
                await self.wake.wait()
                self.wake.clear()
                got += len(self.buffer)
                self.buffer.clear()
                if self.paused:
                    self.paused = False
                    self.transport.resume_reading()
            env.trace(f"request{n}.paused", self.pauses > 0)
            self.request = None
            self.transport.write(b"done")

        def eof_received(self) -> None:
            self.transport.close()

        def connection_lost(self, exc: Optional[BaseException]) -> None:
            env.see("connection_lost")
            _resolve(lost)

    server = await env.open(env.loop.create_server(Server, HOST, 0))
    reader, writer = await env.open(_tcp_connect(env)(server))
    for _ in range(requests):
        writer.write(b"x" * BIG_BODY)
        assert await env.wait(reader.readexactly(4)) == b"done"
    writer.write_eof()
    await env.wait(lost)
    await _close_writer(env, writer)
    await _close_server(env, server)


# --- C2: client connections -----------------------------------------------------


async def _client(env: Env, connect: Callable[[Callable[[], Probe]], Awaitable[Any]], tls: bool) -> None:
    conn_var.set("caller")
    transport, probe = await env.open(connect(lambda: Probe(env, "client", trace_eof=not tls)))
    env.trace("caller.after_connect", conn_var.get())
    transport.write(b"ping")
    await probe.until(4)
    if tls:
        transport.close()
    else:
        transport.write_eof()
    env.trace("client.lost_with", await env.wait(probe.lost))
    env.trace("caller.after", conn_var.get())


async def tcp_client(env: Env) -> None:
    """C2 over TCP: every callback in one copy of the caller's context (rloop:
    ``data_received`` in an empty one); what ``connection_made`` sets does not
    reach the caller (rloop: it does)."""
    server, port = await _echo_server(env)
    await _client(env, lambda f: env.loop.create_connection(f, HOST, port), tls=False)
    await _close_server(env, server)


async def unix_client(env: Env) -> None:
    """C2 over a Unix socket (``create_unix_connection``)."""
    path = env.path("s")
    server = await env.open(asyncio.start_unix_server(_echo_handler, path))
    await _client(env, lambda f: env.loop.create_unix_connection(f, path), tls=False)
    await _close_server(env, server)


async def ssl_client(env: Env) -> None:
    """C2 over TLS (``create_connection(ssl=...)``)."""
    server, port = await _echo_server(env, ssl=env.server_ssl())
    client_ctx = env.client_ssl()
    await _client(
        env,
        lambda f: env.loop.create_connection(f, HOST, port, ssl=client_ctx, server_hostname="localhost"),
        tls=True,
    )
    await _close_server(env, server)


async def client_factory(env: Env) -> None:
    """C2: what the client's protocol factory sees and sets (it is called by
    the caller, before the connection's context is taken on 3.15)."""
    server, port = await _echo_server(env)
    conn_var.set("caller")

    def factory() -> Probe:
        env.see("factory")
        conn_var.set("factory")
        return Probe(env, "client")

    transport, probe = await env.open(env.loop.create_connection(factory, HOST, port))
    env.trace("caller.after_connect", conn_var.get())
    transport.write_eof()
    await env.wait(probe.lost)
    await _close_server(env, server)


async def open_connection_streams(env: Env) -> None:
    """C2 with streams: ``open_connection`` sets nothing in the caller; a
    task reading the stream keeps its own context."""
    server, port = await _echo_server(env)
    conn_var.set("caller")
    reader, writer = await env.open(asyncio.open_connection(HOST, port))
    env.trace("caller.after_connect", conn_var.get())

    async def read() -> bytes:
        conn_var.set("reader")
        data = await reader.readexactly(4)
        env.trace("reader.after_read", conn_var.get())
        return data

    task = env.loop.create_task(read())
    writer.write(b"ping")
    assert await env.wait(task) == b"ping"
    writer.write_eof()
    assert await env.wait(reader.read()) == b""
    await _close_writer(env, writer)
    await _close_server(env, server)
    env.trace("caller.after", conn_var.get())


async def connect_accepted_socket(env: Env) -> None:
    """C2 for ``connect_accepted_socket``: one end of a socket pair."""
    ours, theirs = env.keep(socket.socketpair())
    theirs.setblocking(False)
    conn_var.set("caller")
    _, probe = await env.open(env.loop.connect_accepted_socket(lambda: Probe(env, "accepted", echo=True), ours))
    env.trace("caller.after_connect", conn_var.get())
    await env.wait(env.loop.sock_sendall(theirs, b"ping"))
    theirs.shutdown(socket.SHUT_WR)
    echoed = b""
    while True:
        chunk = await env.wait(env.loop.sock_recv(theirs, 1024))
        if not chunk:
            break
        echoed += chunk
    env.trace("echoed", echoed.decode())
    env.trace("accepted.lost_with", await env.wait(probe.lost))
    theirs.close()
    env.trace("caller.after", conn_var.get())


async def datagram_endpoints(env: Env) -> None:
    """C2 for ``create_datagram_endpoint``, both ends: each endpoint's
    callbacks see its creator's value; the client closes from a task."""
    conn_var.set("server-caller")
    server_transport, server = await env.open(
        env.loop.create_datagram_endpoint(lambda: DatagramProbe(env, "server", echo=True), local_addr=(HOST, 0))
    )
    address = server_transport.get_extra_info("sockname")
    conn_var.set("client-caller")
    client_transport, client = await env.open(
        env.loop.create_datagram_endpoint(lambda: DatagramProbe(env, "client"), remote_addr=address)
    )
    conn_var.set("caller")
    client_transport.sendto(b"ping")
    await env.wait(client.got)
    await env.wait(server.got)
    await _in_task(env, "closer", client_transport.close)
    server_transport.close()
    env.trace("client.lost_with", await env.wait(client.lost))
    env.trace("server.lost_with", await env.wait(server.lost))
    env.trace("caller.after", conn_var.get())


# --- C3: calls from other tasks ---------------------------------------------------


async def close_and_abort_from_task(env: Env) -> None:
    """C3: ``close()`` and ``abort()`` called from another task;
    ``connection_lost`` still runs in the connection's context."""
    server, port = await _echo_server(env)
    conn_var.set("caller")
    for how in ("close", "abort"):
        transport, probe = await env.open(env.loop.create_connection(lambda how=how: Probe(env, how), HOST, port))
        transport.write(b"ping")
        await probe.until(4)
        await _in_task(env, f"{how}r", getattr(transport, how))
        env.trace(f"{how}.lost_with", await env.wait(probe.lost))
    await _close_server(env, server)
    env.trace("caller.after", conn_var.get())


async def pause_and_resume_writing(env: Env) -> None:
    """C3: a task writes more than the peer reads; ``pause_writing`` (called
    inside ``write()``) and ``resume_writing`` (when the buffer drains)."""
    conn_var.set("creator")
    probes: List[Probe] = []

    def factory() -> Probe:
        probes.append(Probe(env, "conn"))
        return probes[-1]

    server = await env.open(env.loop.create_server(factory, HOST, 0))
    total = 8 * 1024 * 1024
    received = bytearray()
    drained: asyncio.Future[None] = env.loop.create_future()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.extend(data)
            if len(received) >= total:
                _resolve(drained)

    client, _ = await env.open(env.loop.create_connection(Sink, HOST, server.sockets[0].getsockname()[1]))
    client.pause_reading()
    await env.wait(probes[0].made)
    conn = probes[0].transport
    conn.set_write_buffer_limits(high=PAUSE_AT)
    await _in_task(env, "writer", lambda: conn.write(b"x" * total))
    await env.wait(probes[0].paused)
    client.resume_reading()
    await env.wait(probes[0].resumed)
    await env.wait(drained)
    client.write_eof()
    env.trace("conn.lost_with", await env.wait(probes[0].lost))
    client.close()
    await _close_server(env, server)


async def eof_from_peer(env: Env) -> None:
    """C1/C3: the peer half-closes; ``eof_received`` then, after a reply
    written from a task, ``connection_lost``."""
    conn_var.set("creator")
    probes: List[Probe] = []

    def factory() -> Probe:
        probes.append(Probe(env, "conn", half_open=True))
        return probes[-1]

    server = await env.open(env.loop.create_server(factory, HOST, 0))
    reader, writer = await env.open(_tcp_connect(env)(server))
    writer.write(b"ping")
    writer.write_eof()
    await env.wait(probes[0].eof)

    def reply() -> None:
        probes[0].transport.write(b"pong")
        probes[0].transport.write_eof()
        probes[0].transport.close()

    await _in_task(env, "replier", reply)
    assert await env.wait(reader.read()) == b"pong"
    await _close_writer(env, writer)
    env.trace("conn.lost_with", await env.wait(probes[0].lost))
    await _close_server(env, server)


async def set_protocol_upgrade(env: Env) -> None:
    """C3: ``transport.set_protocol()`` inside ``data_received`` (uvicorn's
    websocket upgrade: the new protocol's ``connection_made`` and first data
    are called by the old protocol), then pause/resume from the websocket's
    task; ``get_protocol()`` is the new protocol."""
    conn_var.set("creator")
    ws = Probe(env, "ws", echo=True)

    class Http(Probe):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if bytes(self.received) == b"UPGRADE":
                try:
                    self.transport.set_protocol(ws)
                except NotImplementedError:
                    self.transport.write(b"501!")
                    return
                ws.connection_made(self.transport)
                env.trace("get_protocol_is_new", self.transport.get_protocol() is ws)
                self.transport.write(b"101!")

    server = await env.open(env.loop.create_server(lambda: Http(env, "http"), HOST, 0))
    reader, writer = await env.open(_tcp_connect(env)(server))
    writer.write(b"UPGRADE")
    if await env.wait(reader.readexactly(4)) == b"501!":
        raise NotImplementedError("transport.set_protocol()")
    writer.write(b"m1")
    assert await env.wait(reader.readexactly(2)) == b"m1"

    def pause_resume() -> None:
        ws.transport.pause_reading()
        ws.phase = "after_resume"
        ws.transport.resume_reading()

    await _in_task(env, "ws-task", pause_resume)
    writer.write(b"m2")
    assert await env.wait(reader.readexactly(2)) == b"m2"
    writer.write_eof()
    env.trace("ws.lost_with", await env.wait(ws.lost))
    await _close_writer(env, writer)
    await _close_server(env, server)


async def buffered_protocol(env: Env) -> None:
    """C1/C3 with ``asyncio.BufferedProtocol``: ``get_buffer`` and
    ``buffer_updated`` in the connection's context, before and after a
    pause/resume from a task; the transport's protocol is the user's."""
    conn_var.set("creator")
    made: asyncio.Future[Any] = env.loop.create_future()
    lost: asyncio.Future[Any] = env.loop.create_future()
    phase = ["first"]

    class Buffered(asyncio.BufferedProtocol):
        def connection_made(self, transport: Any) -> None:
            env.see("connection_made")
            env.trace("isinstance_buffered", isinstance(transport.get_protocol(), asyncio.BufferedProtocol))
            env.trace("get_protocol_is_self", transport.get_protocol() is self)
            conn_var.set("buffered:made")
            self.transport = transport
            self.buffer = bytearray(65536)
            _resolve(made, transport)

        def get_buffer(self, sizehint: int) -> Any:
            env.see(f"get_buffer.{phase[0]}")
            return memoryview(self.buffer)

        def buffer_updated(self, nbytes: int) -> None:
            env.see(f"buffer_updated.{phase[0]}")
            conn_var.set("buffered:data")
            self.transport.write(bytes(self.buffer[:nbytes]))

        def eof_received(self) -> None:
            env.see("eof_received")
            self.transport.close()

        def connection_lost(self, exc: Optional[BaseException]) -> None:
            env.see("connection_lost")
            _resolve(lost, exc_name(exc))

    server = await env.open(env.loop.create_server(Buffered, HOST, 0))
    reader, writer = await env.open(_tcp_connect(env)(server))
    transport = await env.wait(made)
    writer.write(b"ping")
    assert await env.wait(reader.readexactly(4)) == b"ping"

    def pause_resume() -> None:
        transport.pause_reading()
        phase[0] = "after_resume"
        transport.resume_reading()

    await _in_task(env, "resumer", pause_resume)
    writer.write(b"pong")
    assert await env.wait(reader.readexactly(4)) == b"pong"
    writer.write_eof()
    env.trace("lost_with", await env.wait(lost))
    await _close_writer(env, writer)
    await _close_server(env, server)


async def start_tls_upgrade(env: Env) -> None:
    """C3 for ``loop.start_tls`` on both ends, each called from a task of
    its own: the application protocol's later callbacks stay in the
    connection's context."""
    server_ctx = env.server_ssl()
    conn_var.set("creator")
    servers: List[Probe] = []
    upgraded: asyncio.Future[None] = env.loop.create_future()

    class Plain(Probe):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.received == b"STARTTLS":
                self.transport.pause_reading()
                self.transport.write(b"OK")
                self.phase = "after_tls"
                env.loop.create_task(self.upgrade())

        async def upgrade(self) -> None:
            conn_var.set("server-upgrader")
            self.transport = await env.open(env.loop.start_tls(self.transport, self, server_ctx, server_side=True))
            _resolve(upgraded)

    def factory() -> Probe:
        servers.append(Plain(env, "server", echo=False, trace_eof=False))
        return servers[-1]

    server = await env.open(env.loop.create_server(factory, HOST, 0))
    conn_var.set("caller")
    transport, client = await env.open(
        env.loop.create_connection(
            lambda: Probe(env, "client", trace_eof=False), HOST, server.sockets[0].getsockname()[1]
        )
    )
    transport.write(b"STARTTLS")
    await client.until(2)
    client.phase = "after_tls"
    tls = env.keep(
        await _in_task(
            env,
            "client-upgrader",
            lambda: env.loop.start_tls(transport, client, env.client_ssl(), server_hostname="localhost"),
        )
    )
    await env.wait(upgraded)
    tls.write(b"ping")
    await servers[0].until(len(b"STARTTLS") + 4)
    servers[0].transport.write(b"pong")
    await client.until(6)
    tls.close()
    env.trace("client.lost_with", await env.wait(client.lost))
    await env.wait(servers[0].lost)
    await _close_server(env, server)
    env.trace("caller.after", conn_var.get())


async def sendfile(env: Env) -> None:
    """C3: ``loop.sendfile`` from a task pauses and resumes the transport's
    reading; the reply's ``data_received`` stays in the connection's context."""
    path = env.path("f")
    size = 256 * 1024
    with open(path, "wb") as f:
        f.write(b"x" * size)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(size)
            writer.write(b"done")
            await writer.drain()
            await reader.read()
        finally:
            writer.close()

    server = await env.open(asyncio.start_server(handler, HOST, 0))
    conn_var.set("caller")
    transport, client = await env.open(
        env.loop.create_connection(lambda: Probe(env, "client"), HOST, server.sockets[0].getsockname()[1])
    )
    client.phase = "after_sendfile"

    async def send() -> Any:
        with open(path, "rb") as f:
            return await env.loop.sendfile(transport, f)

    env.trace("sendfile", await _in_task(env, "sender", send))
    await client.until(4)
    transport.write_eof()
    env.trace("client.lost_with", await env.wait(client.lost))
    await _close_server(env, server)


# --- pipes and subprocesses (C2; C3 is ctxloop's extension beyond 3.15) -----------


async def read_pipe(env: Env) -> None:
    """C2 for ``connect_read_pipe``; C3 (extension): after a pause/resume from
    another task, ``data_received``/``eof_received``/``connection_lost`` stay
    in the pipe's context (asyncio: the resuming task's; uvloop: the pipe's)."""
    rfd, wfd = os.pipe()
    conn_var.set("caller")
    transport, probe = await env.open(env.loop.connect_read_pipe(lambda: Probe(env, "pipe"), os.fdopen(rfd, "rb", 0)))
    env.trace("caller.after_connect", conn_var.get())
    os.write(wfd, b"one")
    await probe.until(3)

    def pause_resume() -> None:
        transport.pause_reading()
        probe.phase = "after_resume"
        transport.resume_reading()

    await _in_task(env, "resumer", pause_resume)
    os.write(wfd, b"two")
    await probe.until(6)
    os.close(wfd)
    env.trace("pipe.lost_with", await env.wait(probe.lost))
    env.trace("caller.after", conn_var.get())


async def write_pipe(env: Env) -> None:
    """C2 for ``connect_write_pipe``; C3 (extension): a task writes more than
    the pipe holds (``pause_writing``), a thread drains it
    (``resume_writing``), another task closes it (``connection_lost``)."""
    rfd, wfd = os.pipe()
    conn_var.set("caller")
    transport, probe = await env.open(env.loop.connect_write_pipe(lambda: Probe(env, "pipe"), os.fdopen(wfd, "wb", 0)))
    env.trace("caller.after_connect", conn_var.get())
    total = 1024 * 1024
    await _in_task(env, "writer", lambda: transport.write(b"x" * total))
    await env.wait(probe.paused)

    def drain() -> int:
        n = 0
        while n < total:
            n += len(os.read(rfd, 65536))
        return n

    env.trace("drained", await env.wait(env.loop.run_in_executor(None, drain)))
    await env.wait(probe.resumed)
    await _in_task(env, "closer", transport.close)
    env.trace("pipe.lost_with", await env.wait(probe.lost))
    os.close(rfd)
    env.trace("caller.after", conn_var.get())


# The child waits for a line on stdin (so that it cannot exit before the
# transport is connected: asyncio defers what happens earlier), writes a line
# to stdout and to stderr and exits, leaving both open in a grandchild that
# exits at EOF on stdin: every loop reports the exit first and the pipes' end
# after, when the program closes stdin, so the callback that schedules
# connection_lost is the same on every run.
CHILD_SCRIPT = "read go; echo out; echo err >&2; exec 3<&0; (read x <&3) & exit 0"
# The same after echoing lines until "end".
ECHO_SCRIPT = 'while read line && [ "$line" != end ]; do echo "$line"; done; exec 3<&0; (read x <&3) & exit 0'


async def _subprocess(env: Env, spawn: Callable[[Callable[[], ProcessProbe], int], Awaitable[Any]]) -> None:
    stdin, release = os.pipe()
    conn_var.set("caller")
    try:
        try:
            transport, probe = await env.open(spawn(lambda: ProcessProbe(env, "proc"), stdin))
        finally:
            os.close(stdin)
        env.trace("caller.after_connect", conn_var.get())
        conn_var.set("caller:later")
        os.write(release, b"go\n")
        await env.wait(probe.exited)
    finally:
        os.close(release)
    env.trace("proc.lost_with", await env.wait(probe.lost))
    env.trace("returncode", transport.get_returncode())
    env.trace("output", [bytes(probe.output[1]).decode(), bytes(probe.output[2]).decode()])
    transport.close()
    env.trace("caller.after", conn_var.get())


async def subprocess_exec(env: Env) -> None:
    """C2 for ``subprocess_exec`` with a protocol: ``pipe_data_received``,
    ``pipe_connection_lost``, ``process_exited``, ``connection_lost``."""
    await _subprocess(env, lambda f, stdin: env.loop.subprocess_exec(f, "/bin/sh", "-c", CHILD_SCRIPT, stdin=stdin))


async def subprocess_shell(env: Env) -> None:
    """C2 for ``subprocess_shell`` with a protocol."""
    await _subprocess(env, lambda f, stdin: env.loop.subprocess_shell(f, CHILD_SCRIPT, stdin=stdin))


async def subprocess_pipes_from_tasks(env: Env) -> None:
    """C3 (extension) for subprocess pipes: tasks write stdin, another task
    pauses and resumes stdout, a last one closes stdin; the protocol's
    callbacks stay in the process's context."""
    conn_var.set("caller")
    transport, probe = await env.open(
        env.loop.subprocess_exec(
            lambda: ProcessProbe(env, "proc"), "/bin/sh", "-c", ECHO_SCRIPT, stderr=asyncio.subprocess.DEVNULL
        )
    )
    stdin = transport.get_pipe_transport(0)
    stdout = transport.get_pipe_transport(1)
    await _in_task(env, "writer", lambda: stdin.write(b"one\n"))
    await probe.until(b"one\n")

    def pause_resume() -> None:
        stdout.pause_reading()
        probe.phase = "after_resume"
        stdout.resume_reading()

    await _in_task(env, "resumer", pause_resume)
    await _in_task(env, "writer", lambda: stdin.write(b"two\nend\n"))
    await env.wait(probe.exited)
    await _in_task(env, "closer", stdin.close)
    env.trace("proc.lost_with", await env.wait(probe.lost))
    env.trace("returncode", transport.get_returncode())
    env.trace("output", bytes(probe.output[1]).decode())
    transport.close()
    env.trace("caller.after", conn_var.get())


# --- C4 and C5: callbacks, threads, executors ---------------------------------------


async def timers_with_context(env: Env) -> None:
    """C4: ``call_soon``/``call_later``/``call_at`` with ``context=`` an empty
    ``Context()`` (falsy!), with a given context (exact: writes stay in it),
    and without (a copy of the caller's); timers due at once (a delay of 0,
    a time already past) too."""
    conn_var.set("caller")
    loop = env.loop
    contexts: Dict[str, contextvars.Context] = {}
    futures = []

    def callback(label: str, fut: "asyncio.Future[None]") -> None:
        env.trace(f"{label}.sees", conn_var.get())
        conn_var.set(f"{label}:set")
        fut.set_result(None)

    def given() -> contextvars.Context:
        ctx = contextvars.copy_context()
        ctx.run(conn_var.set, "given")
        return ctx

    for kind in ("soon", "later", "at", "later_now", "at_past"):
        for flavour in ("empty", "given", "none"):
            label = f"{kind}.{flavour}"
            fut = loop.create_future()
            futures.append(fut)
            kwargs: Dict[str, Any] = {}
            if flavour != "none":
                kwargs["context"] = contexts[label] = contextvars.Context() if flavour == "empty" else given()
            if kind == "soon":
                loop.call_soon(callback, label, fut, **kwargs)
            elif kind == "later":
                loop.call_later(0.001, callback, label, fut, **kwargs)
            elif kind == "later_now":
                loop.call_later(0, callback, label, fut, **kwargs)
            elif kind == "at":
                loop.call_at(loop.time() + 0.001, callback, label, fut, **kwargs)
            else:
                loop.call_at(loop.time() - 1, callback, label, fut, **kwargs)
    await env.wait(asyncio.gather(*futures))
    for label, ctx in contexts.items():
        env.trace(f"{label}.context_after", ctx.get(conn_var, "-"))
    env.trace("caller.after", conn_var.get())


async def threadsafe_calls(env: Env) -> None:
    """C4: ``call_soon_threadsafe`` from another thread with its own value
    (rloop: the loop's context), with ``context=`` given and empty."""
    conn_var.set("caller")
    loop = env.loop
    futures = {name: loop.create_future() for name in ("none", "given", "empty")}
    given_holder: List[contextvars.Context] = []

    def callback(label: str) -> None:
        env.trace(f"threadsafe.{label}.sees", conn_var.get())
        conn_var.set(f"{label}:set")
        futures[label].set_result(None)

    def in_thread() -> None:
        conn_var.set("thread")
        loop.call_soon_threadsafe(callback, "none")
        given = contextvars.copy_context()
        given.run(conn_var.set, "thread-given")
        given_holder.append(given)
        loop.call_soon_threadsafe(callback, "given", context=given)
        loop.call_soon_threadsafe(callback, "empty", context=contextvars.Context())
        env_thread_after.append(conn_var.get())

    env_thread_after: List[str] = []
    thread = threading.Thread(target=in_thread)
    thread.start()
    await env.wait(asyncio.gather(*futures.values()))
    thread.join()
    env.trace("thread.after", env_thread_after)
    env.trace("given.context_after", given_holder[0].get(conn_var, "-"))
    env.trace("caller.after", conn_var.get())


async def executor(env: Env) -> None:
    """C5: ``run_in_executor`` carries no context; ``copy_context().run`` does."""
    conn_var.set("caller")
    env.trace("plain.sees", await env.wait(env.loop.run_in_executor(None, conn_var.get)))
    carried = contextvars.copy_context()
    env.trace("copy_context_run.sees", await env.wait(env.loop.run_in_executor(None, carried.run, conn_var.get)))
    env.trace("caller.after", conn_var.get())


# --- bad input -----------------------------------------------------------------------


async def server_factory_raises(env: Env) -> None:
    """A server's protocol factory raises: what the exception handler gets
    and what the client sees are the base loop's own (``base.*``)."""
    conn_var.set("creator")
    called: asyncio.Future[None] = env.loop.create_future()

    def factory() -> asyncio.Protocol:
        _resolve(called)
        raise ValueError("no protocol")

    server = await env.open(env.loop.create_server(factory, HOST, 0))
    with warnings.catch_warnings():
        # asyncio leaves the accepted socket to the GC: "unclosed socket".
        warnings.simplefilter("ignore", ResourceWarning)
        reader, writer = await env.open(_tcp_connect(env)(server))
        await env.wait(called)
        env.trace("base.client_read", await _read_to_end(env, reader))
    await _close_writer(env, writer)
    await _close_server(env, server)
    env.trace("base.errors", env.errors)
    env.errors = []
    env.trace("caller.after", conn_var.get())


async def _read_to_end(env: Env, reader: asyncio.StreamReader) -> Any:
    """What the peer of a failed connection reads: ``""`` at EOF, an
    exception, or ``"open"``. A socket nobody holds closes when collected:
    collect, as CPython's reference counting does at once, for PyPy."""
    for _ in range(10):
        gc.collect()
        try:
            return (await env.wait(reader.read(), 0.1)).decode()
        except asyncio.TimeoutError:
            continue
        except Exception as exc:  # the peer may reset rather than close
            return exc_name(exc)
    return "open"


async def client_factory_raises(env: Env) -> None:
    """A client's protocol factory raises: ``create_connection`` raises it."""
    server, port = await _echo_server(env)
    conn_var.set("caller")

    def factory() -> asyncio.Protocol:
        raise ValueError("no protocol")

    with warnings.catch_warnings():
        # Before 3.15 (gh-153133) asyncio leaves the socket to the GC: "unclosed socket".
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            await env.wait(env.loop.create_connection(factory, HOST, port))
        except Exception as exc:
            env.trace("create_connection", exc_name(exc))
        else:
            env.trace("create_connection", "connected")
        gc.collect()
    await _close_server(env, server)
    env.trace("base.errors", env.errors)
    env.errors = []
    env.trace("caller.after", conn_var.get())


async def callback_raises(env: Env) -> None:
    """``data_received`` raises: ``connection_lost(exc)`` in the connection's
    context; the exception handler's report and what the peer reads are the
    base loop's own (``base.*``)."""
    conn_var.set("creator")
    probes: List[Probe] = []

    class Raising(Probe):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            raise RuntimeError("bad data")

    def factory() -> Probe:
        probes.append(Raising(env, "conn"))
        return probes[-1]

    server = await env.open(env.loop.create_server(factory, HOST, 0))
    reader, writer = await env.open(_tcp_connect(env)(server))
    writer.write(b"ping")
    # Bounded tighter: a loop that swallows the exception never calls it.
    env.trace("conn.lost_with", await env.wait(probes[0].lost, 1.0))
    env.trace("base.client_read", await _read_to_end(env, reader))
    await _close_writer(env, writer)
    await _close_server(env, server)
    env.trace("base.errors", env.errors)
    env.errors = []


PROGRAMS: Dict[str, Program] = {
    program.__name__: program
    for program in (
        tcp_server,
        unix_server,
        ssl_server,
        server_started_later,
        stream_server,
        stream_unix_server,
        keepalive_resume,
        tcp_client,
        unix_client,
        ssl_client,
        client_factory,
        open_connection_streams,
        connect_accepted_socket,
        datagram_endpoints,
        close_and_abort_from_task,
        pause_and_resume_writing,
        eof_from_peer,
        set_protocol_upgrade,
        buffered_protocol,
        start_tls_upgrade,
        sendfile,
        read_pipe,
        write_pipe,
        subprocess_exec,
        subprocess_shell,
        subprocess_pipes_from_tasks,
        timers_with_context,
        threadsafe_calls,
        executor,
        server_factory_raises,
        client_factory_raises,
        callback_raises,
    )
}


# --- the runner -----------------------------------------------------------------------

# Programs that abort the whole process on a plain loop (a Rust panic in
# rloop 0.5 when a protocol factory raises): run them in a child process.
ABORTS: Dict[str, Dict[str, str]] = {
    "rloop": {
        "server_factory_raises": "rloop 0.5 aborts the process (Rust panic) when a server's protocol factory raises",
        "client_factory_raises": "rloop 0.5 aborts the process (Rust panic) when a client's protocol factory raises",
    },
}


async def _main(program: Program, env: Env) -> None:
    try:
        await _bounded(program(env), PROGRAM_TIMEOUT)
    except NotImplementedError as exc:
        env.failed = True
        raise Unsupported(f"{program.__name__}: NotImplementedError: {exc}".rstrip(": ")) from exc
    except Exception as exc:
        env.failed = True
        env.trace("program.error", exc_name(exc))


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        # What they closed on the way out finishes closing in the next iteration.
        loop.run_until_complete(asyncio.sleep(0))


def run_program(program: Program, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Dict[str, Any]:
    """Run *program* as the main task of a fresh loop from *loop_factory*; return its trace.

    The loop runs inside a fresh ``Context``: ``runner.after`` traces what a
    callback of the loop left in it.
    """
    tmpdir = tempfile.mkdtemp(prefix="ctxloop-conn-")
    loop = loop_factory()
    env = Env(loop, tmpdir)
    loop.set_exception_handler(env.record_error)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_main(program, env))
        finally:
            # Cancelling what the program left running is the runner's business, not the trace's.
            env.recording = False
            with warnings.catch_warnings():
                if env.failed:
                    # A program that failed half-way leaves servers and transports open:
                    # closing the loop reports them, as it should, but the failure is reported already.
                    warnings.simplefilter("ignore", ResourceWarning)
                try:
                    if env.failed:
                        env.close_kept()
                        loop.run_until_complete(asyncio.sleep(0))
                    _cancel_all(loop)
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    if sys.version_info >= (3, 9):
                        loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    asyncio.set_event_loop(None)
                    loop.close()
                    if env.failed:
                        gc.collect()

    runner = contextvars.Context()
    try:
        runner.run(run)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    env.trace("runner.after", runner.get(conn_var, "-"))
    if env.errors:
        env.trace("loop.errors", env.errors)
    return env.result()


def loop_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop factory named by *spec*: ``asyncio``, ``uvloop`` or ``rloop``
    for a plain loop, ``ctxloop:<base>`` for ctxloop's loop on that base."""
    if spec.startswith("ctxloop:"):
        import ctxloop

        base = spec.split(":", 1)[1]
        try:
            return ctxloop.loop_factory(base)  # type: ignore[no-any-return]
        except (TypeError, ValueError):
            # Until ctxloop accepts the name, hand it the base loop's factory.
            return ctxloop.loop_factory(loop_factory(base))  # type: ignore[no-any-return]
    if spec == "asyncio":
        return asyncio.SelectorEventLoop
    if spec == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    if spec == "rloop":
        import rloop

        return rloop.new_event_loop  # type: ignore[no-any-return]
    raise ValueError(f"unknown loop {spec!r}")


def run_isolated(name: str, spec: str) -> Any:
    """Run program *name* on loop *spec* in a child process: its trace, or
    a string saying why there is none (unsupported, or how the child died)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[3]); import connection_programs as c; "
        "print(json.dumps(c.run_or_reason(sys.argv[1], sys.argv[2])))"
    )
    tests = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.run(
        [sys.executable, "-c", code, name, spec, tests], check=False, capture_output=True, text=True, timeout=60
    )
    if child.returncode != 0:
        return f"the process died (exit status {child.returncode})"
    return json.loads(child.stdout)


def run_or_reason(name: str, spec: str) -> Any:
    """The trace of program *name* on loop *spec*, or why it cannot run there."""
    try:
        return run_program(PROGRAMS[name], loop_factory(spec))
    except Unsupported as exc:
        return str(exc)


def run_isolated_if_needed(name: str, spec: str) -> Any:
    """``run_or_reason``, in a child process where the base loop is known to abort."""
    base = spec.split(":", 1)[-1]
    if name in ABORTS.get(base, {}):
        outcome = run_isolated(name, spec)
        return f"{ABORTS[base][name]}: {outcome}" if isinstance(outcome, str) else outcome
    return run_or_reason(name, spec)


def not_run(outcome: Any) -> Optional[str]:
    """Why *outcome* (of ``run_or_reason``) is no trace of a complete run, or None."""
    if isinstance(outcome, str):
        return outcome
    if "program.error" in outcome:
        return f"it failed with {outcome['program.error']}"
    return None


def compared(trace: Dict[str, Any]) -> Dict[str, Any]:
    """The labels compared with the reference: all but ``base.*`` (the base loop's own behaviour)."""
    return {label: value for label, value in trace.items() if not label.startswith("base.")}


def difference(got: Dict[str, Any], expected: Dict[str, Any]) -> List[str]:
    """One line per label that differs (``base.*`` labels left out)."""
    got, expected = compared(got), compared(expected)
    lines = []
    for label in sorted(set(got) | set(expected)):
        if got.get(label, "<absent>") != expected.get(label, "<absent>"):
            lines.append(
                f"{label}: got {json.dumps(got.get(label, '<absent>'))}, "
                f"expected {json.dumps(expected.get(label, '<absent>'))}"
            )
    return lines
