"""Coding tables: quantised Laplace distributions, identical on every machine.

The constants below define the bitstream (changing one changes what files mean). Tables are built
from them with IEEE-correctly-rounded float64 operations only, in a fixed order, through
:mod:`nicodec.exact` — never ``np.exp``, whose last bits vary with the CPU's SIMD path — so the
probabilities that drive the range coder are the same bits everywhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import exact

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
ACT_BITS = 8  # the integer ARM's activations and outputs are integers in 1/256 …
ACT_MAX = 1 << 20  # … clamped to [0, 2^20] (4096 in real units): this bounds every sum (coding.py)
PROB_BITS = 24  # rANS frequencies sum to 2^24: a symbol costs at least −log2(1 − 251·2^−24) bits
END_MARK = 0xA5C3  # 16 bits after the networks' integers: a cut or damaged stream rarely decodes it

_LN2 = 0.6931471805599453  # log2-scales become scales as exp(log2_scale · ln 2)


def laplace_pmf(centre: np.ndarray | float, scale: np.ndarray | float, low: int, high: int) -> np.ndarray:
    """P(v) for integers v in [low, high] of a Laplace(centre, scale) integrated over [v − ½, v + ½]
    (float64, unnormalised tails: the range coder normalises)."""
    v = np.arange(low, high + 1, dtype=np.float64)
    inv = 1.0 / scale

    return np.maximum(exact.laplace_cdf((v - centre + 0.5) * inv) - exact.laplace_cdf((v - centre - 0.5) * inv), 0.0)


def table_index(mean_eighths: np.ndarray, scale_index: np.ndarray) -> np.ndarray:
    """Table of each element from its integer mean (in 1/MEAN_STEPS) and scale index."""
    return scale_index * MEAN_STEPS + (mean_eighths & (MEAN_STEPS - 1))


@lru_cache(maxsize=1)
def latent_pmfs() -> np.ndarray:
    """(TABLES, SPAN) float64: row t is table t's pmf over the symbols v − ⌊mean⌋ = −2·bound + 1 …
    2·bound, t = scale index · MEAN_STEPS + mean fraction index (all tables in one broadcast)."""
    s, j = np.divmod(np.arange(TABLES), MEAN_STEPS)
    log2_scale = LOG2_SCALE_MIN + s / SCALE_STEPS  # exact: multiples of 1/8
    scale = exact.exp(log2_scale * _LN2)
    return laplace_pmf((j / MEAN_STEPS)[:, None], scale[:, None], -2 * LATENT_BOUND + 1, 2 * LATENT_BOUND)


def latent_pmf(t: int) -> np.ndarray:
    return latent_pmfs()[t]


def param_pmf(e: int, bound: int) -> np.ndarray:
    """pmf of quantised parameters in [−bound, bound]: Laplace(0, 2^(e/2))."""
    scale = float(exact.exp(e / 2 * _LN2))
    return laplace_pmf(0.0, scale, -bound, bound)


