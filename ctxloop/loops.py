"""Zero-argument loop factories, importable by name, for servers that take one.

Servers and runners that accept a loop factory as an import string can use
these directly, for example::

    uvicorn app:app --loop ctxloop.loops:uvloop_loop
    uvicorn app:app --loop ctxloop.loops:asyncio_loop
    uvicorn app:app --loop ctxloop.loops:rloop_loop

Each call returns a new ctxloop loop (``ctxloop.new_event_loop``) on that base.
"""

from __future__ import annotations

import asyncio

from ._loop import new_event_loop

__all__ = ["asyncio_loop", "rloop_loop", "uvloop_loop"]


def asyncio_loop() -> asyncio.AbstractEventLoop:
    """Return a new ctxloop loop on asyncio's default loop.

    A zero-argument loop factory: ``uvicorn app:app --loop
    ctxloop.loops:asyncio_loop``, ``uvicorn.run(app, loop="ctxloop.loops:asyncio_loop")``,
    ``asyncio.run(main(), loop_factory=ctxloop.loops.asyncio_loop)`` (3.12+).
    """
    return new_event_loop("asyncio")


def uvloop_loop() -> asyncio.AbstractEventLoop:
    """Return a new ctxloop loop on uvloop (which must be installed).

    A zero-argument loop factory: ``uvicorn app:app --loop
    ctxloop.loops:uvloop_loop``, ``uvicorn.run(app, loop="ctxloop.loops:uvloop_loop")``,
    ``asyncio.run(main(), loop_factory=ctxloop.loops.uvloop_loop)`` (3.12+).
    Without uvloop it raises ``ModuleNotFoundError`` naming the package.
    """
    return new_event_loop("uvloop")


def rloop_loop() -> asyncio.AbstractEventLoop:
    """Return a new ctxloop loop on rloop (which must be installed: CPython 3.10+).

    A zero-argument loop factory: ``uvicorn app:app --loop
    ctxloop.loops:rloop_loop``, ``asyncio.run(main(), loop_factory=ctxloop.loops.rloop_loop)``
    (3.12+). Without rloop it raises ``ModuleNotFoundError`` naming the package.
    """
    return new_event_loop("rloop")
