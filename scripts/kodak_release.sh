#!/bin/bash
# The Kodak numbers quoted in the README: the shipped models against the classical codecs measured
# here (docs/baselines.md) and the published anchors. Run from the repository root; each N=128
# model's 24 × 8–10 points take 3–5 min on 2 cores, the classical codecs more; then only new points are computed
# (results/kodak is resumable; OUT=results/baselines reuses the classical points of docs/baselines.md).
#   bash scripts/kodak_release.sh
#   MODELS="hyperprior" bash scripts/kodak_release.sh     # some of the shipped models only
set -euo pipefail
SHARED=${SHARED:-../shared}
A=$SHARED/anchors/kodak
OUT=${OUT:-results/kodak}
MODELS=${MODELS:-meanscale hyperprior factorized}
codecs=()
for m in $MODELS; do codecs+=(--codec "nicodec:$m"); done
nicodec eval --data "$SHARED/data/kodak" --out "$OUT" --jobs "${JOBS:-2}" --quiet \
    "${codecs[@]}" --codec jpeg --codec webp --codec avif --codec hevc \
    --anchors "$A/vtm.json" "$A/bpg_444_x265_ycbcr.json" "$A/webp.json" "$A/jpeg.json" \
              "$A/compressai-bmshj2018-factorized_mse_cuda.json" "$A/compressai-bmshj2018-hyperprior_mse_cuda.json" \
              "$A/compressai-mbt2018-mean_mse_cuda.json" \
    --anchor vtm --target-bpp 0.25 --crop-image kodim23.png
# BD-rates against the other published anchors the README quotes, and the PSNR difference at each
# of our points against the classical codecs measured here (log-rate interpolation)
python - "$OUT" "$A" $MODELS <<'PY' | tee "$OUT/bd_other_anchors.txt"
import sys
from pathlib import Path
from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate
from nicodec.evaluation.results import load_curve
out, anchors, models = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
for anchor in ("webp", "bpg_444_x265_ycbcr", "compressai-bmshj2018-hyperprior_mse_cuda"):
    a = load_curve(anchors / f"{anchor}.json")
    for model in models:
        r = load_curve(out / f"nicodec-{model}.json")
        try:
            value = f"{bd_rate(a.bpp, a.psnr, r.bpp, r.psnr):+.1f} %"
        except NicodecError as e:  # e.g. the curves share no PSNR range
            value = f"n/a ({e})"
        print(f"nicodec-{model} vs {a.name}: BD-rate {value}")
PY
python - "$OUT" $MODELS <<'PY' | tee "$OUT/psnr_gap_here.txt"
import sys
from pathlib import Path
from nicodec.evaluation.bdrate import quality_gaps
from nicodec.evaluation.results import load_curve
out, models = Path(sys.argv[1]), sys.argv[2:]
for model in models:
    ours = load_curve(out / f"nicodec-{model}.json")
    for ref in ("jpeg", "webp"):
        r = load_curve(out / f"{ref}.json")
        gaps = quality_gaps(r.bpp, r.psnr, ours.bpp, ours.psnr)
        print(f"nicodec-{model} vs {ref} (here), bpp:ΔPSNR dB: " + " ".join(f"{b:.2f}:{d:+.2f}" for b, d in gaps))
PY
mkdir -p docs/img
cp "$OUT/rd_psnr.png" docs/img/kodak_rd_psnr.png
cp "$OUT/rd_msssim.png" docs/img/kodak_rd_msssim.png
echo "plots copied to docs/img; tables: $OUT/summary.md, $OUT/bdrate.md"
