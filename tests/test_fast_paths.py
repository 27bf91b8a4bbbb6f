"""The bfloat16 paths (``fast``): used only where the hardware has fast bf16, close to the float32
reference where they are, and the float32 path exactly where they are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nicodec
from nicodec import models


@pytest.fixture(scope="module")
def coded(sample_image):
    codec = nicodec.create("meanscale", N=16, M=24, levels=3, seed=3)
    image = sample_image.crop((200, 100, 328, 196))
    return codec, image, codec.compress(image, quality=2.5)


def test_fast_decoding_stays_within_a_few_levels_of_the_float32_reference(coded):
    codec, _, data = coded
    exact = np.asarray(codec.decompress(data), np.int16)
    fast = np.asarray(codec.decompress(data, fast=True), np.int16)
    if models.fast_synthesis(torch.device("cpu")):
        assert np.abs(fast - exact).max() <= 4
    else:
        assert np.array_equal(fast, exact)  # no fast bf16 on this CPU: the float32 path, unchanged


def test_fast_encoding_writes_a_file_every_decoder_reads(coded):
    codec, image, data = coded
    fast = codec.compress(image, quality=2.5, fast=True)
    decoded = codec.decode(fast)
    assert decoded.image.size == image.size
    if not models.fast_synthesis(torch.device("cpu")):
        assert fast == data


def test_without_fast_bf16_hardware_nothing_changes(coded, monkeypatch):
    codec, image, data = coded
    monkeypatch.setattr(models, "fast_synthesis", lambda device: False)
    assert codec.compress(image, quality=2.5, fast=True) == data
    assert np.array_equal(np.asarray(codec.decompress(data, fast=True)), np.asarray(codec.decompress(data)))
