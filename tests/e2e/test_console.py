"""The finance console in a real browser (Debian's chromium, driven by Playwright) against the running stack:
sign in with an API key, read the portfolio, open a contract (charts, waterfall, explanation), run a what-if."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from acoflow.load import publish
from acoflow.stack import Stack, private_settings

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CCLF = Path(__file__).parents[1] / "fixtures" / "cclf"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_console_sign_in_portfolio_contract_and_what_if(tmp_path: Path, database: str) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is not installed (make test installs Debian's chromium package)"
    settings = private_settings(tmp_path / "state", database_url=database)
    stack = Stack(settings, settings.state_dir)
    stack.start()
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    base = stack.url("settlement")
    try:
        contract = {
            "contract_id": "UI-1",
            "name": "Console ACO",
            "payer": "CMS",
            "terms": {
                "program": "MSSP", "track": "BE", "performance_year": 2025, "period_start": "2025-01-01",
                "period_end": "2025-12-31", "benchmark_per_capita": {"aged_nondual": "12000.00", "disabled": "11000.00"},
                "msr": "0.02",
            },
            "roster": [{"member_id": "1AA0AA0AA01"}, {"member_id": "1AA0AA0AA02", "enrollment_type": "disabled"}],
        }  # fmt: skip
        assert httpx.post(stack.url("contracts") + "/contracts", json=contract, headers=auth, timeout=30).status_code == 201
        quiet = Console(quiet=True)
        asyncio.run(publish(sorted((CCLF / "mssp").iterdir()), None, "CMS", stack.bootstrap, quiet, quiet=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.get(base + "/positions/UI-1", headers=auth, timeout=10)
            if r.status_code == 200 and Decimal(r.json()["paid_to_date"]) == Decimal("19874.75"):
                break
            time.sleep(0.5)
        history = httpx.get(base + "/positions/UI-1/history", headers=auth, timeout=10)
        assert history.status_code == 200 and Decimal(history.json()[-1]["paid_to_date"]) == Decimal("19874.75")
        env = {**os.environ, "ACOFLOW_STATE_DIR": str(settings.state_dir)}
        shown = subprocess.run(
            [sys.executable, "-m", "acoflow.cli", "position", "UI-1", "--history", "--json"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0 and json.loads(shown.stdout)[-1]["contract_id"] == "UI-1"

        # Without a session the console sends you to sign in; the cookie it sets is HTTP-only, Secure, strict.
        bare = httpx.get(base + "/ui", timeout=10)
        assert bare.status_code == 303 and bare.headers["location"] == "/ui/login"
        signed = httpx.post(base + "/ui/login", data={"api_key": stack.api_key}, timeout=10)
        cookie = signed.headers["set-cookie"].lower()
        assert signed.status_code == 303 and "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            page.goto(base + "/ui")
            assert page.url.endswith("/ui/login")
            page.screenshot(path=str(tmp_path / "login.png"))
            page.fill("input[name=api_key]", "acf_not-a-key")
            page.click("button[type=submit]")
            assert "unknown or revoked API key" in page.inner_text("[role=alert]")
            page.fill("input[name=api_key]", stack.api_key)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/ui")
            page.screenshot(path=str(tmp_path / "portfolio.png"), full_page=True)
            table = page.inner_text("#portfolio")
            assert "UI-1" in table and "19,874.75" in table and "MSSP" in table
            page.goto(base + "/ui?q=nothing-matches")
            assert "no contract has a position yet" in page.inner_text("#portfolio")
            page.goto(base + "/ui?sort=paid_to_date&order=desc")
            page.click("text=UI-1")
            page.wait_for_url(base + "/ui/contracts/UI-1")
            assert page.locator("#months rect").count() >= 2  # March and April spend
            waterfall = page.inner_text("#waterfall")
            assert "gross savings (losses)" in waterfall and "final sharing rate" in waterfall
            assert "Part D (pharmacy) does not count" in page.content()
            page.select_option("select[name=track]", "BA")
            page.click("text=compare")
            comparison = page.inner_text("#what-if")
            assert "BE" in comparison and "BA" in comparison
            page.screenshot(path=str(tmp_path / "contract.png"), full_page=True)
            browser.close()
    finally:
        stack.stop()
