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


@pytest.mark.parametrize("in_ch, out_ch, kernel, stride", [(8, 3, 5, 2), (6, 3, 3, 2), (5, 4, 5, 3), (8, 16, 7, 2)])
def test_deconv_at_inference_computes_the_transposed_convolution(in_ch, out_ch, kernel, stride):
    """The last synthesis layer runs as a convolution + pixel shuffle at inference: the same values
    (to float rounding) and shape as ConvTranspose2d, for any input size; training keeps the original."""
    from nicodec.layers import Deconv

    torch.manual_seed(in_ch + kernel)
    layer = Deconv(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)
    assert layer._subpixel_ok()
    for shape in ((1, in_ch, 1, 1), (2, in_ch, 7, 9), (1, in_ch, 4, 13)):
        x = torch.randn(shape)
        with torch.no_grad():
            reference = torch.nn.ConvTranspose2d.forward(layer, x)
            out = layer(x)
            out_nhwc = layer(x.contiguous(memory_format=torch.channels_last))
        assert out.shape == reference.shape == (shape[0], out_ch, shape[2] * stride, shape[3] * stride)
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out_nhwc, reference, atol=1e-5, rtol=1e-5)
    layer.weight.data.mul_(2)  # a weight edited in place is seen
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.ConvTranspose2d.forward(layer, x), atol=1e-5, rtol=1e-5)
    y = layer(x.requires_grad_())
    assert y.grad_fn is not None and "Convolution" in type(y.grad_fn).__name__  # training: the transposed kernels


def test_wide_deconv_layers_stay_transposed():
    from nicodec.layers import Deconv

    assert not Deconv(8, 17, 5, stride=2, padding=2, output_padding=1)._subpixel_ok()
    assert not Deconv(8, 3, 4, stride=2, padding=2, output_padding=1)._subpixel_ok()  # output not exactly 2×


def test_coding_tensors_get_canonical_channels_last_strides():
    """An image tensor made as ``permute(2, 0, 1)[None]`` has batch stride 3: PyTorch calls it
    channels-last, oneDNN does not, and reorders after every layer. The
    transforms' inputs get canonical strides, viewing the same memory."""
    image = torch.arange(5 * 7 * 3, dtype=torch.float32).reshape(5, 7, 3)
    odd = image.permute(2, 0, 1)[None]
    assert odd.is_contiguous(memory_format=torch.channels_last) and odd.stride()[0] == 3
    fixed = models._nhwc(odd)
    assert fixed.stride() == (3 * 5 * 7, 1, 7 * 3, 3)
    assert fixed.data_ptr() == odd.data_ptr() and torch.equal(fixed, odd)
    nchw = torch.randn(2, 4, 3, 5)
    assert models._nhwc(nchw).stride() == (60, 1, 20, 4) and torch.equal(models._nhwc(nchw), nchw)


@pytest.mark.parametrize("inverse", [True, False])
@pytest.mark.parametrize("chunk_above", [0, 1 << 40])
def test_transforms_normalise_in_place_at_inference_with_forward_values(inverse, chunk_above, monkeypatch):
    """At inference a transform's GDN layers work in place, a few rows at a time for large tensors
    (GDN.normalize_): the same values as nn.Sequential's forward, for NCHW and channels-last inputs,
    odd heights that leave a short last chunk, a batch; the caller's input is never changed."""
    from nicodec.layers import GDN, Transform, conv

    monkeypatch.setattr(GDN, "CHUNK_ABOVE", chunk_above)  # 0: every tensor is chunked
    monkeypatch.setattr(GDN, "CHUNK_BYTES", 3 * 6 * 4 * 2)  # two rows of a (2, 6, ·, 3) float32 tensor
    torch.manual_seed(int(inverse))
    gdn = GDN(6, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(torch.rand(6, 6) * 0.05)
        gdn.beta.add_(torch.rand(6))
    transform = Transform(conv(4, 6, 3, 1), gdn, conv(6, 5, 3, 1), GDN(5, inverse=inverse))
    for shape in ((2, 4, 7, 3), (1, 4, 1, 1), (1, 4, 9, 11)):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(shape).contiguous(memory_format=layout)
            before = x.clone()
            with torch.no_grad():
                reference = torch.nn.Sequential.forward(transform, x)
                out = transform(x)
            torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-6)
            assert torch.equal(x, before)
            with torch.no_grad():  # normalize_ alone, on a tensor the caller gives up
                y = torch.randn(shape[0], 6, shape[2], shape[3]).contiguous(memory_format=layout) * 3
                expected = gdn(y)
                assert gdn.normalize_(y) is y
                torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)
    leading = Transform(GDN(4, inverse=inverse), conv(4, 3, 3, 1))  # a GDN first gets the caller's tensor
    x = torch.randn(1, 4, 5, 6)
    before = x.clone()
    with torch.no_grad():
        torch.testing.assert_close(leading(x), torch.nn.Sequential.forward(leading, x), atol=1e-6, rtol=1e-6)
    assert torch.equal(x, before)
    out = transform(x.requires_grad_())  # training: nn.Sequential's forward, differentiable
    assert out.grad_fn is not None
