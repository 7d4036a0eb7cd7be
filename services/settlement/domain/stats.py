"""The normal distribution in Decimal, for the probability that a projected rate clears a threshold."""

from __future__ import annotations

from decimal import Decimal, localcontext

_SQRT_PI = Decimal("1.7724538509055160272981674833411451827975")
_EPSILON = Decimal("1e-15")


def erf(x: Decimal) -> Decimal:
    """Maclaurin series; |x| > 6 is +-1 to far beyond the places a probability is reported with. Summed to
    1e-15 (probabilities are reported to 4 places) with enough digits for the series' cancellation: its
    largest term, near x = 6, is about 3e14."""
    if x < 0:
        return -erf(-x)
    if x > 6:
        return Decimal(1)
    with localcontext() as ctx:
        ctx.prec = 34
        term = x
        total = x
        n = 0
        x2 = x * x
        while True:
            n += 1
            term = -term * x2 / n
            delta = term / (2 * n + 1)
            total += delta
            if abs(delta) < _EPSILON:
                break
        return +(2 * total / _SQRT_PI)


def normal_cdf(z: Decimal) -> Decimal:
    return (1 + erf(z / Decimal(2).sqrt())) / 2
