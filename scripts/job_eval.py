"""The standing GPU job's verdict: new weights against the shipped ones and VTM, through real files, in one line.

    python scripts/job_eval.py --new OUT/meanscale.safetensors --shipped meanscale \\
        --data kodak=.gpu-data/kodak --data held-out=.gpu-data/held-out \\
        --anchor kodak=.gpu-data/anchors/vtm.json --jobs 16 --out /tmp/runs/eval

Each image set is coded with both weights at every trained level (`nicodec eval`'s runner: real
`.nic` files, one thread per worker, resumable in ``--out/NAME``; no plots, so matplotlib is not
needed on the GPU machine) and the BD-rates (PSNR) are printed as one line, e.g.

    RESULT meanscale.safetensors: kodak +62.1 % vs vtm (shipped +64.5 %), -1.3 % vs shipped meanscale-r2; held-out -1.0 % vs shipped

and written to ``--out/result.json``. Negative against the shipped weights: better, ship it
(docs/training.md, "The standing GPU job").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate
from nicodec.evaluation.codecs import parse_spec
from nicodec.evaluation.results import load_curve, save_curve
from nicodec.evaluation.runner import find_images, run


def _pairs(items: list[str], what: str) -> dict[str, Path]:
    pairs = [item.split("=", 1) for item in items]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise NicodecError(f"give {what} as NAME=PATH")
    return {name: Path(path) for name, path in pairs}


def _bd(anchor, curve) -> float:
    """BD-rate (PSNR) of ``curve`` against ``anchor``, or nan where the curves share no quality range."""
    try:
        return bd_rate(anchor.bpp, anchor.psnr, curve.bpp, curve.psnr)
    except NicodecError:
        return math.nan


def evaluate(new: str, shipped: str, data: dict[str, Path], anchors: dict[str, Path], out: Path, jobs: int,
             max_images: int | None = None) -> dict:
    """BD-rates per image set: the new weights and the shipped ones against each set's anchor, and
    the new against the shipped. Returns {set: {...}} with the curves' labels and the numbers."""
    results = {}
    for name, folder in data.items():
        specs = [parse_spec(f"nicodec:{new}"), parse_spec(f"nicodec:{shipped}")]
        res = run(specs, find_images(folder, max_images), out / name, jobs=jobs, progress=False, log=lambda _: None)
        ours, theirs = res.curves
        for curve in res.curves:
            save_curve(curve, out / name / f"{curve.name}.json")
        entry = {"images": len(find_images(folder, max_images)), "new": ours.name, "shipped": theirs.name,
                 "vs_shipped": _bd(theirs, ours)}
        if name in anchors:
            anchor = load_curve(anchors[name])
            entry.update(anchor=anchors[name].stem, new_vs_anchor=_bd(anchor, ours), shipped_vs_anchor=_bd(anchor, theirs))
        results[name] = entry
    return results


def _percent(value: float) -> str:
    return f"{value:+.1f} %" if math.isfinite(value) else "n/a (no shared quality range)"


def line(new: str, results: dict) -> str:
    parts = []
    for name, r in results.items():
        text = f"{name}"
        if "anchor" in r:
            text += f" {_percent(r['new_vs_anchor'])} vs {r['anchor']} (shipped {_percent(r['shipped_vs_anchor'])}),"
        text += f" {_percent(r['vs_shipped'])} vs shipped {r['shipped'].removeprefix('nicodec-')}"
        parts.append(text)
    return f"RESULT {Path(new).name}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new", required=True, help="the weights the job made")
    p.add_argument("--shipped", required=True, help="what they would replace: a registered name or a weights file")
    p.add_argument("--data", action="append", required=True, metavar="NAME=FOLDER", help="an image set (repeatable)")
    p.add_argument("--anchor", action="append", default=[], metavar="NAME=JSON", help="a published curve for a set")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--max-images", type=int)
    args = p.parse_args(argv)
    try:
        results = evaluate(args.new, args.shipped, _pairs(args.data, "--data"), _pairs(args.anchor, "--anchor"),
                           args.out, args.jobs, args.max_images)
    except NicodecError as exc:
        print(f"job_eval: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(results, indent=2) + "\n")
    print(line(args.new, results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
