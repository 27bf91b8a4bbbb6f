"""Ship only some of a weights file's trained rate levels (nicodec.weights.keep_levels).

    python scripts/keep_levels.py nicodec/weights/factorized.safetensors --levels 1-8 -o out.safetensors

The kept levels code exactly as before (same bitstream apart from the header's weights id);
parameters stay in the precision they were stored in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from nicodec.errors import NicodecError
from nicodec.weights import keep_levels, load_weights, save_weights, stored_in_half


def parse_levels(text: str) -> list[int]:
    """'1-8' or '1,3,5' (1-based)."""
    try:
        if "-" in text:
            first, last = (int(v) for v in text.split("-"))
            return list(range(first, last + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected levels like 1-8 or 1,3,5, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path)
    p.add_argument("--levels", type=parse_levels, required=True, help="levels to keep, e.g. 1-8")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        if args.output.resolve() == args.weights.resolve():
            raise NicodecError("the output must not overwrite the input weights")
        model, meta = load_weights(args.weights)
        kept, meta = keep_levels(model, meta, args.levels)
        save_weights(args.output, kept, meta, half=stored_in_half(args.weights))  # fp16 weights stay fp16
    except NicodecError as e:
        print(f"keep_levels: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.weights} -> {args.output}: levels {args.levels} of {model.config.levels}, λ {meta.get('lambdas')}")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
