"""pytest plugin for ctxloop (entry point ``pytest11``): inert unless asked."""

from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    """Register ``--ctxloop`` (not yet active)."""
    group = parser.getgroup("ctxloop")
    group.addoption("--ctxloop", action="store", default=None, help="run async tests once per listed loop")
    parser.addini("ctxloop", "loops to run async tests on", type="args", default=[])
