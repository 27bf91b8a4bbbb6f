"""Which quantisation proxy should training default to? Trains the same small model with each
``--quant`` mode (same seed, data and steps) and compares the REAL rate–distortion curves that
validation measures through the entropy coder (BD-rate against ``noise``, 6 levels).

    python benchmarks/quant_modes.py --data ../shared/data/train --val VAL_DIR   # ~25 min, 1 core
    python benchmarks/quant_modes.py --data ... --val ... --model factorized

Prints a Markdown table for docs/training.md. Short runs on a small model: a hint that agrees
(or not) with the literature, not a final verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import platform
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import torch

from nicodec.evaluation.bdrate import bd_psnr, bd_rate
from nicodec.training import TrainConfig, train


def last_validation(run: Path) -> tuple[list[float], list[float]]:
    """Real bpp and PSNR per level from the run's final validation."""
    with (run / "val.csv").open() as f:
        rows = list(csv.DictReader(f))
    final = [r for r in rows if r["step"] == rows[-1]["step"]]
    return [float(r["bpp_real"]) for r in final], [float(r["psnr"]) for r in final]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="training images")
    p.add_argument("--val", required=True, help="validation images (real coded bpp)")
    p.add_argument("--model", default="meanscale")
    p.add_argument("--modes", default="noise,ste,mixed")
    p.add_argument("--N", type=int, default=48)
    p.add_argument("--M", type=int, default=96)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    warnings.simplefilter("ignore")

    print(f"{args.model} N={args.N} M={args.M}, {args.steps} steps of {args.batch} × {args.patch}², lr {args.lr}, "
          f"seed {args.seed}; validation on {len(list(Path(args.val).iterdir()))} images; "
          f"torch {torch.__version__}, python {platform.python_version()}, {date.today()}")
    print(f"command: python {' '.join(sys.argv)}\n")
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            out = Path(tmp) / mode
            config = TrainConfig(
                data=args.data, val=args.val, model=args.model, N=args.N, M=args.M, quant=mode, steps=args.steps,
                batch=args.batch, patch=args.patch, lr=args.lr, warmup=min(500, args.steps // 10), seed=args.seed,
                out=str(out), val_every=args.steps, checkpoint_every=args.steps, log_every=100,
                threads=args.threads, progress=False, device="cpu",
            )
            start = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                train(config)
            curves[mode] = last_validation(out)
            print(f"  {mode}: {time.perf_counter() - start:.0f} s", file=sys.stderr)

    reference = args.modes.split(",")[0]
    print(f"| --quant | real bpp per level | PSNR per level [dB] | BD-rate vs {reference} | BD-PSNR vs {reference} |")
    print("|---|---|---|---|---|")
    for mode, (bpp, psnr) in curves.items():
        ref = curves[reference]
        rate = f"{bd_rate(*ref, bpp, psnr):+.1f} %" if mode != reference else "—"
        gain = f"{bd_psnr(*ref, bpp, psnr):+.2f} dB" if mode != reference else "—"
        print(f"| {mode} | {' '.join(f'{v:.3f}' for v in bpp)} | {' '.join(f'{v:.2f}' for v in psnr)} | {rate} | {gain} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
