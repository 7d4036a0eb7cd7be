"""Roles: viewer < editor < admin; the phi role reads what a viewer reads and PHI, which only admins also read."""

from __future__ import annotations

from shared.auth import allows


def test_roles_nest_and_phi_stands_apart() -> None:
    assert allows("admin", "editor") and allows("editor", "viewer") and not allows("viewer", "editor")
    assert allows("phi", "viewer") and allows("phi", "phi") and allows("admin", "phi")
    assert not allows("editor", "phi") and not allows("viewer", "phi") and not allows("phi", "editor")


async def test_repeated_failed_authentication_is_slowed_down_and_lookups_are_cached() -> None:
    import httpx

    from shared.auth import FAILURE_LIMIT, ApiKeyMiddleware, Principal
    from shared.http import ServiceApp

    lookups: list[str] = []

    async def lookup(key: str) -> Principal | None:
        lookups.append(key)
        return Principal("k1", "ops", "admin") if key == "good" else None

    app = ServiceApp(title="t")

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(ApiKeyMiddleware, lookup=lookup)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for _ in range(3):
            assert (await client.get("/x", headers={"X-API-Key": "good"})).status_code == 200
        assert lookups == ["good"]  # cached
        answers = [(await client.get("/x", headers={"X-API-Key": f"bad{n}"})).status_code for n in range(FAILURE_LIMIT + 1)]
        assert answers[:FAILURE_LIMIT] == [401] * FAILURE_LIMIT and answers[-1] == 429
