"""Encode/decode speed of codecs on the same images: median wall-clock time over repeats.

Kept apart from `eval` because timing wants a quiet, single-threaded process and repeats, while
rate-distortion wants many points once. Everything runs in this process on one thread.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from nicodec.evaluation.codecs import CodecSpec, build_codec
from nicodec.evaluation.runner import _one_thread_here, load_image

__all__ = ["BenchRow", "bench", "format_bench"]


@dataclass
class BenchRow:
    """Timings of one codec at one quality, averaged over images of per-image medians."""

    codec: str
    quality: float
    images: int
    megapixels: float
    bpp: float
    enc_s: float
    dec_s: float


def bench(specs: list[CodecSpec], images: list[Path], repeats: int = 3) -> list[BenchRow]:
    """Time every spec on every image; a spec without a grid is timed at its middle default quality."""
    rgbs = [load_image(p) for p in images]
    rows = []
    with _one_thread_here():
        for spec in specs:
            codec = build_codec(spec)
            grid = spec.grid if spec.grid is not None else (codec.default_grid[len(codec.default_grid) // 2],)
            for q in grid:
                codec.encode(rgbs[0], q)  # warm-up: lazy imports, model tables, caches
                enc, dec, bpp, mpix = [], [], [], 0.0
                for rgb in rgbs:
                    te, td = [], []
                    for _ in range(max(1, repeats)):
                        t0 = time.perf_counter()
                        data = codec.encode(rgb, q)
                        t1 = time.perf_counter()
                        codec.decode(data)
                        t2 = time.perf_counter()
                        te.append(t1 - t0)
                        td.append(t2 - t1)
                    enc.append(statistics.median(te))
                    dec.append(statistics.median(td))
                    bpp.append(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]))
                    mpix += rgb.shape[0] * rgb.shape[1] / 1e6
                n = len(rgbs)
                rows.append(BenchRow(codec.label, float(q), n, mpix / n, sum(bpp) / n, sum(enc) / n, sum(dec) / n))
    return rows


def format_bench(rows: list[BenchRow]) -> str:
    """A Markdown table: mean of per-image median times, and throughput in megapixels per second."""
    lines = [
        "| codec | quality | images | bpp | encode [ms] | decode [ms] | encode [MP/s] | decode [MP/s] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.codec} | {r.quality:g} | {r.images} | {r.bpp:.3f} | {r.enc_s * 1e3:.1f} | {r.dec_s * 1e3:.1f} "
            f"| {r.megapixels / max(r.enc_s, 1e-9):.2f} | {r.megapixels / max(r.dec_s, 1e-9):.2f} |"
        )
    return "\n".join(lines)
