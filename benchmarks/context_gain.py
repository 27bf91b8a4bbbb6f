"""How much would a checkerboard context model save on top of the shipped meanscale, transforms frozen?

    python benchmarks/context_gain.py [--steps 6000] [--batch 16] [--train-images 200]
        [--data ../shared/data/train-gpu] [--kodak ../shared/data/kodak] [--max-images 8]

A feasibility study for a CPU-trainable improvement (He et al. 2021, "Checkerboard context model
for efficient learned image compression"). The latents y = g_a(x) are computed once per training
image with the shipped weights; everything the model predicts for y (z, the means and scales) stays
as shipped. Half of y (the checkerboard's anchors) is coded as now; the other half gets its
Gaussian's scale corrected by a small network that sees the decoded anchors around it
(a 5×5 convolution) and the hyperprior's prediction: rate only, since frozen transforms make the
decoded image exactly what it was (only the scales change, see Context). Its last layer starts at
zero, so step 0 is the shipped model.

Trained on 16×16 latent crops (256² pixels) at random qualities in [1, L] with the rate of the
hard-rounded non-anchors, as they will be coded; evaluated on Kodak images at full size: estimated
bits per pixel (−log2 of the likelihoods: z, anchors, non-anchors; the range coder adds < 1 %).
Nothing here is shipped: it measures whether the idea pays.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nicodec
from nicodec.entropy_models import GaussianConditional, GaussianParams
from nicodec.evaluation.runner import find_images, load_image
from nicodec.latent_coders import RoundingCoder

ROOT = Path(__file__).resolve().parents[1]


class CapturingCoder(RoundingCoder):
    """Hard rounding as in coding; keeps what y is coded with (its gained value and Gaussian)."""

    def __call__(self, name, model, value, cond, size=None):
        if name == "y":
            self.y, self.params = value, cond
        return super().__call__(name, model, value, cond, size)


class Context(nn.Module):
    """Corrects the non-anchors' scales (a factor, in the gained domain) from the decoded anchors and
    the hyperprior's mean and scale. Means are left alone: the symbols are rounded around the mean,
    and at low rates most of them are 0, so a different mean is a different reconstruction (a
    trial that corrected means too lost PSNR at level 1). With only the scales corrected, the
    decoded image is exactly the one of today's file and the saving is pure rate."""

    def __init__(self, M: int):
        super().__init__()
        self.context = nn.Conv2d(M, M, 5, padding=2)
        self.parameters_net = nn.Sequential(
            nn.Conv2d(3 * M, 2 * M, 1), nn.LeakyReLU(), nn.Conv2d(2 * M, 2 * M, 1), nn.LeakyReLU(), nn.Conv2d(2 * M, M, 1)
        )
        nn.init.zeros_(self.parameters_net[-1].weight)
        nn.init.zeros_(self.parameters_net[-1].bias)

    def forward(self, anchors: Tensor, params: GaussianParams) -> GaussianParams:
        hyper = torch.cat([params.means, torch.log(params.scales.clamp(min=1e-3)), self.context(anchors)], 1)
        return GaussianParams(scales=params.scales * torch.exp(self.parameters_net(hyper)), means=params.means)


def anchor_mask(h: int, w: int) -> Tensor:
    i, j = torch.arange(h)[:, None], torch.arange(w)[None]
    return ((i + j) % 2 == 0).float()


def bits(context: Context, y: Tensor, params: GaussianParams) -> tuple[Tensor, Tensor, Tensor]:
    """Bits of the rounded anchors, of the rounded non-anchors as now, and of the same with the context."""
    gaussian = GaussianConditional()
    mask = anchor_mask(*y.shape[-2:])
    rounded = torch.round(y - params.means) + params.means
    before = -torch.log2(gaussian.likelihood(rounded, params))
    corrected = context(rounded * mask, params)
    after = -torch.log2(gaussian.likelihood(rounded, corrected))
    return (before * mask).sum(), (before * (1 - mask)).sum(), (after * (1 - mask)).sum()


