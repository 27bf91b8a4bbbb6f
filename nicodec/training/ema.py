"""An exponential moving average of a model's weights, for export.

Why: the weights at the last step carry the noise of the last few hundred batches; their average
over a window of ~1/(1 − decay) steps sits nearer the minimum the run was moving towards, and costs
one pass over the parameters per step (Polyak averaging; routine in diffusion and classification
training). Whether it pays here, where the LR already decays at the end, is measured in
docs/training.md ("The recipe: a CPU study").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WeightAverage:
    """EMA of the floating-point entries of ``model.state_dict()`` (parameters and buffers).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates n, so that the
    average forgets its starting point quickly (the usual warm-up of an EMA).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        keys = list(self.average)
        torch._foreach_lerp_([self.average[k] for k in keys], [state[k].detach().float() for k in keys], 1 - decay)

    def state(self, model: nn.Module) -> dict[str, Tensor]:
        """``model``'s state dict with the averaged values in place of the current ones (CPU tensors)."""
        return {k: (self.average[k].to(v.dtype) if k in self.average else v).detach().cpu() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "average": {k: v.cpu() for k, v in self.average.items()}}

    def load_state_dict(self, saved: dict) -> None:
        self.updates = int(saved["updates"])
        for k, v in saved["average"].items():
            if k in self.average:
                self.average[k].copy_(v)
