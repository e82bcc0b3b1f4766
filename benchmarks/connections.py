"""Connections on a ctxloop loop vs its base loop: request/response round trips, measured in one process.

Run from the repository root (so that the source tree's ctxloop is measured)::

    python -m benchmarks connections               # every installed loop, the full run
    python -m benchmarks connections --quick       # a tiny run (the smoke test uses it)
    python -m benchmarks.connections --loops asyncio,rloop --reps 15 --json out.json

For each loop (asyncio's, uvloop and rloop where installed) it builds three
loops: two plain ones (``A`` and ``B``) and a ctxloop loop on the same base.
Each serves on 127.0.0.1 and keeps a few keep-alive client connections open to
itself, on the same loop. The server works as uvicorn does: each request gets
a task of its own, started from ``data_received``; a body over 64 KiB pauses
reading and the request's task resumes it. A batch is a number of round trips
(request, then a 3-byte answer) over those connections, in parallel; the arms
(A, B, ctxloop) run one batch each per repetition, in a rotating order, and
each comparison reports the median of the per-repetition ratios with their
min-max:

* ``B / A``: the same plain loop twice, the method's noise (it must be ~1.00);
* ``ctxloop / A``: what ctxloop costs per round trip, beside its target
  (<= 1.03 on asyncio, <= 1.05 on uvloop and rloop);
* with bodies of 64 bytes and of 256 KiB, and (for information) a new
  connection per round trip (connect, one request, close).

Times are CPU time of the process (client and server both run in it; ``--clock
wall`` for ``perf_counter``). Nothing here asserts a time: it prints what it
measured.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import sys
import time
import warnings
from typing import Any, Callable, Coroutine, Dict, List, Optional, Set, Tuple

if __package__ in (None, ""):  # run as a script: measure the source tree next to it
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ctxloop
from benchmarks.run import Arm, Row, machine, measure, python_label, summarise

# rloop 0.5 drops its self-pipe sockets unclosed at the end of every run (the
# warning comes from rloop's own frame); nothing of ours is hidden by this.
warnings.filterwarnings("ignore", r"unclosed <socket\.socket", ResourceWarning, r"rloop\.loop")

TARGETS = {"asyncio": 1.03, "uvloop": 1.05, "rloop": 1.05}
LOOP_PACKAGES = ("uvloop", "rloop")
HOST = "127.0.0.1"
HIGH_WATER = 64 * 1024  # uvicorn's: a body buffered over this pauses reading
ANSWER = b"ok\n"
SMALL_BODY = 64
LARGE_BODY = 256 * 1024


class Sizes:
    """How much work each repetition does (``--quick`` shrinks everything)."""

    def __init__(self, quick: bool) -> None:
        self.connections = 2 if quick else 4  # keep-alive connections per loop, used in parallel
        self.small = 100 if quick else 2_000  # round trips per batch, 64-byte bodies
        self.large = 8 if quick else 160  # round trips per batch, 256 KiB bodies
        self.churn = 20 if quick else 300  # new connections per batch


# --------------------------------------------------------------------------
# The server and the client, plain asyncio protocols.


class Server(asyncio.Protocol):
    """One request at a time per connection: ``<length>\\n<body>``, answered with ANSWER by a task of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, live: Set["Server"]) -> None:
        self.loop = loop
        self.live = live  # the open connections, closed with the bench
        self.transport: Any = None
        self.head = bytearray()
        self.remaining = -1  # body bytes still to come; -1 between requests
        self.buffered = 0  # body bytes received and not yet taken by the request's task
        self.paused = False
        self.waiter: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.live.add(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.live.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.remaining < 0:
            self.head += data
            end = self.head.find(b"\n")
            if end < 0:
                return
            self.remaining = int(self.head[:end])
            data = bytes(self.head[end + 1 :])
            self.head.clear()
            self.waiter = self.loop.create_future()
            self.loop.create_task(self.handle())  # as servers do: the request's task, from data_received
        self.remaining -= len(data)
        self.buffered += len(data)
        if self.remaining <= 0:
            self._wake()
        elif self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
            self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def handle(self) -> None:
        while True:
            assert self.waiter is not None
            await self.waiter
            self.buffered = 0  # the application took what was buffered
            if self.paused:  # as uvicorn does: reading resumes from the request's task
                self.paused = False
                self.transport.resume_reading()
            if self.remaining <= 0:
                break
            self.waiter = self.loop.create_future()
        assert self.remaining == 0, "the client sent more than it announced"
        self.remaining = -1
        self.transport.write(ANSWER)


class Client(asyncio.Protocol):
    """Sends a request and waits for its answer; one at a time (keep-alive, no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.received = 0
        self.waiter: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= len(ANSWER):
            assert self.received == len(ANSWER) and self.waiter is not None
            self.received = 0
            self.waiter.set_result(None)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def round_trips(self, request: bytes, count: int) -> None:
        for _ in range(count):
            self.waiter = self.loop.create_future()
            self.transport.write(request)
            await self.waiter


def request_bytes(body_size: int) -> bytes:
    return b"%d\n" % body_size + b"x" * body_size


class Bench:
    """One loop serving itself: its server, its keep-alive clients, and the batches run on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sizes: Sizes, clock: Callable[[], float]) -> None:
        self.loop, self.sizes, self.clock = loop, sizes, clock
        self.server: Any = None
        self.port = 0
        self.clients: List[Client] = []
        self.accepted: Set[Server] = set()
        loop.run_until_complete(self._open())

    async def _open(self) -> None:
        loop = self.loop
        self.server = await loop.create_server(lambda: Server(loop, self.accepted), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        for _ in range(self.sizes.connections):
            _, client = await loop.create_connection(lambda: Client(loop), HOST, self.port)
            self.clients.append(client)

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            # Python 3.8-3.11 leave the accepted connections open.
            for protocol in [*self.clients, *self.accepted]:
                protocol.transport.close()
            await self.server.wait_closed()
            await asyncio.sleep(0)  # their connection_lost

        try:
            self.loop.run_until_complete(shut())
        finally:
            self.loop.close()

    def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> float:
        start = self.clock()
        self.loop.run_until_complete(work())
        return self.clock() - start

    def keep_alive(self, body_size: int, total: int) -> float:
        request = request_bytes(body_size)
        per_client = max(1, total // len(self.clients))

        async def work() -> None:
            await asyncio.gather(*(client.round_trips(request, per_client) for client in self.clients))

        return self.run(work)

    def churn(self, total: int) -> float:
        request = request_bytes(SMALL_BODY)
        loop = self.loop

        async def one() -> None:
            transport, client = await loop.create_connection(lambda: Client(loop), HOST, self.port)
            try:
                await client.round_trips(request, 1)
            finally:
                transport.close()

        async def work() -> None:
            for _ in range(total // self.sizes.connections):
                await asyncio.gather(*(one() for _ in range(self.sizes.connections)))
            await asyncio.sleep(0)  # the last transports' connection_lost

        return self.run(work)


# --------------------------------------------------------------------------
# Loops, arms and rows.


def installed_loops() -> List[str]:
    return ["asyncio"] + [name for name in LOOP_PACKAGES if importlib.util.find_spec(name)]


def base_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop_name == "asyncio":
        return asyncio.new_event_loop if sys.platform == "win32" else asyncio.SelectorEventLoop
    return importlib.import_module(loop_name).new_event_loop  # type: ignore[no-any-return]


def ctxloop_loop(loop_name: str) -> asyncio.AbstractEventLoop:
    """``ctxloop.new_event_loop(name)``; a ctxloop that does not know the name gets the base's factory."""
    try:
        return ctxloop.new_event_loop(loop_name)
    except ValueError:
        return ctxloop.new_event_loop(base_factory(loop_name))


ARMS = ("plain A", "plain B", "ctxloop")


def build(loop_name: str, sizes: Sizes, clock: Callable[[], float]) -> Tuple[List[Arm], List[Row], List[Bench]]:
    make = base_factory(loop_name)
    benches = {"plain A": Bench(make(), sizes, clock), "plain B": Bench(make(), sizes, clock)}
    benches["ctxloop"] = Bench(ctxloop_loop(loop_name), sizes, clock)
    target = TARGETS[loop_name]
    arms: List[Arm] = []
    rows: List[Row] = []
    workloads = [
        ("small", f"keep-alive round trip, {SMALL_BODY}-byte body", sizes.small, target),
        ("large", f"keep-alive round trip, {LARGE_BODY // 1024} KiB body (pauses reading)", sizes.large, target),
        ("churn", "new connection per round trip (connect, request, close)", sizes.churn, None),
    ]
    for group, label, count, row_target in workloads:
        for name in ARMS:
            bench = benches[name]
            if group == "churn":
                once = functools.partial(bench.churn, count)
            else:
                once = functools.partial(bench.keep_alive, SMALL_BODY if group == "small" else LARGE_BODY, count)
            arms.append((f"{group} {name}", once))
        rows.append(
            Row(
                group,
                f"{label}: plain vs plain (noise)",
                f"{group} plain B",
                f"{group} plain A",
                count,
                "round trip",
                None,
            )
        )
        rows.append(
            Row(
                group,
                f"{label}: ctxloop vs plain",
                f"{group} ctxloop",
                f"{group} plain A",
                count,
                "round trip",
                row_target,
            )
        )
    return arms, rows, list(benches.values())


def measure_loop(loop_name: str, sizes: Sizes, reps: int, clock: Callable[[], float]) -> Dict[str, Any]:
    arms, rows, benches = build(loop_name, sizes, clock)
    try:
        times = measure(arms, reps)
    finally:
        for bench in benches:
            bench.close()
    version = None
    if loop_name != "asyncio":
        version = getattr(importlib.import_module(loop_name), "__version__", None)
    return {"version": version, "target": TARGETS[loop_name], "rows": summarise(rows, times), "times": times}


# --------------------------------------------------------------------------
# Reporting.


def _verdict(row: Dict[str, Any]) -> str:
    if row["target"] is None:
        return "(info)"
    return ("meets" if row["meets"] else "MISSES") + f" <= {row['target']:.2f}"


def print_report(result: Dict[str, Any]) -> None:
    print(f"ctxloop {result['ctxloop']} ({result['ctxloop_path']}) on {result['python']}, {result['machine']}")
    print(f"implementation: {result['implementation']}")
    print(
        f"clock: {result['clock']}, {result['reps']} repetitions, arms interleaved; "
        f"{result['connections']} keep-alive connections per loop; ratio = median [min-max]"
    )
    for loop_name, data in result["loops"].items():
        print()
        print(f"## {loop_name}" + (f" {data['version']}" if data["version"] else ""))
        width = max(len(r["comparison"]) for r in data["rows"])
        print(f"{'comparison':<{width}}  {'arm':>9} {'base':>9} {'ratio':>23}  verdict")
        for row in data["rows"]:
            spread = f"{row['ratio']:.3f} [{row['ratio_min']:.3f}-{row['ratio_max']:.3f}]"
            print(
                f"{row['comparison']:<{width}}  {row['arm_ns'] / 1000:>9.1f} {row['baseline_ns'] / 1000:>9.1f} "
                f"{spread:>23}  {_verdict(row)}  (us/{row['unit']})"
            )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks connections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 9; 3 with --quick)")
    parser.add_argument("--loops", default=None, help="comma-separated loops (default: every installed one)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process_time or perf_counter")
    args = parser.parse_args(argv)
    from ctxloop._accel import implementation

    sizes = Sizes(args.quick)
    reps = args.reps if args.reps is not None else (3 if args.quick else 9)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    loops = args.loops.split(",") if args.loops else installed_loops()
    result: Dict[str, Any] = {
        "python": python_label(),
        "ctxloop": ctxloop.__version__,
        "ctxloop_path": os.path.dirname(ctxloop.__file__),
        "implementation": implementation(),
        "machine": machine(),
        "clock": "process_time" if args.clock == "cpu" else "perf_counter",
        "quick": args.quick,
        "reps": reps,
        "connections": sizes.connections,
        "loops": {name: measure_loop(name, sizes, reps, clock) for name in loops},
    }
    print_report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
