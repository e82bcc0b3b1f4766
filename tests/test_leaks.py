"""Leaks: finished context-bound tasks leave nothing behind (SPEC section 5).

* memory: after many bound tasks (batches of 10,000, gathered) the memory
  traced by tracemalloc is back at its baseline within 1 MiB; no reference
  cycles are created (gc disabled during the run, ``gc.collect()`` finds 0);
* nothing is kept alive: the coroutine (weakref), ctxloop's wrapper (gc
  census) and the context (reference count) are released with the task.

The full 1,000,000-task run takes ~50 s under tracemalloc (which slows task
creation about fivefold), so to keep the suite under two minutes per Python it
runs on one Python, 3.10, where ctxloop's own per-task code runs (the
bound-coroutine backport; 3.11+ is native), on asyncio's loop; everywhere else
100,000 tasks. Set ``CTXLOOP_LEAK_TASKS`` to force a count (the figures for
1,000,000 tasks on every Python are in ``docs/reliability.md``). PyPy has no tracemalloc and no
deterministic collection: there the run checks liveness by weakrefs only.

Connections: after a few thousand connections closed on both sides (set
``CTXLOOP_LEAK_CONNECTIONS`` for more; ``python -m benchmarks connections
--leaks 100000`` measures 100,000), on each loop, the traced memory is back at
its baseline, the number of live ``contextvars.Context`` objects too, and what
each connection set in its context is freed with it.

Both implementations run these tests: the suite as a whole runs once with
the compiled accelerator and once with ``CTXLOOP_NO_SPEEDUPS=1``; the test
below names the one in use in its report.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import sys
import time
import weakref
from typing import Any, Dict, List, Optional

import pytest
from conftest import LOOPS

import ctxloop
from ctxloop._binding import ContextBound, TaskCoroutine

var: contextvars.ContextVar[int] = contextvars.ContextVar("leak_var", default=0)

CPYTHON = sys.implementation.name == "cpython"
BATCH = 10_000
MIB = 1024 * 1024
FULL_RUN_PYTHONS = {(3, 10)}


def _tasks_for(loop_name: str) -> int:
    forced = os.environ.get("CTXLOOP_LEAK_TASKS")
    if forced:
        return int(forced)
    if CPYTHON and loop_name == "asyncio" and sys.version_info[:2] in FULL_RUN_PYTHONS:
        return 1_000_000
    return 100_000


async def _job(i: int) -> int:
    var.set(i)
    await asyncio.sleep(0)
    return var.get()


async def _batch(shared: contextvars.Context, probes: List[Any]) -> None:
    loop = asyncio.get_running_loop()
    tasks = []
    for i in range(BATCH):
        # Half with a context of their own, half sharing one; three creation routes.
        context = contextvars.copy_context() if i % 2 else shared
        coro = _job(i)
        if i % 3 == 0:
            task = ctxloop.create_task(coro, context=context)
        elif i % 3 == 1:
            task = loop.create_task(coro, context=context)  # type: ignore[call-arg]
        else:
            task = ctxloop.Task(coro, loop=loop, context=context)
        if i % 1000 == 0:
            probes.append(weakref.ref(coro))
            probes.append(weakref.ref(task))
        tasks.append(task)
    results = await asyncio.gather(*tasks)
    assert results[1::2] == list(range(1, BATCH, 2))  # each in its own context
    assert set(results[0::2]) == {BATCH - 2}  # sharing one: the last writer wins (S2)


async def _settle() -> None:
    # The last batch's handles and gather future go with the next iterations.
    for _ in range(3):
        await asyncio.sleep(0)


# The bindings ctxloop makes: the pure-Python classes, and on 3.8-3.10 with
# the compiled accelerator its TaskCoroutine type (not a ContextBound).
_BINDINGS = (ContextBound, TaskCoroutine)


def _live_bindings() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, _BINDINGS))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_many_bound_tasks_return_memory_to_baseline(loop_name: str) -> None:
    if CPYTHON:
        import tracemalloc

    total = _tasks_for(loop_name)
    from ctxloop._accel import implementation

    report: Dict[str, Any] = {
        "python": sys.version.split()[0],
        "loop": loop_name,
        "tasks": total,
        "implementation": implementation(),
    }

    async def main() -> None:
        shared = contextvars.copy_context()
        probes: List[Any] = []
        await _batch(shared, probes)  # warm-up: free lists, caches, the loop's deque
        await _settle()
        probes.clear()
        gc.collect()
        if CPYTHON:
            gc.disable()
            tracemalloc.start()
            blocks = sys.getallocatedblocks()
        start = time.perf_counter()
        for _ in range(total // BATCH):
            await _batch(shared, probes)
        report["seconds"] = round(time.perf_counter() - start, 1)
        await _settle()
        if CPYTHON:
            report["cycles"] = gc.collect()
            gc.enable()
            report["blocks"] = sys.getallocatedblocks() - blocks
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            # asyncio's registry of tasks is a WeakSet: its hash table keeps its
            # high-water size (one block, reallocated as it grows and shrinks).
            snapshot = snapshot.filter_traces([tracemalloc.Filter(False, "*/_weakrefset.py")])
            report["traced bytes"] = sum(stat.size for stat in snapshot.statistics("filename"))
        else:
            for _ in range(3):  # PyPy frees objects with finalisers over several collections
                gc.collect()
        report["alive"] = sum(1 for probe in probes if probe() is not None)
        report["probes"] = len(probes)

    loop = ctxloop.new_event_loop(loop_name)
    try:
        loop.run_until_complete(main())
    finally:
        gc.enable()
        loop.close()
    print(f"\nleak run: {report}")
    assert report["alive"] == 0, report
    assert report["probes"] == 2 * total // 1000
    if CPYTHON:
        assert report["cycles"] == 0, report
        assert report["traced bytes"] <= MIB, report
        # Less the probes' weakrefs this test keeps; one block per task would be 100,000+.
        assert report["blocks"] - report["probes"] < 1000, report


@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("route", ["create_task", "inline", "isolated"])
def test_nothing_kept_alive_after_a_bound_task(loop_name: str, route: str) -> None:
    async def child() -> int:
        var.set(7)
        await asyncio.sleep(0)
        return var.get()

    async def main() -> List[Any]:
        ctx = contextvars.copy_context()
        await asyncio.sleep(0)
        refcount = getattr(sys, "getrefcount", lambda obj: 0)  # CPython only
        before = refcount(ctx)
        coro = child()
        probe = weakref.ref(coro)
        if route == "create_task":
            task: Any = ctxloop.create_task(coro, context=ctx)
            task_probe = weakref.ref(task)
            result = await task
            del task
        elif route == "inline":
            task_probe = lambda: None  # noqa: E731 - no task on this route
            result = await ctxloop.run_in_context(ctx, coro)
        else:
            task_probe = lambda: None  # noqa: E731
            result = await ctxloop.isolated(coro)
        del coro
        await asyncio.sleep(0)
        if not CPYTHON:
            gc.collect()
        return [result, probe() is None, task_probe() is None, refcount(ctx) - before, ctx.get(var)]

    gc.collect()
    bindings = _live_bindings()
    if CPYTHON:
        gc.disable()  # released by reference counting alone: no cycle to collect
    try:
        loop = ctxloop.new_event_loop(loop_name)
        try:
            result, coro_freed, task_freed, ctx_refs, ctx_value = loop.run_until_complete(main())
        finally:
            loop.close()
    finally:
        gc.enable()
    assert [result, coro_freed, task_freed] == [7, True, True]
    if CPYTHON:
        assert ctx_refs == 0  # ctxloop holds no reference to the context
    assert ctx_value == (None if route == "isolated" else 7)
    gc.collect()
    assert _live_bindings() == bindings


# ---------------------------------------------------------------------------
# Connections (C1, C2): each accepted connection runs in a copy of its
# server's context and each client connection in a copy of its caller's; a
# request task resumes reading (C3). Once closed, on both sides, nothing of
# those contexts remains: memory is back at its baseline, the number of live
# contextvars.Context objects too, and what each connection set in its context
# is freed with it.

conn_var: contextvars.ContextVar[Any] = contextvars.ContextVar("leak_conn_var", default=None)

CONNECTION_BATCH = 50  # connections open at once
PROBE_EVERY = 20  # one weakref probe per this many connections, per side
SETTLE_TURNS = 100  # at most about a second for the loop to drop the last closed connections


def _connections() -> int:
    forced = os.environ.get("CTXLOOP_LEAK_CONNECTIONS")
    return int(forced) if forced else 2_000


class _Marker:
    """Set in a connection's context: alive as long as that context is."""

    __slots__ = ("__weakref__",)


