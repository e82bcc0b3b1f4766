"""A Starlette application with a pure ASGI request-id middleware (run by uvicorn)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict

from integ_support import REQUEST_ID, in_request_context, log_to_stdout, work
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestIdMiddleware:
    """Runs each HTTP request in a context of its own with the request id set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"-").decode()
        mode = headers.get(b"x-mode", b"context").decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", REQUEST_ID.get().encode())]
            await send(message)

        await in_request_context(rid, mode, lambda: self.app(scope, receive, send_with_id))


async def endpoint(request: Request) -> JSONResponse:
    return JSONResponse(await work())


app = Starlette(routes=[Route("/work/{number:int}", endpoint)], middleware=[Middleware(RequestIdMiddleware)])


def make_cli_app() -> Starlette:
    """``uvicorn --factory integ_starlette:make_cli_app``: the same app, logging to stdout."""
    log_to_stdout()
    return app
