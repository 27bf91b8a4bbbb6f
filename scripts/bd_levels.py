"""BD-rate of some of a curve's levels against anchors: compares weights whose level sets differ.

    python scripts/bd_levels.py results/baselines/nicodec-meanscale.json --levels 3-8 \\
        --anchors ../shared/anchors/kodak/vtm.json ../shared/anchors/kodak/webp.json

A curve written by `nicodec eval` records the quality of each point; only the points at the given
levels enter. When a training session adds a level at the top, the BD-rate over the whole curve
mixes two effects (better levels, a wider range); this gives the like-for-like number over the
levels both versions share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keep_levels import parse_levels

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate, quality_gaps
from nicodec.evaluation.results import Curve, load_curve, load_curves


def bd_over_levels(ours: Curve, anchor: Curve, levels: list[int], metric: str = "psnr") -> float:
    """BD-rate (%) of the points of ``ours`` at the given qualities against ``anchor``, in PSNR or
    in MS-SSIM (dB, −10·log₁₀(1 − MS-SSIM))."""
    pick = _picked(ours, levels)
    theirs, mine = _quality(anchor, metric), _quality(ours, metric)
    return bd_rate(anchor.bpp, theirs, [ours.bpp[i] for i in pick], [mine[i] for i in pick])


def gaps_over_levels(ours: Curve, anchor: Curve, levels: list[int], metric: str = "psnr") -> list[tuple[float, float]]:
    """(bpp, quality of ours − anchor's at that bpp) at each chosen point inside the anchor's range."""
    pick = _picked(ours, levels)
    theirs, mine = _quality(anchor, metric), _quality(ours, metric)
    inside = [i for i in pick if min(anchor.bpp) <= ours.bpp[i] <= max(anchor.bpp)]
    return quality_gaps(anchor.bpp, theirs, [ours.bpp[i] for i in inside], [mine[i] for i in inside])


def _picked(ours: Curve, levels: list[int]) -> list[int]:
    """The indices of ``ours``'s points at the given qualities, all of which it must have."""
    if not ours.quality:
        raise NicodecError(f"{ours.source or ours.name} has no results.quality: not a curve from nicodec eval")
    wanted = {float(v) for v in levels}
    if missing := sorted(wanted - set(ours.quality)):
        raise NicodecError(f"levels {missing} are not among the curve's qualities {ours.quality}")
    return [i for i, q in enumerate(ours.quality) if q in wanted]


def _quality(curve: Curve, metric: str) -> list[float]:
    values = curve.psnr if metric == "psnr" else curve.msssim_db
    if not values:
        raise NicodecError(f"{curve.source or curve.name} has no {metric} values")
    return values


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
    p.add_argument("--metric", choices=("psnr", "ms-ssim"), default="psnr", help="BD-rate in PSNR or in MS-SSIM (dB)")
    p.add_argument("--gaps", action="store_true", help="also the quality difference at each point (log-rate interpolation)")
    args = p.parse_args(argv)
    try:
        ours = load_curve(args.curve)
        for anchor in load_curves(args.anchors):
            value = bd_over_levels(ours, anchor, args.levels, args.metric)
            what = "" if args.metric == "psnr" else f" ({args.metric})"
            print(f"{ours.name} levels {describe(args.levels)} vs {anchor.name}: BD-rate{what} {value:+.1f} %")
            if args.gaps:
                unit = "dB" if args.metric == "psnr" else "dB MS-SSIM"
                gaps = gaps_over_levels(ours, anchor, args.levels, args.metric)
                print(f"    bpp:Δ{unit} " + " ".join(f"{b:.2f}:{d:+.2f}" for b, d in gaps))
    except NicodecError as e:
        print(f"bd_levels: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
