#!/bin/bash
# One borrowed-GPU training session for the release models, sized in wall-clock time.
# Run ON the GPU machine from the repository root, after scripts/gpu_prepare.sh here, e.g. with the
# device tool: command "bash scripts/gpu_train.sh", carry [".gpu-data", ".whl"], timeout 600 s.
#
# Trains the models in MODELS (default: meanscale and factorized) side by side on the one GPU (the
# first starts alone, so its first log rows give its single-process throughput), each with --minutes
# so that its LR has decayed when its time is up; MODELS=meanscale gives the GPU to one model.
# A background loop exports fp16 weights into $OUT every 90 s, so a session cut short still brings
# weights back; the final export, fp32 weights in parts (for the exact fp16 check) and the logs
# follow when the runs end.
# By default each run continues from the newest released weights (a new run, fresh optimiser, lineage kept,
# their λ levels unless EXTRA_ARGS has --lambdas; exported with --default-quality 6);
# INIT_MEANSCALE= INIT_FACTORIZED= (empty) start from scratch, as session 1 of 2026-11-26 did.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-train}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" PYTHONWARNINGS=ignore
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
DATA=${DATA:-.gpu-data/train-gpu}
MODELS=${MODELS:-meanscale factorized}
MINUTES=${MINUTES:-8.4}           # the first model's run; the others start HEAD_START s later and end with it
HEAD_START=${HEAD_START:-45}
N=${N:-128}; M=${M:-192}; BATCH=${BATCH:-16}; PATCH=${PATCH:-256}; LR=${LR:-2e-4}; WARMUP=${WARMUP:-500}
DEVICE=${DEVICE:-auto}; RUNS=${RUNS:-/tmp/runs}
HARD_STOP=${HARD_STOP:-555}       # seconds: SIGINT (clean checkpoint) to any run still going
EXTRA_ARGS=${EXTRA_ARGS:-}        # more `nicodec train` options for every run, e.g. "--compile"
DEFAULT_QUALITY=${DEFAULT_QUALITY:-6}  # of the exported weights: level 6 is λ 0.013 in the shipped weights (tests/test_shipped.py checks)
mkdir -p "$RUNS"
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"; } \
    | tee "$RUNS/gpu.txt"

train() {  # name model minutes init
    local init=()
    [ -n "$4" ] && init=(--init "$4")
    timeout -s INT $((HARD_STOP - ($(date +%s) - T0))) python3 -m nicodec train --data "$DATA" --model "$2" \
        --N "$N" --M "$M" --batch "$BATCH" --patch "$PATCH" --lr "$LR" --warmup "$WARMUP" --device "$DEVICE" \
        --minutes "$3" --steps 1000000 --checkpoint-every 1000 --log-every 100 --no-progress "${init[@]}" $EXTRA_ARGS \
        --out "$RUNS/$1" > "$RUNS/$1.log" 2>&1
    echo "$1 exited with $?" >> "$RUNS/$1.log"
}
export_all() {
    for name in $MODELS; do
        [ -f "$RUNS/$name/checkpoint.pt" ] && python3 -m nicodec export "$RUNS/$name" -o "$OUT/$name.safetensors" --half --force \
            --default-quality "$DEFAULT_QUALITY" >/dev/null 2>&1
    done
}

pids=()
for name in $MODELS; do
    init_var=INIT_${name^^}
    if [ ${#pids[@]} -eq 0 ]; then minutes=$MINUTES; else
        sleep "$HEAD_START"
        minutes=$(python3 -c "print(round($MINUTES - ($(date +%s) - $T0) / 60 + 0.1, 2))")
    fi
    current=$(python3 -c "import sys, nicodec; print(nicodec.shipped_weights()[sys.argv[1]])" "$name" 2>/dev/null)
    train "$name" "$name" "$minutes" "${!init_var-$current}" &
    pids+=($!)
done
( while sleep 90; do export_all; done ) >/dev/null 2>&1 &  # not holding stdout: the call ends when training does
exporter=$!
wait "${pids[@]}"
kill $exporter 2>/dev/null
export_all
# fp32 weights too, for the exact fp16 check here (benchmarks/half_precision.py): in 15 MB parts, as
# one file back may hold 16 MiB; here: cat M-fp32.safetensors.part* > M-fp32.safetensors
for name in $MODELS; do
    [ -f "$RUNS/$name/checkpoint.pt" ] && python3 -m nicodec export "$RUNS/$name" -o "$RUNS/$name-fp32.safetensors" --force >/dev/null 2>&1 \
        && split -b 15000000 -d "$RUNS/$name-fp32.safetensors" "$OUT/$name-fp32.safetensors.part"
done
for name in $MODELS; do tail -4 "$RUNS/$name.log"; done
tar -C "$RUNS" -czf "$OUT/logs.tar.gz" --exclude=checkpoint.pt --exclude='*.safetensors' --exclude=tb .
ls -l "$OUT"; echo "total $(( $(date +%s) - T0 )) s"
