"""The networks' parameters as they travel in a file: integers times a per-module step 2^−shift.

Three modules, each with its own step (C3 and Cool-chic search the step per module too): the ARM
(its integers are what the exact ARM multiplies by), the upsampling filters and the synthesis.
Each module's integers are coded with one Laplace(0, 2^(scale/2)) table over [−bound, bound].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from . import tables
from .header import Quantisation
from .model import Architecture, arm_shapes, synthesis_shapes


def module_shapes(a: Architecture, module: str) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of ``module`` (per set), in file order."""
    if module == "arm":
        return arm_shapes(a)
    shapes = synthesis_shapes(a)
    return {"up": shapes["up"]} if module == "up" else {k: v for k, v in shapes.items() if k != "up"}


def flatten(values: dict[str, Tensor], shapes: dict[str, tuple[int, ...]]) -> Tensor:
    return torch.cat([values[name].reshape(-1) for name in shapes])


def unflatten(flat: Tensor, shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    out, start = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = flat[start : start + n].reshape(shape)
        start += n
    return out


def quantise(flat: Tensor, shift: int) -> np.ndarray | None:
    """round(θ·2^shift) as int64, or None when a value would exceed the format's bound."""
    q = torch.round(flat.detach().double().cpu() * 2.0**shift)
    if q.abs().max().item() > tables.PARAM_BOUND if q.numel() else False:
        return None
    return q.long().numpy()


def dequantise(q: np.ndarray, shift: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The parameter values the decoder uses: exact (integers times a power of two)."""
    return torch.from_numpy(np.asarray(q, np.float64) * 2.0**-shift).to(dtype)


def table_for(q: np.ndarray) -> tuple[int, int, float]:
    """(scale index, bound, bits): the Laplace table that codes ``q`` in the fewest bits."""
    bound = int(np.abs(q).max()) if q.size else 0
    if q.size == 0:
        return 0, 0, 0.0
    mean = max(float(np.abs(q).mean()), 0.5)
    guess = int(round(2 * math.log2(mean)))
    best = None
    for e in range(max(0, guess - 2), min(tables.PARAM_SCALES, guess + 3)):
        pmf = tables.param_pmf(e, bound)
        with np.errstate(divide="ignore"):  # a value this table gives no mass: inf bits, never the choice
            bits = float(-np.log2(pmf[q + bound] / pmf.sum()).sum())
        if best is None or bits < best[2]:
            best = (e, bound, bits)
    return best


def quantisation(q: np.ndarray, shift: int) -> tuple[Quantisation, float]:
    e, bound, bits = table_for(q)
    return Quantisation(shift=shift, scale=e, bound=bound), bits
