"""Deterministic float64 math for everything that decides a coding table.

A range decoder must rebuild the encoder's probability tables bit for bit. Library functions such
as ``np.exp``, ``torch.exp`` or ``erfc`` are only accurate to about an ulp, and which ulp depends on
the CPU's SIMD path (AVX2, AVX-512, NEON), the library version and the GPU: a table built from them
on one machine can differ in its last bits from the same table built on another, and the file then
decodes to garbage. IEEE 754 does fix the result of + − × ÷ and sqrt (correctly rounded), of
comparisons, floor/rint and of exact bit manipulations. This module builds the few transcendental
functions the coding path needs from those operations only, elementwise and in a fixed order (no
FMA contraction: NumPy applies one ufunc at a time; no BLAS, no reductions whose order could vary),
so their results are the same bits on every machine. Accuracy is a few ulp — plenty for coding
tables, which the range coder quantises to 24 bits anyway.

Every function takes an array-like and returns a float64 ``np.ndarray`` of the same shape.
Changing any constant or the order of any operation here changes the bitstream of container
version 3: it needs a new container version.
"""

from __future__ import annotations

import math

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with the low 32 mantissa bits zero: n·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 − _LN2_HI
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.70710678118654752440
_TWO_OVER_SQRT_PI = 1.12837916709551257390
_INV_SQRT_PI = 0.56418958354775628695
_EXP_MIN = -700.0  # below: 0 (keeps every intermediate a normal number)
_EXP_MAX = 709.0  # above: inf
_EXP_TAYLOR = [1.0 / math.factorial(k) for k in range(15)]  # exact integers, one correctly rounded division
_EXPM1_TAYLOR = [1.0 / math.factorial(k) for k in range(1, 19)]
_ERF_TERMS = 90  # positive series of erf for |x| ≤ 3 (terms peak near n = x², then fall faster than geometric)
_ERFC_FRACTION_DEPTH = 80  # continued fraction of erfc for x > 3
_ERF_SWITCH = 3.0


def _array(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def _power_of_two(n: np.ndarray) -> np.ndarray:
    """2**n for integer n in the normal range, built from the exponent bits (exact)."""
    return ((n.astype(np.int64) + 1023) << 52).view(np.float64)


def exp(x) -> np.ndarray:
    """e**x: Cody–Waite reduction x = n·ln 2 + r, |r| ≤ ln 2 / 2, then a degree-14 Taylor polynomial."""
    x = _array(x)
    finite = np.clip(np.nan_to_num(x, nan=0.0), _EXP_MIN, _EXP_MAX)
    n = np.rint(finite * _INV_LN2)
    r = (finite - n * _LN2_HI) - n * _LN2_LO
    p = np.full_like(r, _EXP_TAYLOR[-1])
    for c in reversed(_EXP_TAYLOR[:-1]):
        p = p * r + c
    out = p * _power_of_two(n)
    out = np.where(x < _EXP_MIN, 0.0, out)
    out = np.where(x > _EXP_MAX, np.inf, out)
    return np.where(np.isnan(x), np.nan, out)


def expm1(x) -> np.ndarray:
    """e**x − 1, accurate near 0 (Taylor series below |x| = ½)."""
    x = _array(x)
    small = np.where(np.abs(x) < 0.5, x, 0.0)
    p = np.full_like(x, _EXPM1_TAYLOR[-1])
    for c in reversed(_EXPM1_TAYLOR[:-1]):
        p = p * small + c
    return np.where(np.abs(x) < 0.5, p * small, exp(x) - 1.0)


def log(x) -> np.ndarray:
    """Natural logarithm of positive x: x = m·2**e with m in [√½, √2], log m = 2·atanh((m−1)/(m+1))."""
    x = _array(x)
    if np.any(~(x > 0)):
        raise ValueError("exact.log takes positive numbers")
    tiny = x < 2.2250738585072014e-308  # subnormal: scale into the normal range first (exact)
    x[tiny] *= 18014398509481984.0  # 2**54
    bits = x.view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023 - np.where(tiny, 54, 0)
    m = ((bits & 0x000FFFFFFFFFFFFF) | (1023 << 52)).view(np.float64)  # in [1, 2)
    high = m > 1.4142135623730951
    m = np.where(high, m * 0.5, m)
    e = (e + high).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, 1.0 / 23.0)
    for k in range(21, 0, -2):
        p = p * s2 + 1.0 / k
    log_m = 2.0 * s * p
    out = e * _LN2_HI + (e * _LN2_LO + log_m)
    return np.where(np.isinf(x), np.inf, out)


