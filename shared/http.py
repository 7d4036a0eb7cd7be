"""What every service's HTTP side shares below the routes: a request id on every request and response, paths
and queries with control characters refused (422 naming them), malformed JSON answered 400, one error shape
({"detail": [{"loc": [...], "msg": ...}]}) declared in the OpenAPI document with the auth scheme, and any
unexpected error answered as JSON and logged as one structured line with method, path and request id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger
from shared.text import CONTROL_MESSAGE, has_control

log = get_logger(__name__)
REQUEST_ID = "x-request-id"
# Paths anyone may read: liveness, metrics, and the API's own documents (/docs opens in a browser; its
# "Authorize" button takes a key for the calls).
PUBLIC_PATHS = frozenset({"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/asyncapi.json"})


class Body(BaseModel):
    """A request body: a JSON object. FastAPI validates bodies with from_attributes, and a body that is a bare
    number (read exactly, as a Decimal, an object with attributes) would otherwise pass as a model of defaults."""

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        if isinstance(data, Decimal):
            raise ValueError("expected a JSON object")
        return data


class Problem(BaseModel):
    """One thing wrong with a request: where (loc: "body", "query", "path" or "header", then the field) and why."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx answer: what was wrong, field by field."""

    detail: list[Problem]


_ERRORS = {
    400: "the body is not well-formed JSON",
    401: "no API key, or an unknown or revoked one",
    403: "the key's role does not allow this",
    404: "no such resource (detail names the path parameter)",
    413: "the request body is over the service's limit",
    422: "a field is invalid or missing (detail names it); control characters in a path or query",
    429: "too many failed authentications from this client: wait and retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _ERRORS[s]} for s in statuses}


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


class ErrorResponse(JSONResponse):
    """An error body as ASCII JSON: a field name or message may hold any character the client sent, lone
    surrogates included, which UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":"), default=str).encode()


def _problems(detail: Any, status: int) -> list[dict[str, Any]]:
    """Any detail as the one error shape: a list of {loc, msg, type}, never echoing the input (it may be PHI)."""
    if isinstance(detail, list):
        return [
            {"loc": list(d.get("loc", [])), "msg": str(d.get("msg", "")), **({"type": d["type"]} if "type" in d else {})}
            for d in detail
            if isinstance(d, dict)
        ]
    where = {400: ["body"], 404: ["path"], 405: ["method"]}.get(status, [])
    return [{"loc": where, "msg": str(detail)}]


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        problems = [
            {"loc": ["body"], "msg": f"malformed JSON: {e.get('ctx', {}).get('error', e['msg'])}", "type": "json_invalid"}
            for e in errors
        ]
        return ErrorResponse({"detail": problems}, status_code=400)
    return ErrorResponse({"detail": _problems(errors, 422)}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return ErrorResponse({"detail": _problems(exc.detail, exc.status_code)}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "internal error", "request_id": getattr(request.state, "request_id", None)}, status_code=500)


class ExactJsonRequest(Request):
    """A request whose JSON body keeps numbers as written: Decimal, never float (money must not round)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactJsonRoute(APIRoute):
    """A route whose JSON keeps numbers exact, and whose document declares the errors it can answer: a path
    parameter that names nothing (404), a body that is not JSON (400)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        extra: list[int] = []
        if "{" in path:
            extra.append(404)
        if set(kwargs.get("methods") or ()) & {"POST", "PUT", "PATCH"}:
            extra.append(400)
        kwargs["responses"] = {**error_responses(*extra), **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact


class ServiceApp(FastAPI):
    """FastAPI with RequestGuard outside everything (the API-key middleware and Starlette's error layer
    included), whatever middleware a service adds later."""

    def __init__(self, max_body: int = 32 * 1024 * 1024, **kwargs: Any) -> None:
        kwargs.setdefault("responses", error_responses(401, 403, 413, 422, 429))
        super().__init__(**kwargs)
        self.max_body = max_body
        self.router.route_class = ExactJsonRoute
        self.add_exception_handler(BodyTooLarge, _too_large)
        self.add_exception_handler(RequestValidationError, _invalid)
        self.add_exception_handler(StarletteHTTPException, _http_error)
        self.add_exception_handler(Exception, _internal_error)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with the API-key schemes every route but the public ones requires."""
        if self.openapi_schema is None:
            schema = super().openapi()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKeyHeader": []}]
            for path in PUBLIC_PATHS & set(schema.get("paths", {})):
                for operation in schema["paths"][path].values():
                    operation["security"] = []
                    for status in ("401", "403", "429"):
                        operation.get("responses", {}).pop(status, None)
            self.openapi_schema = schema
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        return RequestGuard(super().build_middleware_stack(), self.max_body)
