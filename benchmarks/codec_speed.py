"""Encode/decode speed of each architecture on this CPU, split into transforms and entropy coding.

    python benchmarks/codec_speed.py [--image PATH] [--repeats 5] [--threads 2] [--weights ARCH=PATH ...]
    python benchmarks/codec_speed.py --untrained          # every architecture untrained at N=128, M=192

For a 768×512 image (Kodak kodim01 when ../shared exists, else the bundled sample resized),
each architecture at a realistic width (N=128, M=192), reports median seconds for encode and
decode, the part of it spent in entropy coding (table building + range coding), parameter
count, and multiply-accumulates per pixel of the encoder and decoder transforms.
The shipped weights where the package has them (or --weights), else untrained weights at
--N/--M: transform time does not depend on the weights; entropy-coding time grows slowly with
the rate. "Entropy" is the time inside the latent coders (tables + range coding); the rest,
hyper-synthesis in float64 included, counts as transforms. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nicodec
from nicodec import latent_coders
from nicodec.weights import megabytes, stored_bytes

ROOT = Path(__file__).resolve().parents[1]
KODIM = ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"


class _CodingClock:
    """Accumulates the seconds spent inside latent coders (tables + range coding)."""

    def __init__(self):
        self.seconds = 0.0
        self._patched = []

    def __enter__(self):
        for cls in (latent_coders.EncodingCoder, latent_coders.DecodingCoder):
            original = cls.__call__

            def timed(this, *args, _original=original, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(this, *args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start

            cls.__call__ = timed
            self._patched.append((cls, original))
        return self

    def __exit__(self, *exc):
        for cls, original in self._patched:
            cls.__call__ = original


def macs_per_pixel(module: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates of the convolutions (GDN counted as its 1×1 convolution) per input pixel."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, torch.nn.ConvTranspose2d):
            total += inputs[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Conv2d):
            total += output.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        elif m.__class__.__name__ == "GDN":
            total += output.numel() * output.shape[1]

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


def transform_macs(model, x) -> tuple[float, float]:
    """(encoder, decoder) MACs per pixel: g_a (+ h_a + h_s) and (h_s +) g_s."""
    pixels = x.shape[2] * x.shape[3]
    with torch.no_grad():
        y = model.g_a(x)
    enc = macs_per_pixel(model.g_a, x)
    dec = macs_per_pixel(model.g_s, y)
    if hasattr(model, "h_a"):
        z = model.h_a(y)
        hyper = macs_per_pixel(model.h_a, y) + macs_per_pixel(model.h_s, z)
        enc += hyper
        dec += macs_per_pixel(model.h_s, z)
    return enc / pixels, dec / pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=KODIM if KODIM.exists() else None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality", type=float, help="default: each codec's default quality")
    parser.add_argument("--N", type=int, default=128)
    parser.add_argument("--M", type=int, default=192)
    parser.add_argument("--weights", nargs="*", default=[], help="ARCH=PATH trained weights to time instead")
    parser.add_argument("--untrained", action="store_true", help="ignore the shipped weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = args.image or Path(nicodec.__file__).parent / "assets" / "sample.png"
    image = Image.open(source).convert("RGB")
    if image.size != (768, 512):
        image = image.resize((768, 512), Image.LANCZOS)
    shipped = {} if args.untrained else {arch: str(path) for arch, path in nicodec.shipped_weights().items()}
    trained = {**shipped, **dict(item.split("=", 1) for item in args.weights)}
    print(f"image: {source.name} 768x512; torch {torch.__version__}, {args.threads} threads; "
          f"{platform.processor() or platform.machine()}; repeats {args.repeats} (median)\n")
    print("| model | N, M | params | weights MB | enc MAC/px | dec MAC/px | encode s (entropy) | decode s (entropy) | bpp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arch in sorted(nicodec.ARCHITECTURES):
        codec = nicodec.load(trained[arch]) if arch in trained else nicodec.create(arch, N=args.N, M=args.M, levels=6)
        q = codec.default_quality if args.quality is None else min(args.quality, codec.levels)
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
        enc_macs, dec_macs = transform_macs(codec.model, x)
        params = sum(p.numel() for p in codec.model.parameters())
        codec.compress(image, quality=q)  # warm-up
        enc, enc_ec, dec, dec_ec = [], [], [], []
        for _ in range(args.repeats):
            with _CodingClock() as clock:
                t0 = time.perf_counter()
                data = codec.compress(image, quality=q)
                enc.append(time.perf_counter() - t0)
            enc_ec.append(clock.seconds)
            with _CodingClock() as clock:
                t0 = time.perf_counter()
                codec.decompress(data)
                dec.append(time.perf_counter() - t0)
            dec_ec.append(clock.seconds)
        med = statistics.median
        c = codec.model.config
        size = _weights_mb(Path(trained[arch])) if arch in trained else "—"
        print(f"| {arch}{'' if arch in trained else ' (untrained)'} | {c.N}, {c.M} | {params / 1e6:.2f} M | {size} | "
              f"{enc_macs / 1e3:.0f} k | {dec_macs / 1e3:.0f} k | {med(enc):.3f} ({med(enc_ec):.3f}) | "
              f"{med(dec):.3f} ({med(dec_ec):.3f}) | {len(data) * 8 / (768 * 512):.3f} |")


def _weights_mb(path: Path) -> str:
    """The file's own size in MB, and what it borrows from another file (nicodec/weights.py)."""
    own, shared, lender = stored_bytes(path)
    return f"{megabytes(own)} (+ {megabytes(shared)} shared with {Path(lender).stem})" if lender else megabytes(own)


if __name__ == "__main__":
    main()
