"""Where decoding time goes, and how it compares with classical decoders timed in the same run.

    python benchmarks/decode_speed.py [--image kodim01.png] [--repeats 7] [--threads 2] [--model meanscale] [--layers] [--keep-heap]

Codes one 768×512 image (Kodak kodim01 when ../shared exists) at the model's default quality,
then times, as medians of --repeats runs in this one process: nicodec's encode and decode
(version 3 files; also with the bfloat16 analysis, ``--fast``), the decode split into its parts (container + alpha, entropy decoding with
table building, the integer hyper-synthesis, the synthesis g_s, the conversion to 8-bit), the
same with the bfloat16 synthesis (``--fast``; where the CPU has AMX or AVX-512 BF16), the
float64 path of release 1 (version-1 files, as nicodec 0.1 decoded), and the decoders of JPEG,
WebP and AVIF (Pillow) at a similar size, with the ratios, and the minor page faults each nicodec
run takes (fresh pages for feature maps: compare ``--keep-heap``, or glibc's huge pages with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the environment). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import platform
import resource
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nicodec
from nicodec import latent_coders, models
from nicodec.integer_network import IntegerNetwork
from nicodec.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
KODIM = ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"


class Clock:
    """Seconds spent in the wrapped functions, by part."""

    def __init__(self):
        self.parts: dict[str, float] = {}

    @contextmanager
    def wrap(self, owner, attribute: str, part: str):
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.parts[part] = self.parts.get(part, 0.0) + time.perf_counter() - start

        setattr(owner, attribute, timed)
        try:
            yield
        finally:
            setattr(owner, attribute, original)


def timed_decode(codec, data: bytes, fast: bool) -> tuple[float, dict[str, float]]:
    clock = Clock()
    with clock.wrap(latent_coders.DecodingCoder, "__call__", "entropy decoding"), \
            clock.wrap(IntegerNetwork, "forward", "hyper-synthesis"), \
            clock.wrap(models.CompressionModel, "_synthesize", "synthesis g_s"), \
            clock.wrap(nicodec.codec, "_to_uint8", "to 8-bit"):
        start = time.perf_counter()
        codec.decompress(data, fast=fast)
        total = time.perf_counter() - start
    clock.parts["other (container, alpha, setup)"] = total - sum(clock.parts.values())
    return total, clock.parts


def layer_times(model, latent_shape: tuple[int, ...], repeats: int) -> list[str]:
    """Markdown rows: each layer of g_s timed alone (float32 and bfloat16, channels-last, medians),
    a transposed convolution both as it runs at inference and as ConvTranspose2d's own kernel, an
    inverse GDN both as decoding runs it (in place, GDN.normalize_) and as its forward()."""
    from nicodec.layers import GDN, Deconv

    def median_time(fn, x, in_place: bool = False) -> float:
        work = x.clone() if in_place else x  # an in-place fn gets a fresh copy of x each time, untimed
        fn(work)
        times = []
        for _ in range(repeats):
            if in_place:
                work.copy_(x)
            start = time.perf_counter()
            fn(work)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    rows = []
    with torch.no_grad():
        for dtype in (torch.float32, torch.bfloat16):
            layers = copy.deepcopy(model.g_s).to(dtype).to(memory_format=torch.channels_last)
            x = torch.randn(latent_shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
            for i, layer in enumerate(layers):
                what = f"{type(layer).__name__} {tuple(x.shape[1:])}"
                if isinstance(layer, GDN):
                    ms = f"{median_time(layer.normalize_, x, in_place=True) * 1e3:.1f} (forward(): {median_time(layer, x) * 1e3:.1f})"
                else:
                    ms = f"{median_time(layer, x) * 1e3:.1f}"
                if isinstance(layer, Deconv) and layer._subpixel_ok():
                    transposed = median_time(lambda t: torch.nn.ConvTranspose2d.forward(layer, t), x)
                    ms += f" (as ConvTranspose2d: {transposed * 1e3:.1f})"
                rows.append(f"| g_s[{i}] {what} | {str(dtype).removeprefix('torch.')} | {ms} |")
                x = layer(x)
    return rows


def classical(image: Image.Image, target_bytes: int) -> dict[str, tuple[float, bytes]]:
    """(encode options → bytes) for JPEG, WebP and AVIF at about ``target_bytes`` (by bisection on quality)."""
    out = {}
    for fmt, options in (("JPEG", {"subsampling": 0, "optimize": True}), ("WEBP", {"method": 6}), ("AVIF", {"speed": 6})):
        try:
            best = None
            lo, hi = 1, 95
            while lo <= hi:
                q = (lo + hi) // 2
                buffer = io.BytesIO()
                image.save(buffer, format=fmt, quality=q, **options)
                if buffer.tell() <= target_bytes:
                    best, lo = buffer.getvalue(), q + 1
                else:
                    hi = q - 1
            if best is not None:
                out[fmt] = best
        except (KeyError, OSError, ValueError):
            continue  # a Pillow without this format
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=Path, default=KODIM if KODIM.exists() else None)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="meanscale")
    p.add_argument("--layers", action="store_true", help="also time each layer of g_s alone (float32 and bfloat16)")
    p.add_argument("--keep-heap", action="store_true", help="nicodec.heap.keep(): decodes reuse the last one's pages")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.keep_heap:
        from nicodec import heap

        heap.keep()
    try:
        import pillow_avif  # noqa: F401  (registers AVIF with older Pillows)
    except ImportError:
        pass
    source = args.image or ROOT / "nicodec" / "assets" / "sample.png"
    image = Image.open(source).convert("RGB")
    if image.size != (768, 512):
        image = image.resize((768, 512), Image.LANCZOS)
    codec = nicodec.load(args.model)
    q = codec.default_quality
    data = codec.compress(image, quality=q)
    legacy = copy.copy(nicodec.load(f"{args.model}-r1"))  # (load's codecs are shared)
    legacy.version = 1
    legacy_data = legacy.compress(image, quality=q)
    med = statistics.median
    runs = {"encode": [], "encode fast": [], "decode": [], "decode fast": [], "decode release 1 (float64 path)": []}
    parts: dict[str, list[float]] = {}
    fast_parts: dict[str, list[float]] = {}
    others = classical(image, len(data))
    other_times: dict[str, list[float]] = {fmt: [] for fmt in others}
    codec.decompress(data)
    codec.decompress(data, fast=True)
    legacy.decompress(legacy_data)
    faults: dict[str, list[int]] = {name: [] for name in runs}

    def run(name: str, fn):
        """Time fn, count the minor page faults it takes, record both under ``name``; fn's result."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        result = fn()
        runs[name].append(time.perf_counter() - start)
        faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return result

    for _ in range(args.repeats):
        run("encode", lambda: codec.compress(image, quality=q))
        run("encode fast", lambda: codec.compress(image, quality=q, fast=True))
        for k, v in run("decode", lambda: timed_decode(codec, data, fast=False)[1]).items():
            parts.setdefault(k, []).append(v)
        for k, v in run("decode fast", lambda: timed_decode(codec, data, fast=True)[1]).items():
            fast_parts.setdefault(k, []).append(v)
        run("decode release 1 (float64 path)", lambda: legacy.decompress(legacy_data))
        for fmt, encoded in others.items():
            start = time.perf_counter()
            with Image.open(io.BytesIO(encoded)) as decoded:
                decoded.load()
            other_times[fmt].append(time.perf_counter() - start)
    reference = np.asarray(image)
    exact_pixels = np.asarray(codec.decompress(data), np.int16)
    fast_pixels = np.asarray(codec.decompress(data, fast=True), np.int16)
    print(f"{source.name} 768×512, {args.model} quality {q:g} ({len(data):,} bytes, {len(data) * 8 / image.width / image.height:.3f} bpp); "
          f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
          f"bf16 synthesis {'available' if models.fast_synthesis(torch.device('cpu')) else 'not available (float32 used)'}; "
          f"heap {'kept between decodes' if args.keep_heap else 'as glibc leaves it'}"
          f"{'; GLIBC_TUNABLES=' + os.environ['GLIBC_TUNABLES'] if os.environ.get('GLIBC_TUNABLES') else ''}; median of {args.repeats}\n")
    print("| what | seconds | × WebP decode | page faults |")
    print("|---|---:|---:|---:|")
    webp = med(other_times["WEBP"]) if "WEBP" in other_times else None
    ratio = (lambda t: f"{t / webp:.0f}×") if webp else (lambda t: "—")
    for name, values in runs.items():
        print(f"| nicodec {name} | {med(values):.3f} | {ratio(med(values))} | {med(faults[name]):,.0f} |")
    for name, values in parts.items():
        print(f"| … decode: {name} | {med(values):.3f} | | |")
    for name, values in fast_parts.items():
        print(f"| … decode fast: {name} | {med(values):.3f} | | |")
    for fmt, values in other_times.items():
        print(f"| {fmt} decode ({len(others[fmt]):,} bytes) | {med(values):.4f} | {ratio(med(values))} | |")
    print(f"\nPSNR: float32 {psnr(reference, exact_pixels.astype(np.uint8)):.3f} dB, bfloat16 "
          f"{psnr(reference, fast_pixels.astype(np.uint8)):.3f} dB; bf16 vs float32: max |Δ| "
          f"{int(np.abs(fast_pixels - exact_pixels).max())}, {int((np.abs(fast_pixels - exact_pixels) > 1).sum())} samples off by more than 1")
    if args.layers:
        h, w = image.height // 16, image.width // 16
        print(f"\n| g_s layer, input (channels, height, width) | dtype | ms, median of {args.repeats} |\n|---|---|---:|")
        print("\n".join(layer_times(codec.model, (1, codec.model.config.M, h, w), args.repeats)))


if __name__ == "__main__":
    main()
