"""The overfit codec on Kodak: rate–distortion, encode and decode time, MAC/pixel (resumable).

    python benchmarks/overfit_bench.py rd --images 1-4 --qualities 2,4,6,8 --effort medium
    python benchmarks/overfit_bench.py summary --effort medium            # BD-rates of what is there
    python benchmarks/overfit_bench.py summary --effort medium --baseline old/points.jsonl   # vs another run
    python benchmarks/overfit_bench.py speed --threads 2 --file results/overfit/kodim01-q6-medium.nic
    python benchmarks/overfit_bench.py curve --images 1-24 --qualities 2,4,6,8 --device cuda   # batched, on a GPU
    python benchmarks/overfit_bench.py large --iterations 3     # peak memory of a 12 MP photo, encode and decode
    python benchmarks/overfit_bench.py arm-range results/overfit/*.nic   # how far fitted ARMs stay from the clamp
    python benchmarks/overfit_bench.py tune --label lr2 --set latent_lr=0.1   # a recipe change, on training photos
    python benchmarks/overfit_bench.py tune --report                          # every recipe tried, vs the first

``rd`` encodes each (image, quality) with the given effort, one point at a time, appending a JSON
line per point to ``results/overfit/points.jsonl`` (bytes, bpp from the file, PSNR-RGB, encode
and decode seconds, MAC/pixel, parameter and latent bits) and keeping the ``.nic`` file; a point
already there is skipped, so an interrupted run goes on where it stopped.

``curve`` encodes every missing (image, quality) in one ``encode_many`` call (all sets fitted
together on the device, batches bounded by ``--batch-pixels``), then decodes and measures each on
the CPU; ``encode_s`` is then the batch's seconds divided by its points (the throughput).

``summary`` averages the points of the images every quality has (CompressAI's convention: mean
bpp, mean PSNR) and gives BD-rates on exactly those images against Cool-chic 5.0 and 4.2 (their
per-image published points), HEVC measured here (``nicodec eval --codec hevc`` on the same
images, run by this script when its points are missing) and, for reference, against the VTM curve
of all 24 images (a subset's BD-rate against an all-image curve is only indicative).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nicodec.evaluation.bdrate import bd_rate
from nicodec.metrics import mse, psnr
from nicodec.overfit import Architecture, FitConfig, OverfitCodec, OverfitConfig, encode_many

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").exists()), ROOT.parent / "shared")  # ../shared, or ../../shared from a worktree
KODAK = SHARED / "data" / "kodak"
ANCHORS = SHARED / "anchors" / "kodak"
TRAIN = SHARED / "data" / "train"  # recipe search happens here, never on Kodak
OUT = ROOT / "results" / "overfit"


def image_names(spec: str) -> list[str]:
    """'1-4,7' → kodim01 … kodim04, kodim07."""
    names = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        names += [f"kodim{i:02d}" for i in range(int(lo), int(hi or lo) + 1)]
    return names


def read_points(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def rd(args) -> None:
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    points = OUT / "points.jsonl"
    done = {(p["image"], p["quality"], p["effort"]) for p in read_points(points)}
    codec = OverfitCodec()
    for name in image_names(args.images):
        rgb = np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))
        for q in [float(v) for v in args.qualities.split(",")]:
            if (name, q, args.effort) in done:
                continue
            start, cpu = time.perf_counter(), time.process_time()
            data = codec.compress(rgb, quality=q, effort=args.effort, device=args.device, progress=args.progress)
            _record(points, codec, name, q, args, rgb, data, time.perf_counter() - start, time.process_time() - cpu)


def curve(args) -> None:
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    points = OUT / "points.jsonl"
    done = {(p["image"], p["quality"], p["effort"]) for p in read_points(points)}
    todo = [(name, float(q)) for name in image_names(args.images) for q in args.qualities.split(",")
            if (name, float(q), args.effort) not in done]
    if not todo:
        return
    images = {name: np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB")) for name, _ in todo}
    effort = args.effort if args.iterations is None else FitConfig(iterations=args.iterations)
    start = time.perf_counter()
    coded = encode_many([(images[name], q) for name, q in todo], effort=effort, device=args.device,
                        progress=args.progress, batch_pixels=args.batch_pixels)
    per_point = (time.perf_counter() - start) / len(todo)
    print(f"{len(todo)} points in {per_point * len(todo):.0f} s on {args.device}: {per_point:.1f} s per point", flush=True)
    codec = OverfitCodec()
    for (name, q), (data, _) in zip(todo, coded):
        _record(points, codec, name, q, args, images[name], data, per_point)


def _record(points: Path, codec: OverfitCodec, name: str, q: float, args, rgb: np.ndarray, data: bytes, encode_s: float,
            encode_cpu_s: float | None = None) -> None:
    """One point: ``encode_s`` wall-clock, ``encode_cpu_s`` this process's CPU seconds (on a shared
    machine, what an idle core would have taken)."""
    start = time.perf_counter()
    decoded = codec.decompress(data)
    decode_s = time.perf_counter() - start
    info = codec.describe(data)
    (OUT / f"{name}-q{q:g}-{args.effort}.nic").write_bytes(data)
    row = dict(image=name, quality=q, effort=args.effort, bytes=len(data), bpp=8 * len(data) / rgb.shape[0] / rgb.shape[1],
               psnr=psnr(np.asarray(decoded.convert("RGB")), rgb), encode_s=round(encode_s, 2),
               encode_cpu_s=None if encode_cpu_s is None else round(encode_cpu_s, 2),
               decode_s=round(decode_s, 3), threads=args.threads, device=args.device,
               mac_per_pixel=info["mac_per_pixel"], parameter_bits=info["parameter_bits"],
               latent_bits=info["latent_bits"], machine=platform.processor() or platform.machine(),
               date=time.strftime("%Y-%m-%d"))
    with points.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _mean_curve(rows: list[dict], key_rate: str = "bpp", key_dist: str = "psnr") -> tuple[list[float], list[float]]:
    by_q: dict[float, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["quality"], []).append(r)
    qs = sorted(by_q)
    return [statistics.fmean(r[key_rate] for r in by_q[q]) for q in qs], [statistics.fmean(r[key_dist] for r in by_q[q]) for q in qs]


def _coolchic(version: str, images: list[str]) -> tuple[list[float], list[float]]:
    lines = (ANCHORS / "other" / f"coolchic-v{version}-kodak.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    picked = [dict(quality=float(r["lmbda"]), bpp=float(r["rate_bpp"]), psnr=float(r["psnr_db"]))
              for r in rows if r["seq_name"] in images]
    rate, dist = _mean_curve(picked)
    return rate[::-1], dist[::-1]


def _hevc(images: list[str]) -> tuple[list[float], list[float]]:
    """HEVC (x265 via HEIF) on these images, measured here with nicodec eval (cached)."""
    folder = OUT / "hevc"
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in images:
        if not (data / f"{name}.png").exists():
            (data / f"{name}.png").symlink_to(KODAK / f"{name}.png")
    subprocess.run([sys.executable, "-m", "nicodec", "eval", "--data", str(data), "--codec", "hevc", "--out", str(folder),
                    "--jobs", "1"], check=True, capture_output=True)
    rows = [line.split(",") for line in (folder / "per_image.csv").read_text().splitlines()]
    header, rows = rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
    picked = [dict(quality=float(r["quality"]), bpp=float(r["bpp"]), psnr=float(r["psnr"])) for r in rows
              if Path(r["image"]).stem in images]
    return _mean_curve(picked)


def summary(args) -> None:
    rows = [r for r in read_points(OUT / "points.jsonl") if r["effort"] == args.effort]
    qualities = sorted({r["quality"] for r in rows})
    images = sorted({r["image"] for r in rows})
    complete = [i for i in images if all(any(r["image"] == i and r["quality"] == q for r in rows) for q in qualities)]
    rows = [r for r in rows if r["image"] in complete]
    rate, dist = _mean_curve(rows)
    print(f"effort {args.effort}: {len(complete)} images ({', '.join(complete)}), qualities {qualities}")
    for q, b, p in zip(qualities, rate, dist):
        sel = [r for r in rows if r["quality"] == q]
        print(f"  q {q:g}: {b:.4f} bpp, {p:.3f} dB, encode {statistics.fmean(r['encode_s'] for r in sel):.0f} s, "
              f"decode {statistics.fmean(r['decode_s'] for r in sel):.3f} s")
    vtm = json.loads((ANCHORS / "vtm.json").read_text())["results"]
    anchors = {}
    if args.baseline:  # another run's points (e.g. before a recipe change), same effort and images
        base = [r for r in read_points(Path(args.baseline)) if r["effort"] == args.effort and r["image"] in complete]
        if {r["image"] for r in base} == set(complete):
            anchors[f"baseline {args.baseline} (same images)"] = _mean_curve([r for r in base if r["quality"] in qualities])
        else:
            print(f"  baseline {args.baseline}: not every image is there")
    anchors |= {"Cool-chic 5.0 (same images)": _coolchic("5.0", complete),
               "Cool-chic 4.2 (same images)": _coolchic("4.2", complete),
               "HEVC measured here (same images)": _hevc(complete),
               "VTM (all 24 images)": (vtm["bpp"], vtm["psnr-rgb"])}
    for label, (ar, ad) in anchors.items():
        try:
            print(f"  BD-rate vs {label}: {bd_rate(ar, ad, rate, dist):+.1f} %")
        except Exception as exc:  # too few points or no overlap
            print(f"  BD-rate vs {label}: n/a ({exc})")


def speed(args) -> None:
    """Median decode seconds of a file, and encode seconds per effort on one image."""
    torch.set_num_threads(args.threads)
    codec = OverfitCodec()
    if args.file:
        data = Path(args.file).read_bytes()
        codec.decompress(data)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            codec.decompress(data)
            times.append(time.perf_counter() - start)
        print(f"decode {args.file}: median {statistics.median(times) * 1000:.0f} ms over {args.repeats} "
              f"({args.threads} threads); {codec.describe(data)['mac_per_pixel']:.0f} MAC/pixel")
        _decode_parts(codec, data, args.repeats)
    for effort in args.efforts.split(",") if args.efforts else []:
        rgb = np.asarray(Image.open(KODAK / f"{args.image}.png").convert("RGB"))
        start = time.perf_counter()
        codec.compress(rgb, quality=6, effort=effort, device=args.device)
        print(f"encode {args.image} q6 effort {effort}: {time.perf_counter() - start:.0f} s ({args.threads} threads, {args.device})")


def _decode_parts(codec: OverfitCodec, data: bytes, repeats: int) -> None:
    """Median wall-clock and CPU (this process) milliseconds of the decoder's parts: the whole
    decode, the latents (integer ARM + rANS, compiled), the synthesis (upsampling + networks).
    On a shared machine the CPU time is the fairer number (what an idle core would take)."""
    from nicodec.overfit import codec as oc, raster

    parts: dict[str, list[tuple[float, float]]] = {"whole decode": [], "latents (ARM + rANS)": [], "synthesis": []}

    def timed(name, fn):
        def wrapper(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            out = fn(*a, **k)
            parts[name].append((time.perf_counter() - w, time.process_time() - c))
            return out
        return wrapper

    latents, synthesis = raster.Reader.latents, oc._synthesis
    raster.Reader.latents, oc._synthesis = timed("latents (ARM + rANS)", latents), timed("synthesis", synthesis)
    try:
        decode = timed("whole decode", codec.decompress)
        for _ in range(repeats):
            decode(data)
    finally:
        raster.Reader.latents, oc._synthesis = latents, synthesis
    for name, values in parts.items():
        print(f"  {name}: wall {statistics.median(v[0] for v in values) * 1000:.0f} ms, "
              f"CPU {statistics.median(v[1] for v in values) * 1000:.0f} ms (median of {len(values)})")


def arm_range(args) -> None:
    """The largest hidden activation of each file's ARM (float, dequantised weights) over its own
    decoded latents, against the integer ARM's clamp: how far fitted ARMs stay from it (why the
    fit's ARM uses plain ReLUs)."""
    from nicodec import container
    from nicodec.overfit import codec as oc, coding, context, header, tables

    limit = tables.ACT_MAX / 2**tables.ACT_BITS
    for name in args.files:
        data = Path(name).read_bytes()
        decoded = OverfitCodec().decode(data)
        nic = container.unpack(data)
        a, coder, largest = decoded.header.arch, coding.Coder(nic.streams[1]), 0.0
        for quant, grids in zip(decoded.header.tiles, decoded.latents):
            q = oc.read_params(coder, a, quant)
            w = {k: v * 2.0 ** -quant["arm"].shift for k, v in oc._arm_integers(a, q["arm"]).items()}
            y = [g.double()[None, None] for g in grids]
            for k in range(len(y) - 1, -1, -1):
                x, _ = context.gather(y[k], y[k + 1] if k + 1 < len(y) else None, "raster", 0, a.coarse_context)
                h = x[0]
                for i in range(a.arm_layers):
                    h = torch.relu(w[f"w{i}"].T @ h + (w["b0"][0] if i == 0 else w[f"b{i}"])[:, None])
                    largest = max(largest, float(h.max()))
        print(f"{Path(name).name}: largest hidden activation {largest:.2f} (integer ARM clamps at {limit:g})")


