"""How faithful a training pack small enough to carry to a GPU is: JPEG q92 (../shared/data/train-gpu)
against AVIF 4:4:4 at a few qualities, both measured against the PNG originals resized to the pack's
size, per photo: PSNR (RGB) and bytes.

    python benchmarks/training_pack.py --png ../shared/data/train --jpeg ../shared/data/train-gpu \\
        --qualities 80,85,90 --count 60

The pack a GPU trains on is what its models learn to reproduce: JPEG's artefacts at ~40 dB are
below what the top rate levels reach on Kodak (37 dB) but not by much. Needs a Pillow with AVIF
(``PIL.features.check('avif')``; Pillow ≥ 11.3 wheels have it).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image, features

from nicodec.metrics import psnr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", type=Path, required=True)
    p.add_argument("--jpeg", type=Path, required=True)
    p.add_argument("--qualities", default="80,85,90", help="AVIF qualities to try")
    p.add_argument("--count", type=int, default=60, help="the first COUNT photos by name")
    args = p.parse_args()
    if not features.check("avif"):
        raise SystemExit("this Pillow cannot write AVIF")
    qualities = [int(q) for q in args.qualities.split(",")]
    rows = {"jpeg q92 (pack)": ([], [])} | {f"avif q{q} 4:4:4": ([], []) for q in qualities}
    jpegs = sorted(args.jpeg.glob("*.jpg"))[: args.count]
    for jpeg in jpegs:
        with Image.open(jpeg) as packed:
            size = packed.size
            packed_rgb = np.asarray(packed.convert("RGB"))
        with Image.open(args.png / f"{jpeg.stem}.png") as original:
            reference = original.convert("RGB").resize(size, Image.LANCZOS)
        ref = np.asarray(reference)
        rows["jpeg q92 (pack)"][0].append(psnr(ref, packed_rgb))
        rows["jpeg q92 (pack)"][1].append(jpeg.stat().st_size)
        for q in qualities:
            buffer = io.BytesIO()
            reference.save(buffer, "AVIF", quality=q, subsampling="4:4:4")
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            rows[f"avif q{q} 4:4:4"][0].append(psnr(ref, decoded))
            rows[f"avif q{q} 4:4:4"][1].append(len(buffer.getvalue()))
    print(f"{len(jpegs)} photos, against the PNG resized (Lanczos) to the pack's size\n")
    print("| pack | median PSNR [dB] | 10th percentile [dB] | MB for these photos | MB for all 302 (scaled) |")
    print("|---|---:|---:|---:|---:|")
    for name, (psnrs, sizes) in rows.items():
        total = sum(sizes) / 1e6
        print(f"| {name} | {statistics.median(psnrs):.2f} | {np.percentile(psnrs, 10):.2f} | {total:.1f} | "
              f"{total * 302 / len(jpegs):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
