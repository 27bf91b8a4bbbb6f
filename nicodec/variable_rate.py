"""Continuous rate control with per-channel gain vectors (Cui et al. 2021, "Asymmetric gained
deep image compression with continuous rate adaptation").

Each of L trained rate levels has a gain vector; quality q ∈ [1, L] interpolates geometrically
between the two neighbouring levels, so one set of weights covers the whole rate range.
A fixed-λ model is the case L = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import exact as xm


class Gains(nn.Module):
    """Gain vectors g_l ∈ R^C_+ (stored as logs) for levels l = 1..L.

    Initialised so that each level's gain is √2 times the previous one (λ roughly doubles per
    level, and the quantisation step scales about as 1/√λ): training starts near a sensible
    spread of rates instead of having to discover it.
    """

    def __init__(self, levels: int, channels: int, ratio: float = math.sqrt(2.0), invert: bool = False):
        super().__init__()
        self.levels = levels
        steps = torch.arange(levels, dtype=torch.float32) - (levels - 1) / 2
        log_gain = steps * math.log(ratio) * (-1 if invert else 1)
        self.log_gain = nn.Parameter(log_gain[:, None].repeat(1, channels))

    def forward(self, quality: Tensor) -> Tensor:
        """Gains for each quality in ``quality`` (B,), shaped (B, C, 1, 1) to scale latents."""
        return torch.exp(interpolate_levels(self.log_gain, quality))[:, :, None, None]

    def exact(self, quality: Tensor) -> Tensor:
        """:meth:`forward` in float64 with deterministic arithmetic (:mod:`nicodec.exact`): what
        the coding path of container version 3 uses, the same bits on every machine."""
        table = self.log_gain.detach().cpu().to(torch.float64).numpy()  # (L, C)
        q = np.clip(quality.detach().cpu().to(torch.float64).numpy().reshape(-1), 1.0, float(self.levels)) - 1.0
        if self.levels == 1:
            logs = np.repeat(table[:1], len(q), axis=0)
        else:
            low = np.minimum(np.floor(q), self.levels - 2).astype(np.int64)
            t = (q - low)[:, None]
            logs = (1.0 - t) * table[low] + t * table[low + 1]
        return torch.from_numpy(xm.exp(logs))[:, :, None, None].to(self.log_gain.device)


def interpolate_levels(table: Tensor, quality: Tensor) -> Tensor:
    """Rows of ``table`` (L, C), one per level, linearly interpolated at each quality in
    ``quality`` (B,) ∈ [1, L] (clamped) → (B, C). Gains interpolate their logs this way, and so
    does the λ each quality stands for (:func:`quality_lambda`)."""
    levels = table.shape[0]
    q = quality.to(table.dtype).clamp(1, levels) - 1
    if levels == 1:
        return table[[0] * len(q)]
    low = q.floor().clamp(max=levels - 2).long()
    t = (q - low)[:, None]
    return (1 - t) * table[low] + t * table[low + 1]


def quality_lambda(lambdas: Sequence[float], quality: float) -> float:
    """The λ that ``quality`` ∈ [1, L] stands for: the trained λ at integer qualities, geometric
    interpolation between them (as the gains interpolate their logs)."""
    if len(lambdas) == 1:
        return float(lambdas[0])  # exactly, not exp(log(λ))
    log_lambdas = torch.tensor(lambdas, dtype=torch.float64).log()[:, None]
    return math.exp(float(interpolate_levels(log_lambdas, torch.tensor([float(quality)], dtype=torch.float64))))


def remap_levels(table: Tensor, source: Sequence[float], target: Sequence[float]) -> Tensor:
    """A per-level table (L, C) trained for the λ values ``source`` (increasing), re-indexed for
    the λ values ``target``: rows are copied where λ matches, and otherwise interpolated linearly
    in log λ between the neighbouring trained levels, or extrapolated along the nearest end
    segment. Log-gains are close to linear in log λ (the quantisation step goes as about 1/√λ), so
    a model can gain rate levels (a wider range) and keep training from a sensible start."""
    if list(source) != sorted(source) or len(set(source)) != len(source):
        raise ValueError(f"source λ values must increase, got {list(source)}")
    if len(source) == 1:
        return table[[0] * len(target)].clone()
    log_source = torch.tensor(source, dtype=torch.float64).log()
    rows = []
    for lam in target:
        t = math.log(lam)
        i = int(torch.searchsorted(log_source, torch.tensor(t, dtype=torch.float64))) - 1
        i = min(max(i, 0), len(source) - 2)
        w = (t - float(log_source[i])) / float(log_source[i + 1] - log_source[i])
        rows.append((1 - w) * table[i] + w * table[i + 1])  # exactly a trained row where λ matches (w = 0 or 1)
    return torch.stack(rows)
