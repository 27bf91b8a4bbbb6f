"""The deterministic coding path (container version 3): exact math, the integer hyper-synthesis and
the coding tables come out the same whatever the thread count, dtype, memory layout or machine."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

import nicodec
from nicodec import exact
from nicodec.entropy_models import _gaussian_tables, _scale_thresholds, exact_gaussian_tables, exact_scale_indices, scale_indices
from nicodec.integer_network import ACC_MAX, IntegerNetwork, record_ranges, reference_integers


def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.spacing(np.abs(b))))


def test_exact_functions_are_accurate_to_a_few_ulps():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 20000), rng.uniform(-4, 4, 20000)])
    assert _ulps(exact.exp(x), np.exp(x)) <= 2
    positive = np.concatenate([np.exp(rng.uniform(-700, 700, 20000)), [5e-324, 1e-310, 1.0, 2.0]])
    assert _ulps(exact.log(positive), np.log(positive)) <= 4
    small = rng.uniform(-0.9, 3, 20000)
    assert _ulps(exact.log1p(small), np.log1p(small)) <= 4
    assert _ulps(exact.expm1(small), np.expm1(small)) <= 4
    assert _ulps(exact.tanh(small * 5), np.tanh(small * 5)) <= 4
    assert np.max(np.abs(exact.sigmoid(small * 20) - 1 / (1 + np.exp(-small * 20)))) < 1e-15
    grid = np.linspace(-9, 9, 3001)
    assert np.max(np.abs(exact.erfc(grid) - np.array([math.erfc(v) for v in grid]))) < 3e-15
    assert exact.exp(-800.0) == 0 and exact.exp(800.0) == np.inf and exact.laplace_cdf(0.0) == 0.5


def test_exact_results_are_pinned_bit_for_bit():
    """Golden digests of the exact functions and of the version-3 Gaussian tables: computed once,
    they must come out the same on every machine CI runs on (Intel, AMD, any SIMD width). A
    difference here means files would not decode across machines."""
    grid = np.linspace(-30, 30, 10007)
    digest = hashlib.sha256()
    for f in (exact.exp, exact.expm1, exact.tanh, exact.sigmoid, exact.softplus, exact.erfc, exact.normal_cdf):
        digest.update(f(grid).tobytes())
    digest.update(exact.log(np.abs(grid) + 1e-3).tobytes())
    assert digest.hexdigest()[:16] == "72c66fbfb2a1ded2"
    tables = exact_gaussian_tables()
    table_digest = hashlib.sha256(b"".join(p.tobytes() for p in tables.pmfs) + tables.offsets.tobytes())
    assert table_digest.hexdigest()[:16] == "fb264aa4491d41b3"


def test_exact_gaussian_tables_match_the_legacy_ones_up_to_rounding():
    new, old = exact_gaussian_tables(), _gaussian_tables()
    assert np.array_equal(new.offsets, old.offsets)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(new.pmfs, old.pmfs)) < 1e-14
    scales = torch.exp(torch.linspace(-3, 6, 20001, dtype=torch.float64))
    differ = exact_scale_indices(scales) != scale_indices(scales)
    assert differ.mean() < 1e-3  # only where a scale sits on a table boundary


def test_scale_indices_are_the_binary_search_over_the_thresholds():
    """The bucket table of exact_scale_indices answers what searchsorted does, at the thresholds,
    one ulp either side of each, across and beyond the table range, and for non-finite scales."""
    thresholds = _scale_thresholds()
    rng = np.random.default_rng(7)
    scales = np.concatenate([
        thresholds, np.nextafter(thresholds, 0.0), np.nextafter(thresholds, np.inf),
        np.exp(rng.uniform(-8, 9, 100_000)), rng.normal(0, 5, 10_000),
        [0.0, -0.0, 5e-324, 1e300, -1e300, np.inf, -np.inf],
    ])
    expected = np.searchsorted(thresholds, scales, side="right")
    np.testing.assert_array_equal(exact_scale_indices(torch.from_numpy(scales)), expected)
    with_nan = np.append(scales[:10], np.nan)
    np.testing.assert_array_equal(exact_scale_indices(torch.from_numpy(with_nan)),
                                  np.searchsorted(thresholds, with_nan, side="right"))


@pytest.fixture(scope="module")
def hyper_model():
    """A tiny calibrated meanscale model and some inputs for its integer hyper-synthesis."""
    codec = nicodec.create("meanscale", N=16, M=24, levels=3, seed=1)
    return codec.model


def _z_inputs(model, seed: int = 0, size=(5, 7)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    z_hat = np.rint(rng.normal(0, 3, (1, model.config.N, *size)))
    return torch.from_numpy(z_hat)


def test_the_integer_network_is_the_integer_definition(hyper_model):
    net = hyper_model.h_s_int
    a = net.quantize_input(_z_inputs(hyper_model), torch.ones(1, hyper_model.config.N, 1, 1, dtype=torch.float64))
    fast = net.forward_integers(a)
    reference = reference_integers(net, a.numpy().astype(np.int64))  # int64, one multiply-add at a time
    scale = getattr(net, f"output_scale{len(net.layers) - 1}").numpy().reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(fast.numpy(), reference * scale)


def test_extreme_inputs_stay_within_the_accumulator_bounds(hyper_model):
    net = hyper_model.h_s_int
    assert max(net.bounds()) <= ACC_MAX
    limit = int(net.input_limit)
    for value in (limit, -limit):
        a = torch.full((1, hyper_model.config.N, 3, 4), float(value), dtype=torch.float64)
        reference = reference_integers(net, a.numpy().astype(np.int64))
        assert np.abs(reference).max() <= ACC_MAX
        scale = getattr(net, f"output_scale{len(net.layers) - 1}").numpy().reshape(1, -1, 1, 1)
        np.testing.assert_array_equal(net.forward_integers(a).numpy(), reference * scale)


def test_integer_outputs_do_not_depend_on_threads_dtype_or_layout(hyper_model):
    net = hyper_model.h_s_int
    z = _z_inputs(hyper_model, seed=3, size=(9, 11))
    gain = hyper_model.z_gain.exact(torch.tensor([2.3]))
    outputs = []
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            for dtype in (torch.float32, torch.float64):
                for layout in (torch.contiguous_format, torch.channels_last):
                    x = z.to(dtype).contiguous(memory_format=layout)
                    outputs.append(net(x, divisor=gain))
    finally:
        torch.set_num_threads(threads)
    for out in outputs[1:]:
        assert torch.equal(out, outputs[0])


def _force_path(monkeypatch, path: str) -> None:
    """Run the integer networks' convolutions as int8 matrix products, float32 or float64 convolutions."""
    if path == "int8" and not hasattr(torch, "_int_mm"):
        pytest.skip("this PyTorch has no int8 matrix product")
    monkeypatch.setattr("nicodec.integer_network.int8_matmul_pays", lambda: path == "int8")
    monkeypatch.setattr("nicodec.integer_network._cpu_float32_is_ieee", lambda: path != "float64")  # float64: as on a GPU


