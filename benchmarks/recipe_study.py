"""The recipe study: which training changes reach a given rate–distortion sooner, at small scale on a CPU.

Each arm is a short `nicodec train` run of a small meanscale model from scratch with the same data,
seed(s), steps and validation: real bpp and PSNR of `.nic` files of held-out photos (never trained
on: nicodec/training/holdout.py) every ``--val-every`` steps, of the last weights and of their
moving average (every arm keeps one, which does not change its training). Then, per arm and
validation step, the BD-PSNR (and BD-rate where the PSNR ranges overlap) against the baseline
arm's final curve (same seed), and the first step at which it reaches that curve (BD-PSNR ≥ 0,
interpolated between validations).

    python scripts/held_out.py ../shared/data/train results/held-out-192 --crop 192
    S="--data ../shared/data/train --val results/held-out-192 --out runs/recipe --N 32 --M 32 --steps 2000 --val-every 250"
    python benchmarks/recipe_study.py $S --arms adam                           # the baseline, all its steps
    python benchmarks/recipe_study.py $S --arms soap,adam-lr10 --stop-at 1200   # others: to 60 % (same schedule)
    python benchmarks/recipe_study.py $S --report-only                         # tables from the runs already there

Arms listed in one call run one after another; separate calls may run side by side (each arm has
its own folder). The numbers of 2026-12-01 are in docs/training.md.
Resumable: an arm whose run has finished is not run again; an interrupted one is continued.
Prints Markdown tables (docs/training.md, "The recipe: a CPU study") and writes ``study.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate
from nicodec.training import TrainConfig, train
from nicodec.training.train import load_checkpoint

# name → TrainConfig fields that differ from the baseline ("adam"); every arm keeps an EMA to validate
ARMS = {
    "adam": {},
    "adam-lr3": {"lr": 6e-4},  # three times the baseline's LR
    "adam-lr10": {"lr": 2e-3},  # SOAP's LR: is SOAP's lead its optimiser or its LR?
    "soap": {"optimizer": "soap", "lr": 2e-3},  # SOAP needs ~10× Adam's LR here (docs/training.md)
    "downscale": {"min_scale": 0.5},
    "jpeg-pack": {"data": "PACK"},  # the JPEG q92 pack a GPU trains on (--pack) instead of the PNGs
}
BASELINE = "adam"


def arm_config(arm: str, seed: int, args) -> TrainConfig:
    base = dict(data=args.data, model="meanscale", lambdas=tuple(float(v) for v in args.lambdas.split(",")), N=args.N, M=args.M, patch=args.patch, batch=args.batch,
                steps=args.steps, lr=2e-4, warmup=args.steps // 12, val=args.val, val_every=args.val_every,
                checkpoint_every=args.val_every, log_every=50, threads=1, progress=False, device="cpu",
                ema=args.ema, seed=seed, out=str(Path(args.out) / f"{arm}-s{seed}"))
    changes = {k: (args.pack if v == "PACK" else v) for k, v in ARMS[arm].items()}
    if arm != BASELINE:  # the same schedule as the baseline's, cut at --stop-at
        changes["stop_at"] = args.stop_at
    return TrainConfig(**{**base, **changes})


def run(config: TrainConfig) -> float:
    """Train (or finish) one arm; returns its wall-clock minutes of training steps (train.csv)."""
    out = Path(config.out)
    checkpoint = out / "checkpoint.pt"
    done = checkpoint.exists() and load_checkpoint(checkpoint, lazy=True)["step"] >= (config.stop_at or config.steps)
    if not done:
        resume = checkpoint.exists()
        if not resume and out.exists():
            shutil.rmtree(out)  # a start that did not get to its first checkpoint
        with contextlib.redirect_stdout(sys.stderr):
            train(TrainConfig(**{**config.__dict__, "resume": resume}))
    return run_minutes(out)


def run_minutes(out: Path) -> float:
    """Wall-clock minutes of a run's training steps (its train.csv; validation not counted)."""
    with (out / "train.csv").open() as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def curves(out: Path) -> dict[tuple[int, str], dict[str, list[float]]]:
    """(step, weights) → the validation curve: lambda, bpp and PSNR per level."""
    found: dict = defaultdict(lambda: defaultdict(list))
    with (out / "val.csv").open() as f:
        for row in csv.DictReader(f):
            key = (int(row["step"]), row.get("weights") or "last")
            for name in ("lambda", "bpp_real", "psnr"):
                found[key][name].append(float(row[name]))
    return found


