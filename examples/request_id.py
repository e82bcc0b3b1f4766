"""Per-request ids in every log line, across tasks, with a logging.Filter reading contextvars.

The server gives each request a Context of its own and runs the handler as a
task *in* that Context (``create_task(..., context=ctx)``). Everything the
handler's tasks log carries the request id; and because the handler runs in
``ctx`` itself, not in a copy, what it sets (the authenticated user) is still
in ``ctx`` when the server writes the access log afterwards. Without ctxloop,
Python 3.8-3.10 has no ``context=`` and uvloop gives a copy, so the access log
would say "anonymous".

Run twice: under the policy (``ctxloop.install()`` then plain
``asyncio.run``: code written for 3.11 runs unchanged on 3.8+), and with a
loop factory (``ctxloop.run(..., loop_factory=ctxloop.loop_factory())``).

    python examples/request_id.py
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import warnings
from typing import List, Tuple

import ctxloop

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="anonymous")


class RequestContextFilter(logging.Filter):
    """Copy the current request id and user onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.user = user.get()
        return True


log = logging.getLogger("app")


async def query(source: str, steps: int) -> str:
    # A task of its own (gather): it runs in a copy of the handler's context,
    # so it logs under the handler's request id and user.
    for _ in range(steps):
        await asyncio.sleep(0)
    log.info("fetched %s", source)
    return source


async def handle(path: str, token: str) -> None:
    log.info("GET %s", path)
    await asyncio.sleep(0)
    user.set(token)  # authentication: set in the request's own context
    log.info("authenticated")
    await asyncio.gather(query("db", 2), query("cache", 1))
    log.info("200 OK")


REQUESTS: List[Tuple[str, str, str]] = [("req-1", "/orders", "alice"), ("req-2", "/profile", "bob")]


async def serve() -> None:
    loop = asyncio.get_running_loop()
    contexts = []
    tasks = []
    for rid, path, token in REQUESTS:
        ctx = contextvars.copy_context()
        ctx.run(request_id.set, rid)
        contexts.append(ctx)
        # Both routes give a ctxloop loop, whose create_task takes context= on
        # every Python. (Under ctxloop.install(), asyncio.create_task(...,
        # context=ctx) works on 3.8-3.10 too, as on 3.11.)
        tasks.append(loop.create_task(handle(path, token), context=ctx))  # type: ignore[call-arg]
    await asyncio.gather(*tasks)
    for ctx in contexts:
        # The handler ran in ctx itself: the user it set is there.
        ctx.run(log.info, "access log: %s done", ctx[request_id])
    log.info("served %d requests", len(contexts))


def main() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(logging.Formatter("%(request_id)-5s %(user)-9s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    print("== under the policy: ctxloop.install(); asyncio.run(serve())")
    with warnings.catch_warnings():
        # Event loop policies are deprecated from Python 3.14: there install()
        # warns as asyncio.set_event_loop_policy() does. The loop factory below
        # is the route that stays.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctxloop.install()
    try:
        asyncio.run(serve())
    finally:
        ctxloop.uninstall()

    print("== with a loop factory: ctxloop.run(serve(), loop_factory=ctxloop.loop_factory())")
    ctxloop.run(serve(), loop_factory=ctxloop.loop_factory())


if __name__ == "__main__":
    main()
