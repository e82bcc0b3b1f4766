"""Every test that takes ``loop_name`` runs once per installed loop."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import sys
import warnings
from typing import Any, Callable, Coroutine, Iterator, TypeVar

import pytest

import ctxloop

T = TypeVar("T")

# Every installed loop package ctxloop knows by name (ctxloop._loop.NAMED_LOOPS).
LOOPS = ["asyncio"] + [name for name in ("uvloop", "rloop") if importlib.util.find_spec(name)]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def run(loop_name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine as the main task on a fresh ctxloop loop of ``loop_name``."""
    factory = ctxloop.loop_factory(loop_name)

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        return ctxloop.run(coro, loop_factory=factory)

    return runner


@pytest.fixture
def base_loop_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of *plain* (not ctxloop) loops of ``loop_name``."""
    if loop_name != "asyncio":
        return importlib.import_module(loop_name).new_event_loop  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop


def run_plain(factory: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* on a plain loop, with no ctxloop involved at all."""
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# Event loop policies are deprecated from Python 3.14: its public policy
# functions warn. The tests reach the policy slot through asyncio's private
# functions there, so that only the calls under test warn.
POLICIES_DEPRECATED = sys.version_info >= (3, 14)

if POLICIES_DEPRECATED:
    import asyncio.events

    if sys.platform == "win32":  # pragma: no cover
        from asyncio.windows_events import _DefaultEventLoopPolicy as DefaultPolicy
    else:
        from asyncio.unix_events import _DefaultEventLoopPolicy as DefaultPolicy

    def get_policy() -> Any:
        """The policy in force, without a deprecation warning."""
        return asyncio.events._get_event_loop_policy()  # type: ignore[attr-defined]

    def set_policy(policy: Any) -> None:
        """Set the policy, without a deprecation warning."""
        asyncio.events._set_event_loop_policy(policy)  # type: ignore[attr-defined]

else:
    DefaultPolicy = asyncio.DefaultEventLoopPolicy

    def get_policy() -> Any:
        """The policy in force."""
        return asyncio.get_event_loop_policy()

    def set_policy(policy: Any) -> None:
        """Set the policy."""
        asyncio.set_event_loop_policy(policy)


@contextlib.contextmanager
def policy_deprecation(name: str = "asyncio.set_event_loop_policy") -> Iterator[None]:
    """Expect exactly asyncio's own deprecation of *name* on 3.14+, at the caller's line; nothing before."""
    caller = inspect.stack()[2].filename
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if POLICIES_DEPRECATED:
        assert [(w.category, str(w.message), w.filename) for w in caught] == [
            (DeprecationWarning, f"{name!r} is deprecated and slated for removal in Python 3.16", caller)
        ]
    else:
        assert caught == []


# rloop's native differences from asyncio's loop: what rloop 0.5 itself does,
# measured on plain rloop loops (rloop.new_event_loop(), no ctxloop) beside
# asyncio's, on CPython 3.10, 3.12, 3.14 and 3.15. A ctxloop loop is its base
# loop in every respect but task creation (S10), so where a test needs
# asyncio's behaviour it skips rloop with one of these reasons; the same list,
# for users, is in docs/limitations.md.

# At the end of every run rloop's Rust side closes the self-pipe and
# rloop/loop.py _ssock_stop drops its Python sockets still open: two
# ResourceWarnings per run of a plain rloop loop (ctxloop's detach them). A
# warning filter, for pytest's filterwarnings and python -W alike.
RLOOP_SELF_PIPE = "ignore:unclosed <socket.socket:ResourceWarning"
# On 3.14+ rloop's run_in_executor() and add_signal_handler() call
# asyncio.iscoroutinefunction, which warns there (deprecated, removal in 3.16).
RLOOP_ISCOROUTINEFUNCTION = "ignore:'asyncio.iscoroutinefunction' is deprecated:DeprecationWarning:rloop"

RLOOP_BASE_EXCEPTIONS = (
    "rloop 0.5 logs a KeyboardInterrupt or SystemExit raised in a task ('Exception in callback') and keeps "
    "running: run_until_complete() never returns (asyncio propagates it)"
)
RLOOP_NO_DEBUG = (
    "rloop 0.5 has no debug mode: set_debug(True) does nothing, get_debug() is False and tasks record no "
    "_source_traceback"
)
RLOOP_310_SIGNALS = (
    "rloop 0.5 on Python 3.10 runs a Python signal handler (signal.signal(), as the Runner's for Ctrl-C) only "
    "when the loop next runs a callback: a SIGINT while the main task sleeps goes unhandled (asyncio runs it at "
    "once; rloop on 3.11+ too)"
)
RLOOP_REMOVE_SIGNAL_HANDLER = (
    "rloop 0.5's remove_signal_handler() raises AttributeError: 'RLoop' object has no attribute '_is_main_thread'"
)
# Not skips: tests that meet these expect rloop's own behaviour.
# * The exception handler is called as handler(context), not handler(loop, context).
# * A task given a context the whole loop runs inside (S7): rloop breaks out of
#   run_until_complete() with "cannot exit context", as uvloop does.
# * An unnamed task made by a task factory is named "None" (rloop calls
#   task.set_name(name) with name=None).
# * call_soon_threadsafe() runs the callback in the loop's context, not the
#   calling thread's (C4 is ctxloop's to restore).
# * The self-pipe's descriptors are closed twice (by rloop, then by the garbage
#   collector): plain rloop loops run repeatedly in several threads at once
#   fail now and then (EBADF, then "Cannot close a running event loop" from
#   asyncio.Runner, 10-17 of 40 rounds of 8 threads); ctxloop's loops do not.


def _runs_on_rloop(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    # loop_name, or the anyio tests' asyncio_backend ("asyncio-rloop")
    return callspec is not None and any(value in ("rloop", "asyncio-rloop") for value in callspec.params.values())


def pytest_collection_modifyitems(items: "list[pytest.Item]") -> None:
    for item in items:
        if _runs_on_rloop(item):
            item.add_marker(pytest.mark.filterwarnings(RLOOP_SELF_PIPE))
            item.add_marker(pytest.mark.filterwarnings(RLOOP_ISCOROUTINEFUNCTION))
