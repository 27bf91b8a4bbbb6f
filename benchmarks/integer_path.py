"""What the deterministic coding path (.nic version 3) costs against the float64 path it replaced.

    python benchmarks/integer_path.py --data ../shared/data/kodak [--models meanscale,hyperprior,factorized]

For each model, every image is coded at every rate level twice, through real files: with the
newest release on the deterministic path (exact tables, integer hyper-synthesis: container
version 3) and with release 1 on the float64 path (versions 1 and 2). Prints, per model, the
BD-rate of the new path against the old one (PSNR-RGB, bpp from file bytes; negative is better),
the mean change of bytes and PSNR per level, and the seconds per encode and decode of each.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import numpy as np
import torch

import nicodec
from nicodec.evaluation.bdrate import bd_rate
from nicodec.images import open_image
from nicodec.metrics import psnr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder of images (e.g. Kodak)")
    p.add_argument("--models", default="meanscale,hyperprior,factorized")
    p.add_argument("--max-images", type=int)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(args.data.glob("*.png"))[: args.max_images]
    images = [open_image(path).convert("RGB") for path in paths]
    print(f"{len(images)} images from {args.data}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} threads")
    for name in args.models.split(","):
        new, old = nicodec.load(name), copy.copy(nicodec.load(f"{name}-r1"))  # (load's codecs are shared)
        old.version = 1  # release 1's coding path, as nicodec 0.1.0 wrote it
        levels = [float(q) for q in range(1, new.levels + 1)]
        rows = {"new": [], "old": []}
        seconds = {"new": [0.0, 0.0], "old": [0.0, 0.0]}
        for image in images:
            pixels = image.width * image.height
            reference = np.asarray(image)
            for which, codec in (("new", new), ("old", old)):
                for q in levels:
                    start = time.perf_counter()
                    data = codec.compress(image, quality=q)
                    middle = time.perf_counter()
                    decoded = codec.decompress(data)
                    seconds[which][0] += middle - start
                    seconds[which][1] += time.perf_counter() - middle
                    assert data[4] == (3 if which == "new" else 1)
                    rows[which].append((q, len(data) * 8 / pixels, psnr(reference, np.asarray(decoded))))
        curves = {}
        for which, values in rows.items():
            table = np.array(values)
            curves[which] = [(table[table[:, 0] == q, 1].mean(), table[table[:, 0] == q, 2].mean()) for q in levels]
        new_curve, old_curve = np.array(curves["new"]), np.array(curves["old"])
        bd = bd_rate(old_curve[:, 0], old_curve[:, 1], new_curve[:, 0], new_curve[:, 1])
        count = len(images) * len(levels)
        print(f"{name}: BD-rate of version 3 against the float64 path {bd:+.3f} %; per level: "
              f"bytes {100 * (new_curve[:, 0] / old_curve[:, 0] - 1).mean():+.3f} % "
              f"(range {100 * (new_curve[:, 0] / old_curve[:, 0] - 1).min():+.3f} … {100 * (new_curve[:, 0] / old_curve[:, 0] - 1).max():+.3f}), "
              f"PSNR {(new_curve[:, 1] - old_curve[:, 1]).mean():+.4f} dB; encode/decode s per file: "
              f"new {seconds['new'][0] / count:.3f}/{seconds['new'][1] / count:.3f}, "
              f"old {seconds['old'][0] / count:.3f}/{seconds['old'][1] / count:.3f}", flush=True)


if __name__ == "__main__":
    main()
