"""Rate control: the highest quality whose file fits a size budget.

One variable-rate model codes at any quality in [1, L], and file size grows with quality, so a
budget ("at most 50 kB", "0.5 bpp") is met by bisection on the quality, measuring real files.
The analysis transform does not depend on the quality, so the codec runs it once and each trial
costs only the latent coding (:meth:`nicodec.codec.Codec.compress` with ``max_bytes``).
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import NicodecError

TOLERANCE = 0.02  # in quality units: ~1 % in rate (a level, ~×1.4 in rate, is 1.0)


def largest_quality(size: Callable[[float], int], low: float, high: float, budget: int,
                    tolerance: float = TOLERANCE) -> float:
    """The largest quality q in [low, high] with ``size(q)`` ≤ ``budget``, within ``tolerance``,
    by bisection (``size`` grows with q). The result is always a quality whose size was measured
    within budget; NicodecError if even ``low`` is over it."""
    if size(high) <= budget:
        return high
    smallest = size(low)
    if smallest > budget:
        raise NicodecError(f"cannot fit in {budget:,} bytes: the smallest file, at quality {low:g}, is {smallest:,} bytes")
    while high - low > tolerance:
        mid = (low + high) / 2
        if size(mid) <= budget:
            low = mid
        else:
            high = mid
    return low
