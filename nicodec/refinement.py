"""Encoder-side latent refinement: spend encoding time to lower one image's R + λ·D.

The analysis transform is amortised — one network guesses latents for every image — so for a
given image there are latents that cost fewer bits for the same error. Gradient descent on the
latent itself, with the decoder and the entropy model fixed, finds them (Campos et al. 2019,
"Content adaptive optimization for neural image compression"; Yang et al. 2020). The decoder is
untouched: a refined file is an ordinary ``.nic`` file.

What is refined is the main latent y, in the gained domain where the quantisation step is 1; a
hyperprior's z stays as the encoder computed it (so do the predicted means and scales; refining z
too gained less in trials with either relaxation below, and each step stays one synthesis pass).
The relaxation is stochastic Gumbel annealing (SGA, Yang et al. 2020; :class:`~nicodec.latent_coders.SoftRoundingCoder`):
rate and synthesis see a random soft rounding that hardens as the temperature falls. At 50 steps it
lowers the loss ~1.5× as much as training's "mixed" relaxation (rate sees y + U(−½, ½), synthesis
the straight-through rounded y), which stays available (``relaxation="mixed"``) for comparison:
``python benchmarks/refinement.py``. Every ``check_every`` steps the hard-rounded loss — what
coding will realise, up to the coder's < 1 % overhead — is measured and the best iterate kept,
starting with the encoder's own latent, so refinement never returns a worse one by that measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor
from tqdm import tqdm

from . import models
from .errors import NicodecError
from .latent_coders import OverridingCoder, RelaxedCoder, RoundingCoder, SoftRoundingCoder
from .models import CompressionModel, ModelOutput, _nhwc
from .objective import rd_loss
from .tiling import tile_windows


# Refinement keeps the synthesis' activations for the backward pass: about 0.9 GB per megapixel
# synthesised at once (docs/benchmarks.md) on top of plain encoding. With MSE that is one tile
# with its halo; MS-SSIM needs the whole image.
BYTES_PER_PIXEL = 1000

Relaxation = Literal["sga", "mixed"]
RELAXATIONS: tuple[str, ...] = get_args(Relaxation)


def check_memory(pixels: int, distortion: str = "mse", available: int | None = None) -> None:
    """Refuse, with a one-line error, to refine an image whose backward pass would not fit in the
    memory available now (Linux's MemAvailable; no check where that is unknown), instead of
    letting the system kill the process mid-way."""
    window = (models.TILE + 2 * 16 * models.HALOS["g_s"]) ** 2
    held = min(pixels, window) if distortion == "mse" else pixels
    available = _available_memory() if available is None else available
    need = held * BYTES_PER_PIXEL
    if available is not None and need > available:
        raise NicodecError(
            f"refining this {pixels / 1e6:.1f}-megapixel image needs about {need / 1e9:.1f} GB of memory and "
            f"{available / 1e9:.1f} GB is available: compress it without refinement, or a crop of it"
        )


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class RefineConfig:
    """steps: gradient steps (each costs about one synthesis forward + backward pass);
    lr: Adam's step size on the latent (in quantisation steps);
    relaxation: "sga" (soft rounding annealed from temperature[0] to temperature[1], geometrically,
    constant lr) or "mixed" (training's relaxation, lr cosine-decayed to 0; best lr 0.004);
    check_every: steps between measurements of the hard-rounded loss;
    seed: of the relaxation's noise, so that refining is deterministic.
    Defaults chosen with benchmarks/refinement.py (docs/benchmarks.md)."""

    steps: int = 50
    lr: float = 0.01
    relaxation: Relaxation = "sga"
    temperature: tuple[float, float] = (0.5, 0.15)
    check_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {', '.join(RELAXATIONS)}, not {self.relaxation!r}")
        if len(self.temperature) != 2 or min(self.temperature) <= 0:
            raise ValueError(f"temperature must be two positive numbers (start, end), not {self.temperature!r}")

    def lr_at(self, step: int) -> float:
        """Adam's step size at step ``step`` (0-based)."""
        if self.relaxation == "sga":
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))

    def coder(self, step: int, noise: torch.Generator) -> RelaxedCoder | SoftRoundingCoder:
        """The relaxed coder for step ``step`` (0-based) of ``steps``."""
        if self.relaxation == "mixed":
            return RelaxedCoder("mixed", noise)
        start, end = self.temperature
        return SoftRoundingCoder(start * (end / start) ** (step / max(self.steps - 1, 1)), noise)


@dataclass
class Refined:
    """latents: what to code instead of the encoder's (see CompressionModel.compress);
    loss_before / loss_after: hard-rounded R + λ·D of the encoder's latent and of the chosen one."""

    latents: dict[str, Tensor]
    loss_before: float
    loss_after: float


