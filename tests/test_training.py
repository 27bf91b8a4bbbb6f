"""Training: the loss goes down, resume is exact, exports load and code, DDP runs, errors are clear.

Tiny models (N, M ≤ 16) on small crops of the bundled sample photograph, one torch thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nicodec
from nicodec import zoo
from nicodec.cli import main
from nicodec.errors import NicodecError
from nicodec.metrics import ms_ssim as ms_ssim_u8
from nicodec.models import ModelConfig, ModelOutput, build_model
from nicodec.training import TrainConfig, export_weights, learning_rate, rd_loss, train
from nicodec.training.data import PatchSampler, load_images
from nicodec.training.train import _autocast_transforms, load_checkpoint, ms_ssim, param_groups

SAMPLE = Path(nicodec.__file__).parent / "assets" / "sample.png"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
pytestmark = [pytest.mark.filterwarnings("ignore:.*were padded:UserWarning"),  # the photos fixture's small image
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six 96×96 crops of the sample photograph and one 40×50 image (smaller than a 64 patch)."""
    folder = tmp_path_factory.mktemp("photos")
    sample = Image.open(SAMPLE).convert("RGB")
    for i, (x, y) in enumerate([(0, 0), (200, 40), (400, 280), (100, 250), (300, 150), (410, 10)]):
        sample.crop((x, y, x + 96, y + 96)).save(folder / f"crop{i}.png")
    (folder / "nested").mkdir()
    sample.crop((50, 50, 100, 90)).save(folder / "nested" / "small.jpg")
    return folder


def tiny(photos: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(data=str(photos), out=str(out), model="hyperprior", N=8, M=8, lambdas=(0.005, 0.02, 0.08),
                    patch=64, batch=4, steps=20, lr=2e-3, warmup=5, log_every=5, checkpoint_every=1000,
                    progress=False, device="cpu", hold_out=0.0)
    return TrainConfig(**{**settings, **overrides})


def fixed_batch_loss(model, x: torch.Tensor, c: TrainConfig) -> float:
    """Rate–distortion loss of the hard-rounded model at every level on one fixed batch."""
    losses = []
    for level, lam in enumerate(c.lambdas, 1):
        out = model.estimate(x, float(level))
        losses.append(float(rd_loss(x, out, torch.full((x.shape[0],), lam), c.distortion)[0]))
    return sum(losses) / len(losses)


def test_fifty_steps_lower_the_rate_distortion_loss(photos, tmp_path):
    c = tiny(photos, tmp_path / "run", model="factorized", patch=32, steps=50, log_every=10)
    x = PatchSampler(load_images(photos, 32), 32, 8, torch.device("cpu"), seed=99).next_batch()
    torch.manual_seed(c.seed)
    before = fixed_batch_loss(build_model(c.model, c.model_config()), x, c)
    ckpt = load_checkpoint(train(c))
    model = build_model(c.model, c.model_config())
    model.load_state_dict(ckpt["model"])
    after = fixed_batch_loss(model, x, c)
    assert ckpt["step"] == 50
    assert after < 0.7 * before, (before, after)
    rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert rows[0].startswith("step,lr,loss,bpp,mse,psnr,mpix_s") and len(rows) == 6


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(photos, tmp_path):
    straight = load_checkpoint(train(tiny(photos, tmp_path / "straight")))
    first = load_checkpoint(train(tiny(photos, tmp_path / "resumed", stop_at=10)))
    assert first["step"] == 10
    resumed = load_checkpoint(train(tiny(photos, tmp_path / "resumed", resume=True)))
    assert resumed["step"] == straight["step"] == 20
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-6, atol=1e-7, msg=key)
    steps = [line.split(",")[0] for line in (tmp_path / "resumed" / "train.csv").read_text().splitlines()[1:]]
    assert steps == ["5", "10", "15", "20"]  # rows past the checkpoint would have been dropped


