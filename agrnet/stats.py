"""Small statistics for experiments over seeds: Student's t quantiles and paired differences with a 95 % interval.

No SciPy: the t distribution's CDF comes from the regularised incomplete beta function (its continued fraction)
and is inverted by bisection.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if not 0 <= x <= 1:
        raise ValueError(f"x: expected 0 <= x <= 1, got {x}")
    if x in (0, 1):
        return float(x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast below the mean; use the symmetry above it
        return 1 - regularized_beta(1 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / (df + x * x), df / 2, 0.5)
    return 1 - tail if x > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on ``t_cdf``)."""
    if not 0 < p < 1:
        raise ValueError(f"p: expected 0 < p < 1, got {p}")
    if df <= 0:
        raise ValueError(f"df: expected a positive number of degrees of freedom, got {df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """The mean of the paired differences ``a - b`` over ``n`` pairs, their sample standard deviation and the
    two-sided ``level`` confidence interval of the mean from Student's t with n - 1 degrees of freedom."""

    mean: float
    std: float | None
    n: int
    level: float
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (None with fewer than two pairs)."""
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the half-width."""
        return {**asdict(self), "half_width": self.half_width}


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedDifference:
    """The paired difference ``a[i] - b[i]`` (the same seed in two variants) with a t confidence interval.

    With one pair there is no spread to estimate: ``std``, ``low`` and ``high`` are None.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}; pairs need equal lengths")
    if not a:
        raise ValueError("paired_difference: no pairs")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return PairedDifference(mean, None, 1, level, None, None)
    std = statistics.stdev(differences)
    half = t_quantile(0.5 + level / 2, len(differences) - 1) * std / math.sqrt(len(differences))
    return PairedDifference(mean, std, len(differences), level, mean - half, mean + half)


def verdict(low: float | None, high: float | None) -> str:
    """What a 95 % interval of a paired difference (variant minus reference) says: "helps" when it lies above
    zero, "hurts" below, "cannot be told apart" when it holds zero, "no interval" without one (a single pair)."""
    if low is None or high is None:
        return "no interval"
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts"
    return "cannot be told apart"
