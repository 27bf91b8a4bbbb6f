"""Rate control: the highest quality whose real file fits a byte budget (Codec max_bytes, CLI
--max-bytes / --bpp)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import nicodec
from nicodec import container, refinement
from nicodec.cli import main
from nicodec.codec import UnrefinedWarning
from nicodec.errors import NicodecError
from nicodec.rate_control import largest_quality


def test_bisection_finds_the_largest_quality_within_budget():
    calls = []
    size = lambda q: calls.append(q) or int(1000 * 1.4**q)  # noqa: E731 (grows with q, like files)
    q = largest_quality(size, 1.0, 6.0, budget=5000, tolerance=0.01)
    threshold = np.log(5) / np.log(1.4)  # 1000·1.4^q = 5000
    assert size(q) <= 5000 and threshold - 0.01 <= q <= threshold
    assert len(calls) <= 12
    assert largest_quality(size, 1.0, 6.0, budget=10**6) == 6.0
    with pytest.raises(NicodecError, match="cannot fit in 100 bytes: the smallest file, at quality 1, is 1,400 bytes"):
        largest_quality(size, 1.0, 6.0, budget=100)


@pytest.fixture(scope="module")
def codec():
    return nicodec.load("factorized")


@pytest.fixture(scope="module")
def image(sample_image):
    return sample_image.crop((100, 50, 356, 242))


def test_the_file_fits_and_is_the_file_of_its_quality(codec, image):
    reference = codec.compress(image, 3.0)
    data, coded = codec.encode(image, max_bytes=len(reference))
    quality = container.unpack(data).quality
    assert len(data) <= len(reference) and 2.95 <= quality <= codec.levels
    assert data == codec.compress(image, quality)  # analysing once for all trials changes nothing
    assert torch.equal(codec.decode(data).coded.x_hat, coded.x_hat)
    everything = codec.compress(image, max_bytes=10**7)
    assert container.unpack(everything).quality == codec.levels


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_bytes=10**6, quality=3.0), "not both"),
    (dict(max_bytes=0), "max_bytes must be"),
    (dict(max_bytes=True), "max_bytes must be"),
    (dict(max_bytes="5000"), "max_bytes must be"),
    (dict(max_bytes=50), "cannot fit in 50 bytes"),
])
def test_bad_budgets_give_one_line_errors(codec, image, kwargs, message):
    with pytest.raises(NicodecError, match=message):
        codec.compress(image, **kwargs)


def test_refined_file_over_budget_falls_back_to_the_unrefined_one(codec, image, monkeypatch):
    budget = len(codec.compress(image, 3.0))
    fitted = codec.compress(image, max_bytes=budget)
    original = refinement.refine

    def costly(*args, **kwargs):  # a "refinement" that spends more bits
        refined = original(*args, **kwargs)
        return refinement.Refined({"y": refined.latents["y"] * 3}, refined.loss_before, refined.loss_after)

    monkeypatch.setattr(refinement, "refine", costly)
    with pytest.warns(UnrefinedWarning):
        assert codec.compress(image, refine=1, max_bytes=budget) == fitted
    monkeypatch.setattr(refinement, "refine", original)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrefinedWarning)
        refined = codec.compress(image, refine=10, max_bytes=budget)  # enough steps to move some latents
    assert len(refined) <= budget and refined != fitted


def test_cli_bpp_and_max_bytes(tmp_path, sample_image, capsys):
    src = tmp_path / "photo.png"
    sample_image.crop((0, 0, 256, 192)).save(src)
    assert main(["compress", str(src), "-m", "factorized", "--bpp", "0.8", "-o", str(tmp_path / "a.nic")]) == 0
    out = capsys.readouterr().out
    data = (tmp_path / "a.nic").read_bytes()
    assert len(data) * 8 / (256 * 192) <= 0.8 and f"{len(data):,} bytes" in out
    assert f"quality {container.unpack(data).quality:g} (fitted to {int(0.8 * 256 * 192 / 8):,} bytes)" in out
    assert main(["compress", str(src), "-m", "factorized", "--max-bytes", "40", "-o", str(tmp_path / "b.nic")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nicodec: error: cannot fit in 40 bytes") and err.count("\n") == 1
    assert not (tmp_path / "b.nic").exists()
    assert main(["compress", str(src), "--bpp", "0", "-o", str(tmp_path / "c.nic")]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse: a quality and a budget together
        main(["compress", str(src), "--bpp", "1", "-q", "2"])
    assert exc.value.code == 2
