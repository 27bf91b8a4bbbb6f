"""The overfitted model: latent grids, their probability model (ARM), upsampling and synthesis.

Cool-chic's architecture (Ladune et al. 2023; Leguay et al. 2023; Kim et al. 2024, C3), with the
coarser grid added to the ARM's context (:mod:`nicodec.overfit.context`):

* ``grids`` latent grids of one channel, at 1, 1/2, … 1/2^(grids−1) of the image side;
* the ARM, a small MLP from each element's context (16 causal neighbours in raster order and a
  3×3 patch of the coarser grid) to the mean and log2-scale of a Laplace distribution, one ARM for
  all grids (with a parallel order, each pass adds its own first-layer bias);
* upsampling: from the coarsest grid, twice the resolution at a time with a learned symmetric
  8-tap separable filter per level, the next grid concatenated at each level (``grids`` channels at
  full resolution);
* synthesis: 1×1 layers ``grids → width → 3`` (ReLU between), then two 3×3 residual layers.

Every parameter has a leading *set* dimension G: G independent models (images × qualities) fit in
one process on one device, batched matmuls and grouped convolutions doing the work of G loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import context, tables

_BICUBIC_HALF = (-0.0352, 0.2617, 0.8789, -0.1055)  # PyTorch's 2× bicubic, one phase (the other mirrored)


@dataclass(frozen=True)
class Architecture:
    """What a decoder must know to rebuild the networks (stored in the file's header)."""

    grids: int = 7
    arm_width: int = 16
    arm_layers: int = 2  # hidden layers
    synthesis_width: int = 24
    scheme: str = "raster"  # the format codes raster order; the parallel ones are for measurement
    coarse_context: bool = True

    @property
    def arm_inputs(self) -> int:
        return context.inputs(self.scheme, self.coarse_context)

    @property
    def passes(self) -> int:
        return len(context.SCHEMES[self.scheme])


def grid_sizes(height: int, width: int, grids: int) -> list[tuple[int, int]]:
    """(h, w) of each latent grid, finest first: each side halved (rounding up) per level."""
    sizes = [(height, width)]
    for _ in range(grids - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def arm_shapes(a: Architecture) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the ARM (per set), in file order."""
    shapes, fan_in = {}, a.arm_inputs
    for i in range(a.arm_layers):
        shapes[f"w{i}"] = (fan_in, a.arm_width)
        shapes[f"b{i}"] = (a.passes, a.arm_width) if i == 0 else (a.arm_width,)
        fan_in = a.arm_width
    shapes["w_out"], shapes["b_out"] = (fan_in, 2), (2,)
    return shapes


def synthesis_shapes(a: Architecture) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of upsampling and synthesis (per set), in file order."""
    return {
        "up": (a.grids - 1, 4),  # one half-filter per level (finest level first)
        "w0": (a.synthesis_width, a.grids), "b0": (a.synthesis_width,),
        "w1": (3, a.synthesis_width), "b1": (3,),
        "r0": (3, 3, 3, 3), "rb0": (3,),
        "r1": (3, 3, 3, 3), "rb1": (3,),
    }


class Networks(nn.Module):
    """ARM + upsampling + synthesis parameters of G sets, as (G, *shape) tensors."""

    def __init__(self, a: Architecture, sets: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        self.a = a
        self.arm = nn.ParameterDict()
        for name, shape in arm_shapes(a).items():
            if name.startswith("w"):
                bound = 1 / math.sqrt(shape[0])
                value = (torch.rand(sets, *shape, generator=generator) * 2 - 1) * bound
                if name == "w_out":
                    value *= 0.1
            else:
                value = torch.zeros(sets, *shape)
            self.arm[name] = nn.Parameter(value)
        self.syn = nn.ParameterDict()
        for name, shape in synthesis_shapes(a).items():
            if name == "up":
                value = torch.tensor(_BICUBIC_HALF).repeat(sets, a.grids - 1, 1)
            elif name.startswith(("w", "r")) and len(shape) > 1:
                fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
                bound = 1 / math.sqrt(fan_in)
                value = (torch.rand(sets, *shape, generator=generator) * 2 - 1) * bound
                if name.startswith("r"):
                    value *= 0.1  # residual layers start near the identity
            else:
                value = torch.zeros(sets, *shape)
            self.syn[name] = nn.Parameter(value)

    @property
    def sets(self) -> int:
        return self.arm["w0"].shape[0]


def arm_float(params: dict[str, Tensor], x: Tensor, layers: int) -> tuple[Tensor, Tensor]:
    """The ARM in floating point (training): x (G, K + passes, N), the neighbours then a one-hot
    of the pass (which adds the pass's first-layer bias) → mean, log2-scale (G, N).

    Hidden layers are ReLUs: the integer ARM also clamps them at 2^12 (tables.ACT_MAX), which fitted ARMs stay
    far below (largest activation 8.8–20.0 over twelve fitted Kodak files at qualities 2–8:
    ``benchmarks/overfit_bench.py arm-range``), so the clamp's backward pass (three elementwise
    ops over G·width·N values) is not paid."""
    first = torch.cat([params["w0"], params["b0"]], 1)  # (G, K + passes, width)
    h = torch.relu(torch.bmm(first.transpose(1, 2), x))  # (G, width, N)
    for i in range(1, layers):
        h = torch.relu(torch.baddbmm(params[f"b{i}"][:, :, None], params[f"w{i}"].transpose(1, 2), h))
    out = torch.baddbmm(params["b_out"][:, :, None], params["w_out"].transpose(1, 2), h)
    return out[:, 0], out[:, 1]


def upsample2(z: Tensor, half: Tensor, size: tuple[int, int]) -> Tensor:
    """Twice the resolution of z (G, C, h, w) with the separable symmetric filter ``half`` (G, 4)
    (one phase; the other is its mirror), cropped to ``size``; borders replicated."""
    g, c, h, w = z.shape
    zero = half.new_zeros(g, 1)
    taps = torch.stack([torch.cat([half, zero], 1), torch.cat([zero, half.flip(1)], 1)], 1)  # (G, 2, 5)
    taps = taps[:, None].expand(g, c, 2, 5).reshape(g * c * 2, 1, 5)
    x = F.pad(z.reshape(1, g * c, h, w), (0, 0, 2, 2), mode="replicate")
    x = F.conv2d(x, taps[..., None], groups=g * c)  # (1, G·C·2, h, w): both row phases
    x = x.reshape(1, g * c, 2, h, w).transpose(2, 3).reshape(1, g * c, 2 * h, w)[:, :, : size[0]]
    x = F.pad(x, (2, 2, 0, 0), mode="replicate")
    x = F.conv2d(x, taps[:, :, None, :], groups=g * c)
    x = x.reshape(1, g * c, 2, size[0], w).permute(0, 1, 3, 4, 2).reshape(g, c, size[0], 2 * w)
    return x[..., : size[1]]


def synthesize(params: dict[str, Tensor], grids: list[Tensor]) -> Tensor:
    """Upsample the grids (finest first, each (G, 1, h_k, w_k)) and synthesise (G, 3, H, W).

    Written for the fit's speed (forward and backward are a large share of an iteration): the 1×1
    layers as batched matrix products over the sets, the 3×3 layers as channels-last convolutions
    (oneDNN's fast path for 3 channels; NCHW took its slow one). docs/overfit.md gives the
    iteration times before and after (``benchmarks/overfit_bench.py iteration``)."""
    z = grids[-1]
    for k in range(len(grids) - 2, -1, -1):
        z = torch.cat([grids[k], upsample2(z, params["up"][:, k], grids[k].shape[-2:])], 1)
    g, c, h, w = z.shape
    x = torch.relu(torch.baddbmm(params["b0"][:, :, None], params["w0"], z.reshape(g, c, h * w)))
    x = torch.baddbmm(params["b1"][:, :, None], params["w1"], x).reshape(1, g * 3, h, w)

    def conv3x3(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:  # borders replicated
        x = F.pad(x, (1, 1, 1, 1), mode="replicate").contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight.reshape(-1, *weight.shape[2:]), bias.reshape(-1), groups=g)

    x = x + torch.relu(conv3x3(x, params["r0"], params["rb0"]))
    x = x + conv3x3(x, params["r1"], params["rb1"])
    return x.reshape(g, 3, h, w).contiguous()


def laplace_bits(value: Tensor, mean: Tensor, log2_scale: Tensor) -> Tensor:
    """−log2 P(value) for a Laplace(mean, 2^log2_scale) integrated over [value − ½, value + ½].

    Reflected into the left half (m = −|value − mean| ≤ 0), where F(x) = ½·exp(x/b): the upper end
    m + ½ may cross 0, F there is ½·e or 1 − ½·e with e = exp(−|m + ½|/b) (one exp, no overflow)."""
    inv_b = torch.exp2(-log2_scale.clamp(tables.LOG2_SCALE_MIN, tables.LOG2_SCALE_MAX))
    m = -(value - mean).abs()
    upper = (m + 0.5) * inv_b
    e = 0.5 * torch.exp(-upper.abs())
    p = torch.where(upper < 0, e, 1 - e) - 0.5 * torch.exp((m - 0.5) * inv_b)
    return -torch.log2(p.clamp(min=2.0**-24))


class ContextIndex:
    """Where every element's ARM inputs sit in the flattened grids, for training on known grids.

    Built once per image size by running :func:`context.gather` on grids that hold their own
    positions (exact in float64), so training reads the very neighbourhoods the decoder reads;
    one ``index_select`` then gathers all inputs (about 3× faster than slicing, backward included).
    """

    def __init__(self, sizes: list[tuple[int, int]], a: Architecture, device: torch.device | str = "cpu"):
        offsets = [2]  # flat positions 0 and 1 hold a zero (what padding reads) and a one (the pass one-hot)
        for h, w in sizes:
            offsets.append(offsets[-1] + h * w)
        ids = [torch.arange(o, o + h * w, dtype=torch.float64).reshape(1, 1, h, w) for o, (h, w) in zip(offsets, sizes)]
        inputs, passes, targets = [], [], []
        for k in range(len(sizes) - 1, -1, -1):
            coarse = ids[k + 1] if k + 1 < len(sizes) else None
            for p in range(a.passes):
                x, where = context.gather(ids[k], coarse, a.scheme, p, a.coarse_context)
                onehot = torch.zeros(a.passes, x.shape[2], dtype=torch.float64)
                onehot[p] = 1
                inputs.append(torch.cat([x[0], onehot]))
                targets.append(context.values_at(ids[k], where)[0])
        self.inputs = torch.cat(inputs, 1).long().to(device)  # (K + passes, N)
        self.targets = torch.cat(targets).long().to(device)  # (N,)

    def __call__(self, grids: list[Tensor]) -> tuple[Tensor, Tensor]:
        """(G, K + passes, N) ARM inputs and (G, N) elements, from grids (G, 1, h_k, w_k), finest first."""
        g = grids[0].shape[0]
        fixed = torch.tensor([0.0, 1.0], dtype=grids[0].dtype, device=grids[0].device).expand(g, 2)
        flat = torch.cat([fixed, *(y.reshape(g, -1) for y in grids)], 1)
        x = flat.index_select(1, self.inputs.reshape(-1)).reshape(g, *self.inputs.shape)
        return x, flat.index_select(1, self.targets)
