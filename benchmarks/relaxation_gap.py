"""Does a trained decoder suffer from being fed rounded latents instead of noisy ones?

    python benchmarks/relaxation_gap.py [--models factorized,meanscale] [--data ../shared/data/kodak]
        [--max-images 4]

For each shipped model and level, the PSNR of the synthesis fed (a) the latents plus U(−½, ½)
noise, the "noise" relaxation of training, and (b) the hard-rounded latents that coding realises
(what a file decodes to, before 8-bit rounding). A decoder trained with "noise" that does much
worse on (b) than on (a) leaves quality on the table that fine-tuning the synthesis on rounded
latents would recover; one trained with "mixed" has only seen (b). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import nicodec
from nicodec.evaluation.runner import find_images, load_image

ROOT = Path(__file__).resolve().parents[1]


def psnr_8bit(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR of x_hat (clamped, rounded to 8 bits) against x, both (1, 3, H, W) in [0, 1]."""
    error = (x_hat.clamp(0, 1) * 255).round() - x * 255
    return 10 * math.log10(255**2 / float(error.square().mean()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="factorized,meanscale")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    p.add_argument("--max-images", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="of the noise draw")
    args = p.parse_args()
    paths = find_images(args.data, args.max_images)
    print(f"{len(paths)} images from {args.data}; PSNR [dB] of the synthesis fed noisy / rounded latents\n")
    print("| model (trained with) | level | noisy y + u | rounded y | rounded − noisy |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models.split(","):
        codec = nicodec.load(name)
        model, stride = codec.model, codec.model.stride
        images = []
        for path in paths:
            rgb = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).float().div(255)[None]
            h, w = rgb.shape[2] // stride * stride, rgb.shape[3] // stride * stride
            images.append(rgb[..., :h, :w])
        quant = codec.metadata.get("quant", "?")
        torch.manual_seed(args.seed)
        for level in range(1, codec.levels + 1):
            with torch.no_grad():
                noisy = sum(psnr_8bit(model(x, float(level), mode="noise").x_hat, x) for x in images) / len(images)
                rounded = sum(psnr_8bit(model.estimate(x, float(level)).x_hat, x) for x in images) / len(images)
            print(f"| {name} ({quant}) | {level} | {noisy:.2f} | {rounded:.2f} | {rounded - noisy:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
