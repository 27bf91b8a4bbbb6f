"""``nicodec train`` and ``nicodec export`` (registered into the main CLI by nicodec/cli.py)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import NicodecError


def register(subparsers) -> None:
    from typing import get_args

    from ..latent_coders import QuantMode
    from ..models import ARCHITECTURES

    QUANT_MODES = get_args(QuantMode)

    p = subparsers.add_parser(
        "train", help="train a model on a folder of images",
        description="Train a variable-rate model: one rate level per λ. Unset options take their "
                    "defaults (see docs/training.md), or, with --resume, the run's saved values.",
    )
    p.add_argument("--data", help="folder of training images (searched recursively)")
    p.add_argument("--model", choices=sorted(ARCHITECTURES), help="architecture (default meanscale)")
    lam = p.add_mutually_exclusive_group()
    lam.add_argument("--lambdas", type=_floats, help="comma-separated λ per rate level (default: those of the --init weights, else CompressAI's six)")
    lam.add_argument("--lambda", dest="lambda_", type=float, metavar="LAMBDA", help="a single λ (a one-level model)")
    p.add_argument("--distortion", choices=["mse", "ms-ssim"], help="distortion term (default mse)")
    p.add_argument("--steps", type=int, help="optimiser steps (default 300000)")
    p.add_argument("--batch", type=int, help="patches per step and process (default 16)")
    p.add_argument("--patch", type=int, help="patch side in pixels (default 256)")
    p.add_argument("--min-scale", type=float, help="random downscaling by s in [MIN_SCALE, 1] before cropping (default 1: off)")
    p.add_argument("--val", help="folder of validation images (real coded bpp at every level)")
    p.add_argument("--out", help="run folder for checkpoint and logs (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--init", help="start from these weights (.safetensors or checkpoint) with a fresh optimiser")
    p.add_argument("--new-levels-only", action="store_true", default=None,
                   help="with --init and --lambdas adding λ values: train only the new levels' gains, all else frozen")
    p.add_argument("--train-only", type=_names, metavar="PARTS",
                   help="with --init: train only these parts (comma-separated top-level modules, e.g. y_gain,y_inverse_gain,y_model)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], help="default: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--N", type=int, help="transform channels (default 128)")
    p.add_argument("--M", type=int, help="latent channels (default 192)")
    p.add_argument("--quant", choices=QUANT_MODES, help="quantisation proxy (default: mixed, noise for factorized)")
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4)")
    p.add_argument("--entropy-lr-ratio", type=float, help="LR multiplier for densities and gains (default 10)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps (default 1000)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 5000)")
    p.add_argument("--val-every", type=int, help="steps between validations (default 5000)")
    p.add_argument("--log-every", type=int, help="steps between log rows (default 50)")
    p.add_argument("--minutes", type=float, metavar="MINUTES",
                   help="size the run in wall-clock minutes (resumes included) instead of steps: it ends, LR decayed, "
                        "when they are spent or at --steps, whichever comes first")
    p.add_argument("--time-limit", type=float, metavar="MINUTES", help="stop cleanly after this many minutes (checkpoint saved; --resume continues)")
    p.add_argument("--stop-at", type=int, help="stop cleanly after this step (checkpoint saved; --resume continues)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (experimental)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("export", help="write release weights (.safetensors) from a training checkpoint")
    p.add_argument("checkpoint", help="checkpoint.pt, or the run folder holding it")
    p.add_argument("-o", "--output", help="weights file (default: RUN/weights.safetensors)")
    p.add_argument("--half", action="store_true", help="store parameters in fp16 (half the size)")
    p.add_argument("--default-quality", type=float, metavar="Q", help="the quality used when none is given "
                   "(default: the upper middle of the range)")
    p.add_argument("--calibration", metavar="FOLDER", help="photos to calibrate the integer hyper-synthesis on "
                   "(hyperprior models; default: the run's training folder)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_export)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one λ")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated part names, e.g. y_gain,y_model")
    return names


def cmd_train(args) -> int:
    from .train import CHECKPOINT, TrainConfig, config_from_checkpoint, load_checkpoint, train

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "func")}
    if "lambda_" in given:
        given["lambdas"] = (given.pop("lambda_"),)
    if args.resume:
        out = Path(given.get("out") or f"runs/{given.get('model', 'meanscale')}")
        ckpt = load_checkpoint(out / CHECKPOINT, lazy=True)  # the config only; NicodecError if missing
        config = config_from_checkpoint(ckpt, **{**given, "out": str(out), "resume": True})
    else:
        if "data" not in given:
            raise NicodecError("--data is required (a folder of training images)")
        config = TrainConfig(**given)
    with warnings.catch_warnings():  # one line each, like the CLI's errors
        warnings.showwarning = lambda message, *_, **__: print(f"nicodec: warning: {message}", file=sys.stderr)
        path = train(config)
    print(f"done: {path}\nexport release weights with: nicodec export {path.parent} -o {config.model}.safetensors")
    return 0


def cmd_export(args) -> int:
    from .train import export_weights

    src = Path(args.checkpoint)
    out = Path(args.output) if args.output else (src if src.is_dir() else src.parent) / "weights.safetensors"
    if out.exists() and not args.force:
        raise NicodecError(f"{out} exists: use --force to overwrite it")
    export_weights(src, out, half=args.half, default_quality=args.default_quality, calibration=args.calibration)
    print(f"{src} -> {out} ({out.stat().st_size / 1e6:.2f} MB{', fp16' if args.half else ''})")
    return 0
