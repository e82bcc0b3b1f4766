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


# rloop 0.5 drops its self-pipe sockets without closing them when a loop that
# ran in the main thread stops (rloop/loop.py, _ssock_stop): every such run
# ends with two ResourceWarnings that are rloop's, not the test's.
RLOOP_SELF_PIPE = "ignore:unclosed <socket.socket:ResourceWarning"


def pytest_collection_modifyitems(items: "list[pytest.Item]") -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("loop_name") == "rloop":
            item.add_marker(pytest.mark.filterwarnings(RLOOP_SELF_PIPE))
