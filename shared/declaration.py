"""What a party on the broker is, stated once: the topics it reads and writes, and for a service the loops it
runs and the HTTP routes it serves. Each service's app.py holds its DECLARATION; the runtime refuses wiring it
does not list (shared/service.py), and the broker's grants, the AsyncAPI documents and the README's table are
derived from the declarations (acoflow/kafka_acls.py, shared/asyncapi.py, tests/unit/test_declarations.py)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.topics import CLAIMS_REJECTED, CLAIMS_SUBMITTED, MEMBERS, TopicSpec


@dataclass(frozen=True)
class Declaration:
    name: str
    # Every topic it reads, those the runtime reads on its behalf included (keys.v1 for API keys, a confirmed
    # hop's receipts).
    consumes: tuple[TopicSpec, ...]
    produces: tuple[TopicSpec, ...]
    loops: tuple[str, ...] = ()  # its work loops by name (a confirmed hop's re-send loop: "resend-<topic>")
    serves: tuple[str, ...] = ()  # the route prefixes of its own HTTP API (every service also serves /health, /metrics)

    def __post_init__(self) -> None:
        for field, topics in (("consumes", self.consumes), ("produces", self.produces)):
            if len(set(topics)) != len(topics):
                raise ValueError(f"{self.name}: a topic is listed twice in {field}")


# Outside the services: a payer's feed publishes claim lines and nothing else; `acoflow load` publishes claims,
# the lines it refused, and CCLF9 member id changes.
PAYER = Declaration("payer", consumes=(), produces=(CLAIMS_SUBMITTED,))
LOADER = Declaration("loader", consumes=(), produces=(CLAIMS_SUBMITTED, CLAIMS_REJECTED, MEMBERS))
