"""What every service's HTTP side shares below the routes: a request id on every request and response, paths
and queries with control characters refused (422 naming them), and any unexpected error answered as JSON and
logged as one structured line with method, path and request id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger
from shared.text import CONTROL_MESSAGE, has_control

log = get_logger(__name__)
REQUEST_ID = "x-request-id"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID.encode():
            text = str(value.decode("latin-1"))[:64]
            if text and not has_control(text):
                return text
    return uuid.uuid4().hex


async def _json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    response = JSONResponse(body, status_code=status, headers={REQUEST_ID: request_id})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class BodyTooLarge(Exception):
    pass


class RequestGuard:
    """The outermost layer of a service's app (ServiceApp puts it there)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        query = unquote(scope.get("query_string", b"").decode("latin-1"))
        for where, text in (("path", scope.get("path", "")), ("query", query)):
            if has_control(text):
                await _json(send, 422, {"detail": [{"loc": [where], "msg": CONTROL_MESSAGE}]}, request_id)
                return
        too_large = {"detail": [{"loc": ["body"], "msg": f"the request body is over {self.max_body:,} bytes"}]}
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await _json(send, 413, too_large, request_id)
                return
        started = False
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise BodyTooLarge
            return message

        async def tagged(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID.encode(), request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, counted, tagged)
            except BodyTooLarge:
                if not started:
                    await _json(send, 413, too_large, request_id)
            except Exception as exc:  # the error handler below has answered; this is the one log line
                log.error(
                    "request_failed",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                    exc_info=True,
                )
                if not started:
                    await _json(send, 500, {"detail": "internal error", "request_id": request_id}, request_id)


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    limit = getattr(request.app, "max_body", 0)
    return JSONResponse({"detail": [{"loc": ["body"], "msg": f"the request body is over {limit:,} bytes"}]}, status_code=413)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "internal error", "request_id": getattr(request.state, "request_id", None)}, status_code=500)


class ExactJsonRequest(Request):
    """A request whose JSON body keeps numbers as written: Decimal, never float (money must not round)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact


class ServiceApp(FastAPI):
    """FastAPI with RequestGuard outside everything (the API-key middleware and Starlette's error layer
    included), whatever middleware a service adds later."""

    def __init__(self, max_body: int = 32 * 1024 * 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_body = max_body
        self.router.route_class = ExactJsonRoute
        self.add_exception_handler(BodyTooLarge, _too_large)
        self.add_exception_handler(Exception, _internal_error)

    def build_middleware_stack(self) -> ASGIApp:
        return RequestGuard(super().build_middleware_stack(), self.max_body)
