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

On a shared machine the per-repetition ratios of round trips this short
spread by 10-30 %, so ``--instructions`` counts instead, with valgrind's
callgrind (user-space instructions: the kernel's share of a round trip is the
same in every arm): one process per loop runs every arm, and callgrind dumps
its counters at each call of libc's ``getppid()``, between segments of N1 and
N2 round trips; per round trip = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up,
warm-up and each batch's fixed cost cancel out. Counts repeat to a few parts
per million: the plain-vs-plain ratio is 1.000 there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
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

    def __init__(self, loop: asyncio.AbstractEventLoop, live: Set["Server"], closes: bool = False) -> None:
        self.loop = loop
        self.live = live  # the open connections, closed with the bench
        self.closes = closes  # close the connection after each answer
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
        if self.closes:
            self.transport.close()


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

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sizes: Sizes, clock: Callable[[], float], server_closes: bool = False
    ) -> None:
        self.loop, self.sizes, self.clock = loop, sizes, clock
        self.server_closes = server_closes
        self.server: Any = None
        self.port = 0
        self.clients: List[Client] = []
        self.accepted: Set[Server] = set()
        loop.run_until_complete(self._open())

    async def _open(self) -> None:
        loop = self.loop
        self.server = await loop.create_server(lambda: Server(loop, self.accepted, self.server_closes), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        for _ in range(self.sizes.connections):
            _, client = await loop.create_connection(lambda: Client(loop), HOST, self.port)
            self.clients.append(client)

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            # Python 3.8-3.11 leave the accepted connections open.
            protocols: List[Any] = [*self.clients, *self.accepted]
            for protocol in protocols:
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

    def churn(self, total: int, parallel: int = 0) -> float:
        """*total* new connections, *parallel* at a time (default: as many as the keep-alive ones)."""
        parallel = parallel or self.sizes.connections
        request = request_bytes(SMALL_BODY)
        loop = self.loop

        async def one() -> None:
            transport, client = await loop.create_connection(lambda: Client(loop), HOST, self.port)
            try:
                await client.round_trips(request, 1)
            finally:
                transport.close()

        async def work() -> None:
            for _ in range(total // parallel):
                await asyncio.gather(*(one() for _ in range(parallel)))
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
# Instruction counts (--instructions).

WORKLOADS = ("small", "large", "churn")
# Round trips per segment: N1, N2 (and with --quick).
SEGMENTS = {"small": (100, 500), "large": (10, 50), "churn": (20, 100)}
QUICK_SEGMENTS = {"small": (10, 30), "large": (2, 6), "churn": (4, 12)}
# Warm-up round trips per arm, before any segment: on 3.8-3.10 a code object gets its attribute
# and global caches at its 1,024th call; that must not happen inside a segment.
WARMUP = {"small": 1_100, "large": 10, "churn": 20}


def _batch(bench: Bench, workload: str, count: int) -> None:
    if workload == "churn":
        bench.churn(count)
    else:
        bench.keep_alive(SMALL_BODY if workload == "small" else LARGE_BODY, count)


def run_segments(loop_name: str, segments: Dict[str, Tuple[int, int]]) -> None:
    """Under callgrind: every arm and workload, N1 then N2 round trips, each segment opened by ``getppid()``."""
    sizes = Sizes(False)
    # One connection: with several, how many become readable per select() depends on timing.
    sizes.connections = 1
    make = base_factory(loop_name)
    benches = {
        "plain A": Bench(make(), sizes, time.perf_counter),
        "plain B": Bench(make(), sizes, time.perf_counter),
        "ctxloop": Bench(ctxloop_loop(loop_name), sizes, time.perf_counter),
    }
    order = []
    try:
        for workload in segments:
            for bench in benches.values():
                _batch(bench, workload, WARMUP[workload])
        # A collection of the older generations costs millions of instructions, in whichever
        # segment it falls: none during the segments (a few thousand round trips make no garbage
        # that only the cycle collector frees; the leak tests check that).
        gc.collect()
        gc.disable()
        for workload, counts in segments.items():
            for arm, bench in benches.items():
                for count in counts:
                    os.getppid()  # callgrind dumps here: the previous segment ends
                    _batch(bench, workload, count)
                    order.append([workload, arm, count])
        os.getppid()
    finally:
        gc.enable()
        for bench in benches.values():
            bench.close()
    print(json.dumps(order))


_TOTAL = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def _total(path: str) -> int:
    with open(path) as f:
        found = _TOTAL.search(f.read())
    if found is None:
        raise RuntimeError(f"no total in {path}")
    return int(found.group(1))


def count_instructions(loop_name: str, segments: Dict[str, Tuple[int, int]]) -> Dict[str, Any]:
    """Instructions per round trip of every arm and workload on *loop_name*, from one valgrind run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONMALLOC="pymalloc")
    with tempfile.TemporaryDirectory(prefix="ctxloop-conn-cg-") as tmp:
        out = os.path.join(tmp, "cg.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--dump-instr=no",
            "--dump-line=no",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.connections",
            "--segments",
            loop_name,
            json.dumps(segments),
        ]
        proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
        order = json.loads(proc.stdout.strip().splitlines()[-1])
        # Dump 1 holds the start-up and warm-up; dump k + 1 the k-th segment.
        totals = [_total(f"{out}.{k + 2}") for k in range(len(order))]
        if os.path.exists(f"{out}.{len(order) + 2}"):
            raise RuntimeError("getppid() was called outside the benchmark's segments: the counts would be wrong")
    measured: Dict[Tuple[str, str], Dict[int, int]] = {}
    for (workload, arm, count), total in zip(order, totals):
        measured.setdefault((workload, arm), {})[count] = total
    per: Dict[str, Dict[str, float]] = {}
    for (workload, arm), by_count in measured.items():
        n1, n2 = segments[workload]
        per.setdefault(workload, {})[arm] = (by_count[n2] - by_count[n1]) / (n2 - n1)
    rows = []
    labels = {
        "small": f"keep-alive round trip, {SMALL_BODY}-byte body",
        "large": f"keep-alive round trip, {LARGE_BODY // 1024} KiB body (pauses reading)",
        "churn": "new connection per round trip (connect, request, close)",
    }
    for workload in segments:
        target = None if workload == "churn" else TARGETS[loop_name]
        figures = per[workload]
        for arm, row_target, note in (
            ("plain B", None, "plain vs plain (noise)"),
            ("ctxloop", target, "ctxloop vs plain"),
        ):
            ratio = figures[arm] / figures["plain A"]
            rows.append(
                {
                    "group": workload,
                    "comparison": f"{labels[workload]}: {note}",
                    "arm": arm,
                    "arm_ir": figures[arm],
                    "baseline_ir": figures["plain A"],
                    "ratio": ratio,
                    "target": row_target,
                    "meets": None if row_target is None else ratio <= row_target,
                }
            )
    version = None
    if loop_name != "asyncio":
        version = getattr(importlib.import_module(loop_name), "__version__", None)
    return {"version": version, "target": TARGETS[loop_name], "segments": segments, "rows": rows}


# --------------------------------------------------------------------------
# Memory after many closed connections (--leaks N).


def rss_bytes() -> Optional[int]:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def live_contexts() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is contextvars.Context)


LEAK_PARALLEL = 50  # connections open at once


def churn_memory(loop: asyncio.AbstractEventLoop, total: int, traced: int) -> Dict[str, Any]:
    """*total* connections opened, answered and closed (the server closes first, then the client)."""
    sizes = Sizes(False)
    bench = Bench(loop, sizes, time.perf_counter, server_closes=True)
    out: Dict[str, Any] = {"connections": total, "traced_connections": traced}
    try:
        bench.churn(min(2_000, total), LEAK_PARALLEL)  # warm-up: free lists, the selector's maps
        gc.collect()
        contexts, rss, start = live_contexts(), rss_bytes(), time.perf_counter()
        for _ in range(total // 10_000):
            bench.churn(10_000, LEAK_PARALLEL)
        bench.churn(total % 10_000, LEAK_PARALLEL)
        out["seconds"] = time.perf_counter() - start
        out["cycles_freed"] = gc.collect()
        after = rss_bytes()
        out["rss_delta"] = None if rss is None or after is None else after - rss
        out["contexts_delta"] = live_contexts() - contexts
        out["open_server_side"] = len(bench.accepted) - len(bench.clients)  # less the keep-alive ones
        try:
            import tracemalloc
        except ImportError:  # PyPy
            out["traced_delta"] = None
        else:
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                bench.churn(traced, LEAK_PARALLEL)
                gc.collect()
                out["traced_delta"] = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
    finally:
        bench.close()
    return out


def leaks(loop_name: str, total: int) -> Dict[str, Any]:
    traced = min(total, 10_000)
    return {
        "plain": churn_memory(base_factory(loop_name)(), total, traced),
        "ctxloop": churn_memory(ctxloop_loop(loop_name), total, traced),
    }


def print_leaks(result: Dict[str, Any]) -> None:
    print(f"ctxloop {result['ctxloop']} ({result['ctxloop_path']}) on {result['python']}")
    print(f"implementation: {result['implementation']}")
    for loop_name, arms in result["loops"].items():
        print()
        print(f"## {loop_name}")
        for arm, m in arms.items():
            rss = "n/a" if m["rss_delta"] is None else f"{m['rss_delta'] / 2**20:+.2f} MiB"
            traced = "n/a" if m["traced_delta"] is None else f"{m['traced_delta'] / 2**10:+.1f} KiB"
            print(
                f"{arm:>7}: {m['connections']:,} closed connections in {m['seconds']:.1f}s: RSS {rss}; "
                f"live Context objects {m['contexts_delta']:+d}; server connections still open "
                f"{m['open_server_side']}; cycle collector freed {m['cycles_freed']}; "
                f"tracemalloc over {m['traced_connections']:,}: {traced}"
            )


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


def print_instructions(result: Dict[str, Any]) -> None:
    print(f"ctxloop {result['ctxloop']} ({result['ctxloop_path']}) on {result['python']}")
    print(f"implementation: {result['implementation']}")
    print("instructions per round trip (callgrind, user space): (Ir(N2) - Ir(N1)) / (N2 - N1)")
    for loop_name, data in result["loops"].items():
        print()
        print(f"## {loop_name}" + (f" {data['version']}" if data["version"] else ""))
        width = max(len(r["comparison"]) for r in data["rows"])
        print(f"{'comparison':<{width}}  {'arm':>9} {'base':>9} {'ratio':>7}  verdict")
        for row in data["rows"]:
            print(
                f"{row['comparison']:<{width}}  {row['arm_ir']:>9.0f} {row['baseline_ir']:>9.0f} "
                f"{row['ratio']:>7.3f}  {_verdict(row)}  (Ir/round trip)"
            )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks connections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 9; 3 with --quick)")
    parser.add_argument("--loops", default=None, help="comma-separated loops (default: every installed one)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process_time or perf_counter")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per round trip under valgrind instead"
    )
    parser.add_argument("--leaks", type=int, metavar="N", help="memory after N closed connections instead")
    parser.add_argument("--segments", nargs=2, metavar=("LOOP", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.segments:
        run_segments(args.segments[0], {k: tuple(v) for k, v in json.loads(args.segments[1]).items()})
        return 0
    from ctxloop._accel import implementation

    loops = args.loops.split(",") if args.loops else installed_loops()
    result: Dict[str, Any] = {
        "python": python_label(),
        "ctxloop": ctxloop.__version__,
        "ctxloop_path": os.path.dirname(ctxloop.__file__),
        "implementation": implementation(),
        "machine": machine(),
        "quick": args.quick,
    }
    if args.leaks:
        result["measure"] = "leaks"
        result["loops"] = {name: leaks(name, args.leaks) for name in loops}
        print_leaks(result)
    elif args.instructions:
        segments = QUICK_SEGMENTS if args.quick else SEGMENTS
        result["measure"] = "instructions"
        result["loops"] = {name: count_instructions(name, segments) for name in loops}
        print_instructions(result)
    else:
        sizes = Sizes(args.quick)
        reps = args.reps if args.reps is not None else (3 if args.quick else 9)
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        result["measure"] = "time"
        result["clock"] = "process_time" if args.clock == "cpu" else "perf_counter"
        result["reps"] = reps
        result["connections"] = sizes.connections
        result["loops"] = {name: measure_loop(name, sizes, reps, clock) for name in loops}
        print_report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
