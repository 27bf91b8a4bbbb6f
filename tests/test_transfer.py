"""nicodec.training.transfer: rate-only training of an entropy model on a mean-scale model's frozen transforms."""

from __future__ import annotations

import csv
import signal

import numpy as np
import pytest
import torch
from PIL import Image

import nicodec
from nicodec.errors import NicodecError
from nicodec.training.train import Interrupted
from nicodec.training.transfer import SHARED, TransferConfig, main, rate_bpp, train_transfer, transfer_model


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """Tiny meanscale weights, as a release file."""
    path = tmp_path_factory.mktemp("source") / "meanscale.safetensors"
    codec = nicodec.create("meanscale", N=8, M=12, levels=2, seed=0)
    codec.metadata.update({"trained": True, "lambdas": [0.0067, 0.013], "distortion": "mse"})
    codec.save(path)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(3):  # smooth images, so the latents have structure to learn
        base = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
        Image.fromarray(base).resize((128, 96), Image.BILINEAR).save(folder / f"{i}.png")
    return str(folder)


def _config(source: str, data: str, out, **overrides) -> TransferConfig:
    options = {"minutes": 10.0, "steps": 40, "batch": 4, "patch": 64, "lr": 1e-3, "warmup": 5, "log_every": 10}
    return TransferConfig(source=source, data=data, out=str(out), **{**options, **overrides})


def test_the_shared_parts_are_the_source_s_and_frozen(source):
    meanscale = nicodec.load(source).model
    model = transfer_model(meanscale)
    for name in SHARED:
        ours, theirs = getattr(model, name).state_dict(), getattr(meanscale, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
        assert not any(p.requires_grad for p in getattr(model, name).parameters())
    assert all(p.requires_grad for p in model.h_s.parameters())
    with pytest.raises(NicodecError, match="meanscale"):
        transfer_model(nicodec.create("factorized", N=8, M=12, levels=2).model)
    with pytest.raises(NicodecError, match="unknown target"):
        transfer_model(meanscale, "checkerboard")


def test_the_factorized_target_is_a_fresh_density_on_the_shared_transforms(source):
    meanscale = nicodec.load(source).model
    model = transfer_model(meanscale, "factorized")
    assert model.name == "factorized" and not hasattr(model, "h_s")
    for name in SHARED:
        ours, theirs = getattr(model, name).state_dict(), getattr(meanscale, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    trained = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {"y_model"}


def test_the_meanscale_target_starts_from_the_source_s_own_entropy_model(source):
    meanscale = nicodec.load(source).model
    model = transfer_model(meanscale, "meanscale")
    assert model.name == "meanscale" and model is not meanscale
    theirs = meanscale.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(name.split(".")[0] not in SHARED for name in trained)
    assert any(name.startswith("h_s.") for name in trained) and any(name.startswith("z_model.") for name in trained)


@pytest.mark.parametrize("quant", ["mixed", "noise"])
def test_the_hyper_synthesis_sees_the_rounded_z_unless_told_noise(source, quant):
    """With "mixed" h_s is fed the z it will decode from, whatever the noise draws; with "noise", z + u."""
    model = transfer_model(nicodec.load(source).model, "meanscale")
    seen = []
    model.h_s.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    y, quality = torch.randn(2, 12, 4, 4) * 3, torch.tensor([1.0, 2.0])
    rates = [rate_bpp(model, y, quality, torch.Generator().manual_seed(seed), quant) for seed in (1, 2)]
    assert all(r.shape == (2,) and bool((r > 0).all()) for r in rates)
    assert torch.equal(seen[0], seen[1]) == (quant == "mixed")


def test_training_lowers_the_rate_and_exports_a_codec_that_round_trips(source, data, tmp_path):
    path = train_transfer(_config(source, data, tmp_path), progress=False)
    with open(tmp_path / "train.csv") as f:
        rates = [float(row["bpp"]) for row in csv.DictReader(f)]
    assert len(rates) == 4 and rates[-1] < rates[0]
    assert (tmp_path / "hyperprior-fp32.safetensors").exists()  # for the fp16 check
    codec = nicodec.load(str(path))
    assert codec.model.name == "hyperprior" and codec.metadata["lambdas"] == [0.0067, 0.013]
    assert codec.metadata["transfer"]["frozen"] == list(SHARED)
    for name in SHARED:  # fp16 storage leaves the (fp32 here) shared tensors as close as fp16 allows
        a, b = getattr(codec.model, name).state_dict(), getattr(nicodec.load(source).model, name).state_dict()
        assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) for k in b)
    image = Image.open(f"{data}/0.png")
    encoded = codec.compress(image, quality=2)
    decoded = codec.decompress(encoded)
    assert decoded.size == image.size