def coded_y(model, y: Tensor, level: float) -> tuple[Tensor, GaussianParams, Tensor]:
    """y in the gained domain, its Gaussian and z's bits, as the shipped model codes them."""
    coder = CapturingCoder()
    q = torch.tensor([level])
    model.code(coder, q, y, tuple(y.shape))
    return coder.y, coder.params, -torch.log2(coder.likelihoods["z"]).sum()


def padded(path: Path, stride: int) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).float().div(255)[None]
    h, w = x.shape[-2:]
    return x, F.pad(x, (0, -w % stride, 0, -h % stride), mode="replicate")


@torch.no_grad()
def evaluate(model, context: Context, kodak: list[tuple[Tensor, Tensor]], levels: list[int]) -> list[tuple[int, float, float]]:
    """(level, bpp now, bpp with the context) over the Kodak images, pixels unpadded."""
    rows = []
    pixels = sum(x.shape[-2] * x.shape[-1] for x, _ in kodak)
    for level in levels:
        base = ctx = 0.0
        for _, y in kodak:
            gained, params, z_bits = coded_y(model, y, float(level))
            anchors, rest, rest_ctx = bits(context, gained, params)
            base += float(z_bits + anchors + rest)
            ctx += float(z_bits + anchors + rest_ctx)
        rows.append((level, base / pixels, ctx / pixels))
    return rows


def report(rows: list[tuple[int, float, float]], step: int, seconds: float) -> None:
    print(f"\nafter {step} steps ({seconds / 60:.1f} min):\n")
    print("| level | bpp now | bpp with context | rate |")
    print("|---:|---:|---:|---:|")
    for level, base, ctx in rows:
        print(f"| {level} | {base:.4f} | {ctx:.4f} | {100 * (ctx / base - 1):+.2f} % |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="meanscale", help="shipped name or weights file (a mean-scale hyperprior)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train-gpu")
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    p.add_argument("--train-images", type=int, default=200)
    p.add_argument("--max-images", type=int, default=8, help="Kodak images evaluated")
    p.add_argument("--levels", default="1,3,6,10")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=16, help="latent crop side (×16 pixels)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--eval-every", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    codec = nicodec.load(args.model)
    model = codec.model.float().eval()
    if model.name != "meanscale":
        raise SystemExit(f"--model must be a meanscale model, not {model.name}")
    for param in model.parameters():
        param.requires_grad_(False)
    levels = [int(v) for v in args.levels.split(",")]
    start = time.time()
    with torch.no_grad():
        paths = find_images(args.data)
        rng.shuffle(paths)
        train = [model.g_a(padded(path, model.stride)[1]) for path in paths[: args.train_images]]
        kodak = [(x, model.g_a(xp)) for x, xp in (padded(path, model.stride) for path in find_images(args.kodak, args.max_images))]
    print(f"{model.name}: latents of {len(train)} training and {len(kodak)} Kodak images in {time.time() - start:.0f} s", flush=True)
    context = Context(model.config.M)
    print(f"context network: {sum(t.numel() for t in context.parameters())} parameters", flush=True)
    optimizer = torch.optim.Adam(context.parameters(), lr=args.lr)
    report(evaluate(model, context, kodak, levels), 0, time.time() - start)
    P = args.patch
    for step in range(1, args.steps + 1):
        loss = torch.zeros(())
        for _ in range(args.batch):
            y = rng.choice(train)
            i, j = rng.randrange(y.shape[-2] - P + 1), rng.randrange(y.shape[-1] - P + 1)
            crop = y[..., i : i + P, j : j + P]
            crop = crop.flip(-1) if rng.random() < 0.5 else crop
            with torch.no_grad():
                gained, params, _ = coded_y(model, crop, rng.uniform(1, model.config.levels))
            loss = loss + bits(context, gained, params)[2]
        loss = loss / (args.batch * (16 * P) ** 2)  # bits per pixel of the non-anchors
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            report(evaluate(model, context, kodak, levels), step, time.time() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
