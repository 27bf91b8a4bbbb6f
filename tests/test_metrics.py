"""PSNR-RGB and MS-SSIM-RGB: hand-computed values and agreement with pytorch-msssim."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from nicodec.errors import NicodecError
from nicodec.metrics import PSNR_CAP, ms_ssim, ms_ssim_db, msssim_scales, psnr, to_uint8_rgb


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients plus mild texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _noisy(a: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)


def test_psnr_of_a_constant_offset_is_computed_from_the_offset():
    a = np.full((8, 10, 3), 100, np.uint8)
    b = a + 5  # MSE = 25 over every pixel and channel
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))


def test_psnr_averages_the_error_over_channels_not_per_channel():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 30  # only red differs: MSE = 900 / 3 = 300
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 300))


def test_psnr_of_identical_images_is_capped_instead_of_infinite():
    a = _smooth_image(16, 16)
    assert psnr(a, a) == PSNR_CAP


def test_ms_ssim_of_identical_images_is_one():
    a = _smooth_image(200, 180)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(a[:40, :30], a[:40, :30]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(161, 170), (192, 256)])
@pytest.mark.parametrize("sigma", [3.0, 25.0])
def test_ms_ssim_matches_pytorch_msssim(shape, sigma):
    from pytorch_msssim import ms_ssim as reference

    a = _smooth_image(*shape)
    b = _noisy(a, sigma)
    to_t = lambda x: torch.from_numpy(x.copy()).double().permute(2, 0, 1)[None]  # noqa: E731
    ref = reference(to_t(a), to_t(b), data_range=255, size_average=True).item()
    assert ms_ssim(a, b) == pytest.approx(ref, abs=1e-4)


def test_ms_ssim_drops_as_distortion_grows():
    a = _smooth_image(176, 176)
    values = [ms_ssim(a, _noisy(a, s)) for s in (2, 10, 40)]
    assert 1 > values[0] > values[1] > values[2] > 0


def test_small_images_use_fewer_scales_and_still_give_sensible_values():
    assert msssim_scales(512, 768) == (5, 11)
    assert msssim_scales(161, 161) == (5, 11)
    assert msssim_scales(160, 400) == (4, 11)
    assert msssim_scales(48, 64) == (3, 11)
    assert msssim_scales(11, 11) == (1, 11)
    assert msssim_scales(6, 40) == (1, 5)
    a = _smooth_image(48, 64)
    for crop in [a, a[:12, :12], a[:5, :7], a[:1, :1]]:
        v = ms_ssim(crop, _noisy(crop, 10))
        assert 0 <= v <= 1 and math.isfinite(v)


def test_ms_ssim_in_db():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(1.0) == PSNR_CAP


def test_metrics_accept_pil_images_and_tensors():
    a = _smooth_image(20, 24)
    pil = Image.fromarray(a)
    t = torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255
    assert np.array_equal(to_uint8_rgb(pil), a)
    assert np.array_equal(to_uint8_rgb(t), a)
    assert psnr(pil, t) == PSNR_CAP


def test_images_of_different_sizes_are_a_clear_error():
    with pytest.raises(NicodecError, match="differ in size"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
