"""Coding tables: quantised Laplace distributions, identical on every machine.

The constants below define the bitstream (changing one changes what files mean). Tables are built
from them with IEEE-correctly-rounded float64 operations only (+ − × ÷, rint, ldexp, comparisons),
in a fixed order, through :func:`exp` — never ``np.exp``, whose last bits vary with the CPU's
SIMD path — so the probabilities that drive the range coder are the same bits everywhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# --- constants that define the bitstream -----------------------------------------------------
LATENT_BOUND = 63  # latents are integers in [−63, 63]: tables cover every value, nothing escapes
MEAN_STEPS = 8  # the ARM's mean is rounded to 1/8: a table per fractional position
SCALE_STEPS = 8  # log2-scales are rounded to 1/8 of an octave …
LOG2_SCALE_MIN, LOG2_SCALE_MAX = -6, 6  # … between 2^−6 and 2^6 (the float model clamps the same)
SCALES = (LOG2_SCALE_MAX - LOG2_SCALE_MIN) * SCALE_STEPS + 1  # 97
TABLES = SCALES * MEAN_STEPS  # table t = scale index · MEAN_STEPS + mean fraction index
SPAN = 4 * LATENT_BOUND  # symbols v − ⌊mean⌋ ∈ [−2·bound + 1, 2·bound]
PARAM_BOUND = (1 << 15) - 1  # quantised network parameters are integers in [−32767, 32767]
PARAM_SCALES = 64  # parameter tables: Laplace scale 2^(e/2), e ∈ [0, 64)

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (fdlibm): k·_LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00


def exp(x: np.ndarray) -> np.ndarray:
    """e^x in float64 from basic IEEE operations in a fixed order (≈1 ulp; the same bits on any
    machine): x = k·ln2 + r with |r| ≤ ln2/2, a degree-13 Taylor polynomial of r in Horner form,
    then ·2^k. For the arguments tables need (x ≤ 0, no overflow)."""
    x = np.asarray(x, dtype=np.float64)
    x = np.maximum(x, -745.0)
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, 1.0 / 6227020800.0)  # 1/13!
    for n in range(12, -1, -1):
        p = p * r
        p = p + _INV_FACTORIALS[n]
    return np.ldexp(p, k.astype(np.int32))


_INV_FACTORIALS = [1.0]
for _n in range(1, 13):
    _INV_FACTORIALS.append(_INV_FACTORIALS[-1] / _n)


def laplace_pmf(centre: np.ndarray | float, scale: np.ndarray | float, low: int, high: int) -> np.ndarray:
    """P(v) for integers v in [low, high] of a Laplace(centre, scale) integrated over [v − ½, v + ½]
    (float64, unnormalised tails: the range coder normalises)."""
    v = np.arange(low, high + 1, dtype=np.float64)
    inv = 1.0 / scale

    def cdf(t: np.ndarray) -> np.ndarray:
        left = t < 0
        e = exp(-np.abs(t) * inv) * 0.5
        return np.where(left, e, 1.0 - e)

    return np.maximum(cdf(v - centre + 0.5) - cdf(v - centre - 0.5), 0.0)


def table_index(mean_eighths: np.ndarray, scale_index: np.ndarray) -> np.ndarray:
    """Table of each element from its integer mean (in 1/MEAN_STEPS) and scale index."""
    return scale_index * MEAN_STEPS + (mean_eighths & (MEAN_STEPS - 1))


@lru_cache(maxsize=1)
def latent_pmfs() -> np.ndarray:
    """(TABLES, SPAN) float64: row t is table t's pmf over the symbols v − ⌊mean⌋ = −2·bound + 1 …
    2·bound, t = scale index · MEAN_STEPS + mean fraction index (all tables in one broadcast)."""
    s, j = np.divmod(np.arange(TABLES), MEAN_STEPS)
    log2_scale = LOG2_SCALE_MIN + s / SCALE_STEPS  # exact: multiples of 1/8
    scale = exp(log2_scale * _LN2_HI + log2_scale * _LN2_LO)
    return laplace_pmf((j / MEAN_STEPS)[:, None], scale[:, None], -2 * LATENT_BOUND + 1, 2 * LATENT_BOUND)


def latent_pmf(t: int) -> np.ndarray:
    return latent_pmfs()[t]


def param_pmf(e: int, bound: int) -> np.ndarray:
    """pmf of quantised parameters in [−bound, bound]: Laplace(0, 2^(e/2))."""
    half = e / 2
    scale = float(exp(np.array(half * _LN2_HI + half * _LN2_LO)))
    return laplace_pmf(0.0, scale, -bound, bound)


