#!/bin/bash
# Prepare (on the development machine, from the repository root) what a GPU machine needs for the
# standing job (scripts/gpu_train.sh) and the checks (scripts/gpu_check.sh, scripts/gpu_throughput.sh):
# the small JPEG training set, the 24 Kodak images and the VTM curve (the job's evaluation), the
# held-out photos' central 512² crops (evaluation beside Kodak; training leaves them out by name),
# four Kodak images for validation during check runs, and the one runtime dependency missing from
# the GPU image (constriction, for the range coder). All of it goes into folders that git ignores
# and that the device tool carries (64 MiB in all): .gpu-data (~58 MB) and .whl.
set -euo pipefail
SHARED=${SHARED:-../shared}
PY=${PYTHON:-python3}
grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .gpu-data && mkdir -p .gpu-data/val .gpu-data/anchors
cp -r "$SHARED/data/train-gpu" .gpu-data/
cp -r "$SHARED/data/kodak" .gpu-data/
cp "$SHARED/anchors/kodak/vtm.json" .gpu-data/anchors/
cp "$SHARED"/data/kodak/kodim0{1,4,7,9}.png .gpu-data/val/   # validation only, never trained on
PYTHONPATH=$PWD $PY scripts/held_out.py "$SHARED/data/train" .gpu-data/held-out --crop 512
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl constriction==0.5.0
du -sh .gpu-data .whl
