"""Continuous rate control with per-channel gain vectors (Cui et al. 2021, "Asymmetric gained
deep image compression with continuous rate adaptation").

Each of L trained rate levels has a gain vector; quality q ∈ [1, L] interpolates geometrically
between the two neighbouring levels, so one set of weights covers the whole rate range.
A fixed-λ model is the case L = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


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
        q = quality.to(self.log_gain.dtype).clamp(1, self.levels) - 1
        if self.levels == 1:
            log_gain = self.log_gain[[0] * len(q)]
        else:
            low = q.floor().clamp(max=self.levels - 2).long()
            t = (q - low)[:, None]
            log_gain = (1 - t) * self.log_gain[low] + t * self.log_gain[low + 1]
        return torch.exp(log_gain)[:, :, None, None]


def quality_lambda(lambdas: Sequence[float], quality: float) -> float:
    """The λ that ``quality`` ∈ [1, L] stands for: the trained λ at integer qualities, geometric
    interpolation between them (as the gains interpolate their logs)."""
    if len(lambdas) == 1:
        return float(lambdas[0])
    q = min(max(float(quality), 1.0), float(len(lambdas))) - 1
    low = min(int(q), len(lambdas) - 2)
    t = q - low
    return math.exp((1 - t) * math.log(lambdas[low]) + t * math.log(lambdas[low + 1]))
