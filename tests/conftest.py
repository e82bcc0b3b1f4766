"""Every test that takes ``loop_name`` runs once per installed loop."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, Callable, Coroutine, TypeVar

import pytest

import ctxloop

T = TypeVar("T")

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


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
    if loop_name == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop


def run_plain(factory: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* on a plain loop, with no ctxloop involved at all."""
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