@dataclass
class _Problem:
    """One image to refine: x padded (1, 3, H, W), its unpadded size, the analysis latent y (before
    the gains, as ``code`` takes it), the quality tensor and the trade-off."""

    model: CompressionModel
    x: Tensor
    size: tuple[int, int]
    y: Tensor
    q: Tensor
    lam: float
    distortion: str

    def loss(self, coder) -> Tensor:
        """R + λ·D through ``coder``: distortion over the unpadded pixels, rate per unpadded pixel
        (as a file's bpp).

        With MSE the synthesis runs tile by tile (the tiles and halos of :mod:`nicodec.tiling`),
        each tile's error back-propagated at once when ŷ needs a gradient, so one tile's
        activations are held at a time, whatever the image size. The squared error is a sum over
        pixels and each tile's pixels depend only on its window of ŷ, so the value and the
        gradient are those of the whole-image pass. MS-SSIM is not a sum over tiles: whole image.
        """
        h, w = self.size
        y_hat = self.model.code(coder, self.q, self.y, self.model._latent_size(self.x.shape))
        if self.distortion != "mse":
            x_hat = self.model._synthesize(_nhwc(y_hat), self.q)[..., :h, :w]
            out = ModelOutput(x_hat, coder.likelihoods)
            return rd_loss(self.x[..., :h, :w], out, torch.tensor([self.lam]), self.distortion)[0]
        rate = sum(-torch.log2(p.float()).sum() for p in coder.likelihoods.values()) / (h * w)
        weight = self.lam * 255**2 / (3 * h * w)  # λ·255²·MSE = weight · squared error
        sse, grad = self._squared_error(y_hat)
        if grad is None:
            return rate + weight * sse
        # the value R + λD; the gradient of R plus λ·∂D/∂ŷ, carried by ⟨ŷ, g⟩ − ⟨ŷ, g⟩ (exactly 0)
        return rate + weight * sse + weight * ((y_hat * grad).sum() - (y_hat.detach() * grad).sum())

    def _squared_error(self, y_hat: Tensor) -> tuple[float, Tensor | None]:
        """Σ (x̂ − x)² over the unpadded pixels, synthesised tile by tile, and its gradient with
        respect to ŷ (None when ŷ needs none)."""
        h, w = self.size
        inverse_gain = self.model.y_inverse_gain(self.q).detach()
        latent = y_hat.detach()
        grad = torch.zeros_like(latent) if y_hat.requires_grad else None
        tile, halo, s = models.TILE // 16, models.HALOS["g_s"], 16  # read at call time (tests shrink TILE)
        total = 0.0
        for (top, bottom, left, right), (t0, t1, l0, l1) in tile_windows(*latent.shape[-2:], tile, halo):
            window = latent[..., t0:t1, l0:l1].clone()
            with torch.set_grad_enabled(grad is not None):
                window.requires_grad_(grad is not None)
                x_hat = self.model.g_s(_nhwc(window * inverse_gain))
                r1, c1 = min(bottom * s, h), min(right * s, w)
                piece = x_hat[..., top * s - t0 * s : r1 - t0 * s, left * s - l0 * s : c1 - l0 * s]
                error = (piece - self.x[..., top * s : r1, left * s : c1]).square().sum()
            if grad is not None:
                error.backward()
                grad[..., t0:t1, l0:l1] += window.grad
            total += float(error.detach())
        return total, grad


def refine(
    model: CompressionModel,
    x: Tensor,
    quality: float,
    lam: float,
    distortion: str = "mse",
    size: tuple[int, int] | None = None,
    config: RefineConfig = RefineConfig(),
    progress: bool = False,
    y: Tensor | None = None,
) -> Refined:
    """Refine the main latent of ``x`` (1, 3, H, W) in [0, 1], padded to the model's stride, for
    quality ``quality`` whose trained trade-off is ``lam``; ``size``: the unpadded (h, w).
    ``progress``: a progress bar on stderr (a large photo takes minutes). ``y``: ``model.analyze(x)``
    when the caller has it already."""
    was_training = model.training
    model.eval()
    needs_grad = [p for p in model.parameters() if p.requires_grad]
    for p in needs_grad:
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            y0 = (model.analyze(x) if y is None else y).contiguous()
            problem = _Problem(model, x, size or tuple(x.shape[-2:]), y0, model._quality(quality, 1), lam, distortion)
            first = OverridingCoder(RoundingCoder())
            best_loss = before = float(problem.loss(first))
        y = first.offered["y"].detach().clone().requires_grad_(True)
        best = y.detach().clone()
        optimizer = torch.optim.Adam([y], lr=config.lr)
        noise = torch.Generator().manual_seed(config.seed)  # same image, same file; global RNG untouched
        bar = tqdm(total=config.steps, desc="refining", unit="step", disable=not progress, leave=False, dynamic_ncols=True)
        for step in range(config.steps):
            optimizer.param_groups[0]["lr"] = config.lr_at(step)
            loss = problem.loss(OverridingCoder(config.coder(step, noise), {"y": y}))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % config.check_every == 0 or step + 1 == config.steps:
                with torch.no_grad():
                    hard = float(problem.loss(OverridingCoder(RoundingCoder(), {"y": y})))
                if hard < best_loss:
                    best_loss, best = hard, y.detach().clone()
            bar.update(1)
        bar.close()
    finally:
        for p in needs_grad:
            p.requires_grad_(True)
        model.train(was_training)
    return Refined({"y": best}, before, best_loss)
