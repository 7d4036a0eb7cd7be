"""Internal events are signed over their bytes and checked by key id; rotation keeps old keys accepted."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.settings import Settings
from shared.signing import HEADER, EventKeys

OLD, NEW = "k1:" + "a" * 40, "k2:" + "b" * 40


def keys(text: str, signing: str = "") -> EventKeys:
    found = EventKeys.from_settings(Settings(event_keys=SecretStr(text), event_key_id=signing))
    assert found is not None
    return found


def test_signed_events_check_and_anything_else_is_refused_with_a_reason() -> None:
    k = keys(OLD)
    headers = k.sign(b'{"a": 1}')
    assert headers[0][0] == HEADER and k.check(b'{"a": 1}', headers) is None
    assert k.check(b'{"a": 2}', headers) == "signature: does not match the event's bytes"
    assert k.check(b'{"a": 1}', None) is not None and "unsigned" in (k.check(b"x", []) or "")
    assert "unknown key id" in (keys(NEW).check(b'{"a": 1}', headers) or "")


def test_rotation_accepts_every_listed_key_and_signs_with_the_chosen_one() -> None:
    rotated = keys(f"{OLD},{NEW}", "k2")
    assert rotated.check(b"x", keys(OLD).sign(b"x")) is None  # still accepted while listed
    assert rotated.sign(b"x")[0][1].startswith(b"kid=k2,")


def test_short_or_malformed_keys_are_refused() -> None:
    assert EventKeys.from_settings(Settings()) is None
    with pytest.raises(ValueError, match="32 characters"):
        keys("k1:short")
    with pytest.raises(ValueError, match="event_key_id"):
        keys(OLD, "k9")
