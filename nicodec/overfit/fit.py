"""Encoding: fitting the latents and networks of G images (or qualities) on R + λ·D.

The schedule of C3 and Cool-chic (Kim et al. 2024; Leguay et al. 2023): a cosine-decayed learning
rate while the latents pass through annealed soft rounding plus uniform noise (the rate and the
synthesis see the same relaxed values), then a short straight-through phase where both see the
rounded latents, as the decoder will. The networks are optimised with SOAP (as Cool-chic 5; one
state per set: sets never mix), the latents with Adam (docs/overfit.md measures the choice).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from .. import heap
from . import model as M
from .tables import LATENT_BOUND


@dataclass(frozen=True)
class FitConfig:
    """Iterations and schedules of one encode."""

    iterations: int = 1000
    lr: float = 1e-2  # networks
    latent_lr: float = 5e-2  # Adam moves each latent by ~lr per step: 1e-2 leaves them near 0 in 1000 steps
    ste_fraction: float = 0.05  # last part of the iterations: straight-through rounding (more costs RD: docs/overfit.md)
    ste_lr_scale: float = 0.1  # learning rate of the straight-through phase, relative
    ste_latents: str = "adam"  # straight-through phase: "adam" goes on, "restart" starts a fresh Adam, "frozen" fixes them
    temperature: tuple[float, float] = (0.3, 0.1)  # soft-rounding temperature, annealed over the first phase
    noise: tuple[float, float] = (1.0, 1.0)  # amplitude of the uniform noise, annealed likewise
    warmup: int = 0
    seed: int = 0
    pretrained: bool = True  # start the networks from those learned over training photos (codec.starting_networks)
    optimizer: str = "soap"  # for the networks: "soap" or "adam" (the latents always use Adam)


def soft_round(y: Tensor, t: float) -> Tensor:
    """Agustsson & Theis (2020): a differentiable rounding, the identity as t → ∞, round as t → 0."""
    floor = torch.floor(y)
    r = y - floor - 0.5
    return floor + 0.5 + torch.tanh(r / t) / (2 * math.tanh(1 / (2 * t)))


def relaxed(latents: list[Tensor], t: float, noise: float, generator: torch.Generator | None) -> list[Tensor]:
    """Soft rounding, uniform noise, soft rounding again (C3's training-time quantisation)."""
    out = []
    for y in latents:
        u = (torch.rand(y.shape, generator=generator, device=y.device) - 0.5) * noise
        out.append(soft_round(soft_round(y, t) + u, t))
    return out


def straight_through(latents: list[Tensor]) -> list[Tensor]:
    return [y + (torch.round(y) - y).detach() for y in latents]


def clamp_latents(latents: list[Tensor], bound: float) -> None:
    with torch.no_grad():
        for y in latents:
            y.clamp_(-bound, bound)


def rd_terms(nets: M.Networks, grids: list[Tensor], x: Tensor, index: M.ContextIndex) -> tuple[Tensor, Tensor, Tensor]:
    """Per set: latent bits (G,), MSE (G,) on [0, 1] and the synthesis output (G, 3, H, W)."""
    a = nets.a
    inputs, targets = index(grids)
    mean, log2_scale = M.arm_float(dict(nets.arm), inputs, a.arm_layers)
    bits = M.laplace_bits(targets, mean, log2_scale).sum(1)
    x_hat = M.synthesize(dict(nets.syn), grids)
    mse = (x_hat - x).square().flatten(1).mean(1)
    return bits, mse, x_hat


@dataclass
class FitResult:
    nets: M.Networks
    latents: list[Tensor]
    history: list[dict] = field(default_factory=list)


def fit(x: Tensor, lam: Tensor, a: M.Architecture, config: FitConfig, nets: M.Networks | None = None,
        bound: float = LATENT_BOUND, progress: bool = False, log_every: int = 0,
        init: list[dict[str, Tensor]] | None = None) -> FitResult:
    """Fit G models to images x (G, 3, H, W) in [0, 1], each for its λ in ``lam`` (G,).

    ``init``: per set, a starting point for its networks (a ``Networks`` state of one set, e.g.
    learned over training photos); otherwise they start at random, the synthesis at the mean colour."""
    g, _, h, w = x.shape
    gen = torch.Generator(device=x.device).manual_seed(config.seed)
    if nets is None:
        nets = M.Networks(a, g, generator=torch.Generator().manual_seed(config.seed)).to(x.device)
        with torch.no_grad():
            if init is not None:
                for name, value in nets.state_dict().items():
                    value.copy_(torch.stack([state[name][0] for state in init]))
            else:
                nets.syn["b1"].copy_(x.mean((2, 3)))  # start from the image's mean colour
    sizes = M.grid_sizes(h, w, a.grids)
    index = M.ContextIndex(sizes, a, x.device)
    latents = [torch.zeros(g, 1, gh, gw, device=x.device, requires_grad=True) for gh, gw in sizes]
    if config.optimizer not in ("soap", "adam"):
        raise ValueError(f"FitConfig.optimizer must be 'soap' or 'adam', not {config.optimizer!r}")
    if config.ste_latents not in ("adam", "restart", "frozen"):
        raise ValueError(f"FitConfig.ste_latents must be 'adam', 'restart' or 'frozen', not {config.ste_latents!r}")
    if config.optimizer == "soap":
        from ..training.soap import SOAP

        opt_nets = SOAP(list(nets.parameters()), lr=config.lr, betas=(0.9, 0.999), batched=True)  # sets kept apart
    else:
        opt_nets = torch.optim.Adam(list(nets.parameters()), lr=config.lr)
    opt_latents = torch.optim.Adam(latents, lr=config.latent_lr)
    groups = [(opt_nets.param_groups[0], config.lr), (opt_latents.param_groups[0], config.latent_lr)]
    n = config.iterations
    n_relax = n - int(round(config.ste_fraction * n))
    history, start = [], time.time()
    bar = tqdm(total=n, desc="overfit", unit="it", disable=not progress, leave=False)
    with heap.retained():  # an iteration's large tensors reuse the last one's pages
        for it in range(n):
            if it < n_relax:
                s = it / max(1, n_relax - 1)
                scale = min(1.0, (it + 1) / config.warmup) if config.warmup else 1.0
                scale *= 0.5 * (1 + math.cos(math.pi * s)) * 0.99 + 0.01
                t = config.temperature[0] + (config.temperature[1] - config.temperature[0]) * s
                amp = config.noise[0] + (config.noise[1] - config.noise[0]) * s
                grids = relaxed(latents, t, amp, gen)
            else:
                if it == n_relax and config.ste_latents == "restart":
                    opt_latents = torch.optim.Adam(latents, lr=config.latent_lr)
                    groups[1] = (opt_latents.param_groups[0], config.latent_lr)
                s = (it - n_relax) / max(1, n - n_relax)
                scale = config.ste_lr_scale * 0.5 * (1 + math.cos(math.pi * s))
                grids = straight_through(latents)
            for group, lr in groups:
                group["lr"] = lr * scale
            bits, mse, _ = rd_terms(nets, grids, x, index)
            loss = (bits / (h * w) + lam * 255**2 * mse).sum()
            opt_nets.zero_grad(set_to_none=True)
            opt_latents.zero_grad(set_to_none=True)
            loss.backward()
            opt_nets.step()
            if it < n_relax or config.ste_latents != "frozen":
                opt_latents.step()
            clamp_latents(latents, bound)
            bar.update()
            if log_every and (it % log_every == 0 or it == n - 1):
                row = dict(it=it, bpp=(bits / (h * w)).tolist(), psnr=(-10 * torch.log10(mse)).tolist(), s=time.time() - start)
                history.append(row)
                if progress:
                    bar.write(str(row), file=sys.stderr)
    bar.close()
    return FitResult(nets, latents, history)


@torch.no_grad()
def evaluate(nets: M.Networks, latents: list[Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """bpp (G,) and PSNR (G,) of the rounded latents with the float networks."""
    g, _, h, w = x.shape
    index = M.ContextIndex([tuple(y.shape[-2:]) for y in latents], nets.a, x.device)
    bits, mse, _ = rd_terms(nets, [torch.round(y) for y in latents], x, index)
    return bits / (h * w), -10 * torch.log10(mse)