def iteration(args) -> None:
    """Seconds per fitting iteration on a Kodak image (fit for 2 and for 2 + N iterations, the
    difference over N), CPU and wall-clock: CPU time is the fairer measure on a shared machine,
    wall-clock with 2 threads what the ≤ 10 minute target is about."""
    from nicodec.overfit.fit import fit

    torch.set_num_threads(args.threads)
    if args.no_heap:  # measure what nicodec.heap buys
        from nicodec import heap

        heap.ENABLED = False
    rgb = np.asarray(Image.open(KODAK / f"{args.image}.png").convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    codec = OverfitCodec()
    cpu, wall = {}, {}
    fit(x, torch.tensor([0.013]), codec.config.arch, FitConfig(iterations=2))  # warm-up: first calls' one-off costs
    faults, system = {}, {}
    for n in (2, 2 + args.iterations):
        start, start_wall, usage = time.process_time(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        fit(x, torch.tensor([0.013]), codec.config.arch, FitConfig(iterations=n))
        cpu[n], wall[n] = time.process_time() - start, time.perf_counter() - start_wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults[n], system[n] = after.ru_minflt - usage.ru_minflt, after.ru_stime - usage.ru_stime
    per = (cpu[2 + args.iterations] - cpu[2]) / args.iterations
    per_wall = (wall[2 + args.iterations] - wall[2]) / args.iterations
    print(f"per iteration: {(faults[2 + args.iterations] - faults[2]) / args.iterations:,.0f} minor page faults, "
          f"{(system[2 + args.iterations] - system[2]) / args.iterations:.3f} s of system time")
    start, start_wall = time.process_time(), time.perf_counter()
    codec.compress(rgb, quality=6, effort=FitConfig(iterations=2))
    whole, whole_wall = time.process_time() - start, time.perf_counter() - start_wall
    print(f"{args.image}: {per:.3f} s CPU, {per_wall:.3f} s wall per iteration ({args.threads} threads); "
          f"a whole 2-iteration encode {whole:.1f} s CPU, {whole_wall:.1f} s wall")
    for name, config in codec.config.efforts.items():
        print(f"  effort {name}: {config.iterations} iterations ≈ {(whole + per * (config.iterations - 2)) / 60:.1f} min of CPU, "
              f"{(whole_wall + per_wall * (config.iterations - 2)) / 60:.1f} min wall")


_LARGE = """
import resource, sys, time, numpy as np, torch
from PIL import Image
from nicodec.overfit import FitConfig, OverfitCodec
torch.set_num_threads({threads})
codec, start = OverfitCodec(), time.perf_counter()
if "{step}" == "encode":
    rgb = np.asarray(Image.open("{image}").convert("RGB").resize((4032, 3024), Image.BICUBIC))
    open("{file}", "wb").write(codec.compress(rgb, quality=6, effort=FitConfig(iterations={iterations})))
else:
    codec.decompress(open("{file}", "rb").read())
print("{step}", round(time.perf_counter() - start, 1), "s, peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "MB")
"""


def large(args) -> None:
    """Peak resident memory (each step in its own process) for a 4032 × 3024 photo (kodim01 resized)."""
    OUT.mkdir(parents=True, exist_ok=True)
    file = OUT / "large-12mp.nic"
    for step in ("encode", "decode"):
        code = _LARGE.format(threads=args.threads, step=step, image=KODAK / "kodim01.png", file=file, iterations=args.iterations)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        print(out.stdout.strip(), f"({args.iterations} iterations per tile, {args.threads} threads)" if step == "encode" else "")


def _override(config, pairs: list[str]):
    """A dataclass (FitConfig, Architecture) with ``key=value`` overrides (values parsed as Python
    literals: 0.1, (0.3, 0.1), 'adam')."""
    import ast

    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"tune: {type(config).__name__} has no field {key!r} (fields: {', '.join(sorted(fields))})")
        changes[key] = ast.literal_eval(value)
    return dataclasses.replace(config, **changes)


def tune(args) -> None:
    """A recipe change measured on centre crops of training photos (never Kodak: Kodak is for the
    final numbers only). Each crop × quality is encoded to a file and scored by its RD cost
    J = bpp (file) + λ·255²·MSE, the quantity the fit minimises; one JSON line per run goes to
    ``tune.jsonl``. ``--report`` compares every label with ``--baseline`` (else the first) on the same crops: the mean
    of per-point relative changes of J (−1 % J is roughly −1 % rate at equal quality)."""
    log = OUT / "tune.jsonl"
    if args.report:
        runs = read_points(log)
        if not runs:
            raise SystemExit(f"tune: nothing in {log}")
        for key in dict.fromkeys((r["photos"], r["qualities"], r["size"]) for r in runs):
            same = [r for r in runs if (r["photos"], r["qualities"], r["size"]) == key]
            base = next((r for r in same if r["label"] == args.baseline), same[0])
            print(f"photos {key[0]}, qualities {key[1]}, crop {key[2]}: vs {base['label']}")
            for r in same:
                rel = statistics.fmean(j / b - 1 for j, b in zip(r["J"], base["J"]))
                print(f"  {r['label']:<24} mean J {statistics.fmean(r['J']):.4f}  {100 * rel:+.2f} %  "
                      f"bpp {' '.join(f'{v:.3f}' for v in r['bpp'])}  dB {' '.join(f'{v:.2f}' for v in r['psnr'])}  "
                      f"{r['seconds']:.0f} s  {r['set']}")
        return
    from nicodec.overfit.codec import quality_to_lambda

    torch.set_num_threads(args.threads)
    codec = OverfitCodec(OverfitConfig(arch=_override(Architecture(), args.arch)))
    config = _override(codec.fit_config(args.effort), args.set)  # a changed architecture has no starting networks: compare with pretrained=False
    h, w = (int(v) for v in args.size.split("x"))
    crops = []
    photos = sorted(TRAIN.glob("*.png"))
    for i in args.photos.split(","):
        im = Image.open(photos[int(i)]).convert("RGB")
        left, top = (im.width - w) // 2, (im.height - h) // 2
        crops.append(np.asarray(im.crop((left, top, left + w, top + h))))
    qualities = [float(q) for q in args.qualities.split(",")]
    start = time.perf_counter()
    coded = encode_many([(c, q) for c in crops for q in qualities], effort=config, codec=codec)
    seconds = time.perf_counter() - start
    bpp, dbs, js = [], [], []
    for (crop, q), (data, _) in zip([(c, q) for c in crops for q in qualities], coded):
        out = np.asarray(codec.decompress(data).convert("RGB"))
        bpp.append(8 * len(data) / (h * w))
        dbs.append(psnr(out, crop))
        js.append(bpp[-1] + quality_to_lambda(q) * mse(out, crop))
    row = dict(label=args.label, set=" ".join(args.set + args.arch), photos=args.photos, qualities=args.qualities, size=args.size,
               effort=args.effort, bpp=bpp, psnr=dbs, J=js, seconds=round(seconds, 1), threads=args.threads,
               date=time.strftime("%Y-%m-%d %H:%M"))
    OUT.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{args.label}: mean J {statistics.fmean(js):.4f}, {seconds:.0f} s", flush=True)


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(OUT), help="results folder (points.jsonl and the files)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rd")
    p.add_argument("--images", default="1-4")
    p.add_argument("--qualities", default="2,4,6,8")
    p.add_argument("--effort", default="medium")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--progress", action="store_true")
    p.set_defaults(run=rd)
    p = sub.add_parser("curve")
    p.add_argument("--images", default="1-24")
    p.add_argument("--qualities", default="2,4,6,8")
    p.add_argument("--effort", default="medium")
    p.add_argument("--iterations", type=int, help="override the effort's iterations (a quick check)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-pixels", type=int, default=None)
    p.add_argument("--progress", action="store_true")
    p.set_defaults(run=curve)
    p = sub.add_parser("large")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=large)
    p = sub.add_parser("arm-range")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=arm_range)
    p = sub.add_parser("iteration")
    p.add_argument("--image", default="kodim01")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-heap", action="store_true", help="without nicodec.heap (fresh pages for every big tensor)")
    p.set_defaults(run=iteration)

    p = sub.add_parser("tune")
    p.add_argument("--label", default="default")
    p.add_argument("--set", nargs="*", default=[], help="FitConfig overrides, key=value")
    p.add_argument("--arch", nargs="*", default=[], help="Architecture overrides, key=value (e.g. synthesis_width=48)")
    p.add_argument("--effort", default="medium")
    p.add_argument("--photos", default="20,80,140", help="training photos (indices in name order)")
    p.add_argument("--size", default="256x384", help="centre crop, HxW")
    p.add_argument("--qualities", default="3,7")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", action="store_true")
    p.add_argument("--baseline", default="base", help="--report: the label the others are compared with")
    p.set_defaults(run=tune)

    p = sub.add_parser("summary")
    p.add_argument("--effort", default="medium")
    p.add_argument("--baseline", help="another points.jsonl: BD-rate against its curve on the same images")
    p.set_defaults(run=summary)
    p = sub.add_parser("speed")
    p.add_argument("--file")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--efforts", default="")
    p.add_argument("--image", default="kodim01")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=speed)
    args = parser.parse_args()
    OUT = Path(args.out)
    if not KODAK.exists():
        sys.exit(f"needs the Kodak images in {KODAK}")
    args.run(args)


if __name__ == "__main__":
    main()