def test_exported_weights_load_and_round_trip_an_image_through_a_file(photos, tmp_path):
    train(tiny(photos, tmp_path / "run", steps=6, val=str(photos), val_every=6))
    val = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert val[0].startswith("step,level,lambda,bpp_real,bpp_est,psnr") and len(val) == 1 + 3
    weights = tmp_path / "w.safetensors"
    assert main(["export", str(tmp_path / "run"), "-o", str(weights), "--half"]) == 0
    codec = nicodec.load(str(weights))
    meta = codec.metadata
    assert meta["lambdas"] == [0.005, 0.02, 0.08] and meta["steps"] == 6 and meta["distortion"] == "mse"
    assert meta["data"] == {"folder": photos.name, "images": 7, "hold_out": 0.0} and meta["date"] and meta["config"]["levels"] == 3
    image = Image.open(photos / "crop2.png")
    data, coded = codec.encode(image, quality=2.5)
    (tmp_path / "crop.nic").write_bytes(data)
    decoded = zoo.decompress((tmp_path / "crop.nic").read_bytes(), codec)
    assert decoded.size == image.size and decoded.mode == "RGB"
    latents = codec.decode(data).coded.latents
    for name, latent in coded.latents.items():
        torch.testing.assert_close(latents[name], latent, rtol=0, atol=0)
    assert np.abs(np.asarray(decoded, float) - np.asarray(coded.x_hat[0, :, :96, :96].permute(1, 2, 0) * 255)).max() <= 0.5 + 1e-3


def test_init_continues_from_exported_weights_and_records_the_lineage(photos, tmp_path):
    train(tiny(photos, tmp_path / "a", steps=4))
    weights = tmp_path / "a.safetensors"
    export_weights(tmp_path / "a", weights, half=True)
    exported = nicodec.load(str(weights))
    assert exported.model.exact_ready and exported.version == 3  # calibrated at export: it writes version 3
    parent = exported.model.state_dict()
    first = load_checkpoint(train(tiny(photos, tmp_path / "b", steps=1, lr=1e-12, init=str(weights))))
    for key, value in parent.items():  # one step at a negligible LR: still the parent's weights
        if key.endswith("quantiles") or key.startswith("h_s_int."):  # (the integer h_s is made at export)
            continue
        torch.testing.assert_close(first["model"][key], value.float(), atol=1e-4, rtol=0)
    assert first["lineage"][0]["from"] == "a.safetensors" and first["lineage"][0]["steps"] == 4
    train(tiny(photos, tmp_path / "c", steps=3, init=str(tmp_path / "b")))  # from a checkpoint too
    export_weights(tmp_path / "c", tmp_path / "c.safetensors")
    meta = nicodec.load(str(tmp_path / "c.safetensors")).metadata
    assert meta["steps"] == 3 and meta["total_steps"] == 4 + 1 + 3
    assert [run["from"] for run in meta["lineage"]] == ["a.safetensors", "b"]
    with pytest.raises(NicodecError, match="holds hyperprior"):
        train(tiny(photos, tmp_path / "d", steps=1, N=16, init=str(weights)))


def test_a_lazy_checkpoint_read_has_the_same_contents_and_bad_files_still_fail(photos, tmp_path):
    path = train(tiny(photos, tmp_path / "a", steps=2))
    full, lazy = load_checkpoint(path), load_checkpoint(path, lazy=True)  # lazy: tensors memory-mapped
    assert lazy["config"] == full["config"] and lazy["step"] == full["step"] == 2
    torch.testing.assert_close(lazy["model"], full["model"], rtol=0, atol=0)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for lazy_read in (False, True):
        with pytest.raises(NicodecError, match="is not a nicodec training checkpoint"):
            load_checkpoint(broken, lazy=lazy_read)


def test_ddp_with_two_cpu_processes_trains_on_disjoint_slices(photos, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nicodec",
           "train", "--data", str(photos), "--out", str(tmp_path / "ddp"), "--model", "factorized", "--N", "8",
           "--M", "8", "--patch", "32", "--batch", "2", "--steps", "4", "--log-every", "2", "--device", "cpu",
           "--no-progress", "--lambdas", "0.01,0.05"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load_checkpoint(tmp_path / "ddp")
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2 and ckpt["data"]["images"] == 6  # round(8 % of 7) held out
    assert not torch.equal(ckpt["rng"][0]["data"], ckpt["rng"][1]["data"])  # each rank its own crops
    assert result.stdout.count("checkpoint at step 4") == 1  # rank 0 alone logs


def test_sigint_finishes_the_step_saves_a_checkpoint_and_exits_cleanly(photos, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nicodec", "train", "--data", str(photos), "--out", str(out), "--model",
           "factorized", "--N", "8", "--M", "8", "--patch", "32", "--batch", "2", "--steps", "100000",
           "--log-every", "1", "--device", "cpu", "--threads", "1", "--no-progress"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    log = out / "train.csv"
    deadline = time.monotonic() + 240  # a loaded CI machine can take long to import torch
    while time.monotonic() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 2):
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.2)
    assert log.exists(), "training never logged a step"  # else the signal would land before its handler
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by SIGINT" in stdout
    assert load_checkpoint(out)["step"] >= 2


