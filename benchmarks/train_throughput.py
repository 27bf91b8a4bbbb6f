"""Training throughput (Mpix/s of training patches) per architecture and width.

Runs the real training loop (``nicodec.training.train``) for 2·K steps on a few synthetic
images and reports the throughput of the last K steps (the first K warm up: allocator,
cuDNN autotuning, torch.compile). Prints a Markdown table for docs/training.md.

    python benchmarks/train_throughput.py                         # CPU: K=3, batch 8, patch 256
    python benchmarks/train_throughput.py --device cuda --steps 20 # GPU: bf16 autocast by default
    python benchmarks/train_throughput.py --device cuda --models meanscale --widths 128x192 --batch 32 \
        --variants eager,compile,compile:reduce-overhead,compile:max-autotune-no-cudagraphs

A variant is ``eager`` or ``compile[:MODE]`` (``torch.compile`` of the model; ``reduce-overhead``
adds CUDA graphs, ``max-autotune-no-cudagraphs`` searches kernels), optionally with ``+soap``
(the SOAP optimiser instead of Adam). torch.compile's own warm-up falls in the first K steps.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import torch
from PIL import Image, ImageOps

import nicodec
from nicodec.training import TrainConfig, train


def machine() -> str:
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
    else:
        gpu = "no GPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; {gpu}"


def images(folder: Path) -> Path:
    """Four 768×512 photographs made from the bundled sample (content does not change speed)."""
    sample = Image.open(Path(nicodec.__file__).parent / "assets" / "sample.png").convert("RGB").resize((768, 512))
    for i, im in enumerate([sample, ImageOps.mirror(sample), ImageOps.flip(sample), sample.rotate(180)]):
        im.save(folder / f"img{i}.png")
    return folder


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--models", default="factorized,hyperprior,meanscale")
    p.add_argument("--widths", default="64x96,128x192", help="N×M pairs, comma-separated")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=256)
    p.add_argument("--steps", type=int, help="K: timed steps after K warm-up steps (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="the same as --variants compile")
    p.add_argument("--variants", default="eager", help="comma-separated: eager, compile, compile:MODE, each optionally +soap")
    args = p.parse_args()
    variants = ["compile"] if args.compile and args.variants == "eager" else args.variants.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    k = args.steps or (20 if device == "cuda" else 3)
    warnings.simplefilter("ignore")

    print(f"machine: {machine()}")
    print(f"torch {torch.__version__}, python {platform.python_version()}, {date.today()}")
    print(f"command: python {' '.join(sys.argv)}\n")
    print("| model | N | M | batch × patch² | device | precision | variant | s / step | Mpix/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        data = images(Path(tmp) / "data")
        for model, width, variant in [(m, w, v) for m in args.models.split(",") for w in args.widths.split(",") for v in variants]:
            n, m = (int(v) for v in width.lower().split("x"))
            out = Path(tmp) / f"{model}-{n}-{m}-{variant.replace(':', '-').replace('+', '-')}"
            mode, _, optimizer = variant.partition("+")
            kind, _, compile_mode = mode.partition(":")
            if kind not in ("eager", "compile") or optimizer not in ("", "soap"):
                raise SystemExit(f"unknown variant {variant!r}")
            config = TrainConfig(
                data=str(data), model=model, N=n, M=m, batch=args.batch, patch=args.patch, steps=2 * k,
                log_every=k, checkpoint_every=10 * k, out=str(out), device=device, precision=args.precision,
                progress=False, compile=kind == "compile", compile_mode=compile_mode, warmup=1, hold_out=0.0,
                optimizer=optimizer or "adam",
            )
            precision = args.precision if args.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
            row = f"| {model} | {n} | {m} | {args.batch} × {args.patch}² | {device} | {precision} | {variant} |"
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(sys.stderr):  # the loop's log lines; the table stays on stdout
                    train(config)
            except Exception as exc:  # one variant failing (a compile mode on some GPU) must not cost the others
                print(f"{row} failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:120]} | |", flush=True)
                continue
            with (out / "train.csv").open() as f:
                timed = list(csv.DictReader(f))[-1]
            print(f"{row} {float(timed['seconds']) / k:.3f} | {float(timed['mpix_s']):.3f} |", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s including start-up)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
