"""Can gain vectors alone widen a trained model's rate range? Train only a new level's gains.

    python benchmarks/extend_levels.py [--model meanscale] [--lam 0.0932] [--side high] [--steps 300]
        [--data .gpu-data/train-gpu] [--kodak ../shared/data/kodak]

Adds one rate level above (``--side high``) or below (``low``) the shipped weights' range, its
gain vectors started one level-step beyond the end (log-linear, as ``variable_rate.remap_levels``)
and trained alone against R + λ·D (λ = ``--lam``; 8 × 256² crops, "mixed" relaxation, Adam 0.01)
with everything else frozen. Then codes six Kodak images through real files at the old end level,
halfway, and the new level, and prints bpp and PSNR: whether the frozen transforms can use the
new level. A scratch experiment for planning training (docs/training.md, "Range"), not a recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nicodec.codec import Codec
from nicodec.objective import rd_loss
from nicodec.training.data import PatchSampler, load_images
from nicodec.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
KODAK_IMAGES = (1, 4, 7, 9, 13, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="meanscale")
    parser.add_argument("--lam", type=float, default=0.0932)
    parser.add_argument("--side", choices=("high", "low"), default="high")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data", default=str(ROOT / ".gpu-data" / "train-gpu"))
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    args = parser.parse_args()
    path = ROOT / "nicodec" / "weights" / f"{args.model}.safetensors"
    model, _ = load_weights(path)
    model.float().requires_grad_(False)
    gains = [m for m in (model.y_gain, model.y_inverse_gain, getattr(model, "z_gain", None)) if m is not None]
    levels = model.config.levels
    new = []
    for module in gains:  # one level-step beyond the end, in log-gain
        table = module.log_gain.data
        start = table[-1] + (table[-1] - table[-2]) if args.side == "high" else table[0] - (table[1] - table[0])
        new.append(torch.nn.Parameter(start.clone()))
        module.forward = lambda q, p=new[-1]: torch.exp(p)[None, :, None, None].expand(len(q), -1, 1, 1)
    optimizer = torch.optim.Adam(new, lr=0.01)
    sampler = PatchSampler(load_images(args.data, min_side=256), 256, 8, torch.device("cpu"), seed=1)
    for step in range(args.steps):
        x = sampler.next_batch()
        loss, stats = rd_loss(x, model(x, 1.0, mode="mixed"), torch.full((8,), args.lam), "mse")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: loss {float(loss.detach()):.3f}, bpp {float(stats['bpp']):.3f}", flush=True)

    extended, _ = load_weights(path)  # the shipped model plus the trained level
    for module, p in zip([m for m in (extended.y_gain, extended.y_inverse_gain, getattr(extended, "z_gain", None)) if m is not None], new):
        table = module.log_gain.data
        module.log_gain = torch.nn.Parameter(torch.cat([table, p.data[None]] if args.side == "high" else [p.data[None], table]))
        module.levels = levels + 1
    extended.config = dataclasses.replace(extended.config, levels=levels + 1)
    codec = Codec(extended.float(), {})
    qualities = [levels, levels + 0.5, levels + 1] if args.side == "high" else [1, 1.5, 2]
    for q in qualities:
        rates, psnrs = [], []
        for i in KODAK_IMAGES:
            image = Image.open(Path(args.kodak) / f"kodim{i:02d}.png").convert("RGB")
            data = codec.compress(image, q)
            error = np.asarray(codec.decompress(data), np.float64) - np.asarray(image, np.float64)
            rates.append(len(data) * 8 / (image.width * image.height))
            psnrs.append(10 * math.log10(255**2 / np.mean(error**2)))
        label = "new level" if q in (1, levels + 1) else ("halfway" if q % 1 else "old end level")
        print(f"quality {q:g} ({label}): {np.mean(rates):.3f} bpp, {np.mean(psnrs):.2f} dB (Kodak {KODAK_IMAGES})")


if __name__ == "__main__":
    main()
