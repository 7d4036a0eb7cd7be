"""What counts as expenditure (METHODOLOGY.md section 5), decided here and nowhere else: the loaders take a
claim's counted amount from `part_a_spend`, claims_ingest what a line stands for from `line_spend` and whether
it counts for a contract from `counts`, contracts and settlement the claim types from `counted_types`, and the
position's explanation says it in `describe`.

- Claim types: MSSP and ACO REACH count Parts A and B only (42 CFR 425.605(a), 425.610(a): "Parts A and B
  services"); Part D never counts (CCLF7 does not even carry what the plan paid). Commercial and MA contracts
  count Parts A and B by default, and pharmacy or other claims only where their terms list them.
- Part A: the payment less the operating IME and DSH payments (value codes 18, 19) and the uncompensated-care
  payment, which the payment includes; capital IME and DSH are parts of the capital PPS payment, which counts.
- A line: a cancellation negates; a denied line never counts; of a version group only the final action counts,
  and one that is a cancellation leaves nothing (CCLF packet 3.3, 5.1-5.3)."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from shared.events import ClaimLine

ClaimType = Literal["inpatient", "outpatient", "snf", "hha", "hospice", "professional", "dme", "pharmacy", "other"]
PART_A: frozenset[ClaimType] = frozenset({"inpatient", "outpatient", "snf", "hha", "hospice"})
PARTS_A_AND_B: frozenset[ClaimType] = PART_A | {"professional", "dme"}


class ExclusionsExceedPayment(ValueError):
    """A Part A payment smaller than the add-ons it includes: the claim is wrong, and is refused."""


def counted_types(listed: Collection[ClaimType] | None) -> frozenset[ClaimType]:
    """The claim types a contract counts: those its terms list, else Parts A and B."""
    return PARTS_A_AND_B if listed is None else frozenset(listed)


def counts(claim_type: str, counted: Collection[str] | None) -> bool:
    """Whether a claim of this type counts for a contract counting `counted` (None: recorded before contracts
    sent their list, so every type)."""
    return counted is None or claim_type in counted


def part_a_spend(gross: Decimal, excluded: Decimal) -> Decimal:
    """A Part A claim's counted amount: its payment less the operating IME, DSH and uncompensated-care payments
    it includes (`excluded`, their magnitudes, as they may carry a sign the payment does not)."""
    if excluded > abs(gross):
        raise ExclusionsExceedPayment(
            f"{gross} is less than the IME, DSH and uncompensated-care payments it includes ({excluded})"
        )
    return gross - excluded if gross >= 0 else gross + excluded


def line_spend(line: ClaimLine) -> Decimal:
    """The spend a line stands for: a cancellation negates; the final version of a group that is a cancellation
    leaves nothing (CCLF packet 5.3)."""
    if line.version_group and line.adjustment_type == "cancellation":
        return Decimal(0)
    return line.signed_amount


def describe(counted: Collection[str]) -> str:
    """What a position counts as spend, in the words a finance team reconciles with."""
    note = f"expenditure counts {', '.join(sorted(counted))} claims"
    if "pharmacy" not in counted:
        note += "; Part D (pharmacy) does not count"
    return note + "; Part A at CMS's amount: the payment less operating IME, DSH and uncompensated care"
