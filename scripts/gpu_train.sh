#!/bin/bash
# The standing GPU job: whenever a GPU is lent, run this first. It continues the current best model from
# its weights for MINUTES of training, writes weights and logs into $OUT as it goes (a run cut off still
# brings something back), then codes Kodak (and the held-out photos) with the new and the shipped weights
# through real files on every CPU core and prints one line:
#   RESULT meanscale.safetensors: kodak +62.1 % vs vtm (shipped +64.5 %), -1.3 % vs shipped meanscale-r2; held-out ...
# Shipping is decided here afterwards (docs/training.md, "The standing GPU job"): better on Kodak ->
# scripts/add_release.py; the ledger in docs/training.md gets a row either way.
#
# Here first: bash scripts/gpu_prepare.sh. Then with the device tool: command "bash scripts/gpu_train.sh",
# carry [".gpu-data", ".whl"], timeout_s 600. Budget (one call, <= 600 s): setup ~20 s, MINUTES of
# training, the final export, the evaluation (~1.5 min on 16 cores); HARD_STOP cuts training short
# (SIGINT: clean checkpoint) whatever happens, so that the evaluation still runs.
#
# Environment (defaults in brackets):
#   MODELS [meanscale]   the model(s) to train, one after another on the GPU (the standing model is meanscale
#                        until channelctx beats it at equal GPU minutes, docs/training.md)
#   INIT_<MODEL>         weights to continue from [candidates/<model>.safetensors if the repository keeps
#                        one (a model still catching up), else the newest release]; empty: from scratch
#   MINUTES [6.5]  HARD_STOP [450 s after the start]  BATCH [32]  PATCH [256]  WARMUP [500]
#   OPTIMIZER [soap]  LR [2e-3 with soap, 2e-4 with adam]  EMA [0.999: the exported weights are the moving average]
#                        (the CPU recipe study in docs/training.md; OPTIMIZER=adam EMA=0 is the recipe of sessions 1-4)
#   N, M [128, 192]  DEVICE [auto]  EXTRA_ARGS [--compile on a GPU] more `nicodec train` options; a run that
#                        fails before its first checkpoint is started again without them for the minutes left
#   DATA [.gpu-data/train-gpu]  KODAK [.gpu-data/kodak]  HELD_OUT [.gpu-data/held-out]
#   ANCHOR [.gpu-data/anchors/vtm.json]  SHIPPED_<MODEL> (what the result is compared with) [the newest release]
#   JOBS [every CPU core]  EVAL_IMAGES [all]  OUT [/tmp/gpu-train]  RUNS [/tmp/runs]
set -uo pipefail
OUT=${OUT:-/tmp/gpu-train}; RUNS=${RUNS:-/tmp/runs}; mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" PYTHONWARNINGS=ignore
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
DATA=${DATA:-.gpu-data/train-gpu}; KODAK=${KODAK:-.gpu-data/kodak}; HELD_OUT=${HELD_OUT:-.gpu-data/held-out}
ANCHOR=${ANCHOR:-.gpu-data/anchors/vtm.json}
MODELS=${MODELS:-meanscale}
MINUTES=${MINUTES:-6.5}; HARD_STOP=${HARD_STOP:-450}
N=${N:-128}; M=${M:-192}; BATCH=${BATCH:-32}; PATCH=${PATCH:-256}; WARMUP=${WARMUP:-500}
OPTIMIZER=${OPTIMIZER:-soap}; LR=${LR:-$([ "$OPTIMIZER" = soap ] && echo 2e-3 || echo 2e-4)}; EMA=${EMA:-0.999}
DEVICE=${DEVICE:-auto}; JOBS=${JOBS:-$(nproc)}; EVAL_IMAGES=${EVAL_IMAGES:-}
GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null)
[ "$DEVICE" = cpu ] && GPU=0
EXTRA_ARGS=${EXTRA_ARGS-$([ "$GPU" = 1 ] && echo --compile)}
DEFAULT_QUALITY=${DEFAULT_QUALITY:-6}  # level 6 is λ 0.013 in the shipped weights (tests/test_shipped.py checks)
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"; } \
    | tee "$OUT/gpu.txt"

