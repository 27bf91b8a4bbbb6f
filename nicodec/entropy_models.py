"""Learned entropy models. Each object owns its distribution and gives both:

* ``likelihood(values, cond)`` — probability of each (noisy or rounded) value, for training and
  for rate estimates, and
* ``coding_tables(cond, shape, exact)`` — which categorical table codes each element, plus the
  tables, for the range coder in :mod:`nicodec.entropy_coding`.

``cond`` is what the model is conditioned on: the per-channel gain of the variable-rate model for
:class:`EntropyBottleneck`, predicted means and scales for :class:`GaussianConditional`.

Two ways of building tables, chosen by the file's container version (docs/format.md):

* ``exact=True`` (version 3): from frozen quantities with :mod:`nicodec.exact`'s deterministic
  float64 arithmetic, so encoder and decoder build bit-identical tables on any machine;
* ``exact=False`` (versions 1 and 2, kept so that their files decode as they always did): with
  PyTorch's float64 functions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import exact as xm
from .entropy_coding import CodingTables
from .layers import lower_bound

# Constants that decide the bitstream. Changing any of them changes the format version.
LIKELIHOOD_BOUND = 1e-9  # floor on likelihoods so that training never takes log2(0)
TAIL_MASS = 1e-9  # probability left outside a table's range; such values are escape-coded
MAX_TABLE_SIZE = 4096  # widest table; values beyond it are escape-coded (rare, still exact)
SCALE_MIN = 0.11  # smallest Gaussian scale; below it a quantised Gaussian is ~all mass at 0
SCALE_MAX = 256.0  # largest scale with its own table; larger scales use this one plus escapes
SCALE_LEVELS = 128  # log-spaced scale tables: neighbours differ by 6 %, costing < 0.1 % in rate
TAIL_SIGMAS = 6.1094102048693975  # −Φ⁻¹(TAIL_MASS / 2): half-width of a Gaussian table, in scales (version 3)


class EntropyModel(nn.Module):
    """Common interface; see the module docstring."""

    def likelihood(self, values: Tensor, cond) -> Tensor:
        raise NotImplementedError

    def center(self, cond) -> Tensor | None:
        """Offset that quantisation rounds around (the predicted mean), or None for plain rounding."""
        return None

    def coding_tables(self, cond, shape: torch.Size, exact: bool = False) -> tuple[np.ndarray, CodingTables]:
        """Table index for each element of a latent of ``shape``, and the tables; ``exact``: built
        with deterministic arithmetic (container version 3), else the legacy float64 way."""
        raise NotImplementedError

    def shape(self, cond, size: torch.Size | None) -> torch.Size:
        """Shape of the latent that this model codes (``size`` when the conditioning does not say)."""
        assert size is not None
        return size


class EntropyBottleneck(EntropyModel):
    """Learned factorised density, one per channel (Ballé et al. 2018, appendix 6.1).

    The density is learned for the *unscaled* latent u; the variable-rate model quantises
    v = u · g with a per-channel gain g, so the probability of the integer v = k is
    F((k + ½) / g) − F((k − ½) / g), with F the learned cumulative. One density thus serves
    every rate exactly. The tail quantiles of F, which bound the coding tables, are computed
    directly by bisection in :meth:`update` (no auxiliary loss needed).
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # (C, 2): the TAIL_MASS/2 and 1 − TAIL_MASS/2 quantiles of each channel's density.
        self.register_buffer("quantiles", torch.zeros(channels, 2, dtype=torch.float64))
        self._table_cache: dict[bytes, CodingTables] = {}  # exact tables by (parameters, gains) digest

    def _logits_cdf(self, x: Tensor) -> Tensor:
        """Logit of F at x, for x of shape (C, 1, N); monotonic in x by construction."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix.to(x.dtype)), x) + bias.to(x.dtype)
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(x)
        return x

    def _bin_probability(self, lower: Tensor, upper: Tensor) -> Tensor:
        """F(upper) − F(lower) for (C, 1, N) bounds, computed on the side where it is precise."""
        lo, hi = self._logits_cdf(lower), self._logits_cdf(upper)
        # Subtract on the side where the sigmoids are not saturated. Never sign 0: a bin whose
        # logits cancel exactly (a symmetric density, or a channel switched off by a tiny gain,
        # where F(±½/g) rounds to logits ±L) would get probability 0 instead of ~1.
        sign = torch.where(lo + hi > 0, -1.0, 1.0).to(lo.dtype).detach()
        return torch.abs(torch.sigmoid(sign * hi) - torch.sigmoid(sign * lo))

    def likelihood(self, values: Tensor, cond: Tensor) -> Tensor:
        """values: (B, C, H, W) in the gained domain; cond: gains broadcastable to (B, C, 1, 1)."""
        b, c, h, w = values.shape
        lower = ((values - 0.5) / cond).transpose(0, 1).reshape(c, 1, -1)
        upper = ((values + 0.5) / cond).transpose(0, 1).reshape(c, 1, -1)
        p = self._bin_probability(lower, upper).reshape(c, b, h, w).transpose(0, 1)
        return lower_bound(p, LIKELIHOOD_BOUND)

    @torch.no_grad()
    def update(self) -> None:
        """Freeze: compute the tail quantiles that bound the coding tables (float64 bisection)."""
        targets = torch.tensor([math.log(TAIL_MASS / 2) - math.log1p(-TAIL_MASS / 2)], dtype=torch.float64)
        targets = torch.cat([targets, -targets])  # logit of TAIL_MASS/2 and 1 − TAIL_MASS/2
        x = torch.zeros(self.channels, 1, 2, dtype=torch.float64)
        lo, hi = x - 1.0, x + 1.0
        for _ in range(64):  # widen the bracket until it holds both targets
            low_ok = self._logits_cdf(lo) <= targets
            high_ok = self._logits_cdf(hi) >= targets
            if bool(low_ok.all() and high_ok.all()):
                break
            lo = torch.where(low_ok, lo, lo * 2)
            hi = torch.where(high_ok, hi, hi * 2)
        for _ in range(80):
            mid = (lo + hi) / 2
            above = self._logits_cdf(mid) > targets
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        self.quantiles.copy_(((lo + hi) / 2).reshape(self.channels, 2))

    def coding_tables(self, cond: Tensor, shape: torch.Size, exact: bool = False) -> tuple[np.ndarray, CodingTables]:
        if not bool(torch.isfinite(self.quantiles).all()) or bool((self.quantiles == 0).all()):
            raise RuntimeError("entropy bottleneck not frozen: call update() before coding")
        index = np.broadcast_to(np.arange(self.channels).reshape(1, -1, 1, 1), shape)
        if exact:
            return index, self._exact_tables(cond.detach().reshape(-1).to(torch.float64).cpu().numpy())
        with torch.no_grad():
            gains = cond.detach().reshape(-1).to(torch.float64)  # (C,)
            first = torch.floor(self.quantiles[:, 0] * gains)
            last = torch.ceil(self.quantiles[:, 1] * gains)
            sizes = torch.clamp(last - first + 1, 1, MAX_TABLE_SIZE)
            first = torch.floor((first + last) / 2 - (sizes - 1) / 2)
            k = first[:, None] + torch.arange(int(sizes.max()), dtype=torch.float64)  # (C, K)
            p = self._bin_probability(((k - 0.5) / gains[:, None])[:, None], ((k + 0.5) / gains[:, None])[:, None])
            p = p[:, 0].numpy()
        pmfs = []
        for c in range(self.channels):
            pmf = p[c, : int(sizes[c])]
            pmfs.append(np.append(pmf, max(1.0 - pmf.sum(), 0.0)))
        return index, CodingTables(pmfs, first.numpy().astype(np.int64))

    def _exact_tables(self, gains: np.ndarray) -> CodingTables:
        """The tables of :meth:`coding_tables` built with :mod:`nicodec.exact` (container version 3),
        cached by a digest of everything they depend on (a model that trains on gets new ones)."""
        digest = hashlib.sha256(gains.tobytes())
        for tensor in (self.quantiles, *self.matrices, *self.biases, *self.factors):
            digest.update(tensor.detach().cpu().numpy().tobytes())
        key = digest.digest()
        if key not in self._table_cache:
            if len(self._table_cache) >= 16:
                self._table_cache.clear()
            self._table_cache[key] = self._build_exact_tables(gains)
        return self._table_cache[key]

    def _build_exact_tables(self, gains: np.ndarray) -> CodingTables:
        quantiles = self.quantiles.detach().cpu().numpy()
        first = np.floor(quantiles[:, 0] * gains)
        last = np.ceil(quantiles[:, 1] * gains)
        sizes = np.clip(last - first + 1, 1, MAX_TABLE_SIZE)
        first = np.floor((first + last) / 2 - (sizes - 1) / 2)
        k = first[:, None] + np.arange(int(sizes.max()), dtype=np.float64)  # (C, K)
        lower = ((k - 0.5) / gains[:, None])[:, None, :]
        upper = ((k + 0.5) / gains[:, None])[:, None, :]
        lo, hi = self._exact_logits_cdf(lower), self._exact_logits_cdf(upper)
        sign = np.where(lo + hi > 0, -1.0, 1.0)
        p = np.abs(xm.sigmoid(sign * hi) - xm.sigmoid(sign * lo))[:, 0]
        pmfs = []
        for c in range(self.channels):
            pmf = p[c, : int(sizes[c])]
            pmfs.append(np.append(pmf, max(1.0 - float(xm.cumulative_sum(pmf)[-1]), 0.0)))
        return CodingTables(pmfs, first.astype(np.int64))

    def _exact_logits_cdf(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_logits_cdf` on (C, 1, N) float64 values with deterministic arithmetic: the small
        per-channel matrix products are written out in a fixed order."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            weights = xm.softplus(matrix.detach().cpu().to(torch.float64).numpy())  # (C, out, in)
            out = weights[:, :, 0, None] * x[:, 0, None, :]
            for j in range(1, weights.shape[2]):
                out = out + weights[:, :, j, None] * x[:, j, None, :]
            x = out + bias.detach().cpu().to(torch.float64).numpy()
            if i < len(self.factors):
                x = x + xm.tanh(self.factors[i].detach().cpu().to(torch.float64).numpy()) * xm.tanh(x)
        return x


@dataclass
class GaussianParams:
    """Predicted Gaussian parameters of each latent element, (B, C, H, W); means None = zero."""

    scales: Tensor
    means: Tensor | None = None


class GaussianConditional(EntropyModel):
    """Quantised Gaussian with predicted scale (Ballé 2018) and optionally mean (Minnen 2018).

    For coding, each scale is mapped to the nearest of SCALE_LEVELS log-spaced scales, each of
    which has a fixed table; the symbol is round(y − mean).
    """

    def likelihood(self, values: Tensor, cond: GaussianParams) -> Tensor:
        scales = lower_bound(cond.scales, SCALE_MIN)
        v = values - cond.means if cond.means is not None else values
        v = torch.abs(v)
        upper = _normal_cdf((0.5 - v) / scales)
        lower = _normal_cdf((-0.5 - v) / scales)
        return lower_bound(upper - lower, LIKELIHOOD_BOUND)

    def center(self, cond: GaussianParams) -> Tensor | None:
        return cond.means

    def shape(self, cond: GaussianParams, size: torch.Size | None) -> torch.Size:
        return cond.scales.shape

    def coding_tables(self, cond: GaussianParams, shape: torch.Size, exact: bool = False) -> tuple[np.ndarray, CodingTables]:
        if exact:
            return exact_scale_indices(cond.scales), exact_gaussian_tables()
        return scale_indices(cond.scales), _gaussian_tables()


def scale_indices(scales: Tensor) -> np.ndarray:
    """Index of the nearest (in log scale) table scale for each element, as int64."""
    s = np.clip(scales.detach().to(torch.float64).numpy(), SCALE_MIN, SCALE_MAX)
    step = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)
    return np.rint(np.log(s / SCALE_MIN) / step).astype(np.int64)


@lru_cache(maxsize=1)
def _gaussian_tables() -> CodingTables:
    """Zero-mean quantised Gaussian pmfs for each table scale, covering all but TAIL_MASS."""
    scales = np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))
    tail = -_normal_ppf(TAIL_MASS / 2)
    pmfs, offsets = [], []
    for s in scales:
        radius = min(int(math.ceil(tail * s)), (MAX_TABLE_SIZE - 1) // 2)
        k = torch.arange(-radius, radius + 1, dtype=torch.float64)
        pmf = (_normal_cdf((0.5 - k.abs()) / s) - _normal_cdf((-0.5 - k.abs()) / s)).numpy()
        pmfs.append(np.append(pmf, max(1.0 - pmf.sum(), 0.0)))
        offsets.append(-radius)
    return CodingTables(pmfs, np.array(offsets, dtype=np.int64))


def _table_log_scales() -> tuple[float, float]:
    """log SCALE_MIN and the log-step between neighbouring table scales, computed exactly."""
    log_min, log_max = (float(v) for v in xm.log([SCALE_MIN, SCALE_MAX]))
    return log_min, (log_max - log_min) / (SCALE_LEVELS - 1)


@lru_cache(maxsize=1)
def _scale_thresholds() -> np.ndarray:
    """The SCALE_LEVELS − 1 boundaries between table scales (geometric midpoints), exactly."""
    log_min, step = _table_log_scales()
    return xm.exp(log_min + (np.arange(SCALE_LEVELS - 1, dtype=np.float64) + 0.5) * step)


def exact_scale_indices(scales: Tensor) -> np.ndarray:
    """Index of the table scale nearest (in log scale) to each element, by comparisons with fixed
    thresholds: the same on every machine for the same float64 scales (container version 3).

    That is ``searchsorted(thresholds, s, side="right")``, computed here in a few vectorised passes
    instead of a binary search per element (it runs once per latent element when coding; part of
    the entropy-decoding line of benchmarks/decode_speed.py, 20 → 15 ms): the top bits of s (sign, exponent, 12 mantissa bits) name a bucket 0.02 % wide, too
    narrow to hold two thresholds (6 % apart), and a table gives the count of thresholds below the
    bucket; one comparison with the next threshold finishes it. Exact bit operations and comparisons
    only, so exactly the binary search's answer (tests/test_exact_coding.py compares them)."""
    s = scales.detach().to(torch.float64).cpu().numpy()
    low, high, first_bucket, below, thresholds = _scale_index_lut()
    clipped = np.clip(s, low, high)  # outside [low, high] the index is 0 or the last anyway
    if not np.isfinite(clipped).all():  # NaN: the binary search's answer, whatever it is
        return np.searchsorted(thresholds[:-1], s, side="right").astype(np.int64)
    base = below[(clipped.view(np.int64) >> _BUCKET_SHIFT) - first_bucket]
    return base + (clipped >= thresholds[base])