def test_a_time_limit_stops_cleanly_with_a_checkpoint_to_resume(photos, tmp_path, capsys):
    path = train(tiny(photos, tmp_path / "run", steps=100_000, time_limit=1e-9))
    assert load_checkpoint(path)["step"] == 1 and "time limit" in capsys.readouterr().out
    resumed = train(TrainConfig(**{**tiny(photos, tmp_path / "run", steps=3).__dict__, "resume": True}))
    assert load_checkpoint(resumed)["step"] == 3


def test_bad_input_gives_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(nicodec.NicodecError, match="empty"):
        train(TrainConfig(data=str(empty), out=str(tmp_path / "a"), progress=False))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "fake.png").write_bytes(b"\x89PNG broken")
    cases = [
        (["train", "--data", str(junk), "--out", str(tmp_path / "b")], "no readable images"),
        (["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "d")], "not found"),
        (["train", "--out", str(tmp_path / "c"), "--resume"], "checkpoint"),
        (["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "w.safetensors")], "checkpoint not found"),
        (["train", "--data", str(junk), "--model", "hyperprior", "--patch", "100"], "multiple of 64"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("nicodec: error")]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, (argv, err)
    assert not any((tmp_path / name).exists() for name in "abcd")  # a failed start leaves no run folder


def test_data_pads_small_images_skips_unreadable_ones_and_crops_in_range(photos, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.open(photos / "crop0.png").save(folder / "a.png")
    Image.open(photos / "nested" / "small.jpg").save(folder / "b.png")
    (folder / "c.png").write_text("broken")
    with pytest.warns(UserWarning) as caught:
        images = load_images(folder, min_side=64)
    messages = " ".join(str(w.message) for w in caught)
    assert "c.png" in messages and "padded" in messages
    assert [tuple(i.shape) for i in images] == [(96, 96, 3), (64, 64, 3)]
    sampler = PatchSampler(images, 64, 5, torch.device("cpu"), seed=0, min_scale=0.5)
    x = sampler.next_batch()
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert set(sampler.levels(3).tolist()) <= {1, 2, 3}


def test_densities_and_gains_train_at_their_own_learning_rate():
    model = build_model("meanscale", ModelConfig(N=8, M=8, levels=3))
    slow, fast = param_groups(model, 10.0)
    assert fast["lr_ratio"] == 10.0 and slow["lr_ratio"] == 1.0
    assert {id(p) for p in slow["params"]} | {id(p) for p in fast["params"]} == {id(p) for p in model.parameters()}
    assert not {id(p) for p in slow["params"]} & {id(p) for p in fast["params"]}
    expected = [*model.z_model.parameters(), *model.y_gain.parameters(), *model.y_inverse_gain.parameters(),
                *model.z_gain.parameters()]
    assert {id(p) for p in fast["params"]} == {id(p) for p in expected}
    c = TrainConfig(data=".", lr=1e-4, entropy_lr_ratio=10.0, warmup=1, steps=100)
    optimizer = torch.optim.Adam(param_groups(model, c.entropy_lr_ratio), lr=c.lr)
    for group in optimizer.param_groups:  # as the loop does
        group["lr"] = learning_rate(50, c) * group["lr_ratio"]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-3])


def test_schedule_warms_up_holds_then_decays():
    c = TrainConfig(data=".", steps=1000, lr=1e-3, warmup=100, decay_fraction=0.2, final_lr_ratio=0.1)
    lrs = [learning_rate(s, c) for s in range(1000)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[99] == pytest.approx(1e-3) and lrs[500] == 1e-3
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:])) and lrs[-1] == pytest.approx(1e-4, rel=0.01)


def test_a_run_sized_in_minutes_decays_by_time_and_ends_by_itself(photos, tmp_path, capsys):
    c = TrainConfig(data=".", steps=10_000, lr=1e-3, warmup=10, decay_fraction=0.2, final_lr_ratio=0.1, minutes=10)
    assert learning_rate(500, c, minutes_done=7.9) == 1e-3  # before the last 20 % of either
    assert learning_rate(500, c, minutes_done=9.0) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down
    assert learning_rate(500, c, minutes_done=12.0) == pytest.approx(1e-4)  # past the end: the floor
    assert learning_rate(9000, c, minutes_done=0.0) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # steps first
    path = train(tiny(photos, tmp_path / "run", steps=100_000, minutes=1e-9))
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 1 and 0 < ckpt["minutes"] < 1 and "run length" in capsys.readouterr().out


def test_a_diverged_run_stops_with_one_line_and_keeps_its_last_checkpoint(photos, tmp_path, monkeypatch):
    path = train(tiny(photos, tmp_path / "run", steps=5))
    before = load_checkpoint(path)["model"]
    train_module = sys.modules["nicodec.training.train"]
    real = train_module.rd_loss
    monkeypatch.setattr(train_module, "rd_loss", lambda *a: (lambda loss, s: (loss * float("nan"), {**s, "loss": s["loss"] * float("nan")}))(*real(*a)))
    with pytest.raises(NicodecError, match="diverged at step 10"):
        train(TrainConfig(**{**tiny(photos, tmp_path / "run", steps=20).__dict__, "resume": True}))
    after = load_checkpoint(path)
    assert after["step"] == 5 and all(torch.equal(before[k], after["model"][k]) for k in before)


def test_loss_uses_each_elements_lambda_and_compressai_scaling():
    x = torch.rand(2, 3, 16, 16)
    x_hat = x + 0.1
    likelihoods = {"y": torch.full((2, 4, 1, 1), 0.5)}  # 4 bits per element → 4/256 bpp
    loss, stats = rd_loss(x, ModelOutput(x_hat, likelihoods), torch.tensor([0.01, 0.1]), "mse")
    mse = 0.01
    assert float(stats["bpp"]) == pytest.approx(4 / 256)
    assert float(loss) == pytest.approx(4 / 256 + (0.01 + 0.1) / 2 * 255**2 * mse, rel=1e-4)


def test_differentiable_ms_ssim_matches_the_metric(rng):
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    to_t = lambda v: torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    x = to_t(a).requires_grad_()
    value = ms_ssim(x, to_t(b))
    value.sum().backward()
    assert float(value.detach()) == pytest.approx(ms_ssim_u8(a, b), abs=1e-4)
    assert torch.isfinite(x.grad).all()


def test_bf16_autocast_covers_transforms_but_rates_stay_fp32():
    model = build_model("meanscale", nicodec.ModelConfig(N=8, M=8, levels=2))
    keys = list(model.state_dict())
    _autocast_transforms(model, "cpu")
    out = model(torch.rand(1, 3, 64, 64), torch.tensor([1.0]), mode="mixed")
    assert out.x_hat.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in out.likelihoods.values())
    assert list(model.state_dict()) == keys


def test_init_with_other_lambdas_reindexes_the_rate_levels(photos, tmp_path):
    """A trained model given a wider λ range: shared levels keep their gains exactly, new ones
    start on the log-linear trend of their neighbours, and training runs from there."""
    train(tiny(photos, tmp_path / "a", steps=2))  # λ 0.005, 0.02, 0.08
    weights = tmp_path / "a.safetensors"
    export_weights(tmp_path / "a", weights)
    parent = nicodec.load(str(weights)).model.y_gain.log_gain.detach()
    wider = (0.0025, 0.005, 0.01, 0.02, 0.08, 0.32)
    child = load_checkpoint(train(tiny(photos, tmp_path / "b", steps=1, lr=1e-12, init=str(weights), lambdas=wider)))
    table = child["model"]["y_gain.log_gain"]
    assert table.shape == (6, parent.shape[1])
    for new, old in ((1, 0), (3, 1), (4, 2)):  # λ 0.005, 0.02, 0.08
        torch.testing.assert_close(table[new], parent[old], atol=1e-5, rtol=0)
    torch.testing.assert_close(table[2], (parent[0] + parent[1]) / 2, atol=1e-5, rtol=0)  # midway in log λ
    torch.testing.assert_close(table[0], parent[0] - (parent[1] - parent[0]) / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(table[5], parent[2] + (parent[2] - parent[1]), atol=1e-5, rtol=0)
    assert child["lineage"][0]["lambdas"] == [0.005, 0.02, 0.08]
    with pytest.raises(NicodecError, match="holds hyperprior"):  # widths must still match
        train(tiny(photos, tmp_path / "c", steps=1, N=16, init=str(weights), lambdas=wider))


def test_new_levels_only_trains_just_the_added_levels_gains(photos, tmp_path):
    """--new-levels-only: the added level's gain rows move, every other number stays exactly what
    the init weights hold, so the old qualities code the same files."""
    train(tiny(photos, tmp_path / "a", steps=2))  # λ 0.005, 0.02, 0.08
    weights = tmp_path / "a.safetensors"
    export_weights(tmp_path / "a", weights, half=True)  # as released: fp16 parameters, tail quantiles from fp32 ones
    parent = nicodec.load(str(weights)).model.state_dict()
    lower = (0.00125, 0.005, 0.02, 0.08)
    run = tmp_path / "b"
    train(tiny(photos, run, steps=6, warmup=0, init=str(weights), lambdas=lower, new_levels_only=True, quant="noise"))
    child = load_checkpoint(run / "checkpoint.pt")
    start = build_model("hyperprior", ModelConfig(N=8, M=8, levels=4)).state_dict()
    from nicodec import container
    from nicodec.variable_rate import remap_levels

    moved = []
    for name, value in child["model"].items():
        if name.endswith("log_gain"):
            torch.testing.assert_close(value[1:], parent[name].float(), atol=0, rtol=0)  # old levels untouched
            first = remap_levels(parent[name].float(), (0.005, 0.02, 0.08), lower)[0]
            moved.append(float((value[0] - first).abs().max()))
        elif name in start and value.is_floating_point():
            torch.testing.assert_close(value, parent[name].to(value.dtype), atol=0, rtol=0)
    assert len(moved) == 3 and min(moved) > 1e-4  # y, y inverse and z gains of the new level trained
    exported = tmp_path / "b.safetensors"
    assert main(["export", str(run), "-o", str(exported), "--default-quality", "3"]) == 0  # keeps λ 0.02 the default
    old, new = nicodec.load(str(weights)), nicodec.load(str(exported))
    for name, value in new.model.state_dict().items():  # the tail quantiles too: kept, not recomputed
        assert name.endswith("log_gain") or torch.equal(value, old.model.state_dict()[name]), name
    assert (old.default_quality, new.default_quality) == (2.0, 3.0) and container.unpack(new.compress(np.zeros((8, 8, 3), np.uint8))).quality == 3
    image = np.asarray(Image.open(SAMPLE).convert("RGB").crop((0, 0, 64, 48)))
    same_level = container.unpack(new.compress(image, 3.5)), container.unpack(old.compress(image, 2.5))
    assert same_level[0].streams == same_level[1].streams and same_level[0].param_crc == same_level[1].param_crc
    assert new.model.config.levels == 4 and nicodec.load(str(exported)).metadata["lambdas"] == list(lower)
    with pytest.raises(NicodecError, match="already trained"):
        train(tiny(photos, tmp_path / "c", steps=1, init=str(weights), new_levels_only=True))
    with pytest.raises(NicodecError, match="needs --init"):
        tiny(photos, tmp_path / "d", new_levels_only=True)
    with pytest.raises(NicodecError, match="default-quality must be in"):
        export_weights(run, tmp_path / "e.safetensors", default_quality=5)
    # continuing from the widened weights keeps their four levels unless --lambdas says otherwise
    assert tiny(photos, tmp_path / "f", lambdas=(), init=str(exported)).lambdas == lower
    assert tiny(photos, tmp_path / "f", lambdas=(), init=str(run)).lambdas == lower
    assert tiny(photos, tmp_path / "f", lambdas=()).lambdas == (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)


def test_train_only_moves_just_the_named_parts(photos, tmp_path):
    """--train-only: the named parts train, every other tensor stays what the init weights hold."""
    train(tiny(photos, tmp_path / "a", steps=2))
    weights = tmp_path / "a.safetensors"
    export_weights(tmp_path / "a", weights)
    parent = nicodec.load(str(weights)).model.state_dict()
    parts = ("y_gain", "y_inverse_gain", "z_model")
    train(tiny(photos, tmp_path / "b", steps=6, warmup=0, init=str(weights), train_only=parts, quant="noise"))  # a tiny model rounds all to 0
    child = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    moved = set()
    for name, value in child["model"].items():
        if name.split(".")[0] in parts and name != "z_model.quantiles":
            if not torch.equal(value, parent[name]):
                moved.add(name.split(".")[0])
        elif value.is_floating_point() and name != "z_model.quantiles":
            torch.testing.assert_close(value, parent[name].to(value.dtype), atol=0, rtol=0, msg=name)
    assert moved == set(parts)
    assert main(["train", "--data", str(photos), "--out", str(tmp_path / "c"), "--model", "hyperprior", "--N", "8",
                 "--M", "8", "--init", str(weights), "--train-only", "y_gain,h_x", "--steps", "1", "--no-progress"]) == 2
    with pytest.raises(NicodecError, match="needs --init"):
        tiny(photos, tmp_path / "d", train_only=parts)


def test_remap_levels_needs_increasing_source_lambdas():
    from nicodec.variable_rate import remap_levels

    table = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(remap_levels(table, [1.0, 2.0, 4.0], [2.0, 4.0]), table[1:])
    assert torch.equal(remap_levels(table[:1], [1.0], [0.5, 3.0]), table[[0, 0]])
    with pytest.raises(ValueError, match="must increase"):
        remap_levels(table, [4.0, 2.0, 1.0], [1.0])
