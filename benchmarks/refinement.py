"""How far does latent refinement lower R + λ·D for a given relaxation, step count and step size?

    python benchmarks/refinement.py [--model meanscale] [--relaxation sga,mixed] [--steps 20,50,100] [--lr 0.004,0.01]
        [--temperature 0.5:0.15,0.5:0.05]

For each (relaxation, steps, lr): refines 256×256 crops of three Kodak images (kodim01, 15, 23; the bundled
sample when ../shared is missing) at qualities 1, 3.5 and 6, and reports the mean relative
reduction of the hard-rounded loss (the model's estimate of what coding realises) — how
`RefineConfig`'s defaults were chosen. The real-file effect on Kodak, and time:
scripts/kodak_refine.sh.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nicodec
from nicodec.refinement import RELAXATIONS, RefineConfig, refine
from nicodec.variable_rate import quality_lambda

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
CROPS = {"kodim01": (256, 128), "kodim15": (256, 0), "kodim23": (256, 128)}  # name: (left, top)
QUALITIES = (1.0, 3.5, 6.0)


def crops() -> list[torch.Tensor]:
    if KODAK.is_dir():
        boxes = [(Image.open(KODAK / f"{name}.png"), (x, y)) for name, (x, y) in CROPS.items()]
    else:
        boxes = [(nicodec.sample_image(), (x, 128)) for x in (0, 256, 512)]
    out = []
    for image, (x, y) in boxes:
        rgb = np.asarray(image.convert("RGB").crop((x, y, x + 256, y + 256))).copy()
        out.append(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="meanscale")
    p.add_argument("--relaxation", default="sga", help=f"comma-separated, of: {', '.join(RELAXATIONS)}")
    p.add_argument("--steps", default="20,50,100", help="comma-separated step counts")
    p.add_argument("--lr", default="0.005,0.01,0.02", help="comma-separated Adam step sizes")
    p.add_argument("--temperature", default="0.5:0.15", help="comma-separated START:END of SGA's annealing")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    codec = nicodec.load(args.model)
    images = crops()
    print(f"{args.model}, {len(images)} crops of 256², torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("\n| relaxation | steps | lr | loss reduction, mean | at q " + " | at q ".join(f"{q:g}" for q in QUALITIES) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(QUALITIES))
    temperatures = [tuple(float(t) for t in pair.split(":")) for pair in args.temperature.split(",")]
    grid = [
        RefineConfig(steps=int(s), lr=float(lr), relaxation=r, temperature=t)
        for r in args.relaxation.split(",") for s in args.steps.split(",") for lr in args.lr.split(",")
        for t in (temperatures if r == "sga" else temperatures[:1])
    ]
    for config in grid:
        relaxation = config.relaxation + (f" τ {config.temperature[0]:g}→{config.temperature[1]:g}" if config.relaxation == "sga" else "")
        steps, lr = config.steps, config.lr
        per_q = []
        for q in QUALITIES:
            lam = quality_lambda(codec.metadata["lambdas"], q)
            cuts = [1 - r.loss_after / r.loss_before for r in (refine(codec.model, x, q, lam, config=config) for x in images)]
            per_q.append(100 * float(np.mean(cuts)))
        cells = " | ".join(f"{v:.2f} %" for v in per_q)
        print(f"| {relaxation} | {steps} | {lr:g} | {np.mean(per_q):.2f} % | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
