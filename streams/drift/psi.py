"""Population stability index between a reference distribution and a window of observations."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

# Top-1 confidences of a working classifier crowd close to 1, so the bins get finer there.
# The last edge is above 1 so that a confidence of exactly 1.0 falls into the last bin.
CONFIDENCE_EDGES: tuple[float, ...] = (
    0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.000001,
)  # fmt: skip

# Fractions are floored at this value before the logarithm, so an empty bin on either side
# adds a bounded term instead of infinity. 0.005 is one frame in a 200-frame window: a rare bin
# that happens to stay empty in a small window then adds at most about 0.2 to the index.
MIN_FRACTION = 0.005


def confidence_bin(confidence: float, edges: Sequence[float] = CONFIDENCE_EDGES) -> int:
    """Return the index of the bin that holds `confidence`."""
    index = bisect.bisect_right(edges, confidence) - 1
    return min(max(index, 0), len(edges) - 2)


def fractions(counts: Sequence[int]) -> list[float]:
    """Turn bin counts into fractions; all zeros stay zeros."""
    total = sum(counts)
    if total == 0:
        return [0.0] * len(counts)
    return [count / total for count in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index: the sum over bins of (actual - expected) * ln(actual / expected).

    Below 0.1 is usually read as no shift, 0.1 to 0.25 as a moderate and above 0.25 as a
    significant shift.
    """
    if len(expected) != len(actual):
        raise ValueError(f"psi needs equal bin counts, got {len(expected)} and {len(actual)}")
    total = 0.0
    for reference, current in zip(expected, actual, strict=True):
        reference = max(reference, MIN_FRACTION)
        current = max(current, MIN_FRACTION)
        total += (current - reference) * math.log(current / reference)
    return total


def class_psi(expected: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """PSI of a window's class counts against the reference class fractions."""
    names = sorted(set(expected) | set(counts))
    total = sum(counts.values())
    if total == 0:
        return 0.0
    actual = [counts.get(name, 0) / total for name in names]
    return psi([expected.get(name, 0.0) for name in names], actual)
