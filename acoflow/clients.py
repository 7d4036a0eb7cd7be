"""The CLI's HTTP clients: one per service, all with the same authentication and the same errors.

A service that answers 4xx/5xx raises ApiError naming the status and the service's own detail (the field a 422
names); a service that cannot be reached raises ServiceUnreachable. Both are click exceptions, so every command
reports them the same way (one `Error: ...` line, exit status 1) without handling them itself."""

from __future__ import annotations

from typing import Any

import click
import httpx


class ApiError(click.ClickException):
    def __init__(self, service: str, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            body = response.json()
            detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
        except ValueError:
            detail = response.text
        if isinstance(detail, list):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body')}: {d.get('msg')}"
                for d in detail
                if isinstance(d, dict)
            )
        super().__init__(f"{service} answered HTTP {response.status_code}: {str(detail)[:500]}")


class ServiceUnreachable(click.ClickException):
    def __init__(self, service: str, url: str, exc: httpx.HTTPError) -> None:
        super().__init__(f"cannot reach {service} at {url} ({type(exc).__name__}: {exc}); is the stack up (`acoflow status`)?")


class ServiceClient:
    def __init__(self, service: str, base_url: str, api_key: str, timeout: float = 60) -> None:
        self.service = service
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON answer; None for a 404 when `missing_ok`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnreachable(self.service, self.base_url, exc) from exc
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ApiError(self.service, response)
        return response.json() if response.content else None

    def get(self, path: str, *, missing_ok: bool = False, **params: Any) -> Any:
        return self.request("GET", path, params=params or None, missing_ok=missing_ok)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def pages(self, path: str, cursor: str, page: int, **params: Any) -> list[dict[str, Any]]:
        """Every row of a listing paged by `after=<the last row's cursor field>`."""
        rows: list[dict[str, Any]] = []
        while True:
            extra = {"after": str(rows[-1][cursor])} if rows else {}
            chunk = list(self.request("GET", path, params={"limit": page, **params, **extra}))
            rows += chunk
            if len(chunk) < page:
                return rows
