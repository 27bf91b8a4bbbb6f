"""How closely rate control (``Codec.compress(max_bytes=...)``, CLI ``--bpp``) meets its budget.

    python benchmarks/rate_control.py [--data ../shared/data/kodak] [--bpp 0.25,0.5,0.75] [--model meanscale]

For every image and target: the file's bpp (never above the target by construction), how much
of the budget it uses, the quality chosen and the time, against one fixed-quality encode. Images
whose smallest file (quality 1) is over a target are counted, not coded.
Prints a Markdown table (means over the images; "worst use" is the smallest budget fraction).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import nicodec
from nicodec import container
from nicodec.errors import NicodecError
from nicodec.images import open_image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--bpp", default="0.25,0.5,0.75,1")
    parser.add_argument("--model", default="meanscale")
    args = parser.parse_args()
    codec = nicodec.load(args.model)
    images = [open_image(p) for p in sorted(Path(args.data).glob("*.png"))] or [nicodec.sample_image()]
    start = time.perf_counter()
    for image in images:
        codec.compress(image)
    fixed = (time.perf_counter() - start) / len(images)
    print(f"# {args.model}, {len(images)} images from {args.data}; {platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print(f"# one fixed-quality encode: {fixed:.2f} s per image\n")
    print("| target bpp | images that fit | mean bpp | mean budget use | worst use | qualities chosen | s per image |")
    print("|---|---|---|---|---|---|---|")
    for target in (float(t) for t in args.bpp.split(",")):
        uses, rates, qualities, seconds = [], [], [], []
        for image in images:
            pixels = image.width * image.height
            budget = int(target * pixels / 8)
            start = time.perf_counter()
            try:
                data = codec.compress(image, max_bytes=budget)
            except NicodecError:  # even quality 1 is over the budget
                continue
            seconds.append(time.perf_counter() - start)
            assert len(data) <= budget
            uses.append(len(data) / budget)
            rates.append(len(data) * 8 / pixels)
            qualities.append(container.unpack(data).quality)
        if not rates:
            print(f"| {target:g} | 0 of {len(images)} | | | | | |")
            continue
        print(f"| {target:g} | {len(rates)} of {len(images)} | {statistics.mean(rates):.4f} | {100 * statistics.mean(uses):.2f} % | "
              f"{100 * min(uses):.2f} % | {min(qualities):.2f}–{max(qualities):.2f} | {statistics.mean(seconds):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
