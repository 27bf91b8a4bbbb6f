#!/bin/bash
# The Kodak numbers quoted in the README: the shipped models against the classical codecs measured
# here (docs/baselines.md) and the published anchors. Run from the repository root; the N=128
# models' 384 points take ~18 min on 2 cores, the classical codecs more; then only new points are computed
# (results/kodak is resumable; OUT=results/baselines reuses the classical points of docs/baselines.md).
#   bash scripts/kodak_release.sh
set -euo pipefail
SHARED=${SHARED:-../shared}
A=$SHARED/anchors/kodak
OUT=${OUT:-results/kodak}
nicodec eval --data "$SHARED/data/kodak" --out "$OUT" --jobs "${JOBS:-2}" --quiet \
    --codec nicodec:meanscale --codec nicodec:factorized \
    --codec jpeg --codec webp --codec avif --codec hevc \
    --anchors "$A/vtm.json" "$A/bpg_444_x265_ycbcr.json" "$A/webp.json" "$A/jpeg.json" \
              "$A/compressai-bmshj2018-factorized_mse_cuda.json" "$A/compressai-bmshj2018-hyperprior_mse_cuda.json" \
              "$A/compressai-mbt2018-mean_mse_cuda.json" \
    --anchor vtm --target-bpp 0.25 --crop-image kodim23.png
# BD-rates against the other published anchors the README quotes
for anchor in webp bpg_444_x265_ycbcr compressai-bmshj2018-hyperprior_mse_cuda; do
    python - "$OUT" "$A/$anchor.json" <<'PY'
import json, sys
from pathlib import Path
from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_rate
out, anchor = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
a = anchor["results"]
for name in ("nicodec-meanscale", "nicodec-factorized"):
    r = json.loads((out / f"{name}.json").read_text())["results"]
    try:
        value = f"{bd_rate(a['bpp'], a['psnr-rgb'], r['bpp'], r['psnr-rgb']):+.1f} %"
    except NicodecError as e:  # e.g. the curves share no PSNR range
        value = f"n/a ({e})"
    print(f"{name} vs {anchor['name']}: BD-rate {value}")
PY
done | tee "$OUT/bd_other_anchors.txt"
# PSNR difference at each of our points against the classical codecs measured here (log-rate interpolation)
python - "$OUT" <<'PY' | tee "$OUT/psnr_gap_here.txt"
import json, sys
from pathlib import Path
from nicodec.evaluation.bdrate import quality_gaps
out = Path(sys.argv[1])
curve = lambda label: json.loads((out / f"{label}.json").read_text())["results"]  # noqa: E731
for name in ("nicodec-meanscale", "nicodec-factorized"):
    ours = curve(name)
    for ref in ("jpeg", "webp"):
        r = curve(ref)
        gaps = quality_gaps(r["bpp"], r["psnr-rgb"], ours["bpp"], ours["psnr-rgb"])
        print(f"{name} vs {ref} (here), bpp:ΔPSNR dB: " + " ".join(f"{b:.2f}:{d:+.2f}" for b, d in gaps))
PY
mkdir -p docs/img
cp "$OUT/rd_psnr.png" docs/img/kodak_rd_psnr.png
cp "$OUT/rd_msssim.png" docs/img/kodak_rd_msssim.png
echo "plots copied to docs/img; tables: $OUT/summary.md, $OUT/bdrate.md"
