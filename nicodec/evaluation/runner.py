"""Run codecs over a folder of images: every (codec, quality, image) point once, in parallel, resumable.

Each point is encoded, decoded and measured (bpp, PSNR, MS-SSIM, wall-clock times) in a worker
process pinned to one thread, and appended to ``per_image.csv`` in the output folder as soon as it
is done. A later run with the same folder skips the points already there, so an interrupted or
extended evaluation (more codecs, more qualities) only computes what is missing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nicodec.errors import NicodecError
from nicodec.evaluation.codecs import CodecSpec, ImageCodec, build_codec, grid_of
from nicodec.evaluation.results import Curve, PointResult, aggregate, append_rows, point_key, quality_str, read_rows
from nicodec.metrics import ms_ssim, psnr
from nicodec.weights import atomic_write, atomic_write_bytes

__all__ = ["IMAGE_SUFFIXES", "RunResult", "crop_box", "crop_path", "find_images", "load_image", "measure", "run"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}
CSV_NAME = "per_image.csv"
IDENTITIES_NAME = "codecs.json"
CROPS_DIR = "crops"
# Environment that keeps BLAS/OpenMP-backed libraries to one thread in worker processes.
_ONE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def find_images(data: Path, max_images: int | None = None) -> list[Path]:
    """The images in `data` (not recursive), sorted by name; the first `max_images` if given."""
    data = Path(data)
    if not data.is_dir():
        raise NicodecError(f"data folder not found: {data}")
    images = sorted(p for p in data.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise NicodecError(f"no images in {data} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if max_images is not None:
        if max_images < 1:
            raise NicodecError("--max-images must be at least 1")
        images = images[:max_images]
    return images


def load_image(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and alpha images are converted to RGB)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise NicodecError(f"cannot read image {path}: {e}") from None


def crop_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred `size` x `size` crop (smaller for small images)."""
    ch, cw = min(size, h), min(size, w)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def crop_path(out: Path, label: str, quality: float) -> Path:
    return Path(out) / CROPS_DIR / f"{label}_q{quality_str(quality)}.png"


def _save_crop(rgb: np.ndarray, path: Path, size: int) -> None:
    top, left, ch, cw = crop_box(rgb.shape[0], rgb.shape[1], size)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb[top : top + ch, left : left + cw])).save(path)


def measure(codec: ImageCodec, quality: float, rgb: np.ndarray, image: str) -> tuple[PointResult, np.ndarray]:
    """Encode, decode and score one image at one quality; returns the row and the decoded image."""
    t0 = time.perf_counter()
    data = codec.encode(rgb, quality)
    t1 = time.perf_counter()
    out = codec.decode(data)
    t2 = time.perf_counter()
    if out.shape != rgb.shape:
        raise NicodecError(f"{codec.label} decoded {image} to shape {out.shape}, expected {rgb.shape}")
    h, w = rgb.shape[:2]
    row = PointResult(
        codec=codec.label,
        quality=float(quality),
        image=image,
        width=w,
        height=h,
        bytes=len(data),
        bpp=len(data) * 8 / (w * h),
        psnr=psnr(rgb, out),
        msssim=ms_ssim(rgb, out),
        enc_s=t1 - t0,
        dec_s=t2 - t1,
    )
    return row, out


@dataclass(frozen=True)
class _Task:
    spec: CodecSpec
    quality: float
    image: Path
    crop_to: Path | None  # where to save the decoded crop, for the report's crop image
    crop_size: int


def _do_task(task: _Task) -> PointResult:
    codec = build_codec(task.spec)
    rgb = load_image(task.image)
    try:
        row, out = measure(codec, task.quality, rgb, task.image.name)
    except NicodecError as e:
        raise NicodecError(f"{codec.label} at quality {task.quality:g} on {task.image.name}: {e}") from None
    except Exception as e:  # a codec library failing on an input is a one-line user-facing error too
        raise NicodecError(
            f"{codec.label} failed at quality {task.quality:g} on {task.image.name}: {type(e).__name__}: {e}"
        ) from None
    if task.crop_to is not None:
        _save_crop(out, task.crop_to, task.crop_size)
    return row


def _init_worker() -> None:
    import torch

    os.environ.update(_ONE_THREAD_ENV)
    torch.set_num_threads(1)


