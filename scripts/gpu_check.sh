#!/bin/bash
# Run ON the GPU machine from the repository root, after scripts/gpu_prepare.sh here, e.g. with the
# device tool: command "bash scripts/gpu_check.sh", carry [".gpu-data", ".whl"].
# Checks the CUDA path end to end and measures throughput; results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
DATA=${DATA:-.gpu-data/train-gpu}; VAL=${VAL:-.gpu-data/val}; STEPS=${STEPS:-1500}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

# 1. the CPU test file still passes there (python 3.12, torch 2.11)
python3 -m pytest -q -p no:cacheprovider tests/test_training.py 2>&1 | tail -5 | tee "$OUT/tests.txt"

# 2. a short real run: GPU-resident data, bf16 autocast, channels_last, TF32, real-bpp validation
python3 -m nicodec train --data "$DATA" --val "$VAL" --model meanscale --steps "$STEPS" --warmup 200 \
    --val-every $((STEPS / 2)) --checkpoint-every 500 --log-every 100 --out /tmp/run-ms --no-progress 2>&1 | tee "$OUT/train.txt"
cp /tmp/run-ms/train.csv "$OUT/train.csv"; cp /tmp/run-ms/val.csv "$OUT/val.csv"

# 3. resume on CUDA continues (a few more steps), export, and code a real file with the weights
python3 -m nicodec train --out /tmp/run-ms --resume --steps $((STEPS + 100)) --no-progress 2>&1 | tail -3 | tee -a "$OUT/train.txt"
python3 -m nicodec export /tmp/run-ms -o /tmp/ms.safetensors --half \
    && python3 -m nicodec compress "$VAL/kodim01.png" -m /tmp/ms.safetensors -o /tmp/k1.nic -q 3.5 \
    && python3 -m nicodec decompress /tmp/k1.nic -m /tmp/ms.safetensors -o /tmp/k1.png 2>&1 | tee -a "$OUT/train.txt"

# 4. DDP through torchrun (NCCL), one process on the one GPU
torchrun --standalone --nproc_per_node=1 -m nicodec train --data "$DATA" --model hyperprior --steps 200 \
    --log-every 50 --out /tmp/run-ddp --no-progress 2>&1 | tail -4 | tee "$OUT/ddp.txt"

# 5. throughput table for docs/training.md (bf16, then fp32/TF32, then torch.compile)
python3 benchmarks/train_throughput.py --device cuda 2>/dev/null | tee "$OUT/throughput.md"
python3 benchmarks/train_throughput.py --device cuda --precision fp32 --models meanscale 2>/dev/null | tail -2 | tee -a "$OUT/throughput.md"
python3 benchmarks/train_throughput.py --device cuda --compile --models meanscale 2>/dev/null | tail -2 | tee -a "$OUT/throughput.md"
