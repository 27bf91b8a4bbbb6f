"""Encode/decode times of codecs on the same images, one thread, median over repeats.

A thin wrapper over ``nicodec bench`` so the benchmark can be run from a checkout:

    python benchmarks/codec_bench.py --data ../shared/data/kodak --max-images 4 \
        --codec jpeg --codec webp --codec avif --codec hevc --codec jpegxl --codec jpeg2000 \
        --codec nicodec:meanscale

Prints a Markdown table (per codec: quality, bpp, encode/decode ms, megapixels per second).
"""

import sys

from nicodec.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
