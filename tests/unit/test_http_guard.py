"""The HTTP layer every service shares: bodies over the limit get 413 (declared or streamed), control characters
in the path 422, and every answer a request id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Request

from shared.http import ServiceApp


def app() -> ServiceApp:
    service = ServiceApp(max_body=1024, title="t")

    @service.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"size": len(await request.body())}

    return service


async def test_request_bodies_over_the_limit_are_refused_with_413() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        small = await client.post("/echo", content=b"x" * 1000)
        assert small.status_code == 200 and small.json() == {"size": 1000} and small.headers["x-request-id"]
        declared = await client.post("/echo", content=b"x" * 2000)
        assert declared.status_code == 413 and declared.json()["detail"][0]["loc"] == ["body"]

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"x" * 500

        streamed = await client.post("/echo", content=stream())  # chunked: no content-length to go by
        assert streamed.status_code == 413
        assert (await client.get("/a%00b")).status_code == 422
