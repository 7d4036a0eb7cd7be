"""The one logging setup: structlog JSON lines, with message context bound per consumed message.

Member identifiers are PHI-adjacent: they are never bound or logged in clear (see `redact`)."""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any

import structlog


def configure_logging(service: str, level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_message_context(topic: str, partition: int, offset: int, event_id: str | None = None) -> None:
    structlog.contextvars.bind_contextvars(topic=topic, partition=partition, offset=offset, event_id=event_id)


def clear_message_context() -> None:
    structlog.contextvars.unbind_contextvars("topic", "partition", "offset", "event_id")


def redact(member_id: str) -> str:
    """A stable, non-reversible token for a member id, for the rare log line that must tell members apart."""
    return "m_" + hashlib.sha256(member_id.encode()).hexdigest()[:12]
