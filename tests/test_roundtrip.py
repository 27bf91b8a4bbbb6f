"""The decoder reproduces exactly what the encoder assumed, for every architecture, size and mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nicodec
from nicodec.codec import _to_uint8
from nicodec.models import _nhwc


def _assert_decoder_matches_encoder(codec: nicodec.Codec, image, quality: float) -> Image.Image:
    data, encoded = codec.encode(image, quality)
    decoded = codec.decode(data)
    assert encoded.latents.keys() == decoded.coded.latents.keys()
    for name, latent in encoded.latents.items():
        assert torch.equal(latent, decoded.coded.latents[name]), f"latent {name} differs"
    # the decoded image is the synthesis transform applied to the decoded latents
    q = torch.tensor([decoded.header.quality])
    y_hat = decoded.coded.latents["y"].float()  # coded in float64, synthesised in float32
    with torch.no_grad():  # in the layout the codec synthesises in (float32 rounding depends on it)
        x_hat = codec.model.g_s(_nhwc(y_hat) * codec.model.y_inverse_gain(q)).clamp(0, 1)
    h, w = decoded.header.height, decoded.header.width
    rgb = np.asarray(decoded.image.convert("RGB")) if decoded.image.mode in ("RGB", "RGBA") else None
    if rgb is not None:
        assert np.array_equal(rgb, _to_uint8(x_hat[0, :, :h, :w]))
    assert np.array_equal(_to_uint8(encoded.x_hat[0, :, :h, :w]), _to_uint8(x_hat[0, :, :h, :w]))
    return decoded.image


@pytest.mark.parametrize("size", [(1, 1), (17, 31), (768, 512), (1000, 1500)])
def test_latents_and_image_survive_the_round_trip_at_any_size(tiny_codec, size, rng):
    w, h = size
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = _assert_decoder_matches_encoder(tiny_codec, image, quality=2.25)
    assert out.size == (w, h) and out.mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_every_colour_mode_round_trips_and_alpha_is_lossless(tiny_codec, mode, rng):
    planes = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (23, 37, planes), dtype=np.uint8)
    image = Image.fromarray(array[:, :, 0] if planes == 1 else array, mode)
    out = _assert_decoder_matches_encoder(tiny_codec, image, quality=1.0)
    assert out.mode == mode and out.size == (37, 23)
    if mode in ("LA", "RGBA"):
        assert np.array_equal(np.asarray(out)[:, :, -1], array[:, :, -1])


@pytest.mark.parametrize("quality", [1.0, 1.37, 2.5, 3.0])
def test_fractional_qualities_round_trip(quality, sample_image):
    codec = nicodec.create("meanscale", N=16, M=16, levels=3, seed=3)
    crop = sample_image.crop((0, 0, 96, 64))
    _assert_decoder_matches_encoder(codec, crop, quality)


def test_higher_quality_spends_more_bits(tiny_codec, sample_image):
    sizes = [len(tiny_codec.compress(sample_image, quality=q)) for q in (1.0, 2.0, 3.0)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_numpy_and_torch_inputs_code_like_the_pil_image(tiny_codec, sample_image):
    crop = sample_image.crop((0, 0, 40, 24))
    array = np.asarray(crop)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255
    reference = tiny_codec.compress(crop, quality=2)
    assert tiny_codec.compress(array, quality=2) == reference
    assert tiny_codec.compress(tensor, quality=2) == reference
    assert tiny_codec.compress(tensor[None], quality=2) == reference


def test_decompress_finds_nothing_for_an_unshipped_model_and_says_so(tiny_codec, sample_image):
    data = tiny_codec.compress(sample_image.crop((0, 0, 8, 8)), quality=1)
    with pytest.raises(nicodec.NicodecError, match="weights"):
        nicodec.decompress(data)
    assert nicodec.decompress(data, codec=tiny_codec).size == (8, 8)


def test_a_codec_with_other_weights_refuses_the_file(sample_image):
    a = nicodec.create("factorized", N=8, M=8, levels=2, seed=0)
    b = nicodec.create("factorized", N=8, M=8, levels=2, seed=1)
    data = a.compress(sample_image.crop((0, 0, 16, 16)), quality=1)
    with pytest.raises(nicodec.NicodecError, match="weights"):
        b.decompress(data)


def test_quality_outside_the_trained_range_is_rejected(tiny_codec, sample_image):
    for bad in (0.5, 3.5, float("nan"), "high"):
        with pytest.raises(nicodec.NicodecError, match="quality"):
            tiny_codec.compress(sample_image, quality=bad)


@pytest.mark.parametrize(
    "image, message",
    [
        (Image.new("I;16", (8, 8)), "16-bit"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((4, 4), np.int32), "uint8"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        ("not an image", "cannot compress"),
    ],
)
def test_unsupported_inputs_get_a_clear_error(tiny_codec, image, message):
    with pytest.raises(nicodec.NicodecError, match=message):
        tiny_codec.compress(image)


def test_palette_and_cmyk_images_are_converted(tiny_codec, rng):
    rgb = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    assert tiny_codec.decompress(tiny_codec.compress(palette)).mode == "RGB"
    transparent = rgb.convert("P")
    transparent.info["transparency"] = 0
    assert tiny_codec.decompress(tiny_codec.compress(transparent)).mode == "RGBA"
    assert tiny_codec.decompress(tiny_codec.compress(rgb.convert("CMYK"))).mode == "RGB"


def _table_indices(model, z: torch.Tensor, threads: int, channels_last: bool) -> np.ndarray:
    """Gaussian table indices that the hyper-synthesis output selects, for many rates."""
    from nicodec.entropy_models import scale_indices

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    try:
        with torch.no_grad():
            scales = model.h_s.to(memory_format=fmt)(z.contiguous(memory_format=fmt)).chunk(2, 1)[0].abs()
    finally:
        model.h_s.to(memory_format=torch.contiguous_format)
        torch.set_num_threads(before)
    return np.stack([scale_indices(scales * k) for k in np.logspace(0, 3, 24)])


def test_coding_tables_do_not_depend_on_threads_or_memory_layout():
    """A file must decode on another machine: the decoder's table choice may not depend on how
    the convolutions are computed. In float32 a hundred of these ~7 M choices flip between
    2 threads / NCHW and 1 thread / channels_last; the float64 coding path flips none."""
    codec = nicodec.create("meanscale", N=32, M=48, levels=3)
    coding = codec.model._coding_copy()
    assert all(p.dtype == torch.float64 for p in coding.parameters())
    z = torch.randint(-4, 5, (1, 32, 20, 20), generator=torch.Generator().manual_seed(0)).double()
    a, b = _table_indices(coding, z, 2, False), _table_indices(coding, z, 1, True)
    assert a.size > 7 * 10**6 and len(np.unique(a)) > 100
    assert np.array_equal(a, b)


def test_a_file_encoded_with_two_threads_decodes_with_one(rng):
    codec = nicodec.create("meanscale", N=32, M=48, levels=3)
    image = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        data, encoded = codec.encode(image, 2.5)
        torch.set_num_threads(1)
        decoded = codec.decode(data)
    finally:
        torch.set_num_threads(before)
    for name, latent in encoded.latents.items():
        assert torch.equal(latent, decoded.coded.latents[name])


def test_compress_writes_the_same_file_as_encode_without_running_the_synthesis(tiny_codec, rng, monkeypatch):
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    data, coded = tiny_codec.encode(image, 2.0)
    assert coded.x_hat is not None

    def no_synthesis(*args, **kwargs):
        raise AssertionError("compress ran the synthesis transform")

    monkeypatch.setattr(tiny_codec.model, "_synthesize", no_synthesis)
    assert tiny_codec.compress(image, 2.0) == data