@pytest.mark.parametrize("architecture", ["meanscale", "hyperprior"])  # LeakyReLU (signed) and ReLU (0 … 255) activations
@pytest.mark.parametrize("path", ["int8", "float32", "float64"])
def test_every_convolution_path_is_the_integer_definition(architecture, path, monkeypatch):
    """Each way of running the convolutions gives the integers of the one-multiply-add-at-a-time
    definition: on odd sizes and 1 × 1, and at the inputs' extremes (where overflow would show)."""
    _force_path(monkeypatch, path)
    model = nicodec.create(architecture, N=16, M=24, levels=3, seed=2).model
    net = model.h_s_int
    assert min(net.bounds()) < 2**24  # the float32 path does run in float32 here
    limit = int(net.input_limit)
    inputs = [_z_inputs(model, seed=5, size=(5, 7)), _z_inputs(model, seed=6, size=(1, 1))]
    inputs += [torch.full((1, model.config.N, 3, 2), float(v), dtype=torch.float64) for v in (limit, -limit)]
    scale = getattr(net, f"output_scale{len(net.layers) - 1}").numpy().reshape(1, -1, 1, 1)
    last = net.layers[-1].activation
    for z in inputs:
        a = torch.clamp(torch.round(z), -limit, limit)
        reference = reference_integers(net, a.numpy().astype(np.int64)) * scale
        if last == "relu":
            reference = np.maximum(reference, 0.0)
        np.testing.assert_array_equal(net.forward_integers(a).numpy(), reference)


def test_calibration_ranges_cover_the_inputs(hyper_model):
    inputs = [_z_inputs(hyper_model, seed=s) for s in range(3)]
    ranges = record_ranges(hyper_model.h_s, inputs)
    assert torch.equal(ranges[0], torch.stack([z.abs().amax(dim=(0, 2, 3)) for z in inputs]).amax(0).double())
    net = IntegerNetwork.from_float(hyper_model.h_s, ranges)
    with torch.no_grad():
        out, reference = net(inputs[0]), hyper_model.h_s.double()(inputs[0])
    hyper_model.h_s.float()
    assert float((out - reference).abs().mean()) < 0.05 * float(reference.abs().mean())


@pytest.mark.parametrize("name", ["factorized", "hyperprior", "meanscale"])
def test_version_3_files_decode_to_the_encoders_latents_whatever_the_thread_count(name, sample_image, decodes_across_threads):
    codec = nicodec.create(name, N=8, M=12, levels=3, seed=2)
    decodes_across_threads(codec, sample_image.crop((100, 100, 230, 180)), 2.2)


def test_an_unknown_or_missing_device_is_a_one_line_error():
    with pytest.raises(nicodec.NicodecError, match="device"):
        nicodec.load("factorized", device="tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(nicodec.NicodecError, match="no CUDA"):
            nicodec.load("factorized", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["factorized", "hyperprior", "meanscale"])
def test_files_made_on_the_cpu_decode_on_a_gpu_to_the_same_latents_and_back(name, sample_image):
    cpu = nicodec.load(name)
    gpu = nicodec.load(name, device="cuda")
    image = sample_image.crop((0, 0, 256, 192))
    for encoder, decoder in ((cpu, gpu), (gpu, cpu)):
        data, encoded = encoder.encode(image, quality=4.5)
        decoded = decoder.decode(data)
        assert decoded.coded.param_crc == encoded.param_crc
        for key, latent in encoded.latents.items():
            assert torch.equal(decoded.coded.latents[key].cpu(), latent.cpu()), key
        pixels = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(decoder.decompress(data), np.int16))
        assert pixels.max() == 0
