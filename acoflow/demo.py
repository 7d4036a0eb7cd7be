"""The demo: one MSSP BASIC E contract with 5,000 members and a generated year of claims (100,000 lines).
Amounts are whole cents drawn from integers, so the feed's total is exact by construction."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

DEMO_CONTRACT_ID = "DEMO-MSSP-BE-2025"
PAYER = "CMS"
TYPES = ("aged_nondual", "aged_nondual", "aged_nondual", "aged_dual", "disabled", "esrd")
CLAIM_TYPES = ("professional", "professional", "professional", "outpatient", "inpatient", "dme", "snf", "hha")


def write_demo_contract(folder: Path, members: int) -> Path:
    """The demo contract as `acoflow contracts apply` reads it: a YAML file and the roster CSV beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    roster = folder / "demo-roster.csv"
    with roster.open("w", encoding="utf-8") as out:
        out.write("member_id,enrollment_type\n")
        out.writelines(f"M{i:06d},{TYPES[i % len(TYPES)]}\n" for i in range(members))
    doc = {k: v for k, v in demo_contract().items() if k != "roster"}
    doc["roster_file"] = roster.name
    path = folder / "demo-contract.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def demo_contract() -> dict[str, Any]:
    return {
        "contract_id": DEMO_CONTRACT_ID,
        "name": "Demo ACO, MSSP BASIC Level E, PY2025",
        "payer": PAYER,
        "terms": {
            "program": "MSSP",
            "track": "BE",
            "performance_year": 2025,
            "period_start": "2025-01-01",
            "period_end": "2025-12-31",
            "benchmark_per_capita": {
                "aged_nondual": "11800.00",
                "aged_dual": "21500.00",
                "disabled": "13200.00",
                "esrd": "89000.00",
            },
            "msr": "0.02",
            "mlr": "0.02",
            "quality_score": "0.92",
            "truncation_threshold": {
                "aged_nondual": "150000",
                "aged_dual": "200000",
                "disabled": "160000",
                "esrd": "400000",
            },
        },
    }


def generate_feed(path: Path, lines: int, members: int, seed: int = 2025) -> Decimal:
    """Write `lines` canonical claim lines over PY2025 and return their signed total."""
    rng = random.Random(seed)
    total_cents = 0
    start = date(2025, 1, 1)
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            member = rng.randrange(members)
            etype = TYPES[member % len(TYPES)]
            scale = 8 if etype == "esrd" else 2 if etype == "aged_dual" else 1
            served = start + timedelta(days=rng.randrange(365))
            paid = served + timedelta(days=rng.randrange(7, 75))
            cents = rng.randrange(2_000, 105_000) * scale
            if rng.randrange(200) == 0:
                cents *= 40  # the odd hospital stay
            adjustment = "cancellation" if rng.randrange(250) == 0 else "original"
            total_cents += -cents if adjustment == "cancellation" else cents
            out.write(
                json.dumps(
                    {
                        "source": "demo",
                        "claim_id": f"C{n:08d}",
                        "line_number": 1,
                        "member_id": f"M{member:06d}",
                        "payer": PAYER,
                        "claim_type": CLAIM_TYPES[rng.randrange(len(CLAIM_TYPES))],
                        "adjustment_type": adjustment,
                        "from_date": served.isoformat(),
                        "thru_date": served.isoformat(),
                        "paid_date": paid.isoformat(),
                        "paid_amount": f"{cents // 100}.{cents % 100:02d}",
                    }
                )
                + "\n"
            )
    return Decimal(total_cents) / 100
