#!/bin/bash
# What encoder-side latent refinement (nicodec compress --refine) buys on Kodak: each shipped model
# with and without STEPS refinement steps, on the first IMAGES images, 4 qualities, real files; WebP
# measured on the same images. ~1 s per step per image on 2 cores: the defaults (8 images, 50 steps)
# take about an hour. Resumable (results in OUT).
#   bash scripts/kodak_refine.sh
set -euo pipefail
SHARED=${SHARED:-../shared}
OUT=${OUT:-results/refine}
STEPS=${STEPS:-50}
GRID=${GRID:-3,4.6667,6.3333,8}  # the GPU-trained levels (1, 2.67, 4.33, 6 of the six-level weights the docs quote)
nicodec eval --data "$SHARED/data/kodak" --max-images "${IMAGES:-8}" --out "$OUT" --jobs "${JOBS:-2}" --quiet \
    --codec "nicodec:meanscale@$GRID" --codec "nicodec:meanscale:refine=$STEPS@$GRID" \
    --codec "nicodec:factorized@$GRID" --codec "nicodec:factorized:refine=$STEPS@$GRID" \
    --codec webp --anchor webp --target-bpp 0.5
python - "$OUT" "$STEPS" <<'PY' | tee "$OUT/refinement.txt"
import json, sys
from pathlib import Path
from nicodec.evaluation.bdrate import bd_psnr, bd_rate, quality_gaps
out, steps = Path(sys.argv[1]), sys.argv[2]
curve = lambda label: json.loads((out / f"{label}.json").read_text())["results"]  # noqa: E731
webp = curve("webp")
for name in ("meanscale", "factorized"):
    plain, refined = curve(f"nicodec-{name}"), curve(f"nicodec-{name}-refine{steps}")
    args = (plain["bpp"], plain["psnr-rgb"], refined["bpp"], refined["psnr-rgb"])
    print(f"{name}: refine {steps} vs none: BD-rate {bd_rate(*args):+.1f} %, BD-PSNR {bd_psnr(*args):+.2f} dB")
    for label, r in (("none", plain), (f"refine {steps}", refined)):
        gaps = quality_gaps(webp["bpp"], webp["psnr-rgb"], r["bpp"], r["psnr-rgb"])
        print(f"  {label} vs webp (here, same images), bpp:ΔPSNR dB: " + " ".join(f"{b:.3f}:{d:+.2f}" for b, d in gaps))
PY
