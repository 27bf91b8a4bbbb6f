"""The exact entropy path's vectorised half: the integer ARM (encoder side) and the networks' coding.

Everything that decides which table codes which symbol runs on integers. The ARM's weights are
integers (the parameter divided by its step 2^−shift), its inputs are the decoded latents, and its
activations are integers in 1/2^ACT_BITS, requantised after each layer by a rounding shift. The
arithmetic is done in float64 tensors holding integer values, so torch's matmul (any BLAS, any
thread count, CPU or CUDA) is exact: no partial sum can leave the integers below 2^53.

Bound (checked on the header before anything runs): latents |x| ≤ 63, weights |w| ≤ 2^15 − 1,
K ≤ 32 inputs, hidden activations clamped to [0, 2^20], width ≤ 64. First layer: |Σ| ≤ 32·63·2^15
+ 2^15 < 2^26; later layers: |Σ| ≤ 64·2^20·2^15 + 2^15·2^8 < 2^42 — far below 2^53.

The latents are coded in raster order by :mod:`.raster`; the networks' integers here, with
constriction (one call per module).
"""

from __future__ import annotations

import constriction
import numpy as np
import torch
from torch import Tensor

from ..errors import CorruptFileError
from . import tables
from .tables import ACT_BITS, ACT_MAX, END_MARK


def requantise(acc: Tensor, shift: int) -> Tensor:
    """acc / 2^shift rounded half up (exact in float64 for the integers that occur)."""
    if shift > 0:
        return torch.floor(acc * 2.0**-shift + 0.5)
    return acc * 2.0**-shift


def arm_integer(w: dict[str, Tensor], shift: int, x: Tensor, p: int, layers: int) -> tuple[Tensor, Tensor]:
    """The ARM on integers: w the integer weights, x (K, N) integer inputs of pass ``p``, whatever
    their dtype or layout (all cast to float64, where the arithmetic is exact).

    Returns the mean in 1/MEAN_STEPS and the scale index, both int64 (N,)."""
    return _arm({k: v.to(torch.float64) for k, v in w.items()}, shift, x.to(torch.float64), p, layers)


def _arm(w: dict[str, Tensor], shift: int, x: Tensor, p: int, layers: int, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """The integer ARM in x's dtype, ``chunk`` elements at a time (they stay in cache).

    Each layer: acc = W·h + bias + half a step, then ⌊acc / 2^s⌋ clamped to [0, ACT_MAX] (the
    half step is folded into the bias: floor after adding it is rounding half up)."""
    first_shift = shift - ACT_BITS
    biases = [w["b0"][p][:, None] + (2.0 ** (first_shift - 1) if first_shift > 0 else 0.0)]
    biases += [w[f"b{i}"][:, None] * 2.0**ACT_BITS + 2.0 ** (shift - 1) for i in range(1, layers)]
    out_bias = w["b_out"][:, None] * 2.0**ACT_BITS + 2.0 ** (shift - 1)
    weights = [w[f"w{i}"].t() for i in range(layers)]
    outs = []
    for start in range(0, x.shape[1], chunk):
        h = torch.addmm(biases[0], weights[0], x[:, start : start + chunk])
        h.mul_(2.0**-first_shift).clamp_(0, ACT_MAX).floor_()
        for i in range(1, layers):
            h = torch.addmm(biases[i], weights[i], h).mul_(2.0**-shift).clamp_(0, ACT_MAX).floor_()
        outs.append(torch.addmm(out_bias, w["w_out"].t(), h).mul_(2.0**-shift).floor_())  # in 1/2^ACT_BITS
    out = torch.cat(outs, 1) if outs else x.new_zeros(2, 0)
    unit = 1 << (ACT_BITS - 3)  # 1/8 in 1/256
    mean = torch.floor((out[0] + unit // 2) / unit).clamp_(-tables.MEAN_STEPS * tables.LATENT_BOUND,
                                                          tables.MEAN_STEPS * tables.LATENT_BOUND - 1)
    low = tables.LOG2_SCALE_MIN * (1 << ACT_BITS)
    scale = torch.floor((out[1] - low + unit // 2) / unit).clamp_(0, tables.SCALES - 1)
    return mean.long(), scale.long()


class Coder:
    """The networks' integers, module after module, with constriction's queue range coder; the
    encoder and the decoder drive it through the same method, so their orders cannot differ."""

    def __init__(self, data: bytes | None = None):
        if data is None:
            self.encoder = constriction.stream.queue.RangeEncoder()
            self.decoder = None
        else:
            if len(data) % 4:
                raise CorruptFileError("corrupt .nic file (stream is not a whole number of 32-bit words)")
            self.encoder = None
            self.decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        self.bits = {"parameters": 0.0}  # information content, −log2 of the pmfs

    def params(self, q: np.ndarray | None, e: int, bound: int, count: int) -> np.ndarray:
        """Code ``count`` integers in [−bound, bound] with Laplace(0, 2^(e/2)); decode when q is None."""
        if count == 0:
            return np.zeros(0, np.int64)
        pmf = tables.param_pmf(e, bound)
        model = constriction.stream.model.Categorical(pmf, perfect=False)
        if self.decoder is None:
            self.encoder.encode((q + bound).astype(np.int32), model)
        else:
            q = self.decoder.decode(model, count).astype(np.int64) - bound
        self.bits["parameters"] += float(-np.log2(pmf[q + bound] / pmf.sum()).sum())
        return q

    def finish(self) -> bytes:
        self.encoder.encode(np.array([END_MARK], np.int32), constriction.stream.model.Uniform(1 << 16))
        return self.encoder.get_compressed().astype("<u4").tobytes()

    def check_exhausted(self) -> None:
        """The end mark, then nothing: a stream cut short or damaged is refused (the parameters'
        values decide no table, so the CRC of the table indices cannot see them)."""
        mark = int(self.decoder.decode(constriction.stream.model.Uniform(1 << 16), 1)[0])
        if mark != END_MARK or not self.decoder.maybe_exhausted():
            raise CorruptFileError("corrupt .nic file (the coded stream does not end where it should)")