def test_the_meanscale_target_lowers_the_rate_and_keeps_the_reconstruction(source, data, tmp_path):
    path = train_transfer(_config(source, data, tmp_path, target="meanscale"), progress=False)
    assert path.name == "meanscale.safetensors" and (tmp_path / "meanscale-fp32.safetensors").exists()
    with open(tmp_path / "train.csv") as f:
        rates = [float(row["bpp"]) for row in csv.DictReader(f)]
    assert rates[-1] < rates[0]
    before, after = nicodec.load(source), nicodec.load(str(path))
    assert after.model.name == "meanscale" and after.metadata["transfer"]["frozen"] == list(SHARED)
    image = Image.open(f"{data}/0.png")
    old, new = (np.asarray(c.decompress(c.compress(image, quality=2)), dtype=float) for c in (before, after))
    original = np.asarray(image, dtype=float)
    mse_old, mse_new = ((old - original) ** 2).mean(), ((new - original) ** 2).mean()
    assert abs(mse_new - mse_old) < 0.2 * mse_old  # the means moved, the rounding error did not grow
    with pytest.raises(NicodecError, match="trains a meanscale model"):  # a resume keeps the target
        train_transfer(_config(source, data, tmp_path), resume=True, progress=False)


def test_the_factorized_target_decodes_what_a_scale_hyperprior_on_the_same_transforms_decodes(source, data, tmp_path):
    """Both round y around 0 with the same g_a, gains and g_s, so their files decode to the same
    pixels: only the bits differ. The factorized run also lowers its rate as it trains."""
    paths = {t: train_transfer(_config(source, data, tmp_path / t, target=t), progress=False)
             for t in ("factorized", "hyperprior")}
    with open(tmp_path / "factorized" / "train.csv") as f:
        rates = [float(row["bpp"]) for row in csv.DictReader(f)]
    assert rates[-1] < rates[0]
    codecs = {t: nicodec.load(str(p)) for t, p in paths.items()}
    assert codecs["factorized"].model.name == "factorized" and paths["factorized"].name == "factorized.safetensors"
    assert codecs["factorized"].metadata["transfer"]["frozen"] == list(SHARED)
    image = Image.open(f"{data}/0.png").crop((0, 0, 128, 64))  # no padding: the strides (16, 64) pad differently
    for quality in (1, 1.5, 2):
        decoded = {t: np.asarray(c.decompress(c.compress(image, quality=quality))) for t, c in codecs.items()}
        assert np.array_equal(decoded["factorized"], decoded["hyperprior"])


def test_a_stopped_run_resumes_exactly(source, data, tmp_path, monkeypatch):
    import nicodec.training.transfer as transfer

    calls = {"n": 0}
    original = transfer.sample

    def sample_then_stop(*args, **kwargs):  # SIGINT arrives during step 10: it finishes, saves, stops
        calls["n"] += 1
        if calls["n"] == 10:
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(transfer, "sample", sample_then_stop)
    with pytest.raises(Interrupted):
        train_transfer(_config(source, data, tmp_path, steps=20), progress=False)
    monkeypatch.setattr(transfer, "sample", original)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 10
    with pytest.raises(NicodecError, match="holds a run"):  # a new run never overwrites one
        train_transfer(_config(source, data, tmp_path, steps=20), progress=False)
    train_transfer(_config(source, data, tmp_path, steps=20), resume=True, progress=False)
    with open(tmp_path / "train.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [10, 20]
    # the same weights as one uninterrupted run
    train_transfer(_config(source, data, tmp_path / "straight", steps=20), progress=False)
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == straight["step"] == 20
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])


def test_bad_arguments_are_one_line_errors(source, data, tmp_path, capsys):
    assert main(["--source", str(tmp_path / "none.safetensors"), "--data", data, "--out", str(tmp_path / "o")]) == 2
    assert main(["--source", source, "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["--source", source, "--data", data, "--out", str(tmp_path / "o"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "not found" in err[0] and "missing or empty" in err[1] and "nothing to resume" in err[2]


def test_a_checkpoint_of_the_first_version_resumes(source, data, tmp_path):
    """The first version kept no noise-generator state (it drew from torch's global generator)."""
    train_transfer(_config(source, data, tmp_path, steps=10), progress=False)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del ckpt["noise"], ckpt["config"]["target"], ckpt["config"]["quant"]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    train_transfer(_config(source, data, tmp_path, steps=20), resume=True, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 20


def test_the_channelctx_target_starts_as_its_source_and_exports_a_calibrated_codec(source, data, tmp_path):
    meanscale = nicodec.load(source).model
    model = transfer_model(meanscale, "channelctx")
    x = torch.from_numpy(np.array(Image.open(f"{data}/0.png"))).permute(2, 0, 1)[None, :, :64].float() / 255
    y = meanscale.analyze(x).contiguous()  # NCHW (analyze gives channels-last): noise is drawn in memory order
    for quality in (1.0, 2.0):  # one image at a time: the groups then draw the same noise as y does in one piece
        rates = [rate_bpp(m, y, torch.tensor([quality]), torch.Generator().manual_seed(0)) for m in (meanscale, model)]
        torch.testing.assert_close(rates[1], rates[0])  # its context networks start at zero: meanscale's rate
    path = train_transfer(_config(source, data, tmp_path, target="channelctx"), progress=False)
    with open(tmp_path / "train.csv") as f:
        trained = [float(row["bpp"]) for row in csv.DictReader(f)]
    assert trained[-1] < trained[0]
    codec = nicodec.load(str(path))
    assert codec.model.name == "channelctx" and codec.model.exact_ready and codec.metadata["calibration"]["images"] == 3
    image = Image.open(f"{data}/1.png")
    assert codec.decompress(codec.compress(image, quality=2)).size == image.size
