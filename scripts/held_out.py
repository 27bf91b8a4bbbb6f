"""Copy the held-out photos of a training folder into a folder of their own, to evaluate on.

    python scripts/held_out.py ../shared/data/train results/held-out
    nicodec eval --data results/held-out --codec nicodec:meanscale --out results/held-out-eval \\
        --anchors results/kodak/nicodec-meanscale.json --anchor nicodec-meanscale

The held-out photos are the ones training leaves out (``nicodec train --hold-out``, default 8 %:
24 of the 302; nicodec/training/holdout.py). ``--crop S`` writes their central S×S regions
instead (each side at most the photo's, cut to a multiple of 16), for quick validation during
training (``nicodec train --val``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

from nicodec.training.data import list_files
from nicodec.training.holdout import HOLD_OUT, split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="the training folder")
    p.add_argument("out", type=Path, help="folder to write (created; existing files of the same names are replaced)")
    p.add_argument("--fraction", type=float, default=HOLD_OUT, help=f"held-out fraction (default {HOLD_OUT})")
    p.add_argument("--crop", type=int, help="write the central CROP×CROP region of each photo")
    p.add_argument("--count", type=int, help="only the first COUNT held-out photos (sorted by name)")
    args = p.parse_args(argv)
    held = split(list_files(args.data), args.fraction)[1][: args.count]
    args.out.mkdir(parents=True, exist_ok=True)
    for path in held:
        if args.crop:
            with Image.open(path) as image:
                image = image.convert("RGB")
                w, h = (min(args.crop, s) // 16 * 16 for s in image.size)
                left, top = (image.width - w) // 2, (image.height - h) // 2
                image.crop((left, top, left + w, top + h)).save(args.out / f"{path.stem}.png")
        else:
            shutil.copyfile(path, args.out / path.name)
    print(f"{len(held)} held-out photos -> {args.out}: {' '.join(p.stem for p in held)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
