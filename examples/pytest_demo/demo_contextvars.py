"""Two async tests that hold on every Python and loop under ``pytest --ctxloop=asyncio,uvloop``.

Without ``--ctxloop``, ``test_fixture_value_reaches_the_test`` fails on Python
3.8 (pytest-asyncio 0.24, any loop) and on 3.9-3.10 with uvloop, and
``test_task_runs_in_the_given_context`` fails on 3.8-3.10 (``create_task`` has
no ``context=`` there).
"""

import asyncio
import contextvars

import pytest
import pytest_asyncio

request_id = contextvars.ContextVar("request_id", default="-")


@pytest_asyncio.fixture
async def request_scope():
    token = request_id.set("req-42")
    yield "req-42"
    request_id.reset(token)  # teardown runs in the context setup ran in


@pytest.mark.asyncio
async def test_fixture_value_reaches_the_test(request_scope):
    assert request_id.get() == request_scope


@pytest.mark.asyncio
async def test_task_runs_in_the_given_context():
    ctx = contextvars.copy_context()

    async def handler():
        request_id.set("req-7")

    await asyncio.get_running_loop().create_task(handler(), context=ctx)
    assert ctx[request_id] == "req-7"  # the task ran in ctx itself, not a copy
    assert request_id.get() == "-"  # and the caller's context is untouched
