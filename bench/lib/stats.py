"""Statistics shared by the benchmarks."""

from __future__ import annotations

import math


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