@contextmanager
def _one_thread_here() -> Iterator[None]:
    """Run in this process with torch on one thread, restoring the caller's setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _child_env() -> Iterator[None]:
    """Environment inherited by spawned workers (read by OpenMP/BLAS before they start)."""
    saved = {k: os.environ.get(k) for k in _ONE_THREAD_ENV}
    os.environ.update(_ONE_THREAD_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class RunResult:
    """What `run` did: curves per codec (in the order given) and how many points were new."""

    curves: list[Curve]
    labels: list[str]
    new_points: int
    reused_points: int
    rows: list[PointResult] = field(default_factory=list)


def run(
    specs: list[CodecSpec],
    images: list[Path],
    out: Path,
    *,
    jobs: int = 1,
    crop_image: str | None = None,
    crop_size: int = 192,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Measure every spec at every grid quality on every image, skipping points already in `out`.

    `crop_image` (a file name among `images`, default the first) gets its decoded centre crops
    saved under ``out/crops`` for the report. Returns curves averaged over `images`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not images:
        raise NicodecError("no images to evaluate")
    names = [p.name for p in images]
    if len(set(names)) != len(names):
        raise NicodecError("image file names must be unique")
    crop_image = crop_image or names[0]
    if crop_image not in names:
        raise NicodecError(f"--crop-image {crop_image} is not among the evaluated images")
    for p in images:  # fail early, in the main process, on an unreadable image
        load_image(p)
    crop_src = images[names.index(crop_image)]
    original_crop = Path(out) / CROPS_DIR / "original.png"
    if not original_crop.exists():
        _save_crop(load_image(crop_src), original_crop, crop_size)

    codecs = [build_codec(s) for s in specs]
    labels = [c.label for c in codecs]
    if len(set(labels)) != len(labels):
        raise NicodecError(f"two codec specs name the same codec: {', '.join(labels)}")
    csv_path = out / CSV_NAME
    _forget_stale_points(out, codecs, log)
    done = {r.key for r in read_rows(csv_path)}
    tasks: list[_Task] = []
    reused = 0
    for spec, codec in zip(specs, codecs):
        for q in grid_of(spec, codec):
            for img in images:
                crop_to = crop_path(out, codec.label, q) if img == crop_src else None
                if point_key(codec.label, q, img.name) in done and (crop_to is None or crop_to.exists()):
                    reused += 1
                    continue
                tasks.append(_Task(spec, float(q), img, crop_to, crop_size))
    log(f"{len(tasks)} new points to compute, {reused} already in {csv_path}")
    if tasks:
        _execute(tasks, csv_path, jobs, progress)

    rows = read_rows(csv_path)
    curves = []
    for spec, codec in zip(specs, codecs):
        grid = {quality_str(q) for q in grid_of(spec, codec)}
        sel = [r for r in rows if r.codec == codec.label and quality_str(r.quality) in grid]
        curve = aggregate(codec.label, sel, names, description=codec.describe())
        curve.name = codec.label
        curves.append(curve)
    return RunResult(curves, labels, len(tasks), reused, rows)


def _forget_stale_points(out: Path, codecs: list, log: Callable[[str], None]) -> None:
    """Drop the saved points of codecs whose identity changed (e.g. retrained weights under the
    same name), so that resuming never mixes two versions of a codec in one curve.

    ``codecs.json`` in ``out`` maps each label to the identity its points were measured with.
    """
    path = out / IDENTITIES_NAME
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        known = {}
    stale = {c.label for c in codecs if c.label in known and known[c.label] != c.identity()}
    csv_path = out / CSV_NAME
    if stale and csv_path.exists():
        rows = read_rows(csv_path)
        kept = [r for r in rows if r.codec not in stale]
        log(f"{', '.join(sorted(stale))} changed since {csv_path} was written: "
            f"{len(rows) - len(kept)} points will be measured again")
        atomic_write(csv_path, lambda tmp: append_rows(Path(tmp), kept))
        for label in stale:
            for crop in (out / CROPS_DIR).glob(f"{label}_q*.png"):
                crop.unlink()
    known.update({c.label: c.identity() for c in codecs})
    atomic_write_bytes(path, (json.dumps(known, indent=2, sort_keys=True) + "\n").encode())


def _execute(tasks: list, csv_path: Path, jobs: int, progress: bool, do: Callable = _do_task) -> None:
    """Run ``do`` on every task and append each point to the CSV as soon as it is measured, so an
    interrupted run keeps all finished points; on a failure, the points finished so far are
    written, the rest cancelled, and the first error raised."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="pt", desc="eval", disable=not progress, dynamic_ncols=True)
    try:
        if jobs <= 1:
            with _one_thread_here():
                for t in tasks:
                    append_rows(csv_path, [do(t)])
                    bar.update()
            return
        ctx = multiprocessing.get_context("spawn")  # never fork a process that has torch threads
        with _child_env(), ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker) as pool:
            pending: set[Future] = {pool.submit(do, t) for t in tasks}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                failed = [f for f in finished if f.exception() is not None]
                done = [f.result() for f in finished if f.exception() is None]
                append_rows(csv_path, done)
                bar.update(len(done))
                if failed:
                    for p in pending:
                        p.cancel()
                    raise failed[0].exception()
    finally:
        bar.close()
