"""Does storing weights in fp16 cost quality? Codes images with full-precision weights and with the
same weights rounded to fp16 (as `nicodec export --half` stores them) and compares bpp and PSNR.

    python benchmarks/half_precision.py runs/meanscale/checkpoint.pt --data ../shared/data/kodak

Takes a training checkpoint (or run folder) or full-precision weights. The shipped weights are
fp16 only if the mean |ΔPSNR| stays under 0.01 dB at every level (issue: "fp16 where that costs
no RD"). Prints a Markdown table.

    python benchmarks/half_precision.py nicodec/weights/meanscale.safetensors --perturb --data ...

``--perturb`` is for weights that exist only in fp16 (e.g. brought back from a GPU session, where
the fp32 file was too big to travel): it compares them with a copy whose parameters are moved by
up to half an fp16 step (x·(1 + u), |u| ≤ 2⁻¹¹), the size of the error fp16 rounding made, which
bounds what the rounding cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import nicodec
from nicodec.evaluation.runner import find_images, load_image
from nicodec.metrics import psnr
from nicodec.training import export_weights
from nicodec.weights import load_weights, save_weights


def measure(codec: nicodec.Codec, images: list[np.ndarray], quality: float) -> tuple[float, float]:
    bpps, psnrs = [], []
    for rgb in images:
        data = codec.compress(rgb, quality=quality)
        decoded = np.asarray(nicodec.decompress(data, codec).convert("RGB"))
        bpps.append(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]))
        psnrs.append(psnr(rgb, decoded))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="checkpoint, run folder or full-precision .safetensors")
    p.add_argument("--data", type=Path, required=True, help="folder of test images")
    p.add_argument("--max-images", type=int, default=24)
    p.add_argument("--perturb", action="store_true", help="fp16 source: compare with a copy moved by half an fp16 step")
    p.add_argument("--seed", type=int, default=0, help="of the --perturb draw (one draw moves every level together)")
    args = p.parse_args()
    images = [load_image(path) for path in find_images(args.data, args.max_images)]
    with tempfile.TemporaryDirectory() as tmp:
        full, half = Path(tmp) / "full.safetensors", Path(tmp) / "half.safetensors"
        if args.source.suffix == ".safetensors":
            model, meta = load_weights(args.source)
            save_weights(full, model, meta)
        else:
            export_weights(args.source, full)
        model, meta = load_weights(full)
        if args.perturb:  # "half" becomes the perturbed copy, kept in fp32
            generator = torch.Generator().manual_seed(args.seed)
            with torch.no_grad():
                for param in model.parameters():
                    param.mul_(1 + (torch.rand(param.shape, generator=generator) * 2 - 1) * 2**-11)
            save_weights(half, model, meta)
        else:
            save_weights(half, model, meta, half=True)
        a, b = nicodec.load(str(full)), nicodec.load(str(half))
        print(f"{a.name} (N={model.config.N}, M={model.config.M}), {len(images)} images from {args.data}; "
              + (f"weights {full.stat().st_size / 1e6:.2f} MB fp32; fp16 column: perturbed copy\n" if args.perturb else
                 f"weights {full.stat().st_size / 1e6:.2f} MB fp32, {half.stat().st_size / 1e6:.2f} MB fp16\n"))
        print("| quality | bpp fp32 | bpp fp16 | PSNR fp32 [dB] | PSNR fp16 [dB] | ΔPSNR [dB] | Δbpp [%] |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        worst = 0.0
        for level in range(1, a.levels + 1):
            (r32, q32), (r16, q16) = measure(a, images, level), measure(b, images, level)
            worst = max(worst, abs(q16 - q32))
            print(f"| {level} | {r32:.4f} | {r16:.4f} | {q32:.3f} | {q16:.3f} | {q16 - q32:+.4f} | {100 * (r16 / r32 - 1):+.2f} |")
    if args.perturb:
        print("\n(fp16 column: the same weights moved by up to half an fp16 step, as fp16 rounding moves them)")
    print(f"\nlargest |ΔPSNR|: {worst:.4f} dB -> {'fp16 is free' if worst < 0.01 else 'keep fp32'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