class _Probes:
    def __init__(self) -> None:
        self.refs: List[Any] = []
        self.owners: List[Any] = []  # the protocol each probe's connection had
        self.made = 0
        self.server_lost = 0
        self.reached_caller = 0
        self.expected = 0
        self.all_lost: Optional[asyncio.Future[None]] = None

    def lost(self) -> None:
        self.server_lost += 1
        if self.all_lost is not None and self.server_lost >= self.expected and not self.all_lost.done():
            self.all_lost.set_result(None)

    def mark(self, owner: asyncio.Protocol) -> None:
        marker = _Marker()
        conn_var.set(marker)  # in the context this callback runs in: the connection's
        if self.made % PROBE_EVERY == 0:
            self.refs.append(weakref.ref(marker))
            self.owners.append(weakref.ref(owner))
        self.made += 1

    def clear(self) -> None:
        self.refs.clear()
        self.owners.clear()

    def outliving(self) -> int:
        """Probes alive while their connection's protocol is gone: contexts ctxloop kept."""
        return sum(1 for ref, owner in zip(self.refs, self.owners) if ref() is not None and owner() is None)

    def held_with_protocol(self) -> int:
        """Probes alive because the loop still holds their connection's protocol (and so its context)."""
        return sum(1 for ref, owner in zip(self.refs, self.owners) if ref() is not None and owner() is not None)


