"""Can gain vectors alone widen a trained model's rate range? Train only a new level's gains.

    python benchmarks/extend_levels.py [--model meanscale] [--lam LAMBDA] [--side high] [--steps 300]
        [--data .gpu-data/train-gpu] [--kodak ../shared/data/kodak]

Adds one rate level above (``--side high``) or below (``low``) the shipped weights' range and
trains only its gain vectors against R + λ·D, everything else frozen: ``nicodec train
--new-levels-only`` (the new level starts log-linearly extrapolated from the end levels,
``variable_rate.remap_levels``; 8 × 256² crops, the model's training relaxation, gains at
LR 0.01 after a 20-step warm-up), the same recipe that added the low levels (docs/training.md).
Then codes six Kodak images through real files at the old end level, halfway and the new level,
and prints bpp and PSNR: whether the frozen transforms can use the new level. λ defaults to one
level-step beyond the end (the end λ times the ratio of the last two). A scratch experiment for
planning training (docs/training.md, "Range"), not a recipe.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import nicodec
from nicodec.training import TrainConfig, export_weights, train
from nicodec.weights import read_metadata

ROOT = Path(__file__).resolve().parents[1]
KODAK_IMAGES = (1, 4, 7, 9, 13, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="meanscale")
    parser.add_argument("--lam", type=float, help="λ of the new level (default: one level-step beyond the end)")
    parser.add_argument("--side", choices=("high", "low"), default="high")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data", default=str(ROOT / ".gpu-data" / "train-gpu"))
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    args = parser.parse_args()
    path = ROOT / "nicodec" / "weights" / f"{args.model}.safetensors"
    meta = read_metadata(path)
    old = [float(v) for v in meta["lambdas"]]
    high = args.side == "high"
    lam = args.lam or (old[-1] ** 2 / old[-2] if high else old[0] ** 2 / old[1])
    lambdas = (*old, lam) if high else (lam, *old)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        config = TrainConfig(
            data=args.data, model=meta["architecture"], N=meta["config"]["N"], M=meta["config"]["M"], lambdas=lambdas,
            init=str(path), new_levels_only=True, steps=args.steps, batch=8, patch=256, lr=1e-3, warmup=20,
            log_every=50, checkpoint_every=args.steps, out=str(run), device="cpu", progress=False,
        )
        export_weights(train(config), Path(tmp) / "extended.safetensors")
        codec = nicodec.load(str(Path(tmp) / "extended.safetensors"))
    levels = len(old)
    qualities = [levels, levels + 0.5, levels + 1] if high else [1, 1.5, 2]
    print(f"{args.model}: a new level at λ {lam:.4g} ({args.side}), {args.steps} steps of its gains alone")
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