def log1p(x) -> np.ndarray:
    """log(1 + x) for x > −1, accurate near 0 (Goldberg: log(u)·x/(u − 1) with u = 1 + x)."""
    x = _array(x)
    u = 1.0 + x
    exact_one = u == 1.0
    safe_u = np.where(exact_one, 2.0, u)
    return np.where(exact_one, x, log(safe_u) * x / np.where(exact_one, 1.0, safe_u - 1.0))


def sigmoid(x) -> np.ndarray:
    """1 / (1 + e**−x), evaluated on the side that does not overflow."""
    x = _array(x)
    e = exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x) -> np.ndarray:
    """log(1 + e**x) = max(x, 0) + log1p(e**−|x|)."""
    x = _array(x)
    return np.maximum(x, 0.0) + log1p(exp(-np.abs(x)))


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent: sign(x)·expm1(2|x|) / (expm1(2|x|) + 2)."""
    x = _array(x)
    a = np.minimum(np.abs(x), 20.0)  # tanh(20) is 1 to 17 digits
    e = expm1(2.0 * a)
    t = np.where(np.abs(x) >= 20.0, 1.0, e / (e + 2.0))
    return np.where(x < 0, -t, t)


def erfc(x) -> np.ndarray:
    """Complementary error function, absolute error below 1e-15.

    |x| ≤ 3: 1 − erf, with erf(x) = 2/√π · x·e**−x² · Σ (2x²)**n / (1·3·…·(2n+1)) (positive terms, no
    cancellation); x > 3: the continued fraction erfc(x) = e**−x²/√π / (x + ½/(x + 1/(x + 3/2/(x + …))));
    x < −3: 2 − erfc(−x).
    """
    x = _array(x)
    a = np.abs(x)
    near = np.minimum(a, _ERF_SWITCH)
    two_a2 = 2.0 * near * near
    term = np.ones_like(near)
    total = np.ones_like(near)
    for n in range(1, _ERF_TERMS):
        term = term * two_a2 / (2.0 * n + 1.0)
        total = total + term
    erf_near = _TWO_OVER_SQRT_PI * near * exp(-(near * near)) * total
    far = np.maximum(a, _ERF_SWITCH)
    f = far.copy()
    for k in range(_ERFC_FRACTION_DEPTH, 0, -1):
        f = far + (0.5 * k) / f
    erfc_far = exp(-(far * far)) * _INV_SQRT_PI / f
    erfc_abs = np.where(a <= _ERF_SWITCH, 1.0 - erf_near, erfc_far)
    return np.where(x < 0, 2.0 - erfc_abs, erfc_abs)


def normal_cdf(x) -> np.ndarray:
    """Φ(x), the standard normal cumulative distribution."""
    return 0.5 * erfc(-_array(x) * _SQRT_HALF)


def laplace_cdf(x) -> np.ndarray:
    """Cumulative distribution of the standard (zero-mean, unit-scale) Laplace distribution."""
    x = _array(x)
    half = 0.5 * exp(-np.abs(x))
    return np.where(x < 0, half, 1.0 - half)


def cumulative_sum(x) -> np.ndarray:
    """Running sum along the last axis, left to right (a sequential, hence fixed, order)."""
    return np.cumsum(_array(x), axis=-1)
