"""An aiohttp application with a request-id middleware."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web
from integ_support import REQUEST_ID, in_request_context, work

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("x-request-id", "-")
    mode = request.headers.get("x-mode", "context")
    response = await in_request_context(rid, mode, lambda: handler(request))
    response.headers["x-request-id"] = REQUEST_ID.get()
    return response


async def endpoint(request: web.Request) -> web.Response:
    return web.json_response(await work())


def make_app() -> web.Application:
    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_get("/work/{number}", endpoint)
    return app
