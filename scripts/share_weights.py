"""Store a weights file's transforms once: rewrite it to borrow every tensor another file holds.

    python scripts/share_weights.py nicodec/weights/factorized.safetensors --lender nicodec/weights/meanscale.safetensors
    python scripts/share_weights.py nicodec/weights/factorized.safetensors --standalone -o factorized-full.safetensors

The shipped factorized and hyperprior models reuse meanscale's g_a and g_s (each has rate gains
of its own; docs/training.md), so the package stores them once (nicodec/weights.py, "borrow"). The model is
the same: same tensors, same weights id, same files. ``--standalone`` writes a self-contained copy
(e.g. to use the weights outside the package). Run it again whenever the lender changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nicodec.errors import NicodecError
from nicodec.weights import load_weights, save_weights, stored_in_half, weights_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--lender", type=Path, help="the weights file (same folder) to borrow tensors from")
    what.add_argument("--standalone", action="store_true", help="write a self-contained file")
    p.add_argument("-o", "--output", type=Path, help="default: rewrite WEIGHTS in place (atomically)")
    args = p.parse_args(argv)
    out = args.output or args.weights
    try:
        model, meta = load_weights(args.weights)
        half = stored_in_half(args.weights)  # keep fp16 weights fp16
        trial = out.with_name(f".{out.name}.trial")  # checked before it replaces anything
        try:
            save_weights(trial, model, meta, half=half, lender=args.lender)
            if weights_id(load_weights(trial)[0]) != weights_id(model):
                raise NicodecError(f"{out} would not reload as the same model")  # e.g. fp32 weights written as fp16
            os.replace(trial, out)
        finally:
            trial.unlink(missing_ok=True)
    except NicodecError as e:
        print(f"share_weights: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.weights} -> {out}: {out.stat().st_size / 1e6:.2f} MB, weights id {weights_id(model).hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
