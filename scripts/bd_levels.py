"""BD-rate of some of a curve's levels against anchors: compares weights whose level sets differ.

    python scripts/bd_levels.py results/baselines/nicodec-meanscale.json --levels 3-8 \\
        --anchors ../shared/anchors/kodak/vtm.json ../shared/anchors/kodak/webp.json

A curve written by `nicodec eval` has one point per quality level (in order). When a training
session adds a level at the top, the BD-rate over the whole curve mixes two effects (better
levels, a wider range); this gives the like-for-like number over the levels both versions share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keep_levels import parse_levels

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate


def curve(path: Path) -> tuple[str, dict]:
    """(name, results) of a CompressAI-layout JSON file."""
    try:
        data = json.loads(path.read_text())
        return data.get("name", path.stem), data["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NicodecError(f"cannot read the curve {path}: {e}") from None


def bd_over_levels(results: dict, anchor: dict, levels: list[int], metric: str = "psnr-rgb") -> float:
    """BD-rate (%) of the given 1-based levels of ``results`` against ``anchor``."""
    n = len(results["bpp"])
    if not levels or min(levels) < 1 or max(levels) > n:
        raise NicodecError(f"levels {levels} are outside the curve's 1-{n}")
    pick = [i - 1 for i in levels]
    return bd_rate(anchor["bpp"], anchor[metric], [results["bpp"][i] for i in pick], [results[metric][i] for i in pick])


def describe(levels: list[int]) -> str:
    """'3-8' for a run of levels, else '1,3,5'."""
    if levels == list(range(levels[0], levels[-1] + 1)) and len(levels) > 1:
        return f"{levels[0]}-{levels[-1]}"
    return ",".join(map(str, levels))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("curve", type=Path, help="our curve (nicodec eval's NAME.json)")
    p.add_argument("--levels", type=parse_levels, required=True, help="e.g. 3-8 or 1,2,3")
    p.add_argument("--anchors", type=Path, nargs="+", required=True)
    args = p.parse_args(argv)
    try:
        name, ours = curve(args.curve)
        for path in args.anchors:
            anchor_name, anchor = curve(path)
            value = bd_over_levels(ours, anchor, args.levels)
            print(f"{name} levels {describe(args.levels)} vs {anchor_name}: BD-rate {value:+.1f} %")
    except NicodecError as e:
        print(f"bd_levels: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
