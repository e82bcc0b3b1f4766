"""The checks of C1-C4 that ``python -m ctxloop`` runs on each loop: small loopback programs.

Each is a function ``(make_loop, timeout)`` raising ``CheckFailed`` when what
it sees differs from what the rule (docs/rules.md) and CPython 3.15 say; the
report (``_report.py``) runs it in a thread of its own, under a deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any, List

from ._task_checks import LoopFactory, expect, main_task

__all__ = ["check_c1", "check_c2", "check_c3", "check_c4"]

HOST = "127.0.0.1"


class _Recorder(asyncio.Protocol):
    """Records what the var holds in each callback; connection_made sets it to *made*."""

    def __init__(self, var: "contextvars.ContextVar[str]", made: str, seen: List[str]) -> None:
        self.var, self.made, self.seen = var, made, seen
        self.transport: Any = None
        self.got: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.seen.append(f"made:{self.var.get()}")
        self.var.set(self.made)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen.append(f"data:{self.var.get()}")
        if not self.got.done():
            self.got.set_result(None)


def check_c1(make_loop: LoopFactory, timeout: float) -> None:
    """Each accepted connection in its own copy of the context the server was created in."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("c1", default="-")
    seen: List[str] = []

    async def main() -> None:
        protocols: List[_Recorder] = []

        def factory() -> _Recorder:
            protocols.append(_Recorder(var, f"conn{len(protocols) + 1}", seen))
            return protocols[-1]

        var.set("server")
        server = await asyncio.get_running_loop().create_server(factory, HOST, 0)
        var.set("after create_server")
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"x")
            await protocols[-1].got
            writer.close()
            protocols[-1].transport.close()
        server.close()
        await server.wait_closed()

    main_task(make_loop, main(), timeout)
    expect(seen, ["made:server", "data:conn1", "made:server", "data:conn2"])


def check_c2(make_loop: LoopFactory, timeout: float) -> None:
    """A client connection in a copy of the caller's context: nothing it sets reaches the caller."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("c2", default="-")
    seen: List[str] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(1))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, HOST, 0)
        var.set("caller")
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await asyncio.get_running_loop().create_connection(
            lambda: _Recorder(var, "client", seen), HOST, port
        )
        seen.append(f"caller:{var.get()}")
        transport.write(b"x")
        await protocol.got
        transport.close()
        server.close()
        await server.wait_closed()

    main_task(make_loop, main(), timeout)
    expect(seen, ["made:caller", "caller:caller", "data:client"])


def check_c3(make_loop: LoopFactory, timeout: float) -> None:
    """A keep-alive connection resumed from a request's task: the next request starts clean."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("c3", default="-")
    seen: List[str] = []

    class Server(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            seen.append(var.get())
            self.transport.pause_reading()  # as a server does while a request's body is handled
            asyncio.get_running_loop().create_task(self.handle(data))

        async def handle(self, data: bytes) -> None:
            var.set(f"request {data.decode()}")
            self.transport.write(data)
            self.transport.resume_reading()

    async def main() -> None:
        accepted: List[Server] = []

        def factory() -> Server:
            accepted.append(Server())
            return accepted[-1]

        server = await asyncio.get_running_loop().create_server(factory, HOST, 0)
        reader, writer = await asyncio.open_connection(HOST, server.sockets[0].getsockname()[1])
        for request in "12":
            writer.write(request.encode())
            await reader.readexactly(1)
        writer.close()
        accepted[0].transport.close()
        server.close()
        await server.wait_closed()

    main_task(make_loop, main(), timeout)
    expect(seen, ["-", "-"])


def check_c4(make_loop: LoopFactory, timeout: float) -> None:
    """call_soon/call_later(context=Context()) run in that empty context; call_soon_threadsafe in the caller's."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("c4", default="-")
    seen: List[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        var.set("loop")
        done: "asyncio.Future[None]" = loop.create_future()
        loop.call_soon(lambda: seen.append(f"soon:{var.get()}"), context=contextvars.Context())
        loop.call_later(0, lambda: seen.append(f"later:{var.get()}"), context=contextvars.Context())
        await asyncio.sleep(0.01)

        def in_the_loop() -> None:
            seen.append(f"threadsafe:{var.get()}")
            done.set_result(None)

        def from_thread() -> None:
            var.set("thread")
            loop.call_soon_threadsafe(in_the_loop)

        thread = threading.Thread(target=contextvars.Context().run, args=(from_thread,))
        thread.start()
        await done
        thread.join(timeout)

    main_task(make_loop, main(), timeout)
    expect(sorted(seen), ["later:-", "soon:-", "threadsafe:thread"])