def rd_cost(curve: dict[str, list[float]]) -> float:
    """Mean over levels of the real R + λ·255²·MSE (MSE over [0, 1], from the PSNR)."""
    return sum(b + lam * 255**2 * 10 ** (-p / 10) for lam, b, p in zip(curve["lambda"], curve["bpp_real"], curve["psnr"])) / len(curve["psnr"])


def bd(anchor: dict[str, list[float]], curve: dict[str, list[float]]) -> float:
    """BD-rate (%) of ``curve`` against ``anchor``: the mean log-rate gap over the PSNR range both
    cover, each curve linear in (PSNR, log bpp) between its levels (the piecewise Bjøntegaard
    delta, which also works with three levels); nan where the two share no PSNR range."""
    if len(anchor["psnr"]) >= 4 and len(curve["psnr"]) >= 4:
        try:
            return bd_rate(anchor["bpp_real"], anchor["psnr"], curve["bpp_real"], curve["psnr"], piecewise=True)
        except (NicodecError, ValueError, FloatingPointError):
            return math.nan
    a, b = (sorted(zip(c["psnr"], c["bpp_real"])) for c in (anchor, curve))
    low, high = max(a[0][0], b[0][0]), min(a[-1][0], b[-1][0])
    if high <= low or any(p1 <= p0 for (p0, _), (p1, _) in [*zip(a, a[1:]), *zip(b, b[1:])]):
        return math.nan
    grid = np.linspace(low, high, 201)
    gap = [np.interp(grid, [p for p, _ in c], [math.log(r) for _, r in c]) for c in (b, a)]
    return float((math.exp(float(np.mean(gap[0] - gap[1]))) - 1) * 100)


def bd_psnr(anchor: dict[str, list[float]], curve: dict[str, list[float]]) -> float:
    """Mean PSNR gap (dB) of ``curve`` over ``anchor`` over the log-rate range both cover, each linear
    in (log bpp, PSNR) between its levels; nan where they share no rate range. Early in training a
    curve may lie wholly below the anchor's PSNR range (no BD-rate) while their rates overlap."""
    a, b = (sorted((math.log(r), p) for r, p in zip(c["bpp_real"], c["psnr"])) for c in (anchor, curve))
    low, high = max(a[0][0], b[0][0]), min(a[-1][0], b[-1][0])
    if high <= low:
        return math.nan
    grid = np.linspace(low, high, 201)
    gap = [np.interp(grid, [r for r, _ in c], [p for _, p in c]) for c in (b, a)]
    return float(np.mean(gap[0] - gap[1]))


def reached(points: list[tuple[int, float]]) -> float:
    """First step at which BD-rate ≤ 0, linear between validation steps (nan if never)."""
    for (s0, b0), (s1, b1) in zip([(0, math.inf), *points], points):
        if b1 <= 0:
            return s1 if not math.isfinite(b0) or b0 <= 0 else s0 + (s1 - s0) * b0 / (b0 - b1)
    return math.nan