class _EchoServer(asyncio.Protocol):
    """Answers one message from a task of its own (which resumes reading, C3), then closes the connection."""

    def __init__(self, probes: _Probes) -> None:
        self.probes = probes
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.probes.mark(self)

    def data_received(self, data: bytes) -> None:
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._answer(data))

    async def _answer(self, data: bytes) -> None:
        self.transport.resume_reading()  # from the request's task, as servers do
        self.transport.write(data)
        # Each side closes its own transport: rloop 0.5 reports a peer's close
        # late (server side) or never (client side, when its server closed).
        self.transport.close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.probes.lost()
        self.transport = None


class _Caller(asyncio.Protocol):
    def __init__(self, probes: _Probes, answered: "asyncio.Future[bytes]", lost: "asyncio.Future[None]") -> None:
        self.probes, self.answered, self.lost = probes, answered, lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.probes.mark(self)

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(data)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def _one_connection(port: int, number: int, probes: _Probes) -> None:
    loop = asyncio.get_running_loop()
    answered, lost = loop.create_future(), loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Caller(probes, answered, lost), "127.0.0.1", port)
    if conn_var.get() != "server":  # C2: what the connection's callbacks set stays in its own context
        probes.reached_caller += 1
    message = b"%d" % number
    transport.write(message)
    assert await answered == message
    transport.close()
    await lost


async def _churn(port: int, total: int, probes: _Probes) -> None:
    for start in range(0, total, CONNECTION_BATCH):
        await asyncio.gather(*(_one_connection(port, n, probes) for n in range(start, start + CONNECTION_BATCH)))


async def _until_servers_lost(probes: _Probes, accepted: int) -> None:
    """Wait for the server side's connection_lost of the first *accepted* connections."""
    if probes.server_lost < accepted:
        probes.all_lost = asyncio.get_running_loop().create_future()
        probes.expected = accepted
        await asyncio.wait_for(probes.all_lost, 30)
    assert probes.server_lost == accepted, (probes.server_lost, accepted)
    for _ in range(3):  # the handles that ran connection_lost, and the request tasks
        await asyncio.sleep(0)


