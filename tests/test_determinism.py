"""What nicodec promises about decoded values (docs/format.md, "What decoding promises"): the
entropy-decoded latents are identical on every machine, thread count and memory layout; the
pixels come from a float synthesis and may differ by at most ±1 per 8-bit sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nicodec
from nicodec.codec import _to_uint8
from nicodec.models import _nhwc


def _decode(codec: nicodec.Codec, data: bytes, threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return codec.decode(data)
    finally:
        torch.set_num_threads(before)


def _cases():
    rng = np.random.default_rng(26)
    yield "shipped factorized, the reported case", nicodec.load("factorized"), \
        nicodec.sample_image().convert("RGBA").crop((300, 100, 403, 338)), 2.37
    for arch in sorted(nicodec.ARCHITECTURES):
        image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
        yield f"tiny {arch}", nicodec.create(arch, N=8, M=12, levels=3, seed=1), image, 2.5


@pytest.mark.parametrize("label, codec, image, quality", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_one_file_decodes_to_the_same_latents_and_pixels_within_one_with_one_or_two_threads(label, codec, image, quality):
    data = codec.compress(image, quality=quality)
    one, two = _decode(codec, data, 1), _decode(codec, data, 2)
    assert one.coded.latents.keys() == two.coded.latents.keys()
    for name, latent in one.coded.latents.items():
        assert torch.equal(latent, two.coded.latents[name]), name
    a, b = np.asarray(one.image, np.int16), np.asarray(two.image, np.int16)
    assert a.shape == b.shape and int(np.abs(a - b).max()) <= 1


@pytest.mark.parametrize("label, codec, image, quality", list(_cases())[:2], ids=lambda v: v if isinstance(v, str) else "")
def test_the_synthesis_gives_pixels_within_one_in_either_memory_layout(label, codec, image, quality):
    decoded = codec.decode(codec.compress(image, quality=quality))
    model = codec.model
    y_hat = decoded.coded.latents["y"].float()
    q = model._quality(decoded.header.quality, 1)
    with torch.no_grad():
        planar = _to_uint8(model._synthesize(y_hat.contiguous(), q)[0].clamp(0, 1)).astype(np.int16)
        channels_last = _to_uint8(model._synthesize(_nhwc(y_hat), q)[0].clamp(0, 1)).astype(np.int16)
    assert int(np.abs(planar - channels_last).max()) <= 1
