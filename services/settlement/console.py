"""The finance console at /ui: the portfolio, a contract's position over time, spend against benchmark, the
settlement waterfall, what-if and alerts, rendered on the server (Jinja2) and readable without JavaScript.

Sign-in takes an API key (the form field `api_key`) and sets a session cookie (HTTP-only, Secure, SameSite
strict, 8 hours) that names the key and is signed; every page checks the key is still active, so a revoked key
ends its sessions. Charts are inline SVG drawn here from the numbers (no script, nothing from a CDN)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.settlement import repository
from shared.auth import Principal, key_hash
from shared.db import Conn
from shared.http import ExactJsonRoute
from shared.runtime_types import Pooled
from shared.terms import TRACKS, ContractTerms

COOKIE = "acoflow_session"
SESSION_S = 8 * 3600
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# The portfolio's columns: (position field, heading); sortable by any.
COLUMNS = (
    ("contract_id", "contract"),
    ("program", "program"),
    ("track", "track"),
    ("members", "members"),
    ("paid_to_date", "spend to date"),
    ("benchmark_to_date", "benchmark to date"),
    ("projected_gross_savings", "projected savings (losses)"),
    ("projected_shared_savings_losses", "shared savings (losses)"),
    ("downside_exposure_now", "exposure now"),
    ("downside_exposure_at_cap", "exposure at cap"),
    ("probability_clears_msr", "P(clears MSR)"),
    ("as_of", "as of"),
)


def money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}" if value not in (None, "") else ""


def percent(value: Any) -> str:
    return f"{Decimal(str(value)) * 100:.1f}%" if value not in (None, "") else ""


templates.env.filters["money"] = money
templates.env.filters["percent"] = percent


class Sessions:
    """Signed session tokens: `key_id.expires.signature`."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, key_id: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_S)
        body = f"{key_id}.{expires}"
        return f"{body}.{hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()}"

    def key_id(self, token: str | None, now: float | None = None) -> str | None:
        if not token or token.count(".") != 2:
            return None
        key_id, expires, signature = token.split(".")
        expected = hmac.new(self._secret, f"{key_id}.{expires}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature) or not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return key_id


async def _principal_by_id(conn: Conn, schema: str, key_id: str) -> Principal | None:
    row = await conn.fetchrow(
        f"SELECT key_id, name, role FROM {schema}.api_key_replica WHERE key_id = $1 AND NOT revoked", key_id
    )
    return None if row is None else Principal(row["key_id"], row["name"], row["role"])


def _points(values: list[Decimal], width: int = 640, height: int = 160, pad: int = 8) -> tuple[str, Decimal, Decimal]:
    """An SVG polyline's points for `values` across the width, and the range they span."""
    low, high = min(values), max(values)
    span = (high - low) or Decimal(1)
    step = Decimal(width - 2 * pad) / max(len(values) - 1, 1)
    pts = [
        f"{pad + step * i:.1f},{Decimal(height - pad) - (v - low) / span * Decimal(height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    ]
    return " ".join(pts), low, high


def _month_bars(position: dict[str, Any], width: int = 640, height: int = 160) -> list[dict[str, Any]]:
    """Spend by service month against the benchmark a month (benchmark to date / months elapsed)."""
    months = sorted(position.get("paid_by_service_month", {}).items())
    if not months:
        return []
    per_month = Decimal(str(position["benchmark_total"])) / 12
    top = max([Decimal(str(v)) for _, v in months] + [per_month]) or Decimal(1)
    slot = Decimal(width) / len(months)
    return [
        {
            "month": month,
            "x": f"{slot * i + 2:.1f}",
            "width": f"{slot - 4:.1f}",
            "height": f"{Decimal(str(v)) / top * (height - 20):.1f}",
            "y": f"{height - Decimal(str(v)) / top * (height - 20):.1f}",
            "paid": money(v),
            "benchmark_y": f"{height - per_month / top * (height - 20):.1f}",
        }
        for i, (month, v) in enumerate(months)
    ]


def waterfall(position: dict[str, Any]) -> list[tuple[str, str]]:
    """The settlement's steps, from the benchmark to what is earned or owed."""
    return [
        ("benchmark (year)", money(position["benchmark_total"])),
        ("projected expenditure", money(position["projected_expenditure"])),
        ("gross savings (losses)", money(position["projected_gross_savings"])),
        ("savings rate", percent(position["projected_savings_rate"])),
        ("minimum savings / loss rate", f"{percent(position['msr'])} / {percent(position['mlr'])}"),
        ("gate", position["gate"]),
        ("final sharing rate (after quality)", percent(position["final_sharing_rate"])),
        ("caps and sequestration", "see explanation"),
        ("shared savings (losses)", money(position["projected_shared_savings_losses"])),
        ("advance payments recouped", money(position.get("advance_payment_recoupment", 0))),
    ] + [  # only for a contract that received prepaid shared savings (MSSP, PY2026+)
        (label, money(position[key]))
        for label, key in (
            ("prepaid savings recouped", "prepaid_savings_recoupment"),
            ("prepaid savings still owed", "prepaid_savings_outstanding"),
        )
        if Decimal(str(position.get(key) or 0))
    ]


def build_console(pooled: Pooled, schema: str, secret: bytes | None = None) -> APIRouter:
    router = APIRouter(prefix="/ui", tags=["console"], include_in_schema=False, route_class=ExactJsonRoute)
    sessions = Sessions(secret or secrets.token_bytes(32))

    async def principal(request: Request) -> Principal | None:
        key_id = sessions.key_id(request.cookies.get(COOKIE))
        if key_id is None:
            return None
        async with pooled.pool.acquire() as conn:
            return await _principal_by_id(conn, schema, key_id)

    def to_login() -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return templates.TemplateResponse(request, "login.html", {"error": None})

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, api_key: Annotated[str, Form(max_length=200)]) -> Response:
        async with pooled.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT key_id FROM {schema}.api_key_replica WHERE key_hash = $1 AND NOT revoked", key_hash(api_key)
            )
        if row is None:
            return templates.TemplateResponse(request, "login.html", {"error": "unknown or revoked API key"}, status_code=401)
        response = RedirectResponse("/ui", status_code=303)
        response.set_cookie(
            COOKIE, sessions.issue(row["key_id"]), max_age=SESSION_S, httponly=True, secure=True, samesite="strict", path="/ui"
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = to_login()
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @router.get("", response_class=HTMLResponse)
    async def portfolio(request: Request, sort: str = "contract_id", order: str = "asc", q: str = "") -> Response:
        who = await principal(request)
        if who is None:
            return to_login()
        async with pooled.pool.acquire() as conn:
            rows = await repository.positions(conn, limit=10_000)
        if q:
            needle = q.lower()
            rows = [r for r in rows if needle in f"{r['contract_id']} {r['program']} {r['track']} {r['gate']}".lower()]
        field = sort if sort in {c for c, _ in COLUMNS} else "contract_id"

        def key(r: dict[str, Any]) -> Any:
            value = r.get(field)
            try:
                return (0, Decimal(str(value)))
            except ArithmeticError:
                return (1, str(value))

        rows.sort(key=key, reverse=order == "desc")
        context = {"who": who, "rows": rows, "columns": COLUMNS, "sort": field, "order": order, "q": q}
        return templates.TemplateResponse(request, "portfolio.html", context)

    @router.get("/contracts/{contract_id}", response_class=HTMLResponse)
    async def contract(request: Request, contract_id: str, track: str = "", msr: str = "") -> Response:
        who = await principal(request)
        if who is None:
            return to_login()
        async with pooled.pool.acquire() as conn:
            found = await repository.positions(conn, contract_id)
            if not found:
                return templates.TemplateResponse(request, "missing.html", {"who": who, "contract_id": contract_id}, 404)
            points = await repository.history(conn, contract_id)
            alerts = await repository.alerts(conn, contract_id)
            terms = await repository.current_terms(conn, contract_id)
            comparison: list[dict[str, Any]] = []
            what_if_error = None
            if terms is not None and (track or msr):
                changes: dict[str, Any] = {}
                if track:
                    changes["track"] = track
                if msr:
                    changes["msr"] = msr
                try:
                    alternative = ContractTerms.model_validate({**terms.model_dump(mode="json"), **changes})
                    settled = await repository.what_if(conn, contract_id, [alternative]) or []
                    comparison = [p.model_dump(mode="json") for p in settled]
                except ValueError as exc:
                    what_if_error = str(exc).splitlines()[0]
        position = found[0]
        history = [Decimal(str(p["projected_shared_savings_losses"])) for p in points]
        chart = _points(history) if len(history) > 1 else None
        context = {
            "who": who,
            "p": position,
            "points": points,
            "chart": chart,
            "bars": _month_bars(position),
            "waterfall": waterfall(position),
            "alerts": alerts,
            "comparison": comparison,
            "what_if_error": what_if_error,
            "tracks": sorted(TRACKS.get(position["program"], ())),
            "track": track,
            "msr": msr,
        }
        return templates.TemplateResponse(request, "contract.html", context)

    return router
