"""The file's bits are what the model says they cost, and coding never clips a value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nicodec
from nicodec import entropy_coding
from nicodec.codec import Codec
from nicodec.entropy_models import EntropyBottleneck, GaussianConditional, GaussianParams


def _boosted(arch: str) -> Codec:
    """An untrained model whose gains put it at a realistic 0.4-1.6 bpp on a photograph."""
    model = nicodec.create(arch, N=32, M=48, levels=2, seed=1).model
    with torch.no_grad():
        model.y_gain.log_gain += math.log(8)
        if hasattr(model, "z_gain"):
            model.z_gain.log_gain += math.log(8)
    return Codec(model)


@pytest.mark.parametrize("arch", sorted(nicodec.ARCHITECTURES))
def test_payload_bits_are_within_one_percent_of_the_model_likelihood(arch, sample_image, payload_and_model_bits):
    codec = _boosted(arch)
    for quality in (1.0, 1.6):
        payload_bits, model_bits = payload_and_model_bits(codec, sample_image, quality)
        assert model_bits > 0.3 * sample_image.width * sample_image.height  # a realistic rate, not a trivial one
        assert abs(payload_bits / model_bits - 1) < 0.01, (payload_bits, model_bits)


def test_values_far_outside_the_tables_are_escaped_not_clipped():
    tables = entropy_coding.CodingTables([np.array([0.2, 0.6, 0.2, 1e-9])], np.array([-1]))
    symbols = np.array([0, 1, -1, 5, -7, 2**20, -(2**28), 0, 3])
    data = entropy_coding.encode(symbols, np.zeros(len(symbols), np.int64), tables)
    assert np.array_equal(entropy_coding.decode(data, np.zeros(len(symbols), np.int64), tables), symbols)


def test_a_huge_latent_in_the_gaussian_model_survives_coding():
    model = GaussianConditional()
    params = GaussianParams(scales=torch.full((1, 2, 3, 3), 0.2), means=torch.zeros(1, 2, 3, 3))
    y = torch.zeros(1, 2, 3, 3)
    y[0, 1, 2, 2] = 5000.0
    y[0, 0, 0, 0] = -123.0
    index, tables = model.coding_tables(params, y.shape)
    data = entropy_coding.encode(y.long().numpy(), index, tables)
    assert np.array_equal(entropy_coding.decode(data, index, tables), y.long().numpy().reshape(-1))


def test_factorized_density_is_a_distribution_at_any_gain():
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(4)
    bottleneck.update()
    for gain in (0.3, 1.0, 7.5):
        g = torch.full((1, 4, 1, 1), gain)
        index, tables = bottleneck.coding_tables(g, torch.Size((1, 4, 2, 2)))
        for pmf in tables.pmfs:
            assert abs(pmf.sum() - 1) < 1e-6 and pmf[-1] < 1e-6


def test_coding_before_freezing_is_an_error_not_a_wrong_file():
    bottleneck = EntropyBottleneck(2)
    with pytest.raises(RuntimeError, match="update"):
        bottleneck.coding_tables(torch.ones(1, 2, 1, 1), torch.Size((1, 2, 1, 1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_bin_whose_logits_cancel_still_has_its_probability(dtype):
    # With zero biases the learned CDF is odd, so F's logits at ±½/g cancel exactly: the bin
    # around 0 must still get F(½/g) − F(−½/g), not 0 (a channel that a gain near 0 switches off).
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(3)
    with torch.no_grad():
        for bias in bottleneck.biases:
            bias.zero_()
    for gain, expected in ((1.0, None), (1e-5, 1.0)):
        g = torch.full((1, 3, 1, 1), gain, dtype=dtype)
        p = bottleneck.likelihood(torch.zeros(1, 3, 1, 1, dtype=dtype), g).flatten()
        half = torch.full((3, 1, 1), 0.5 / gain, dtype=torch.float64)
        reference = torch.sigmoid(bottleneck._logits_cdf(half)) - torch.sigmoid(bottleneck._logits_cdf(-half))
        assert torch.allclose(p.double(), reference.flatten(), atol=1e-6), (p, reference)
        assert bool((p > 0.01).all())
        if expected is not None:
            assert torch.allclose(p.double(), torch.full_like(p.double(), expected), atol=1e-6)
