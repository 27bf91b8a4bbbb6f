"""The entropy path, exact: the integer ARM, table choice, and range coding of parameters and latents.

Everything that decides which table codes which symbol runs on integers. The ARM's weights are
integers (the parameter divided by its step 2^−shift), its inputs are the decoded latents, and its
activations are integers in 1/2^ACT_BITS, requantised after each layer by a rounding shift. The
arithmetic is done in float64 tensors holding integer values, so torch's matmul (any BLAS, any
thread count, CPU or CUDA) is exact: no partial sum can leave the integers below 2^53.

Bound (checked on the header before anything runs): latents |x| ≤ 63, weights |w| ≤ 2^15 − 1,
K ≤ 32 inputs, hidden activations clamped to [0, 2^20], width ≤ 64. First layer: |Σ| ≤ 32·63·2^15
+ 2^15 < 2^26; later layers: |Σ| ≤ 64·2^20·2^15 + 2^15·2^8 < 2^42 — far below 2^53.

Coding order (the decoder's): grids coarsest first, passes in order (:mod:`.context`), and within a
pass the symbols grouped by table, tables in increasing order, elements in gather's order.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch
from torch import Tensor

from ..errors import CorruptFileError
from . import context, tables
from .model import Architecture

ACT_BITS = 8  # ARM activations and outputs are integers in 1/256
ACT_MAX = 1 << 20  # activation clamp (4096 in real units), which bounds every sum (module docstring)
MAX_WEIGHT = tables.PARAM_BOUND


def requantise(acc: Tensor, shift: int) -> Tensor:
    """acc / 2^shift rounded half up (exact in float64 for the integers that occur)."""
    if shift > 0:
        return torch.floor(acc * 2.0**-shift + 0.5)
    return acc * 2.0**-shift


def arm_integer(w: dict[str, Tensor], shift: int, x: Tensor, passes: Tensor, layers: int) -> tuple[Tensor, Tensor]:
    """The ARM on integers: w the integer weights (float64), x (N, K) integer inputs, passes (N,).

    Returns the mean in 1/MEAN_STEPS and the scale index, both int64 (N,)."""
    h = x @ w["w0"] + w["b0"][passes]  # in 1/2^shift
    h = requantise(h, shift - ACT_BITS).clamp_(0, ACT_MAX)
    for i in range(1, layers):
        h = requantise(h @ w[f"w{i}"] + w[f"b{i}"] * 2.0**ACT_BITS, shift).clamp_(0, ACT_MAX)
    out = requantise(h @ w["w_out"] + w["b_out"] * 2.0**ACT_BITS, shift)  # in 1/2^ACT_BITS
    unit = 1 << (ACT_BITS - 3)  # 1/8 in 1/256
    mean = torch.floor((out[:, 0] + unit // 2) / unit).clamp_(-tables.MEAN_STEPS * tables.LATENT_BOUND,
                                                            tables.MEAN_STEPS * tables.LATENT_BOUND - 1)
    low = tables.LOG2_SCALE_MIN * (1 << ACT_BITS)
    scale = torch.floor((out[:, 1] - low + unit // 2) / unit).clamp_(0, tables.SCALES - 1)
    return mean.long(), scale.long()


def arm_float_equivalent(mean: Tensor, log2_scale: Tensor) -> tuple[Tensor, Tensor]:
    """What the float ARM's outputs round to (for estimates): mean in 1/8 and scale index."""
    m = torch.round(mean * tables.MEAN_STEPS).clamp(-tables.MEAN_STEPS * tables.LATENT_BOUND,
                                                    tables.MEAN_STEPS * tables.LATENT_BOUND - 1)
    s = torch.round((log2_scale - tables.LOG2_SCALE_MIN) * tables.SCALE_STEPS).clamp(0, tables.SCALES - 1)
    return m.long(), s.long()


