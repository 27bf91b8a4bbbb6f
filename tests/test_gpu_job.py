"""The standing GPU job (scripts/gpu_train.sh), dry-run on the CPU with a tiny model: it continues
the weights it is given, leaves weights and logs in $OUT, and ends with one line comparing the
result with the shipped weights and an anchor through real files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nicodec
from nicodec.training import TrainConfig, export_weights, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_standing_job_runs_end_to_end_on_a_cpu_in_about_a_minute(tmp_path):
    """With options that fail (as torch.compile might on some GPU) it retries without them."""
    sample = nicodec.sample_image()
    folders = {name: tmp_path / name for name in ("train", "kodak", "held-out")}
    for folder in folders.values():
        folder.mkdir()
    for i, (x, y) in enumerate([(0, 0), (200, 40), (400, 280), (100, 250), (300, 150), (600, 300)]):
        sample.crop((x, y, x + 96, y + 96)).save(folders["train"] / f"{i:03d}.png")
    for i, (x, y) in enumerate([(10, 10), (500, 200)]):
        sample.crop((x, y, x + 128, y + 128)).save(folders["kodak"] / f"kodim{i:02d}.png")
    sample.crop((300, 300, 428, 364)).save(folders["held-out"] / "ho.png")
    shipped = tmp_path / "meanscale-tiny.safetensors"  # trained a little, so that its curve rises with the rate
    train(TrainConfig(data=str(folders["train"]), out=str(tmp_path / "first"), N=8, M=12, lambdas=(0.005, 0.02, 0.08),
                      patch=64, batch=4, steps=120, lr=3e-3, warmup=5, threads=1, progress=False, device="cpu"))
    export_weights(tmp_path / "first", shipped, half=True)
    anchor = tmp_path / "vtm.json"  # a wide made-up curve, so that every BD-rate has a range to integrate over
    anchor.write_text(json.dumps({"name": "vtm", "results": {"bpp": [0.02, 0.2, 1, 3, 8], "psnr-rgb": [5, 12, 20, 30, 45]}}))
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "DEVICE": "cpu", "N": "8", "M": "12",
           "BATCH": "2", "PATCH": "64", "WARMUP": "2", "DEFAULT_QUALITY": "2", "MINUTES": "0.25", "HARD_STOP": "60", "JOBS": "1",
           "DATA": str(folders["train"]), "KODAK": str(folders["kodak"]), "HELD_OUT": str(folders["held-out"]),
           "ANCHOR": str(anchor), "INIT_MEANSCALE": str(shipped), "SHIPPED_MEANSCALE": str(shipped),
           "EXTRA_ARGS": "--no-such-option", "OUT": str(out), "RUNS": str(runs)}  # fails: the job retries without it
    result = subprocess.run(["bash", "scripts/gpu_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert len(lines) == 1 and "kodak" in lines[0] and "vs vtm" in lines[0] and "held-out" in lines[0], result.stdout[-2000:]
    verdict = json.loads((out / "meanscale-result.json").read_text())
    assert verdict["kodak"]["images"] == 2 and verdict["held-out"]["images"] == 1
    assert math.isfinite(verdict["kodak"]["new_vs_anchor"]) and math.isfinite(verdict["kodak"]["shipped_vs_anchor"])
    assert all(isinstance(verdict[s]["vs_shipped"], float) for s in verdict)  # nan where the two share no quality range
    weights = nicodec.load(str(out / "meanscale.safetensors"))
    assert weights.model.exact_ready and weights.metadata["lineage"][-1]["from"] == shipped.name
    assert weights.metadata["data"]["images"] == 6 - round(6 * 0.08)  # the held-out share of the photos is left out
    assert (out / "meanscale-train.csv").read_text().startswith("step,") and (out / "logs.tar.gz").exists()
    log = (out / "meanscale.log").read_text()
    assert "training (--no-such-option) exited with 2" in log and "training (no extra options) exited with 0" in log
