"""The overfitted codec: round trips, exact entropy path, honest rate, bad input (tiny, CPU)."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from nicodec import container
from nicodec.errors import CorruptFileError, NicodecError
from nicodec.overfit import Architecture, FitConfig, OverfitCodec, encode_many
from nicodec.overfit import coding, compiled_synthesis, context, header, model, raster, tables
from nicodec.overfit.codec import quality_to_lambda, starting_networks
from nicodec.overfit.fit import fit, rd_terms
from nicodec.overfit.model import ContextIndex, grid_sizes

FEW = FitConfig(iterations=6)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds synchronisation


def photo(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth test image with some texture (random noise would make a useless fit)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w, 2)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(channels)], -1)
    noisy = 127.5 + 90 * base + rng.normal(0, 8, (h, w, channels))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def codec():
    return OverfitCodec()


@pytest.fixture(scope="module")
def coded(codec):
    """A 192×128 RGB file and what the encoder coded (big enough that the streams' fixed ends,
    ~130 bits, stay well under 2 % of it)."""
    return codec.encode(photo(128, 192), quality=8, effort=FitConfig(iterations=60))


@pytest.mark.parametrize("size", [(1, 1), (17, 31), (64, 96)])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_decoder_reproduces_the_encoders_latents_and_synthesis_output(codec, size, mode):
    h, w = size
    image = Image.fromarray(photo(h, w, len(mode)).squeeze(-1) if mode == "L" else photo(h, w, len(mode)), mode)
    data, encoded = codec.encode(image, quality=5.5, effort=FEW)
    decoded = codec.decode(data)
    assert decoded.image.mode == mode and decoded.image.size == (w, h)
    for enc_tile, dec_tile in zip(encoded.latents, decoded.latents, strict=True):
        for a, b in zip(enc_tile, dec_tile, strict=True):
            assert torch.equal(a, b)
    assert torch.equal(encoded.x_hat, decoded.x_hat)
    assert np.array_equal(np.asarray(encoded.image), np.asarray(decoded.image))
    if mode == "RGBA":  # alpha is lossless
        assert np.array_equal(np.asarray(decoded.image)[..., 3], np.asarray(image)[..., 3])


def test_file_needs_no_weights_and_says_so_in_its_header(coded):
    nic = container.unpack(coded[0])
    assert nic.model == "overfit" and nic.weights_id == bytes(8) and len(nic.streams) == 4


def test_file_bits_are_within_two_percent_of_the_models_estimate(coded):
    data, decoded = coded
    nic = container.unpack(data)
    estimate = (decoded.bits["parameters"] + decoded.bits["latents"]
                + 8 * (len(nic.streams[0]) + len(nic.streams[3]) + container.header_size(len(nic.streams))))
    assert abs(8 * len(data) - estimate) <= 0.02 * estimate


def test_describe_reports_grids_layers_macs_and_bits(codec, coded):
    info = codec.describe(coded[0])
    assert info["grids"][0] == [128, 192] and len(info["grids"]) == 7
    assert 500 < info["mac_per_pixel"] < 2000
    assert info["parameter_bits"] > 0 and info["latent_bits"] > 0


def _random_arm(seed: int, shift: int = 12) -> tuple[dict[str, torch.Tensor], Architecture]:
    """Integer ARM weights large enough that float rounding would change table choices."""
    a = Architecture()
    g = torch.Generator().manual_seed(seed)
    shapes = {"w0": (a.arm_inputs, a.arm_width), "b0": (a.passes, a.arm_width), "w1": (a.arm_width, a.arm_width),
              "b1": (a.arm_width,), "w_out": (a.arm_width, 2), "b_out": (2,)}
    w = {k: torch.round(torch.randn(s, generator=g, dtype=torch.float64) * 0.15 * 2**shift) for k, s in shapes.items()}
    return w, a


def _arm_outputs(grid: torch.Tensor, coarse: torch.Tensor, w: dict, a: Architecture) -> list[torch.Tensor]:
    out = []
    for p in range(a.passes):
        x, _ = context.gather(grid, coarse, a.scheme, p)
        out += list(coding.arm_integer(w, 12, x[0], p, a.arm_layers))
    return out


def _run_with_threads(threads: int, seed: int) -> list[torch.Tensor]:
    code = (
        "import torch, sys, pickle\n"
        f"torch.set_num_threads({threads})\n"
        "sys.path.insert(0, 'tests')\n"
        "import test_overfit as t\n"
        f"w, a = t._random_arm({seed})\n"
        f"grid, coarse = t._grids({seed})\n"
        "sys.stdout.buffer.write(pickle.dumps([o.numpy() for o in t._arm_outputs(grid, coarse, w, a)]))\n"
    )
    import pickle
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    return [torch.from_numpy(o) for o in pickle.loads(out.stdout)]


def _grids(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    grid = torch.randint(-tables.LATENT_BOUND, tables.LATENT_BOUND + 1, (1, 1, 96, 128), generator=g).double()
    coarse = torch.randint(-tables.LATENT_BOUND, tables.LATENT_BOUND + 1, (1, 1, 48, 64), generator=g).double()
    return grid, coarse


def _permuted(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same ARM with its first hidden layer's units reordered: the second layer sums them in
    another order."""
    order = torch.randperm(w["w0"].shape[1], generator=torch.Generator().manual_seed(0))
    return dict(w, w0=w["w0"][:, order], b0=w["b0"][:, order], w1=w["w1"][order])


