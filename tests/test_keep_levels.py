"""Shipping fewer rate levels than were trained (nicodec.weights.keep_levels,
scripts/keep_levels.py): the kept levels must code exactly as before."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import nicodec
from nicodec import container
from nicodec.errors import NicodecError
from nicodec.weights import keep_levels

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "keep_levels.py"


def _four_level_codec(name: str) -> nicodec.Codec:
    codec = nicodec.create(name, N=8, M=12, levels=4, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():  # distinct levels, as after training
        for key, tensor in codec.model.state_dict().items():
            if key.endswith("log_gain"):
                tensor.add_(torch.randn_like(tensor) * 0.3 + torch.arange(4.0)[:, None])
    codec.metadata.update(lambdas=[0.001, 0.002, 0.004, 0.008], default_quality=4.0)
    return nicodec.Codec(codec.model, codec.metadata)


@pytest.mark.parametrize("name", sorted(nicodec.ARCHITECTURES))
def test_kept_levels_code_exactly_as_before(name, sample_image):
    codec = _four_level_codec(name)
    model, meta = keep_levels(codec.model, codec.metadata, [1, 2, 4])
    kept = nicodec.Codec(model, meta)
    assert kept.levels == 3 and meta["lambdas"] == [0.001, 0.002, 0.008]
    assert kept.default_quality == 3.0  # level 4 under its new number
    crop = sample_image.crop((0, 0, 64, 48))
    for old, new in ((1, 1), (1.5, 1.5), (2, 2), (4, 3)):
        before = container.unpack(codec.compress(crop, quality=old))
        after = container.unpack(kept.compress(crop, quality=new))
        assert after.weights_id == kept.weights_id != codec.weights_id
        assert dataclasses.replace(before, weights_id=after.weights_id, quality=new) == after, (old, new)
    with pytest.raises(NicodecError, match="pass the weights it was made with"):  # each file decodes with its own weights
        kept.decompress(codec.compress(crop, quality=1))


def test_keep_levels_refuses_levels_it_does_not_have():
    codec = _four_level_codec("factorized")
    for levels in ([], [0, 1], [2, 1], [1, 1], [5]):
        with pytest.raises(NicodecError, match="levels to keep"):
            keep_levels(codec.model, codec.metadata, levels)
    _, meta = keep_levels(codec.model, codec.metadata, [1, 2])
    assert "default_quality" not in meta  # level 4 is gone: the default rule applies


def test_script_keeps_fp16_and_never_overwrites_its_input(tmp_path):
    codec = _four_level_codec("meanscale")
    source = tmp_path / "four.safetensors"
    codec.save(source, half=True)
    out = tmp_path / "three.safetensors"
    run = lambda *argv: subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True)  # noqa: E731
    result = run(source, "--levels", "1-3", "-o", out)
    assert result.returncode == 0, result.stderr
    loaded = nicodec.load(out)
    assert loaded.levels == 3 and loaded.metadata["kept_levels"] == {"levels": [1, 2, 3], "of": 4, "from": nicodec.load(source).weights_id.hex()}
    with safe_open(str(out), framework="pt") as f:
        assert f.get_slice("y_gain.log_gain").get_dtype() == "F16"
    refused = run(source, "--levels", "1-3", "-o", source)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "overwrite" in refused.stderr
    assert nicodec.load(source).levels == 4
    bad = run(source, "--levels", "2-9", "-o", tmp_path / "x.safetensors")
    assert bad.returncode == 2 and "levels to keep" in bad.stderr
