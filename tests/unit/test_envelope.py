"""The event envelope's encoding: computed once per envelope, and never carried over to a changed copy."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from shared.envelope import Envelope, new_envelope, parse_event
from shared.events import QUALITY_RECORDED, QualityResult


def _envelope() -> Envelope[QualityResult]:
    payload = QualityResult(
        contract_id="C1", performance_year=2025, version=1, quality_score=Decimal("0.9"), quality_standard="met"
    )
    return new_envelope(QUALITY_RECORDED, payload, "test")


def test_bytes_are_the_envelope_json_and_parse_back() -> None:
    env = _envelope()
    raw = env.to_bytes()
    assert raw is env.to_bytes()
    assert json.loads(raw) == json.loads(env.model_dump_json())
    assert parse_event(QUALITY_RECORDED, raw) == env


def test_a_copy_with_changes_encodes_its_own_fields() -> None:
    env = _envelope()
    env.to_bytes()
    other = uuid.uuid4()
    copy = env.model_copy(update={"event_id": other})
    assert json.loads(copy.to_bytes())["event_id"] == str(other)
    assert json.loads(env.to_bytes())["event_id"] == str(env.event_id)
