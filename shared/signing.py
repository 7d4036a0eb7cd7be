"""Internal events are authenticated: every event a service publishes carries an HMAC-SHA256 over its bytes, in
the `acoflow-signature` header (`kid=<key id>,v1=<hex>`), from a secret the services share; consumers of
internal topics refuse an unsigned or badly signed event to deadletter.v1 with the reason.

Keys rotate by key id: ACOFLOW_EVENT_KEYS holds every key still accepted (`kid:secret,kid:secret`) and
ACOFLOW_EVENT_KEY_ID the one that signs. Payer input (claims.submitted.v1, and the loaders' members.v1 and
claims.rejected.v1) is authenticated by the broker (SASL and ACLs), not here."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.settings import Settings

HEADER = "acoflow-signature"


@dataclass(frozen=True)
class EventKeys:
    signing_id: str
    keys: dict[str, bytes]

    @classmethod
    def from_settings(cls, settings: Settings) -> EventKeys | None:
        """The configured keys, or None where none are (signing and checking off, which `acoflow up` never is)."""
        text = settings.event_keys.get_secret_value().strip()
        if not text:
            return None
        keys: dict[str, bytes] = {}
        for part in text.split(","):
            kid, sep, secret = part.strip().partition(":")
            if not sep or not kid or len(secret) < 32:
                raise ValueError("event_keys: each entry is kid:secret, with a secret of 32 characters or more")
            keys[kid] = secret.encode()
        signing = settings.event_key_id or next(iter(keys))
        if signing not in keys:
            raise ValueError(f"event_key_id: {signing!r} is not among event_keys")
        return cls(signing, keys)

    def sign(self, value: bytes) -> list[tuple[str, bytes]]:
        digest = hmac.new(self.keys[self.signing_id], value, hashlib.sha256).hexdigest()
        return [(HEADER, f"kid={self.signing_id},v1={digest}".encode())]

    def check(self, value: bytes | None, headers: Sequence[tuple[str, Any]] | None) -> str | None:
        """None when the event is signed with a known key; else why not."""
        found = [bytes(v) for k, v in headers or () if k == HEADER]
        if not found:
            return "unsigned: internal events must carry an acoflow-signature header"
        fields = dict(part.split("=", 1) for part in found[0].decode(errors="replace").split(",") if "=" in part)
        secret = self.keys.get(fields.get("kid", ""))
        if secret is None:
            return f"signature: unknown key id {fields.get('kid', '')!r}"
        expected = hmac.new(secret, value or b"", hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("v1", "")):
            return "signature: does not match the event's bytes"
        return None
