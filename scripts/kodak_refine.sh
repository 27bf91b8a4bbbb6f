#!/bin/bash
# What encoder-side latent refinement (nicodec compress --refine) buys on Kodak: each model in MODELS
# with and without STEPS refinement steps, on the first IMAGES images, at the qualities GRID, real
# files; WebP measured on the same images. ~1 s per step per image on 2 cores: the defaults (both
# models, 8 images, 4 qualities, 50 steps) take about an hour. Resumable (results in OUT).
#   bash scripts/kodak_refine.sh
#   MODELS=meanscale GRID=1,4,7,9 bash scripts/kodak_refine.sh   # the default model up to its top level
set -euo pipefail
SHARED=${SHARED:-../shared}
OUT=${OUT:-results/refine}
STEPS=${STEPS:-50}
MODELS=${MODELS:-meanscale factorized}
GRID=${GRID:-1,3,6,8}  # qualities every shipped model has
codecs=()
for m in $MODELS; do codecs+=(--codec "nicodec:$m@$GRID" --codec "nicodec:$m:refine=$STEPS@$GRID"); done
nicodec eval --data "$SHARED/data/kodak" --max-images "${IMAGES:-8}" --out "$OUT" --jobs "${JOBS:-2}" --quiet \
    "${codecs[@]}" --codec webp --anchor webp --target-bpp 0.5
python - "$OUT" "$STEPS" $MODELS <<'PY' | tee "$OUT/refinement.txt"
import json, sys
from pathlib import Path
from nicodec.evaluation.bdrate import bd_psnr, bd_rate, quality_gaps
out, steps, models = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
curve = lambda label: json.loads((out / f"{label}.json").read_text())["results"]  # noqa: E731
webp = curve("webp")
for name in models:
    plain, refined = curve(f"nicodec-{name}"), curve(f"nicodec-{name}-refine{steps}")
    args = (plain["bpp"], plain["psnr-rgb"], refined["bpp"], refined["psnr-rgb"])
    print(f"{name}: refine {steps} vs none: BD-rate {bd_rate(*args):+.1f} %, BD-PSNR {bd_psnr(*args):+.2f} dB")
    for label, r in (("none", plain), (f"refine {steps}", refined)):
        gaps = quality_gaps(webp["bpp"], webp["psnr-rgb"], r["bpp"], r["psnr-rgb"])
        print(f"  {label} vs webp (here, same images), bpp:ΔPSNR dB: " + " ".join(f"{b:.3f}:{d:+.2f}" for b, d in gaps))
PY