def _live_protocols() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) in (_EchoServer, _Caller))


async def _until_released(probes: _Probes, before: Dict[str, Any]) -> int:
    """Give the loop a bounded number of turns to drop the last closed connections; return the turns taken.

    What a loop still holds of a connection once both sides saw connection_lost is gone within a few
    turns, except on rloop 0.5, which keeps the protocols of about one closed connection in a hundred
    for the life of the process (the same with a plain rloop loop). Such a connection keeps its context,
    as any object the protocol refers to: that is counted apart, and only on rloop allowed.
    """
    for turn in range(SETTLE_TURNS):
        settled = probes.outliving() == 0 and probes.held_with_protocol() == 0
        if "contexts before" in before:
            settled = settled and _live_contexts() <= before["contexts before"]
        if settled:
            return turn
        await asyncio.sleep(0.01)
    return SETTLE_TURNS


def _live_contexts() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is contextvars.Context)


def test_context_census_counts_a_context_kept_alive() -> None:
    # The census below would miss a leak if Context objects were not tracked by gc.
    gc.collect()
    before = _live_contexts()
    kept = [contextvars.copy_context() for _ in range(3)]
    assert _live_contexts() - before == 3
    del kept
    assert _live_contexts() == before


async def _measure_churn(total: int, probes: _Probes, report: Dict[str, Any]) -> None:
    """Serve *total* connections after a warm-up; fill *report* with what is left of them."""
    if CPYTHON:
        import tracemalloc
    loop = asyncio.get_running_loop()
    conn_var.set("server")  # C1: the server's context, copied for each connection
    server = await loop.create_server(lambda: _EchoServer(probes), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    warmup = 4 * CONNECTION_BATCH
    try:
        await _churn(port, warmup, probes)  # free lists, the selector's maps
        await _until_servers_lost(probes, warmup)
        probes.clear()
        gc.collect()
        report["protocols before"] = _live_protocols()  # on rloop, some from earlier runs
        if CPYTHON:
            gc.disable()
            tracemalloc.start()
            report["contexts before"] = _live_contexts()
        start = time.perf_counter()
        await _churn(port, total, probes)
        await _until_servers_lost(probes, warmup + total)
        report["seconds"] = round(time.perf_counter() - start, 1)
        report["settle turns"] = await _until_released(probes, report)
        if CPYTHON:
            report["cycles"] = gc.collect()
            gc.enable()
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            snapshot = snapshot.filter_traces([tracemalloc.Filter(False, "*/_weakrefset.py")])
            report["traced bytes"] = sum(stat.size for stat in snapshot.statistics("filename"))
            report["contexts after"] = _live_contexts()
        else:
            for _ in range(3):
                gc.collect()
        report["protocols kept by the loop"] = _live_protocols() - report.pop("protocols before")
        report["alive"] = probes.outliving()
        report["alive with their protocol"] = probes.held_with_protocol()
        report["probes"] = len(probes.refs)
        report["reached the caller"] = probes.reached_caller
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("loop_name", LOOPS)
def test_many_closed_connections_leave_no_context_behind(loop_name: str) -> None:
    total = _connections()
    report: Dict[str, Any] = {"python": sys.version.split()[0], "loop": loop_name, "connections": total}
    loop = ctxloop.new_event_loop(loop_name)
    try:
        loop.run_until_complete(_measure_churn(total, _Probes(), report))
    finally:
        gc.enable()
        loop.close()
    print(f"\nconnection leak run: {report}")
    assert report["probes"] == 2 * total // PROBE_EVERY, report
    assert report["alive"] == 0, report
    assert report["reached the caller"] == 0, report
    kept = report["protocols kept by the loop"]
    if loop_name != "rloop":
        assert kept == 0 and report["alive with their protocol"] == 0, report
    if CPYTHON:
        # One context per connection the loop kept (rloop's), none of ctxloop's.
        assert report["contexts after"] - report["contexts before"] <= kept, report
        assert report["traced bytes"] <= MIB, report
