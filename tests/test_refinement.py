"""Encoder-side latent refinement: same file format, never a worse estimated R + λ·D, and with the
shipped weights fewer real bits-plus-distortion than the amortised encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nicodec
from nicodec.errors import NicodecError
from nicodec.refinement import RefineConfig, refine
from nicodec.variable_rate import quality_lambda


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255


def _crop(image, size: int = 128) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"))
    return rgb[100 : 100 + size, 200 : 200 + size].copy()


def test_quality_lambda_is_the_trained_lambda_at_levels_and_geometric_between():
    lambdas = [0.0018, 0.0035, 0.0067]
    assert [quality_lambda(lambdas, q) for q in (1, 2, 3)] == pytest.approx(lambdas)
    assert quality_lambda(lambdas, 1.5) == pytest.approx(math.sqrt(0.0018 * 0.0035))
    assert quality_lambda([0.01], 1) == 0.01


def test_coding_the_encoders_own_latent_as_an_override_changes_nothing(tiny_codec, rng):
    x = _tensor(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    plain = tiny_codec.model.compress(x, 2.0)
    y = tiny_codec.model.g_a(x) * tiny_codec.model.y_gain(torch.tensor([2.0]))
    overridden = tiny_codec.model.compress(x, 2.0, latents={"y": y})
    assert overridden.streams == plain.streams
    with pytest.raises(ValueError, match="shape"):
        tiny_codec.model.compress(x, 2.0, latents={"y": y[..., :2, :]})


def test_refinement_never_returns_a_worse_latent_and_restores_the_model(tiny_codec, rng):
    x = _tensor(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    model = tiny_codec.model
    refined = refine(model, x, 2.0, lam=0.01, config=RefineConfig(steps=6, check_every=2))
    assert refined.loss_after <= refined.loss_before
    assert refined.latents["y"].shape == (1, model.config.M, 4, 4)
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_refinement_is_deterministic_and_leaves_the_global_rng_alone(sample_image):
    codec = nicodec.load("meanscale")
    rgb = _crop(sample_image, 64)
    state = torch.random.get_rng_state()
    refined = [codec.compress(rgb, 3.0, refine=10) for _ in range(2)]
    assert refined[0] == refined[1] != codec.compress(rgb, 3.0)
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("name", ["meanscale", "factorized"])
def test_refined_files_decode_to_what_the_encoder_saw_and_cost_less(name, sample_image):
    """Real bits from the file plus λ·255²·MSE of the decoded 8-bit image: refinement must lower it
    (the shipped weights; a crop of the bundled sample, at a low and a high quality)."""
    codec = nicodec.load(name)
    rgb = _crop(sample_image)
    pixels = rgb.shape[0] * rgb.shape[1]
    for quality in (1.5, 5.5):
        lam = quality_lambda(codec.metadata["lambdas"], quality)
        costs = []
        for steps in (0, 30):
            data, coded = codec.encode(rgb, quality, refine=steps)
            decoded = codec.decode(data)
            for key, latent in coded.latents.items():  # the decoder rebuilt exactly the coded latents
                assert torch.equal(decoded.coded.latents[key], latent), key
            assert torch.equal(decoded.coded.x_hat, coded.x_hat)
            mse = np.mean((np.asarray(decoded.image, dtype=np.float64) - rgb) ** 2)
            costs.append(len(data) * 8 / pixels + lam * mse)
        assert costs[1] < costs[0] * 0.995, (quality, costs)


def test_refinement_needs_steps_and_trained_lambdas(tiny_codec, rng):
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for bad in (-1, 2.5, True, "5"):
        with pytest.raises(NicodecError, match="refine must be"):
            tiny_codec.compress(rgb, 2.0, refine=bad)
    with pytest.raises(NicodecError, match="λ values"):
        tiny_codec.compress(rgb, 2.0, refine=3)


def test_refinement_refuses_an_image_that_would_not_fit_in_memory(monkeypatch, sample_image):
    from nicodec import refinement

    twelve = 4032 * 3024
    refinement.check_memory(twelve, "mse", available=2 * 10**9)  # MSE: one tile's window held at a time
    with pytest.raises(NicodecError, match=r"12\.2-megapixel image needs about 12\.2 GB .* 8\.0 GB is available"):
        refinement.check_memory(twelve, "ms-ssim", available=8 * 10**9)  # MS-SSIM: the whole image
    with pytest.raises(NicodecError, match="needs about 1.2 GB"):
        refinement.check_memory(twelve, "mse", available=10**9)
    monkeypatch.setattr(refinement, "_available_memory", lambda: 10**6)  # the codec checks before any work
    with pytest.raises(NicodecError, match="without refinement"):
        nicodec.load("factorized").compress(sample_image, 3.0, refine=1)


@pytest.mark.parametrize("name", ["factorized", "meanscale"])
def test_tiled_refinement_loss_has_the_whole_image_value_and_gradient(name, sample_image, monkeypatch):
    """The MSE refinement loss synthesises tile by tile (bounded memory); with tiles of 64 pixels
    on a 200×136 crop its value and gradient match the whole-image R + λ·D of objective.rd_loss."""
    from nicodec import models
    from nicodec.latent_coders import OverridingCoder, RelaxedCoder
    from nicodec.models import ModelOutput, _nhwc
    from nicodec.objective import rd_loss
    from nicodec.refinement import _Problem

    model = nicodec.load(name).model.requires_grad_(False)  # as refine() has it
    x = _tensor(np.asarray(sample_image)[:192, :256])  # padded size; the image is 136 × 200
    size, q, lam = (136, 200), model._quality(3.0, 1), 0.0067
    y0 = model.analyze(x)
    problem = _Problem(model, x, size, y0, q, lam, "mse")

    def loss_and_grad(tile: int, whole: bool):
        monkeypatch.setattr(models, "TILE", tile)
        y = (y0 * model.y_gain(q)).detach().clone().requires_grad_(True)
        coder = OverridingCoder(RelaxedCoder("mixed", torch.Generator().manual_seed(0)), {"y": y})
        if whole:
            y_hat = model.code(coder, q, y0, model._latent_size(x.shape))
            x_hat = model._synthesize(_nhwc(y_hat), q)[..., : size[0], : size[1]]
            loss = rd_loss(x[..., : size[0], : size[1]], ModelOutput(x_hat, coder.likelihoods), torch.tensor([lam]), "mse")[0]
        else:
            loss = problem.loss(coder)
        loss.backward()
        return float(loss.detach()), y.grad

    reference, reference_grad = loss_and_grad(1 << 30, whole=True)
    value, grad = loss_and_grad(64, whole=False)
    assert value == pytest.approx(reference, rel=1e-5)
    error = float((grad - reference_grad).abs().max())
    assert error < 1e-4 * float(reference_grad.abs().max())
    monkeypatch.setattr(models, "HALOS", {**models.HALOS, "g_s": 1})  # the check can fail
    _, narrow = loss_and_grad(64, whole=False)
    assert float((narrow - reference_grad).abs().max()) > max(100 * error, 1e-6)


def test_progress_bar_only_when_asked(sample_image, capsys):
    codec = nicodec.load("factorized")
    crop = sample_image.crop((0, 0, 64, 64))
    quiet = codec.compress(crop, 3.0, refine=2)
    assert capsys.readouterr().err == ""
    assert codec.compress(crop, 3.0, refine=2, progress=True) == quiet
    assert "refining" in capsys.readouterr().err


def test_soft_rounding_blends_the_two_neighbours_and_hardens_as_the_temperature_falls():
    from nicodec.entropy_models import EntropyBottleneck
    from nicodec.latent_coders import RoundingCoder, SoftRoundingCoder

    density, gain = EntropyBottleneck(4), torch.ones(1, 4, 1, 1)
    value = (torch.rand(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 6 - 3).requires_grad_(True)
    hard = RoundingCoder()("y", density, value.detach(), gain)
    soft = {}
    for t in (0.5, 0.01):
        coder = SoftRoundingCoder(t, torch.Generator().manual_seed(0))
        soft[t] = coder("y", density, value, gain)
        assert bool(((soft[t] >= torch.floor(value)) & (soft[t] <= torch.floor(value) + 1)).all())
        assert coder.likelihoods["y"].shape == value.shape
    away = (value.detach() - torch.floor(value.detach()) - 0.5).abs() > 0.1  # not at a rounding boundary
    assert float((soft[0.01].detach() - hard)[away].abs().max()) < 1e-3
    assert float((soft[0.5].detach() - hard)[away].abs().mean()) > 0.05  # warm: a real blend
    soft[0.5].sum().backward()
    assert value.grad is not None and float(value.grad.abs().sum()) > 0
    other = SoftRoundingCoder(0.5, soft=("y",))  # latents not being refined are hard-rounded, as coded
    assert torch.equal(other("z", density, value.detach(), gain), hard)


def test_refinement_relaxations_and_sga_lowers_the_loss_more_than_trainings(sample_image):
    """The default relaxation (SGA) must beat training's "mixed" one at the same step count on
    the shipped meanscale (docs/benchmarks.md measured ~1.5× the loss reduction on Kodak crops)."""
    with pytest.raises(ValueError, match="relaxation"):
        RefineConfig(relaxation="noise")
    with pytest.raises(ValueError, match="temperature"):
        RefineConfig(temperature=(0.5, 0.0))
    codec = nicodec.load("meanscale")
    model, x = codec.model, _tensor(_crop(sample_image))
    lam = quality_lambda(codec.metadata["lambdas"], 4.0)
    cut = {}
    for relaxation, lr in (("sga", 0.01), ("mixed", 0.004)):
        r = refine(model, x, 4.0, lam, config=RefineConfig(steps=30, lr=lr, relaxation=relaxation))
        assert r.loss_after <= r.loss_before
        cut[relaxation] = 1 - r.loss_after / r.loss_before
    assert cut["sga"] > cut["mixed"] > 0, cut
