"""The shipped weights: present in the package, loadable by name, and coding the bundled sample
as they did when they were made (tests/shipped_reference.json, written by
scripts/shipped_reference.py). A change to the models, the entropy coder or the weights that
costs bits or quality fails here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nicodec
from nicodec.metrics import psnr
from nicodec.variable_rate import quality_lambda

SHIPPED = ("factorized", "hyperprior", "meanscale")
REFERENCE = json.loads((Path(__file__).parent / "shipped_reference.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_codes_the_sample_as_when_its_weights_were_made(name):
    assert name in nicodec.shipped_weights(), f"no shipped weights for {name}"
    codec = nicodec.load(name)
    reference = REFERENCE[name]
    assert codec.weights_id.hex() == reference["weights_id"], (
        f"the shipped {name} weights changed: evaluate them, then rerun scripts/shipped_reference.py"
    )
    assert codec.metadata.get("trained") is True
    # quality levels were added below the GPU-trained ones; the default stays at λ 0.013
    assert quality_lambda(codec.metadata["lambdas"], codec.default_quality) == pytest.approx(0.013)
    image = nicodec.sample_image()
    pixels = image.width * image.height
    for point in reference["points"]:
        data = codec.compress(image, quality=point["quality"])
        decoded = nicodec.decompress(data)  # the model is found from the header
        bpp = len(data) * 8 / pixels
        quality = psnr(np.asarray(image), np.asarray(decoded))
        assert bpp == pytest.approx(point["bpp"], rel=0.005), f"quality {point['quality']}"
        assert quality == pytest.approx(point["psnr"], abs=0.05), f"quality {point['quality']}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_rate_estimate_is_what_the_coder_writes(name, payload_and_model_bits):
    # estimate() (validation, training logs) must predict the payload at every level, including
    # the lowest, where trained models switch channels off with gains near 0.
    codec = nicodec.load(name)
    image = nicodec.sample_image()
    for quality in (1.0, float(codec.levels)):
        payload_bits, model_bits = payload_and_model_bits(codec, image, quality)
        assert abs(payload_bits / model_bits - 1) < 0.02, (quality, payload_bits, model_bits)


def test_demo_uses_the_shipped_default_model_and_reports_sensible_numbers():
    result = subprocess.run([sys.executable, "-m", "nicodec", "demo"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "shipped weights" in result.stdout and "UNTRAINED" not in result.stdout
    rows = re.findall(r"quality\s+([\d.]+):\s+[\d,]+ bytes\s+([\d.]+) bpp\s+PSNR\s+([\d.]+) dB", result.stdout)
    assert len(rows) == 3
    bpps, psnrs = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
    assert bpps == sorted(bpps) and psnrs == sorted(psnrs)  # more bits, more quality
    # sensible numbers for a photograph, loose enough for any trained release (see the README's
    # Kodak table for the real ones); an untrained or broken model lands far outside
    assert 0.02 < bpps[0] < 0.5 and psnrs[0] > 28
    assert 0.3 < bpps[-1] < 3 and psnrs[-1] > 34
