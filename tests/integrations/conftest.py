"""Integration tests: each runs once per loop (asyncio, uvloop where it installs) and per route.

The routes onto a ctxloop loop are ``policy`` (``ctxloop.install()``) and
``loop_factory`` (``ctxloop.run(..., loop_factory=...)`` or a server's own loop
option); ``native`` runs the same scenario with no ctxloop on Python 3.12+, as
the reference. Server modules define routes of their own.
"""

from __future__ import annotations

import pytest
from integ_support import LOOPS, NATIVE, NATIVE_REASON


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["policy", "loop_factory", "native"])
def route(request: pytest.FixtureRequest) -> str:
    if request.param == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    return request.param  # type: ignore[no-any-return]