snapshot() {  # weights (fp16, calibrated) and logs so far, into $OUT
    local name=$1
    [ -f "$RUNS/$name/checkpoint.pt" ] && $PY -m nicodec export "$RUNS/$name" -o "$OUT/$name.safetensors" --half --force \
        --default-quality "$DEFAULT_QUALITY" >/dev/null 2>&1
    cp "$RUNS/$name.log" "$OUT/" 2>/dev/null; cp "$RUNS/$name/train.csv" "$OUT/$name-train.csv" 2>/dev/null
    cp "$RUNS/$name/config.json" "$OUT/$name-config.json" 2>/dev/null
}

weights_of() {  # start|compare MODEL: the weights a run continues from / is judged against
    $PY - "$1" "$2" <<'PYTHON' 2>/dev/null
import sys
from pathlib import Path

import nicodec
from nicodec.models import ARCHITECTURES

role, name = sys.argv[1:]
shipped = nicodec.shipped_weights()
candidate = Path("candidates") / f"{name}.safetensors"  # an unreleased model still catching up
if role == "start":  # its candidate, its release, else the release of the model it warm-starts from
    order = [candidate if candidate.is_file() else None, shipped.get(name), *map(shipped.get, ARCHITECTURES[name].warm_start_from)]
else:  # its release, else the default model's: what it would replace
    order = [shipped.get(name), shipped.get(nicodec.DEFAULT_MODEL)]
print(next((p for p in order if p), ""))
PYTHON
}

for name in $MODELS; do
    init_var=INIT_${name^^}
    init=${!init_var-$(weights_of start "$name")}
    shipped_var=SHIPPED_${name^^}
    shipped=${!shipped_var-$(weights_of compare "$name")}
    args=(--data "$DATA" --model "$name" --N "$N" --M "$M" --batch "$BATCH" --patch "$PATCH" --lr "$LR" --warmup "$WARMUP"
          --optimizer "$OPTIMIZER" --ema "$EMA"
          --device "$DEVICE" --steps 1000000 --checkpoint-every 1000 --log-every 100 --no-progress)
    [ -n "$init" ] && args+=(--init "$init")
    echo "$name: from ${init:-scratch}, $MINUTES min, $OPTIMIZER LR $LR, EMA $EMA ${EXTRA_ARGS:+($EXTRA_ARGS)}, compared with ${shipped:-nothing}" | tee -a "$OUT/gpu.txt"
    ( while sleep 90; do snapshot "$name"; done ) >/dev/null 2>&1 &  # not holding stdout: the call ends when training does
    exporter=$!
    t_train=$(date +%s)
    for extra in "$EXTRA_ARGS" ""; do
        left=$((HARD_STOP - ($(date +%s) - T0)))
        minutes=$($PY -c "print(round($MINUTES - ($(date +%s) - $t_train) / 60, 2))")
        $PY -c "import sys; sys.exit($minutes < 0.05 or $left < 20)" || break
        timeout -s INT "$left" $PY -m nicodec train "${args[@]}" --minutes "$minutes" $extra --out "$RUNS/$name" >> "$RUNS/$name.log" 2>&1
        status=$?; echo "$name: training (${extra:-no extra options}) exited with $status" >> "$RUNS/$name.log"
        [ -f "$RUNS/$name/checkpoint.pt" ] || [ -z "$extra" ] && break
        rm -rf "$RUNS/$name"  # it failed before its first checkpoint: the same again without the extra options
    done
    kill $exporter 2>/dev/null; wait $exporter 2>/dev/null
    snapshot "$name"
    tail -3 "$RUNS/$name.log"
    if [ -f "$OUT/$name.safetensors" ] && [ -n "$shipped" ]; then
        sets=(--data "kodak=$KODAK"); [ -d "$HELD_OUT" ] && sets+=(--data "held-out=$HELD_OUT")
        [ -f "$ANCHOR" ] && sets+=(--anchor "kodak=$ANCHOR")
        $PY scripts/job_eval.py --new "$OUT/$name.safetensors" --shipped "$shipped" "${sets[@]}" --jobs "$JOBS" \
            --out "$RUNS/eval-$name" ${EVAL_IMAGES:+--max-images "$EVAL_IMAGES"} 2>&1 | tee -a "$OUT/result.txt"
        cp "$RUNS/eval-$name/result.json" "$OUT/$name-result.json" 2>/dev/null
    fi
done
tar -C "$RUNS" -czf "$OUT/logs.tar.gz" --exclude=checkpoint.pt --exclude='*.safetensors' --exclude=tb --exclude='*.nic' .
ls -l "$OUT"; echo "total $(( $(date +%s) - T0 )) s"