def test_float_arithmetic_would_depend_on_the_summation_order():
    """The precondition of the determinism tests below: these sums leave float32's exact range,
    so a float ARM would give other values for another summation order (BLAS, threads, layout)."""
    w, a = _random_arm(1)
    grid, coarse = _grids(1)
    x, _ = context.gather(grid, coarse, a.scheme, 0)
    h = coding.requantise(x[0].t() @ w["w0"], 12 - coding.ACT_BITS).clamp(0, coding.ACT_MAX)
    p = _permuted(w)
    hp = coding.requantise(x[0].t() @ p["w0"], 12 - coding.ACT_BITS).clamp(0, coding.ACT_MAX)
    assert (h @ w["w1"]).abs().max() > 2**24
    assert torch.equal(h @ w["w1"], hp @ p["w1"])  # exact in float64
    assert not torch.equal(h.float() @ w["w1"].float(), hp.float() @ p["w1"].float())


def test_arm_integer_outputs_do_not_depend_on_the_summation_order():
    w, a = _random_arm(5)
    grid, coarse = _grids(5)
    reference = _arm_outputs(grid, coarse, w, a)
    assert all(torch.equal(r, o) for r, o in zip(reference, _arm_outputs(grid, coarse, _permuted(w), a), strict=True))


def test_arm_integer_outputs_are_identical_with_one_and_two_threads():
    one, two = _run_with_threads(1, 3), _run_with_threads(2, 3)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_arm_integer_outputs_do_not_depend_on_input_dtype_or_memory_layout():
    w, a = _random_arm(2)
    grid, coarse = _grids(2)
    reference = _arm_outputs(grid, coarse, w, a)
    variants = [
        (grid.float(), coarse.float()),
        (grid.contiguous(memory_format=torch.channels_last), coarse.contiguous(memory_format=torch.channels_last)),
        (grid.float().contiguous(memory_format=torch.channels_last), coarse.float()),
    ]
    for g, c in variants:
        assert all(torch.equal(r, o) for r, o in zip(reference, _arm_outputs(g, c, w, a), strict=True))
    wt = {k: v.t().contiguous().t() if v.ndim == 2 else v for k, v in w.items()}  # transposed storage
    assert all(torch.equal(r, o) for r, o in zip(reference, _arm_outputs(grid, coarse, wt, a), strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_arm_integer_outputs_are_identical_on_cuda():
    w, a = _random_arm(4)
    grid, coarse = _grids(4)
    reference = _arm_outputs(grid, coarse, w, a)
    on_gpu = _arm_outputs(grid.cuda(), coarse.cuda(), {k: v.cuda() for k, v in w.items()}, a)
    assert all(torch.equal(r, o.cpu()) for r, o in zip(reference, on_gpu, strict=True))


def test_coding_tables_are_pinned():
    """The tables are part of the format: their bits must never move (nicodec.exact, not np.exp),
    nor the integer frequencies the rANS coder uses."""
    digest = __import__("hashlib").sha256(tables.latent_pmfs().tobytes() + raster.cumulative().tobytes())
    assert digest.hexdigest()[:16] == _TABLES_SHA
    p = tables.latent_pmfs()
    assert (p.sum(1) > 0.8).all() and (p.sum(1) < 1 + 1e-12).all()  # the widest tables lose some tail
    assert (raster.cumulative()[:, -1] == 1 << raster.PROB_BITS).all()


def test_training_reads_the_same_contexts_the_decoder_gathers():
    a = Architecture()
    sizes = grid_sizes(13, 22, a.grids)
    grids = [torch.randn(2, 1, h, w) for h, w in sizes]
    inputs, targets = ContextIndex(sizes, a)(grids)
    start = 0
    for k in range(len(sizes) - 1, -1, -1):
        for p in range(a.passes):
            x, where = context.gather(grids[k], grids[k + 1] if k + 1 < len(sizes) else None, a.scheme, p)
            n = x.shape[2]
            assert torch.equal(inputs[:, : x.shape[1], start : start + n], x)
            onehot = inputs[:, x.shape[1] :, start : start + n]
            assert torch.equal(onehot, torch.eye(a.passes)[p][None, :, None].expand_as(onehot))
            assert torch.equal(targets[:, start : start + n], context.values_at(grids[k], where))
            start += n
    assert start == inputs.shape[2] == sum(h * w for h, w in sizes)


@pytest.mark.parametrize("scheme", ["parallel", "checkerboard"])  # raster is causal within its one pass
def test_a_pass_reads_only_elements_of_earlier_passes(scheme):
    a = Architecture(scheme=scheme)
    order = torch.zeros(1, 1, 11, 14, dtype=torch.float64)
    for p in range(a.passes):  # each element holds 1 + its pass
        _, where = context.gather(order, None, a.scheme, p)
        context.scatter(order, where, torch.full((1, sum(r * c for *_, r, c in where)), p + 1.0, dtype=torch.float64))
    assert (order > 0).all()
    for p in range(a.passes):
        x, _ = context.gather(order, None, a.scheme, p)
        seen = x[0, : context.neighbours(a.scheme)]  # 0: padding or an unused slot
        assert ((seen == 0) | (seen <= p)).all()
        assert p == 0 or (seen > 0).any()


def test_fitting_lowers_the_loss_and_writes_a_valid_file(codec):
    x = torch.from_numpy(photo(32, 48)).permute(2, 0, 1)[None].float() / 255
    lam = torch.tensor([0.013])
    a = Architecture()
    index = ContextIndex(grid_sizes(32, 48, a.grids), a)
    result = fit(x, lam, a, FitConfig(iterations=40))

    def loss(nets, latents):
        with torch.no_grad():
            bits, mse, _ = rd_terms(nets, [torch.round(y) for y in latents], x, index)
        return float(bits / (32 * 48) + lam * 255**2 * mse)

    start = fit(x, lam, a, FitConfig(iterations=0))
    assert loss(result.nets, result.latents) < 0.8 * loss(start.nets, start.latents)
    data = codec.compress(photo(32, 48), quality=6, effort=FitConfig(iterations=40))
    assert codec.decompress(data).size == (48, 32)


def test_several_images_and_qualities_fit_together_in_one_batch(codec, monkeypatch):
    from nicodec.overfit import codec as module

    batches = []

    def recording_fit(x, *args, **kwargs):
        batches.append(x.shape[0])
        return fit(x, *args, **kwargs)

    monkeypatch.setattr(module, "fit", recording_fit)
    items = [(photo(24, 40, seed=1), 3.0), (photo(24, 40, seed=2), 8.0), (photo(16, 16, seed=3), 6.0)]
    out = encode_many(items, effort=FEW, codec=codec, batch_pixels=10**6)
    assert sorted(batches) == [1, 2]  # the two 24×40 images in one batch
    for (image, q), (data, encoded) in zip(items, out, strict=True):
        decoded = codec.decode(data)
        assert decoded.nic.quality == q and torch.equal(decoded.x_hat, encoded.x_hat)
    assert len(out[1][0]) > len(out[0][0])  # the higher quality spends more bits


@pytest.mark.parametrize("optimizer", ["soap", "adam"])
def test_sets_fitted_in_one_batch_do_not_influence_each_other(codec, optimizer):
    """A batch is G independent fits (one optimiser state per set, SOAP's bases included): what
    set 0 becomes does not depend, to the last bit, on which image set 1 fits."""
    config = FitConfig(iterations=12, optimizer=optimizer)
    a = codec.config.arch
    lam = torch.tensor([quality_to_lambda(3.0), quality_to_lambda(8.0)])
    init = [starting_networks(a, q) for q in (3.0, 8.0)]

    def batch(second: int):
        x = torch.stack([torch.from_numpy(photo(24, 40, seed=s)).permute(2, 0, 1).float() / 255 for s in (1, second)])
        return fit(x, lam, a, config, init=init)

    one, other = batch(2), batch(7)
    for name, value in one.nets.state_dict().items():
        assert torch.equal(value[0], other.nets.state_dict()[name][0]), name
        assert not torch.equal(value[1], other.nets.state_dict()[name][1]) or name.startswith("b"), name
    assert all(torch.equal(y[0], z[0]) for y, z in zip(one.latents, other.latents, strict=True))


def test_quality_and_effort_are_checked(codec):
    with pytest.raises(NicodecError, match="quality"):
        codec.compress(photo(4, 4), quality=11)
    with pytest.raises(ValueError, match="optimizer"):
        codec.compress(photo(4, 4), effort=FitConfig(iterations=2, optimizer="sgd"))
    with pytest.raises(NicodecError, match="effort"):
        codec.compress(photo(4, 4), effort="ludicrous")


# --- bad input ---------------------------------------------------------------------------


def _with_stream(data: bytes, index: int, stream: bytes) -> bytes:
    streams = list(container.unpack(data).streams)
    streams[index] = stream
    return _repack(data, streams=streams)


def _repack(data: bytes, **changes) -> bytes:
    """The file with some fields changed and a valid container checksum: only the overfit
    decoder's own checks stand between it and garbage."""
    return container.pack(dataclasses.replace(container.unpack(data), **changes))


@pytest.mark.parametrize("stream", [1, 2], ids=["parameters", "latents"])
def test_every_truncation_of_a_coded_stream_gives_a_one_line_error(codec, coded, stream):
    data = coded[0]
    streams = container.unpack(data).streams
    start = time.perf_counter()
    for cut in range(0, len(streams[stream]), 4):
        with pytest.raises(CorruptFileError):
            codec.decompress(_with_stream(data, stream, streams[stream][:cut]))
    for cut in range(len(data)):
        with pytest.raises(NicodecError):
            codec.decompress(data[:cut])
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("stream", [1, 2], ids=["parameters", "latents"])
def test_flipped_bits_in_a_coded_stream_give_an_error_never_a_traceback(codec, coded, rng, stream):
    data = coded[0]
    streams = container.unpack(data).streams
    start = time.perf_counter()
    refused = 0
    for _ in range(100):
        damaged = bytearray(streams[stream])
        damaged[int(rng.integers(len(damaged)))] ^= 1 << int(rng.integers(8))
        try:
            codec.decompress(_with_stream(data, stream, bytes(damaged)))
        except CorruptFileError as exc:
            assert "\n" not in str(exc)
            refused += 1
    assert refused >= 90  # a flip may land where it changes nothing that is checked (a parameter's value)
    assert time.perf_counter() - start < 60


def test_container_damage_is_caught_by_the_checksum(codec, coded, rng):
    data = coded[0]
    for _ in range(50):
        damaged = bytearray(data)
        damaged[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        with pytest.raises(NicodecError):
            codec.decompress(bytes(damaged))


@pytest.mark.parametrize("field,value", [("grids", 200), ("arm_width", 255), ("synthesis_width", 255),
                                         ("arm_layers", 9), ("layout", 7)])
def test_absurd_header_values_are_refused_before_anything_is_allocated(codec, coded, field, value):
    data = coded[0]
    streams = container.unpack(data).streams
    position = [name for name, *_ in header.FIELDS].index(field)
    hdr = bytearray(streams[0])
    hdr[position] = value
    with pytest.raises(CorruptFileError, match=field):
        codec.decompress(_with_stream(data, 0, bytes(hdr)))


def test_a_parameter_bound_beyond_the_format_is_refused(codec, coded):
    data = coded[0]
    streams = container.unpack(data).streams
    hdr = bytearray(streams[0])
    struct.pack_into("<H", hdr, struct.calcsize("<" + "".join(c for _, c, *_ in header.FIELDS)) + 2, 60000)
    with pytest.raises(CorruptFileError, match="bound"):
        codec.decompress(_with_stream(data, 0, bytes(hdr)))


def test_foreign_files_are_refused_with_one_line(codec, coded):
    data = coded[0]
    nic = container.unpack(data)
    with pytest.raises(NicodecError, match="meanscale"):
        codec.decompress(_repack(data, model="meanscale"))
    with pytest.raises(CorruptFileError):
        codec.decompress(_repack(data, weights_id=b"\1" * 8))
    with pytest.raises(CorruptFileError):
        codec.decompress(_repack(data, streams=nic.streams[:3]))
    with pytest.raises(CorruptFileError):
        codec.decompress(_repack(data, width=nic.width + header.TILE))  # the header no longer fits the tiles
    with pytest.raises(CorruptFileError):
        codec.decompress(_repack(data, param_crc=nic.param_crc ^ 1))


_TABLES_SHA = "201d31310244cd34"


@pytest.mark.parametrize("arch, shift, scale", [
    (Architecture(), 12, 0.15),  # the default ARM, weights large enough that float rounding would matter
    (Architecture(arm_width=8, arm_layers=1), 6, 0.15),  # no hidden layer; shift < ACT_BITS: the first layer scales up
    (Architecture(arm_width=24, arm_layers=3, coarse_context=False), 12, 0.15),  # widths across vector lanes
    (Architecture(arm_width=40), 14, None),  # every weight ±(2^15 − 1): activations pinned at their bounds
])
def test_compiled_decoder_reads_back_random_latents_with_the_vectorised_encoders_tables(arch, shift, scale):
    """The compiled loop (vector layers, sums split over accumulators, padded widths) and the
    encoder's vectorised ARM are the same integer arithmetic: same tables, same latents, for
    weights and latents far from a fitted model's."""
    g = torch.Generator().manual_seed(6)
    w = {}
    for name, shape in model.arm_shapes(arch).items():
        shape = (1, shape[1]) if name == "b0" else shape  # raster: one pass
        if scale is None:
            w[name] = (torch.randint(0, 2, shape, generator=g) * 2 - 1).double() * tables.PARAM_BOUND
        else:
            w[name] = torch.round(torch.randn(shape, generator=g, dtype=torch.float64) * scale * 2**shift)
    sizes = grid_sizes(23, 37, arch.grids)
    latents = [torch.randint(-tables.LATENT_BOUND, tables.LATENT_BOUND + 1, s, generator=g).numpy() for s in sizes]
    table, symbol = raster.tables_and_symbols(w, shift, arch.arm_layers, latents, arch.coarse_context)
    assert len(np.unique(table)) > (1 if scale is None else 50)  # many tables in play
    reader = raster.Reader(raster.encode(table, symbol))
    decoded = reader.latents(w, shift, arch.arm_layers, sizes, arch.coarse_context)
    reader.finish()
    assert all(np.array_equal(x, y) for x, y in zip(latents, decoded, strict=True))
    assert np.array_equal(reader.tables[0], table)
    assert abs(reader.bits - raster.bits(raster.cumulative(), table, symbol)) < 1e-6 * reader.bits


@pytest.mark.parametrize("size", [(1, 1), (17, 31), (64, 96)])
def test_compiled_synthesis_computes_the_fits_synthesis(size):
    """The decoder's compiled upsampling and synthesis equal the differentiable one the fit uses
    (float32, to rounding), for random parameters and odd sizes, and do not depend on threads."""
    a = Architecture()
    g = torch.Generator().manual_seed(3)
    params = {k: torch.randn(1, *shape, generator=g) * 0.5 for k, shape in model.synthesis_shapes(a).items()}
    latents = [torch.randint(-20, 21, s, generator=g).numpy() for s in grid_sizes(*size, a.grids)]
    expected = model.synthesize(params, [torch.from_numpy(y).float()[None, None] for y in latents])[0]
    threads = torch.get_num_threads()
    try:
        outputs = []
        for n in (1, 3):  # rows split over 1 and 3 threads
            torch.set_num_threads(n)
            outputs.append(compiled_synthesis.synthesize(params, latents))
    finally:
        torch.set_num_threads(threads)
    assert outputs[0].shape == expected.shape
    assert torch.allclose(outputs[0], expected, rtol=1e-5, atol=1e-4 * float(expected.abs().max()))
    assert torch.equal(outputs[0], outputs[1])


def test_an_icc_profile_travels_with_the_image(codec):
    from icc import icc_profile

    image = Image.fromarray(photo(9, 12))
    image.info["icc_profile"] = icc_profile()
    decoded = codec.decompress(codec.compress(image, quality=4, effort=FEW))
    assert decoded.info["icc_profile"] == icc_profile()



@pytest.mark.parametrize("field, value", [("optimizer", "sgd"), ("ste_latents", "frozn")])
def test_an_unknown_fit_option_is_refused_not_ignored(field, value):
    x = torch.from_numpy(photo(8, 8)).permute(2, 0, 1)[None].float() / 255
    with pytest.raises(ValueError, match=field):
        fit(x, torch.tensor([0.013]), Architecture(), dataclasses.replace(FitConfig(iterations=1), **{field: value}))
