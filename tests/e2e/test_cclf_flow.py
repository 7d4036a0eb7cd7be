"""CCLF deliveries through the whole stack: MBI re-keying of earlier claims, re-delivery, rejects and replay."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from rich.console import Console

from acoflow.load import publish
from acoflow.stack import Stack, private_settings
from shared.settings import Settings

pytestmark = pytest.mark.e2e
CCLF = Path(__file__).parents[1] / "fixtures" / "cclf"
NEWEST_MBI = "8ZZ9YY8XX76"


def wait_until(check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    return value


def position(stack: Stack, contract_id: str) -> dict[str, Any]:
    url = stack.url("settlement") + f"/positions/{contract_id}"
    r = httpx.get(url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=10)
    return dict(r.json()) if r.status_code == 200 else {}


def spend(stack: Stack, contract_id: str = "CCLF-1") -> Decimal:
    found = position(stack, contract_id)
    return Decimal(found["paid_to_date"]) if found else Decimal(-1)


async def _audited_reads(dsn: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT actor, cardinality(event_ids) AS n FROM claims_ingest.reject_reads ORDER BY id")
        return [(r["actor"], r["n"]) for r in rows]
    finally:
        await conn.close()


async def count_lines(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM claims_ingest.claim_lines"))
    finally:
        await conn.close()


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACOFLOW_STATE_DIR": str(settings.state_dir)}
    return subprocess.run([sys.executable, "-m", "acoflow.cli", *args], env=env, capture_output=True, text=True, timeout=120)


def test_cclf_months_rekey_redeliver_reject_and_replay(tmp_path: Path, database: str) -> None:
    settings = private_settings(
        tmp_path / "state",
        database_url=database,
    )
    stack = Stack(settings, settings.state_dir)
    stack.start()
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    quiet = Console(quiet=True)

    def load(folder: str) -> None:
        asyncio.run(publish(sorted((CCLF / folder).iterdir()), None, "CMS", stack.bootstrap, quiet, quiet=True))

    try:
        contract = {
            "contract_id": "CCLF-1",
            "name": "CCLF ACO",
            "payer": "CMS",
            "terms": {
                "program": "MSSP",
                "track": "T1",
                "performance_year": 2012,
                "period_start": "2012-01-01",
                "period_end": "2012-12-31",
                "benchmark_per_capita": {"aged_nondual": "12000.00"},
                "msr": "0.02",
            },
            "roster": [{"member_id": NEWEST_MBI}],
        }
        assert httpx.post(stack.url("contracts") + "/contracts", json=contract, headers=auth, timeout=30).status_code == 201

        # November: every claim carries the MBI of the time, which the roster no longer lists.
        load("packet")
        assert wait_until(lambda: asyncio.run(count_lines(database)) == 16), "the packet's 16 lines were not stored"
        assert spend(stack) in (Decimal(-1), Decimal(0))

        # December: CCLF9 says 6U50TE7GG18 became 8ZZ9YY8XX76 (through 7AB1CD2EF34): November's claims move.
        # Part D's lines carry the beneficiary's payment, which is not spend.
        load("month2")
        expected = Decimal("967.00") + Decimal("1329.66") - Decimal("50.00")
        assert wait_until(lambda: spend(stack) == expected), f"spend {spend(stack)} != {expected}"

        # The whole December delivery again: nothing counts twice.
        load("month2")
        time.sleep(3)
        assert spend(stack) == expected

        # A file with four unreadable records: the good line counts, the four are kept with reasons.
        load("bad")
        expected += Decimal("10.00")
        assert wait_until(lambda: spend(stack) == expected)
        listed = wait_until(lambda: (r := json.loads(cli(settings, "rejects", "list", "--json").stdout)) and len(r) == 4 and r)
        assert listed and len(listed) == 4, listed
        fields = sorted(r["reasons"][0]["field"] for r in listed)
        assert fields == ["$", "CLM_EFCTV_DT", "CLM_LINE_CVRD_PD_AMT", "CLM_LINE_FROM_DT"]
        table = cli(settings, "rejects", "list")
        assert table.returncode == 0 and "CLM_LINE_CVRD_PD_AMT" in table.stdout
        # The originals are PHI: left out of listings, refused to a viewer, given to admin (and phi) keys, audited.
        assert not any("original" in r for r in listed)
        viewer = httpx.post(
            stack.url("contracts") + "/keys", json={"name": "analyst", "role": "viewer"}, headers=auth, timeout=30
        )
        rejects_url = stack.url("claims_ingest") + "/rejects"
        as_viewer = {"Authorization": f"Bearer {viewer.json()['key']}"}
        refused = wait_until(
            lambda: (r := httpx.get(rejects_url, params={"include_original": "true"}, headers=as_viewer)).status_code == 403 and r
        )
        assert refused and refused.json()["detail"][0]["loc"] == ["query", "include_original"]
        with_originals = httpx.get(rejects_url, params={"include_original": "true"}, headers=auth, timeout=30).json()
        assert len(with_originals) == 4 and all(r["original"] for r in with_originals)
        audited = asyncio.run(_audited_reads(database))
        assert audited and audited[-1][1] == 4

        # Replaying a raw CCLF record as it stands cannot work: it is skipped with the reason.
        amount_reject = next(r for r in listed if r["reasons"][0]["field"] == "CLM_LINE_CVRD_PD_AMT")
        skipped = cli(settings, "rejects", "replay", str(amount_reject["event_id"]))
        assert skipped.returncode == 0 and "skipped" in skipped.stdout and "replayed 0 of 1" in skipped.stdout
        # With the corrected line it is submitted, counted, and the reject is closed.
        fixed = tmp_path / "fixed.json"
        fixed.write_text(
            json.dumps(
                {
                    "source": "cclf5",
                    "claim_id": "0000000000031",
                    "line_number": 1,
                    "member_id": NEWEST_MBI,
                    "payer": "CMS",
                    "claim_type": "professional",
                    "from_date": "2012-08-01",
                    "thru_date": "2012-08-01",
                    "paid_date": "2012-10-15",
                    "effective_date": "2012-10-15",
                    "paid_amount": "12.34",
                }
            )
        )
        replayed = cli(settings, "rejects", "replay", str(amount_reject["event_id"]), "--payload", str(fixed))
        assert replayed.returncode == 0 and "replayed 1 of 1" in replayed.stdout, replayed.stdout + replayed.stderr
        expected += Decimal("12.34")
        assert wait_until(lambda: spend(stack) == expected), f"spend {spend(stack)} != {expected}"
        still_open = json.loads(cli(settings, "rejects", "list", "--json").stdout)
        assert len(still_open) == 3
        closed = json.loads(cli(settings, "rejects", "list", "--status", "replayed", "--json").stdout)
        assert [str(r["event_id"]) for r in closed] == [str(amount_reject["event_id"])]
    finally:
        stack.stop()


def test_mssp_delivery_settles_the_spend_cms_counts(tmp_path: Path, database: str) -> None:
    """A PY2025 delivery of Part A (with IME, DSH and uncompensated care), Part B, DME and Part D for a rostered
    MSSP contract settles, to the cent, the expenditure CMS counts; a version that changes payer and roster
    together moves exactly the spend it should."""
    settings = private_settings(tmp_path / "state", database_url=database)
    stack = Stack(settings, settings.state_dir)
    stack.start()
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    aged, disabled = "1AA0AA0AA01", "1AA0AA0AA02"
    terms = {
        "program": "MSSP",
        "track": "BE",
        "performance_year": 2025,
        "period_start": "2025-01-01",
        "period_end": "2025-12-31",
        "benchmark_per_capita": {"aged_nondual": "12000.00", "disabled": "11000.00"},
        "msr": "0.02",
    }
    roster = [{"member_id": aged}, {"member_id": disabled, "enrollment_type": "disabled"}]
    try:
        contract = {"contract_id": "MSSP-25", "name": "MSSP ACO", "payer": "CMS", "terms": terms, "roster": roster}
        assert httpx.post(stack.url("contracts") + "/contracts", json=contract, headers=auth, timeout=30).status_code == 201
        quiet = Console(quiet=True)
        asyncio.run(publish(sorted((CCLF / "mssp").iterdir()), None, "CMS", stack.bootstrap, quiet, quiet=True))
        # 10,789.25 + 7,680.00 (Part A net of IME, DSH, UCC) + 900.00 + 120.00 + 75.50 + 310.00; not Part D's 45.00,
        # not the unrostered member's 1,000.00. Gross, as before, it was 22,150.50.
        expected = Decimal("19874.75")
        assert wait_until(lambda: spend(stack, "MSSP-25") == expected), f"spend {spend(stack, 'MSSP-25')} != {expected}"
        explanation = " ".join(position(stack, "MSSP-25")["explanation"])
        assert "Part D (pharmacy) does not count" in explanation and "IME" in explanation

        # One version changes the payer and drops the disabled member: nothing of CMS's claims counts.
        put = httpx.put(
            stack.url("contracts") + "/contracts/MSSP-25",
            json={"payer": "OTHER", "roster": [{"member_id": aged}]},
            headers=auth,
            timeout=30,
        )
        assert put.status_code == 200, put.text
        assert wait_until(lambda: spend(stack, "MSSP-25") == 0), f"spend {spend(stack, 'MSSP-25')} != 0"
        # Back to CMS, still without the disabled member: the aged member's claims count again, and only those.
        put = httpx.put(stack.url("contracts") + "/contracts/MSSP-25", json={"payer": "CMS"}, headers=auth, timeout=30)
        assert put.status_code == 200, put.text
        aged_only = Decimal("10789.25") + Decimal("7680.00") + Decimal("120.00") + Decimal("75.50")
        assert wait_until(lambda: spend(stack, "MSSP-25") == aged_only), f"spend {spend(stack, 'MSSP-25')} != {aged_only}"
    finally:
        stack.stop()
