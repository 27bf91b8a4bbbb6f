#!/bin/bash
# Prepare (on the development machine, from the repository root) what a GPU machine needs to
# train: the small JPEG training set, four Kodak images for validation, and the one runtime
# dependency missing from the GPU image (constriction, for the range coder). All of it goes into
# folders that git ignores and that the device tool carries: .gpu-data and .whl.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .gpu-data/val
cp -r "$SHARED/train-gpu" .gpu-data/
cp "$SHARED"/kodak/kodim0{1,4,7,9}.png .gpu-data/val/   # validation only, never trained on
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl constriction==0.5.0
du -sh .gpu-data .whl
