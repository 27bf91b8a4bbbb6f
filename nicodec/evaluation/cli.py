"""The ``nicodec eval`` and ``nicodec bench`` subcommands (registered into the main CLI).

    nicodec eval --data ../shared/data/kodak --codec jpeg --codec webp@10,30,50 \\
        --codec nicodec:meanscale --anchors ../shared/anchors/kodak/vtm.json --anchor vtm --out results/eval
    nicodec bench --data ../shared/data/kodak --codec jpeg --codec nicodec:meanscale --max-images 4
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from nicodec.errors import NicodecError

__all__ = ["register", "cmd_eval", "cmd_bench"]

SPEC_HELP = (
    "codec to run, repeatable: jpeg, jpeg444, webp, avif, hevc, jpegxl, jpeg2000, nicodec:NAME or "
    "nicodec:PATH.safetensors (+ :refine=STEPS to encode with latent refinement), nicodec:overfit "
    "(+ :effort=fast|medium|slow), optionally with a quality grid, e.g. webp@10,30,50 or nicodec:meanscale@1,2.5,4"
)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def register(subparsers) -> None:
    """Add the ``eval`` and ``bench`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser(
        "eval",
        help="rate-distortion evaluation of codecs over a folder of images (JSON, CSV, plots, HTML report)",
        description="Measure bpp, PSNR-RGB, MS-SSIM-RGB and times of codecs over images; resumes in --out.",
    )
    p.add_argument("--data", required=True, type=Path, help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument("--codec", required=True, action="append", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--out", type=Path, default=Path("results/eval"), help="output folder (default results/eval)")
    p.add_argument(
        "--anchors", nargs="+", default=[], metavar="FILE_OR_DIR",
        help="published or earlier results in CompressAI's JSON layout, plotted and usable as --anchor",
    )
    p.add_argument(
        "--anchor", metavar="NAME",
        help="curve to compute BD-rates against: a codec label, an anchor's name or file stem "
        "(default: the first --anchors file, else the first --codec)",
    )
    p.add_argument(
        "--jobs", type=_positive_int, default=min(2, os.cpu_count() or 1),
        help="worker processes, one thread each (default min(2, CPUs))",
    )
    p.add_argument("--max-images", type=_positive_int, help="use only the first N images (sorted by name)")
    p.add_argument("--device", help="where nicodec models encode (cpu, cuda); nicodec:overfit fits there")
    p.add_argument("--crop-image", metavar="FILE", help="image whose crops the report shows (default the first)")
    p.add_argument("--crop-size", type=_positive_int, default=192, help="side of the centred crops (default 192)")
    p.add_argument("--target-bpp", type=float, default=0.3, help="rate at which crops are compared (default 0.3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser(
        "bench",
        help="encode/decode speed of codecs on the same images (median over repeats)",
        description="Time encode and decode per codec, one thread, median over --repeats per image.",
    )
    p.add_argument("--data", required=True, type=Path, help="folder of images")
    p.add_argument("--codec", required=True, action="append", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--repeats", type=_positive_int, default=3, help="timings per image; the median is kept")
    p.add_argument("--max-images", type=_positive_int, help="use only the first N images")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    p.set_defaults(func=cmd_bench)


def cmd_eval(args: argparse.Namespace) -> int:
    from nicodec.evaluation.codecs import library_versions, parse_spec
    from nicodec.evaluation.report import (
        bd_table,
        format_bd_table,
        format_points_table,
        nearest_points,
        pick_anchor,
        plot_rd,
        write_html,
    )
    from nicodec.evaluation.results import load_curves, save_curve
    from nicodec.evaluation.runner import crop_path, find_images, run

    specs = [parse_spec(s) for s in args.codec]
    if args.device is not None:
        specs = [replace(s, device=args.device) if s.kind == "nicodec" else s for s in specs]
    images = find_images(args.data, args.max_images)
    anchors = load_curves(args.anchors)
    if args.target_bpp <= 0:
        raise NicodecError("--target-bpp must be positive")
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NicodecError(f"cannot create output folder {out}: {e.strerror or e}") from None

    res = run(
        specs, images, out, jobs=args.jobs, crop_image=args.crop_image, crop_size=args.crop_size,
        progress=not args.quiet,
    )
    for c in res.curves:
        save_curve(c, out / f"{c.name}.json")
    everything = res.curves + anchors
    anchor = pick_anchor(everything, args.anchor) if args.anchor else (anchors or res.curves)[0]
    rows = bd_table(everything, anchor)
    table = format_bd_table(rows, anchor)
    (out / "bdrate.md").write_text(table + "\n")
    summary = [f"# Results on {args.data.name} ({len(images)} images)", "", table, ""]
    for c in res.curves:
        summary += [f"## {c.name}", "", c.description, "", format_points_table(c), ""]
    (out / "summary.md").write_text("\n".join(summary))
    (out / "bdrate.json").write_text(
        json.dumps({"anchor": anchor.name, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    plots = plot_rd(res.curves, anchors, out, title=f"{args.data.name} ({len(images)} images)")

    crop_img = args.crop_image or images[0].name
    tiles = [("original", out / "crops" / "original.png", crop_img)]
    for curve, p in nearest_points(res.curves, res.rows, crop_img, args.target_bpp):
        path = crop_path(out, curve.name, p.quality)
        if path.exists():
            tiles.append((curve.name, path, f"q {p.quality:g} · {p.bpp:.3f} bpp · {p.psnr:.2f} dB PSNR"))
    info = {
        "data": str(args.data),
        "images": str(len(images)),
        "crops": f"{crop_img}, centre {args.crop_size}px, nearest {args.target_bpp:g} bpp (whole-image bpp/PSNR)",
        "date": _dt.date.today().isoformat(),
    }
    info.update(library_versions())
    report = write_html(
        out, curves=res.curves, anchors=anchors, anchor=anchor, bd_rows=rows, plots=plots, crops=tiles, info=info
    )
    print(table)
    print(f"results: {out}/per_image.csv, summary.md, " + ", ".join(f"{c.name}.json" for c in res.curves))
    print(f"report: {report}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nicodec.evaluation.bench import bench, format_bench
    from nicodec.evaluation.codecs import parse_spec
    from nicodec.evaluation.runner import find_images

    specs = [parse_spec(s) for s in args.codec]
    images = find_images(args.data, args.max_images)
    rows = bench(specs, images, repeats=args.repeats)
    print(format_bench(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0
