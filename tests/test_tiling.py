"""Tiled transforms (nicodec.tiling): the same values as the whole-image pass, bounded memory.

The models run their transforms in tiles of 1024 image pixels; these tests shrink the tile so
that small inputs span several, and check that the halos cover the transforms' receptive fields
(and that a narrower halo would not: the comparison can fail).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nicodec
from nicodec import models
from nicodec.tiling import tiled


def test_tiled_matches_whole_pass_for_a_local_function():
    x = torch.randn(2, 3, 80, 112)
    pool = lambda t: F.avg_pool2d(t, 16)  # noqa: E731 (no overlap between outputs: halo 0 is exact)
    assert torch.equal(tiled(pool, x, Fraction(1, 16), 32, 0), pool(x))
    up = lambda t: F.interpolate(t, scale_factor=4, mode="nearest")  # noqa: E731
    assert torch.equal(tiled(up, x, 4, 24, 0), up(x))


def test_small_inputs_take_the_untiled_path():
    calls = []
    tiled(lambda t: calls.append(t.shape) or t, torch.zeros(1, 1, 64, 48), 1, 64, 8)
    assert calls == [(1, 1, 64, 48)]


@pytest.mark.parametrize("tile, halo", [(0, 0), (24, 16), (32, 8)])
def test_tiles_must_make_whole_output_pixels(tile, halo):
    with pytest.raises(ValueError, match="whole output pixels"):
        tiled(lambda t: t, torch.zeros(1, 1, 64, 64), Fraction(1, 16), tile, halo)


# (architecture, transform, input shape, scale): every tiled transform of every architecture
TRANSFORMS = [
    (arch, name, shape, scale)
    for arch in sorted(models.ARCHITECTURES)
    for name, shape, scale in [
        ("g_a", (1, 3, 160, 224), Fraction(1, 16)), ("g_s", (1, 24, 10, 14), 16),
        ("h_a", (1, 24, 40, 56), Fraction(1, 4)), ("h_s", (1, 16, 10, 14), 4),
    ]
    if hasattr(models.build_model(arch, models.ModelConfig(N=4, M=4, levels=1)), name)
]


@pytest.mark.parametrize("arch, name, shape, scale", TRANSFORMS)
def test_halo_covers_the_receptive_field(arch, name, shape, scale):
    """In float64, tiles with the model's halo give the whole-image values up to rounding; a
    halo one step (the input's stride) narrower does not, so the check can fail."""
    torch.manual_seed(0)
    model = models.build_model(arch, models.ModelConfig(N=16, M=24, levels=1)).double().eval()
    transform = getattr(model, name)
    x = torch.rand(shape, dtype=torch.float64)
    step = Fraction(scale).denominator
    tile = shape[-1] // 3 // step * step  # three or more tiles across
    with torch.no_grad():
        whole = transform(x)
        errors = [float((tiled(transform, x, scale, tile, halo) - whole).abs().max()) / float(whole.abs().max())
                  for halo in (models.HALOS[name], models.HALOS[name] - step)]
    assert errors[0] < 1e-12 and errors[1] > 1e-6, errors


def test_tiled_coding_matches_whole_image_coding(monkeypatch, sample_image):
    """A shipped model on the sample: tiles of 128 pixels give the same symbols and bytes up to
    the rounding of float32 convolutions, and a decoder that rebuilds exactly the encoder's image."""
    codec = nicodec.load("meanscale")
    image = sample_image.crop((0, 0, 300, 200))
    whole, whole_coded = codec.encode(image, 3.0)
    whole_image = np.asarray(codec.decompress(whole), dtype=int)
    monkeypatch.setattr(models, "TILE", 128)
    data, coded = codec.encode(image, 3.0)
    assert torch.equal(coded.latents["z"], whole_coded.latents["z"])
    changed = (coded.latents["y"] - whole_coded.latents["y"]).abs() > 1e-9  # a symbol, not the mean's last bits
    assert float(changed.float().mean()) < 1e-3
    assert abs(len(data) - len(whole)) <= 8
    decoded = codec.decode(data)
    assert torch.equal(decoded.coded.x_hat, coded.x_hat)
    assert np.abs(np.asarray(decoded.image, dtype=int) - whole_image).max() <= 1
