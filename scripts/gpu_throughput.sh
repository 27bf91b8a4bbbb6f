#!/bin/bash
# Training throughput on a GPU, every option in one call (<= 5 minutes): meanscale N=128/M=192, bf16,
# channels_last, batch 32 (and 64) of 256², eager against torch.compile (Inductor: GDN, noise and
# likelihoods fused into few kernels), torch.compile with CUDA graphs (reduce-overhead) and with kernel
# search (max-autotune-no-cudagraphs), SOAP's cost per step, and channelctx. Each row is the mean of
# STEPS steps after STEPS warm-up steps (compilation falls in the warm-up). A variant that fails says
# so in its row and the others still run. Tables in $OUT/throughput.md (docs/training.md, "Throughput").
#
# Here first: bash scripts/gpu_prepare.sh (the constriction wheel). Then with the device tool: command
# "bash scripts/gpu_throughput.sh", carry [".whl"], timeout_s 330.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-throughput}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" PYTHONWARNINGS=ignore
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
STEPS=${STEPS:-30}; DEVICE=${DEVICE:-cuda}; WIDTHS=${WIDTHS:-128x192}
bench() { $PY benchmarks/train_throughput.py --device "$DEVICE" --widths "$WIDTHS" --steps "$STEPS" "$@" 2>>"$OUT/stderr.txt"; }
{
    bench --models meanscale --batch 32 --variants eager,compile,compile:reduce-overhead,compile:max-autotune-no-cudagraphs,eager+soap
    bench --models meanscale --batch 64 --variants eager,compile | tail -n 1
    bench --models channelctx --batch 32 --variants eager,compile | tail -n 1
} | tee "$OUT/throughput.md"
