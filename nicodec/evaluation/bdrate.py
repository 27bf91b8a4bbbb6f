"""Bjøntegaard deltas: one number for "how much smaller/better is curve B than anchor A".

Implements VCEG-M33 (G. Bjøntegaard, 2001) exactly as CompressAI and the classic Python ports do:
fit a cubic polynomial to log(rate) as a function of quality (BD-rate) or quality as a function of
log(rate) (BD-PSNR) for each curve, integrate both fits over the quality (resp. log-rate) range the
two curves share, and compare the averages. ``piecewise=True`` swaps the global cubic fit for
monotone piecewise-cubic (PCHIP) interpolation integrated with the trapezoid rule on 100 samples,
which is what ``scipy``-based ports call ``piecewise=1``; it is better behaved for curves with many
points or bends. A negative BD-rate means B needs fewer bits than A for the same quality.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from nicodec.errors import NicodecError

__all__ = ["bd_rate", "bd_psnr", "pchip", "quality_gaps"]


def _prepare(rate: Sequence[float], dist: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    if r.shape != d.shape or r.ndim != 1:
        raise NicodecError(f"{what}: rate and quality must be 1-D lists of the same length")
    keep = np.isfinite(r) & np.isfinite(d) & (r > 0)
    r, d = r[keep], d[keep]
    if r.size < 4:
        raise NicodecError(f"{what}: a Bjøntegaard delta needs at least 4 points, got {r.size}")
    return np.log(r), d


def pchip(x: np.ndarray, y: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic Hermite interpolation (Fritsch–Carlson, as scipy's PCHIP)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.size
    m = np.zeros(n)
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0: float, h1: float, d0: float, d1: float) -> float:
        d = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(d) != np.sign(d0):
            return 0.0
        if np.sign(d0) != np.sign(d1) and abs(d) > abs(3 * d0):
            return 3 * d0
        return d

    if n == 2:
        m[:] = delta[0]
    else:
        m[0] = end(h[0], h[1], delta[0], delta[1])
        m[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    idx = np.clip(np.searchsorted(x, xs) - 1, 0, n - 2)
    t = (xs - x[idx]) / h[idx]
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[idx] + h10 * h[idx] * m[idx] + h01 * y[idx + 1] + h11 * h[idx] * m[idx + 1]


def _mean_gap(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, piecewise: bool) -> float:
    """Average of (fit2 - fit1) over the shared x range, fits of y as a function of x."""
    lo, hi = max(x1.min(), x2.min()), min(x1.max(), x2.max())
    if not hi > lo:
        raise NicodecError("the two curves do not overlap in quality; no Bjøntegaard delta exists")
    if piecewise:
        xs = np.linspace(lo, hi, num=100)
        int1 = np.trapezoid(pchip(x1, y1, xs), xs)
        int2 = np.trapezoid(pchip(x2, y2, xs), xs)
    else:
        with warnings.catch_warnings():  # near-degenerate fits still integrate fine; say nothing
            warnings.simplefilter("ignore")
            p1 = np.polyint(np.polyfit(x1, y1, 3))
            p2 = np.polyint(np.polyfit(x2, y2, 3))
        int1 = np.polyval(p1, hi) - np.polyval(p1, lo)
        int2 = np.polyval(p2, hi) - np.polyval(p2, lo)
    return float((int2 - int1) / (hi - lo))


def bd_rate(
    rate_a: Sequence[float],
    dist_a: Sequence[float],
    rate_b: Sequence[float],
    dist_b: Sequence[float],
    *,
    piecewise: bool = False,
) -> float:
    """BD-rate of curve B against anchor A in percent (negative: B saves bits at equal quality).

    `dist_*` is any quality where larger is better (PSNR in dB, MS-SSIM in dB); `rate_*` in bpp.
    """
    lr_a, d_a = _prepare(rate_a, dist_a, "anchor")
    lr_b, d_b = _prepare(rate_b, dist_b, "test curve")
    avg_log_diff = _mean_gap(d_a, lr_a, d_b, lr_b, piecewise)
    return float((np.exp(avg_log_diff) - 1.0) * 100.0)


def bd_psnr(
    rate_a: Sequence[float],
    dist_a: Sequence[float],
    rate_b: Sequence[float],
    dist_b: Sequence[float],
    *,
    piecewise: bool = False,
) -> float:
    """BD-PSNR (or BD-quality) of curve B against anchor A: mean quality gain at equal rate, in dB."""
    lr_a, d_a = _prepare(rate_a, dist_a, "anchor")
    lr_b, d_b = _prepare(rate_b, dist_b, "test curve")
    return _mean_gap(lr_a, d_a, lr_b, d_b, piecewise)


def quality_gaps(rate_a: Sequence[float], dist_a: Sequence[float], rate_b: Sequence[float],
                 dist_b: Sequence[float]) -> list[tuple[float, float]]:
    """At each point of curve B: (its rate, its quality minus curve A's at that rate), A read by
    linear interpolation in log-rate (held flat beyond A's ends). Where BD-rate averages, this
    says at which rates B wins or loses."""
    order = np.argsort(rate_a)
    log_a = np.log(np.asarray(rate_a, dtype=np.float64)[order])
    at = np.interp(np.log(np.asarray(rate_b, dtype=np.float64)), log_a, np.asarray(dist_a, dtype=np.float64)[order])
    return [(float(r), float(d)) for r, d in zip(rate_b, np.asarray(dist_b, dtype=np.float64) - at)]