class Coder:
    """One range coder (constriction's queue coder) shared by parameters and latents; the encoder
    and the decoder drive it through the same methods, so their orders cannot differ."""

    def __init__(self, data: bytes | None = None):
        if data is None:
            self.encoder = constriction.stream.queue.RangeEncoder()
            self.decoder = None
        else:
            if len(data) % 4:
                raise CorruptFileError("corrupt .nic file (stream is not a whole number of 32-bit words)")
            self.encoder = None
            self.decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        self.crc = 0
        self.bits = {"parameters": 0.0, "latents": 0.0}  # information content, −log2 of the pmfs

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

    def latents(self, symbols: np.ndarray | None, table: np.ndarray) -> np.ndarray:
        """Code symbols (indices into the SPAN-entry tables) each with its ``table``; decode when
        ``symbols`` is None. Grouped by table, tables in increasing order (stable within a table)."""
        self.crc = zlib.crc32(np.ascontiguousarray(table, dtype="<i4").tobytes(), self.crc)
        order = np.argsort(table, kind="stable")
        used, starts = np.unique(table[order], return_index=True)
        stops = np.append(starts[1:], len(order))
        out = np.empty(len(table), np.int64) if symbols is None else symbols
        for t, a, b in zip(used.tolist(), starts.tolist(), stops.tolist()):
            where = order[a:b]
            model = tables.latent_model(t)
            if self.decoder is None:
                self.encoder.encode(symbols[where].astype(np.int32), model)
            else:
                out[where] = self.decoder.decode(model, b - a)
            self.bits["latents"] += float(-tables.latent_log2_pmf(t)[out[where]].sum())
        return out

    def finish(self) -> bytes:
        return self.encoder.get_compressed().astype("<u4").tobytes()

    def check_exhausted(self) -> None:
        if not self.decoder.maybe_exhausted():
            raise CorruptFileError("corrupt .nic file (data left over after the last latent)")


def code_latents(coder: Coder, a: Architecture, w: dict[str, Tensor], shift: int,
                 sizes: list[tuple[int, int]], latents: list[Tensor] | None = None) -> list[Tensor]:
    """Encode integer ``latents`` (finest first, each (h_k, w_k)) or, when None, decode them.

    The encoder knows whole grids, the decoder fills them pass by pass; both compute each pass's
    contexts with :func:`context.gather`, which reads only elements of earlier passes."""
    bound, span = tables.LATENT_BOUND, tables.SPAN
    device = w["w0"].device
    grids = [torch.zeros(1, 1, h, wd, dtype=torch.float64, device=device) for h, wd in sizes]
    if latents is not None:
        for g, y in zip(grids, latents):
            g[0, 0] = y.to(device=device, dtype=torch.float64)
    for k in range(len(sizes) - 1, -1, -1):
        coarse = grids[k + 1] if k + 1 < len(sizes) else None
        for p in range(a.passes):
            x, where = context.gather(grids[k], coarse, a.scheme, p, a.coarse_context)
            if x.shape[1] == 0:
                continue
            passes = torch.full((x.shape[1],), p, dtype=torch.long, device=device)
            mean, scale = arm_integer(w, shift, x[0], passes, a.arm_layers)
            mean, scale = mean.cpu().numpy(), scale.cpu().numpy()
            table = tables.table_index(mean, scale)
            base = mean // tables.MEAN_STEPS + (-2 * bound + 1)  # symbol = v − ⌊mean⌋ − (−2·bound + 1)
            if latents is not None:
                values = context.values_at(grids[k], where)[0].cpu().numpy().astype(np.int64)
                coder.latents(values - base, table)
            else:
                symbols = coder.latents(None, table)
                values = symbols + base
                if np.abs(values).max() > bound or symbols.min() < 0 or symbols.max() >= span:
                    raise CorruptFileError("corrupt .nic file (latent out of range)")
                context.scatter(grids[k], where, torch.from_numpy(values.astype(np.float64))[None].to(device))
    return [g[0, 0].to(torch.int64).cpu() for g in grids]
