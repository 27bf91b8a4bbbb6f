"""Averages of a training log (a run's train.csv) over a window of steps: the figures
docs/training.md quotes for the shipped models (throughput, loss trend).

    python scripts/train_log_window.py docs/logs/release-2026-11-26/meanscale-train.csv 700 1800

Rows with FIRST <= step <= LAST; prints the mean loss, bpp, PSNR, Mpix/s and steps/s (from the
rows' step spacing and seconds).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", type=Path)
    p.add_argument("first", type=int)
    p.add_argument("last", type=int)
    args = p.parse_args()
    with args.csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if args.first <= int(r["step"]) <= args.last]
    if len(rows) < 2:
        print(f"fewer than two rows between steps {args.first} and {args.last}", file=sys.stderr)
        return 2
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)  # noqa: E731
    steps = int(rows[-1]["step"]) - int(rows[0]["step"])
    seconds = sum(float(r["seconds"]) for r in rows[1:])
    print(f"{args.csv.name} steps {rows[0]['step']}–{rows[-1]['step']} ({len(rows)} rows): loss {mean('loss'):.3f}, "
          f"bpp {mean('bpp'):.3f}, PSNR {mean('psnr'):.2f} dB, {mean('mpix_s'):.1f} Mpix/s, {steps / seconds:.1f} steps/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