_BUCKET_SHIFT = 40  # float64 bits above this: sign, 11 exponent bits, 12 mantissa bits


@lru_cache(maxsize=1)
def _scale_index_lut() -> tuple[float, float, int, np.ndarray, np.ndarray]:
    """(low, high, first bucket, thresholds below each bucket, thresholds + [inf]) for
    :func:`exact_scale_indices`: buckets cover [low, high], half the first threshold to twice the last."""
    thresholds = _scale_thresholds()
    low, high = float(thresholds[0]) / 2, float(thresholds[-1]) * 2
    first, last = (int(np.float64(v).view(np.int64)) >> _BUCKET_SHIFT for v in (low, high))
    buckets = np.arange(first, last + 1, dtype=np.int64)
    below = np.searchsorted(thresholds, (buckets << _BUCKET_SHIFT).view(np.float64), side="right").astype(np.int64)
    tops = np.nextafter(((buckets + 1) << _BUCKET_SHIFT).view(np.float64), 0.0)
    if np.any(np.searchsorted(thresholds, tops, side="right") - below > 1):
        raise AssertionError("a scale bucket holds two thresholds")  # not with 6 % steps and 0.02 % buckets
    return low, high, first, below, np.append(thresholds, np.inf)


@lru_cache(maxsize=1)
def exact_gaussian_tables() -> CodingTables:
    """:func:`_gaussian_tables` built with deterministic arithmetic (container version 3)."""
    log_min, step = _table_log_scales()
    scales = xm.exp(log_min + np.arange(SCALE_LEVELS, dtype=np.float64) * step)
    pmfs, offsets = [], []
    for s in scales:
        radius = min(int(math.ceil(TAIL_SIGMAS * float(s))), (MAX_TABLE_SIZE - 1) // 2)
        k = np.abs(np.arange(-radius, radius + 1, dtype=np.float64))
        pmf = xm.normal_cdf((0.5 - k) / s) - xm.normal_cdf((-0.5 - k) / s)
        pmfs.append(np.append(pmf, max(1.0 - float(xm.cumulative_sum(pmf)[-1]), 0.0)))
        offsets.append(-radius)
    return CodingTables(pmfs, np.array(offsets, dtype=np.int64))


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def _normal_ppf(p: float) -> float:
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))
