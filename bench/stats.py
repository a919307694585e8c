"""Percentiles and rates, without numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """Count, mean and the usual percentiles; `scale` turns seconds into milliseconds where wanted."""
    if not values:
        return {"n": 0}

    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, digits)

    return {
        "n": len(values),
        "min": r(min(values)),
        "mean": r(sum(values) / len(values)),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)),
    }


def middle_rate(times: Sequence[float], low: float = 10, high: float = 90) -> float | None:
    """Events per second between the low and high percentile of their times: the steady part of a run,
    without the ramp at the start and the stragglers at the end."""
    if len(times) < 10:
        return None
    ordered = sorted(times)
    i, j = int(len(ordered) * low / 100), int(len(ordered) * high / 100) - 1
    span = ordered[j] - ordered[i]
    return (j - i) / span if span > 0 else None


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any sliding window of `window` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
