"""Peak memory and time to encode and decode one large photo, with and without tiled transforms.

    python benchmarks/large_image.py [--size 4032x3024] [--tiles 1024,0] [--model meanscale] [--quality Q]

The test image is Kodak kodim01 (or the bundled sample without ../shared) resized to --size
with Lanczos: a smooth photo, so rates are low, but memory and transform time depend on the
pixel count, not the content. Each encode and each decode runs in a fresh process, so its peak
resident memory (ru_maxrss: model, image, activations and coding buffers) is its own. --tiles
lists values of ``nicodec.models.TILE`` to compare; 0 means one tile, the whole image (the
untiled transforms). Times are the codec calls only (no PNG reading or writing). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODIM = ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"


def child(mode: str, model: str, tile: int, quality: float, image: Path, nic: Path) -> dict:
    """Run one encode or decode in this process; its peak memory and seconds."""
    import nicodec
    from nicodec import models
    from nicodec.images import open_image

    models.TILE = tile or 1 << 30
    codec = nicodec.load(model)
    if mode == "encode":
        picture = open_image(image)
        start = time.perf_counter()
        data = codec.compress(picture, quality)
        seconds = time.perf_counter() - start
        nic.write_bytes(data)
        result = {"bytes": len(data), "pixels": picture.width * picture.height}
    else:
        data = nic.read_bytes()
        start = time.perf_counter()
        codec.decompress(data)
        seconds = time.perf_counter() - start
        result = {}
    return {**result, "seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4032x3024", help="WIDTHxHEIGHT of the test photo")
    parser.add_argument("--tiles", default="1024,0", help="TILE values to compare; 0 = untiled")
    parser.add_argument("--model", default="meanscale")
    parser.add_argument("--quality", type=float, help="default: the model's default quality")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "TILE", "QUALITY", "IMAGE", "NIC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, tile, quality, image, nic = args.child
        print(json.dumps(child(mode, args.model, int(tile), float(quality), Path(image), Path(nic))))
        return

    from PIL import Image

    import nicodec

    if args.quality is None:
        args.quality = nicodec.load(args.model).default_quality
    width, height = (int(v) for v in args.size.lower().split("x"))
    source = Image.open(KODIM).convert("RGB") if KODIM.is_file() else nicodec.sample_image()
    origin = KODIM.name if KODIM.is_file() else "the bundled sample"
    print(f"# {args.model} q{args.quality:g}, {width}×{height} ({width * height / 1e6:.1f} MP) resized from {origin}")
    print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")
    print("| tile | bpp | encode s | encode peak MB | decode s | decode peak MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        image, nic = Path(tmp) / "large.png", Path(tmp) / "large.nic"
        source.resize((width, height), Image.LANCZOS).save(image, compress_level=1)
        for tile in (int(t) for t in args.tiles.split(",")):
            run = lambda mode: json.loads(subprocess.run(  # noqa: E731
                [sys.executable, __file__, "--model", args.model, "--child", mode, str(tile), str(args.quality), str(image), str(nic)],
                check=True, capture_output=True, text=True).stdout)
            enc, dec = run("encode"), run("decode")
            print(f"| {tile or 'none (whole image)'} | {enc['bytes'] * 8 / enc['pixels']:.4f} | {enc['seconds']:.1f} | "
                  f"{enc['peak_mb']:.0f} | {dec['seconds']:.1f} | {dec['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