def report(args, minutes: dict) -> None:
    """The table over every (arm, seed) run in ``minutes`` whose seed has a baseline run."""
    rows = []
    print(f"\nReal bpp and PSNR on {Path(args.val).name} against the final curve of `{BASELINE}` with the same seed: "
          f"BD-PSNR (BD-rate where the PSNR ranges overlap); reached: the first step with BD-PSNR ≥ 0 (linear between "
          f"validations); J = mean over levels of real bpp + λ·255²·MSE\n")
    print("| arm | seed | weights | min / 100 steps | " + " | ".join(f"step {s}" for s in _steps(args)) + " | reaches baseline at | J at its last step |")
    print("|---|---|---|---|" + "---|" * len(_steps(args)) + "---|---|")
    for arm, seed in sorted(minutes, key=lambda k: (k[1], k[0] != BASELINE, k[0])):
        anchor = curves(Path(args.out) / f"{BASELINE}-s{seed}").get((args.steps, "last")) if (BASELINE, seed) in minutes else None
        if anchor is None:
            continue  # no finished baseline with this seed
        found = curves(Path(args.out) / f"{arm}-s{seed}")
        for weights in ("last", "ema"):
            points = [(s, bd(anchor, found[(s, weights)]), bd_psnr(anchor, found[(s, weights)]))
                      for s in _steps(args) if (s, weights) in found]
            if not points:
                continue
            last = points[-1][0]
            step, by_step = reached([(s, -db) for s, _, db in points]), {s: (b, db) for s, b, db in points}
            cells = " | ".join(_cell(*by_step.get(s, (math.nan, math.nan))) for s in _steps(args))
            pace = minutes[(arm, seed)] / last * 100
            print(f"| {arm} | {seed} | {weights} | {pace:.2f} | {cells} | "
                  f"{f'{step:.0f} ({step / args.steps:.0%})' if math.isfinite(step) else 'no'} | "
                  f"{rd_cost(found[(last, weights)]):.3f} (step {last}) |")
            rows += [{"arm": arm, "seed": seed, "weights": weights, "step": s, "bd_rate": b, "bd_psnr": db,
                      "J": rd_cost(found[(s, weights)])} for s, b, db in points]
    with (Path(args.out) / "study.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["arm", "seed", "weights", "step", "bd_rate", "bd_psnr", "J"])
        writer.writeheader()
        writer.writerows(rows)


def _cell(rate: float, psnr: float) -> str:
    """BD-PSNR, and BD-rate where the PSNR ranges overlap."""
    if not math.isfinite(psnr):
        return "—"
    return f"{psnr:+.2f} dB" + (f" ({rate:+.0f} %)" if math.isfinite(rate) else "")


def _steps(args) -> list[int]:
    return list(range(args.val_every, args.steps + 1, args.val_every))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="training photos (their held-out ones are left out)")
    p.add_argument("--val", required=True, help="validation images: held-out photos (scripts/held_out.py)")
    p.add_argument("--pack", default="../shared/data/train-gpu", help="the JPEG pack for the jpeg-pack arm")
    p.add_argument("--out", default="runs/recipe")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--lambdas", default="0.0035,0.013,0.0483", help="the rate levels' λ (CompressAI's 2nd, 4th, 6th)")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--M", type=int, default=96)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--stop-at", type=int, default=0,
                   help="arms other than the baseline stop here (their schedule still that of --steps): enough to "
                        "tell whether they reach the baseline's final curve within this many steps")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    arms, seeds = args.arms.split(","), [int(s) for s in args.seeds.split(",")]
    if unknown := set(arms) - set(ARMS):
        raise SystemExit(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    if not args.report_only:
        for seed in seeds:
            for arm in sorted(arms, key=lambda a: a != BASELINE):  # the baseline first (or in another process)
                start = time.time()
                spent = run(arm_config(arm, seed, args))
                print(f"{arm} seed {seed}: {spent:.1f} min of steps ({(time.time() - start) / 60:.1f} min now)", file=sys.stderr)
    minutes = {}
    for folder in sorted(Path(args.out).glob("*-s*")):
        arm, _, seed = folder.name.rpartition("-s")
        if arm in ARMS and (folder / "val.csv").exists() and curves(folder):
            minutes[(arm, int(seed))] = run_minutes(folder)
    report(args, minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
