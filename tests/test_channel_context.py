"""The channel-context model: warm-started from meanscale it codes as meanscale does, its context
networks code through their integer copies (the same latents whatever the threads or dtype), and
its new parts train with the transforms frozen. Tiny models on crops of the bundled sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nicodec
from nicodec.calibration import calibrate
from nicodec.integer_network import reference_integers
from nicodec.models import HALOS, ChannelContextHyperprior, ModelConfig, build_model, channel_groups
from nicodec.tiling import tiled
from nicodec.training import TrainConfig, export_weights, train
from nicodec.training.train import initial_weights, load_checkpoint
from nicodec.weights import save_weights
from nicodec.zoo import _synthetic_image


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def meanscale_weights(tmp_path_factory) -> Path:
    """A tiny calibrated meanscale model, saved as weights to start from."""
    path = tmp_path_factory.mktemp("ms") / "meanscale.safetensors"
    codec = nicodec.create("meanscale", N=8, M=12, levels=3, seed=3)
    save_weights(path, codec.model, {"trained": True, "lambdas": [0.005, 0.02, 0.08]})
    return path


def _warm_started(weights: Path) -> ChannelContextHyperprior:
    model = build_model("channelctx", ModelConfig(N=8, M=12, levels=3))
    initial_weights(model, weights)
    return calibrate(model.eval(), [_synthetic_image(3)])


def _perturbed(model: ChannelContextHyperprior, seed: int = 0) -> ChannelContextHyperprior:
    """The context networks given random last layers (a trained model's corrections), recalibrated."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for network in model.ctx:
            network[-1].weight.copy_(0.2 * torch.randn(network[-1].weight.shape, generator=generator))
            network[-1].bias.copy_(0.2 * torch.randn(network[-1].bias.shape, generator=generator))
    return calibrate(model, [_synthetic_image(3)])


def test_groups_are_elics_uneven_split_and_cover_every_channel_once():
    assert channel_groups(192) == ((0, 16), (16, 32), (32, 64), (64, 128), (128, 192))
    for m in (1, 2, 5, 8, 12, 100, 320):
        groups = channel_groups(m)
        assert groups[0][0] == 0 and groups[-1][1] == m and all(a[1] == b[0] and a[0] < a[1] for a, b in zip(groups, groups[1:]))


def test_warm_started_from_meanscale_it_codes_the_same_latents_for_a_few_more_bytes(meanscale_weights, sample_image):
    meanscale = nicodec.load(str(meanscale_weights))
    model = _warm_started(meanscale_weights)
    assert torch.equal(model.h_s_int.weight0, meanscale.model.h_s_int.weight0)  # the same calibration photo
    context = nicodec.Codec(model, {"trained": False})
    image = sample_image.crop((0, 0, 200, 140))
    for quality in (1.0, 2.4):
        ours, coded = context.encode(image, quality)
        theirs, reference = meanscale.encode(image, quality)
        assert torch.equal(coded.latents["y"], reference.latents["y"]) and torch.equal(coded.latents["z"], reference.latents["z"])
        assert 0 < len(ours) - len(theirs) <= 8 * len(model.groups)  # four more streams: lengths and coder flushes
        assert context.decode(ours).coded.latents.keys() == {"z", "y", "y.0", "y.1", "y.2", "y.3", "y.4"}


def test_coding_runs_the_integer_context_networks_not_the_float_ones(meanscale_weights, sample_image):
    model = _perturbed(_warm_started(meanscale_weights))
    codec = nicodec.Codec(model, {"trained": False})
    image = sample_image.crop((40, 40, 240, 170))
    before = codec.compress(image, 2.0)
    with torch.no_grad():
        for network in model.ctx:
            network[-1].weight.mul_(3)
    assert codec.compress(image, 2.0) == before  # only training and calibration read the float networks
    x = torch.from_numpy(np.asarray(image.crop((0, 0, 128, 128))).copy()).permute(2, 0, 1)[None].float() / 255
    legacy = model.compress(x, 2.0, exact=False).streams  # the float64 path of versions 1 and 2 reads them
    with torch.no_grad():
        for network in model.ctx:
            network[-1].weight.div_(3)
    assert model.compress(x, 2.0, exact=False).streams != legacy


def test_context_corrections_change_the_rate_and_the_files_decode_whatever_the_threads(meanscale_weights, sample_image,
                                                                                      decodes_across_threads):
    plain = _warm_started(meanscale_weights)
    model = _perturbed(_warm_started(meanscale_weights))
    image = sample_image.crop((100, 100, 260, 196))
    data = decodes_across_threads(nicodec.Codec(model, {"trained": False}), image, 2.2)
    assert data != nicodec.Codec(plain, {"trained": False}).compress(image, 2.2)  # the networks do act


def test_each_integer_context_network_is_the_integer_definition(meanscale_weights):
    model = _perturbed(_warm_started(meanscale_weights))
    for network, float_network in zip(model.ctx_int, model.ctx):
        rng = np.random.default_rng(len(network.layers))
        x = torch.from_numpy(rng.normal(0, 2, (1, float_network[0].in_channels, 6, 7)))
        a = network.quantize_input(x)
        scale = getattr(network, f"output_scale{len(network.layers) - 1}").numpy().reshape(1, -1, 1, 1)
        np.testing.assert_array_equal(network.forward_integers(a).numpy(), reference_integers(network, a.numpy()) * scale)
        outputs = [network(x.to(dtype).contiguous(memory_format=layout))
                   for dtype in (torch.float32, torch.float64) for layout in (torch.contiguous_format, torch.channels_last)]
        assert all(torch.equal(out, outputs[0]) for out in outputs[1:])


def test_the_context_halo_covers_the_receptive_field():
    model = build_model("channelctx", ModelConfig(N=8, M=24, levels=1)).double().eval()
    network = model.ctx[-1]
    torch.nn.init.normal_(network[-1].weight)
    x = torch.rand(1, network[0].in_channels, 20, 26, dtype=torch.float64)
    with torch.no_grad():
        whole = network(x)
        errors = [float((tiled(network, x, 1, 8, halo) - whole).abs().max()) for halo in (HALOS["ctx"], HALOS["ctx"] - 1)]
    assert errors[0] < 1e-12 < errors[1], errors


def test_only_meanscale_weights_warm_start_it(tmp_path):
    factorized = tmp_path / "factorized.safetensors"
    save_weights(factorized, nicodec.create("factorized", N=8, M=12, levels=3).model, {"trained": True})
    with pytest.raises(nicodec.NicodecError, match="holds factorized"):
        initial_weights(build_model("channelctx", ModelConfig(N=8, M=12, levels=3)), factorized)


def test_the_context_trains_with_the_transforms_frozen_then_everything_jointly(meanscale_weights, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    sample = nicodec.sample_image()
    for i, (x, y) in enumerate([(0, 0), (200, 40), (400, 280), (100, 250)]):
        sample.crop((x, y, x + 128, y + 128)).save(photos / f"crop{i}.png")
    settings = dict(data=str(photos), model="channelctx", N=8, M=12, lambdas=(0.005, 0.02, 0.08), patch=64, batch=4,
                    lr=2e-3, warmup=1, log_every=5, checkpoint_every=1000, progress=False, device="cpu", hold_out=0.0)
    train(TrainConfig(**settings, out=str(tmp_path / "ctx"), steps=10, init=str(meanscale_weights), train_only=("ctx",)))
    first = load_checkpoint(tmp_path / "ctx")["model"]
    start = nicodec.load(str(meanscale_weights)).model.state_dict()
    for name, value in first.items():
        if name.startswith("ctx."):
            continue
        assert torch.equal(value, start[name].to(value.dtype)), name  # transforms and hyperprior frozen
    assert any(float(first[f"ctx.{k}.4.weight"].abs().max()) > 0 for k in range(4))  # the corrections moved off zero
    export_weights(tmp_path / "ctx", tmp_path / "ctx.safetensors")
    train(TrainConfig(**settings, out=str(tmp_path / "joint"), steps=4, init=str(tmp_path / "ctx.safetensors")))
    joint = load_checkpoint(tmp_path / "joint")["model"]
    assert not torch.equal(joint["g_a.0.weight"], first["g_a.0.weight"])  # now everything trains
    codec = nicodec.load(str(tmp_path / "ctx.safetensors"))
    assert codec.model.exact_ready and codec.metadata["lineage"][0]["from"] == "meanscale.safetensors"
    image = sample.crop((0, 0, 96, 80))
    assert np.asarray(codec.decompress(codec.compress(image, 2.0))).shape == (80, 96, 3)
