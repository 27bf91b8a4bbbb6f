"""Record what the shipped weights do on the bundled sample, for the regression test.

    python scripts/shipped_reference.py            # writes tests/shipped_reference.json

Run it once when new weights are committed (after checking them with `nicodec eval`): the test
`tests/test_shipped.py` then fails if a later change to the models, the entropy coder or the
weights makes the sample cost more bits or lose quality.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import nicodec
from nicodec import zoo
from nicodec.metrics import psnr

QUALITIES = (1.0, 6.0)  # the lowest level and the default
OUT = Path(__file__).resolve().parent.parent / "tests" / "shipped_reference.json"


def measure(name: str) -> dict:
    codec = nicodec.load(name)
    image = zoo.sample_image()
    reference = np.asarray(image)
    points = []
    for q in QUALITIES:
        data = codec.compress(image, quality=q)
        decoded = np.asarray(nicodec.decompress(data).convert("RGB"))
        points.append({"quality": q, "bytes": len(data), "bpp": len(data) * 8 / (image.width * image.height),
                       "psnr": psnr(reference, decoded)})
    return {"weights_id": codec.weights_id.hex(), "points": points}


def main() -> int:
    shipped = zoo.shipped_weights()
    if not shipped:
        print("no shipped weights in nicodec/weights/", file=sys.stderr)
        return 2
    result = {name: measure(name) for name in shipped}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in result.items():
        print(name, r["weights_id"], ", ".join(f"q{p['quality']:g}: {p['bpp']:.4f} bpp {p['psnr']:.2f} dB" for p in r["points"]))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
