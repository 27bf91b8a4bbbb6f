"""Recipe options of `nicodec train`: SOAP (Adam in Shampoo's eigenbasis), a moving average of the
weights for export, and an optimiser state carried into a new run. Tiny models, one thread."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

import nicodec
from nicodec.errors import NicodecError
from nicodec.training import TrainConfig, export_weights, train
from nicodec.training.ema import WeightAverage
from nicodec.training.soap import SOAP
from nicodec.training.train import load_checkpoint


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    sample = nicodec.sample_image()
    for i, (x, y) in enumerate([(0, 0), (200, 40), (400, 280), (100, 250)]):
        sample.crop((x, y, x + 96, y + 96)).save(folder / f"crop{i}.png")
    return folder


def tiny(photos: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(data=str(photos), out=str(out), model="meanscale", N=8, M=8, lambdas=(0.005, 0.02, 0.08), patch=64,
                    batch=2, steps=6, lr=2e-3, warmup=2, log_every=3, checkpoint_every=1000, progress=False,
                    device="cpu", hold_out=0.0)
    return TrainConfig(**{**settings, **overrides})


def _least_squares(optimizer_for, steps: int = 60) -> tuple[torch.Tensor, list[float]]:
    torch.manual_seed(0)
    a = torch.randn(32, 12) @ torch.diag(torch.logspace(0, 1, 12))
    target = a @ torch.randn(12, 6)  # a solution exists: the loss can go to 0
    w = torch.zeros(12, 6, requires_grad=True)
    optimizer = optimizer_for([w])
    losses = []
    for _ in range(steps):
        loss = (a @ w - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return w.detach(), losses


def test_soap_without_preconditioned_dimensions_is_adam_exactly():
    adam, _ = _least_squares(lambda p: torch.optim.Adam(p, lr=1e-2))
    soap, _ = _least_squares(lambda p: SOAP(p, lr=1e-2, betas=(0.9, 0.999), max_precondition_dim=0))
    torch.testing.assert_close(soap, adam, rtol=1e-5, atol=1e-7)  # the same update, arithmetic in another order


def test_soap_keeps_orthonormal_eigenbases_and_lowers_the_loss():
    bases = []
    _, losses = _least_squares(lambda p: bases.append(SOAP(p, lr=1e-1)) or bases[0], steps=45)
    state = bases[0].state[next(iter(bases[0].state))]
    for d in (0, 1):
        q, factor = state[f"basis{d}"], state[f"factor{d}"]
        torch.testing.assert_close(q.T @ q, torch.eye(len(q)), atol=1e-5, rtol=0)
        off = q.T @ factor @ q
        assert float((off - torch.diag(off.diagonal())).abs().max()) < 0.05 * float(off.diagonal().abs().max())
    assert losses[-1] < 0.2 * losses[0]


def test_soap_first_step_is_no_larger_than_adams():
    """At its first step Adam moves each coordinate by at most lr (m̂/√v̂ = ±1); SOAP does the same
    in its rotated basis, so its update has norm ≤ lr·√n. Without eps_relative, a coordinate whose
    rotated gradient was zero to rounding divided rounding noise by eps: a step 14× that bound and
    a loss 15× higher on this least-squares problem (an AMD EPYC; an Intel CPU's rounding hid it)."""
    torch.manual_seed(0)
    a = torch.randn(32, 12) @ torch.diag(torch.logspace(0, 1, 12))
    target = a @ torch.randn(12, 6)
    for dims in ((12, 6), (4, 3, 6)):  # a matrix and a 3-D tensor (two preconditioned dimensions and more)
        w = torch.zeros(*dims, requires_grad=True)
        optimizer = SOAP([w], lr=0.1)
        for step in range(2):  # the first step builds the bases only; the second moves
            before = w.detach().clone()
            loss = (a @ w.reshape(12, 6) - target).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert float((w.detach() - before).norm()) <= 0.1 * w.numel() ** 0.5 * 1.001


def test_batched_soap_optimises_each_slice_as_if_it_were_alone():
    """The overfitted codec's sets: SOAP(batched=True) on (G, …) parameters takes, for each slice,
    the steps SOAP takes on that slice alone (own factors, bases and eigenvalue order per slice),
    and each slice's loss falls."""
    g = torch.Generator().manual_seed(0)
    targets = [torch.randn(6, 5, generator=g) for _ in range(3)]
    mixes = [torch.randn(6, 6, generator=g) for _ in range(3)]
    starts = [torch.randn(6, 5, generator=g) for _ in range(3)]
    noise = [[0.3 * torch.randn(6, 5, generator=g) for _ in range(3)] for _ in range(25)]  # stochastic gradients

    def loss(w, k, step=None):  # correlated rows and columns: the bases matter
        target = targets[k] if step is None else targets[k] + noise[step][k]
        return ((mixes[k] @ w - target) ** 2).sum()

    together = torch.nn.Parameter(torch.stack(starts))
    alone = [torch.nn.Parameter(s.clone()) for s in starts]
    opt = SOAP([together], lr=5e-2, batched=True, precondition_frequency=3)
    opts = [SOAP([p], lr=5e-2, precondition_frequency=3) for p in alone]
    for step in range(25):
        opt.zero_grad()
        sum(loss(together[k], k, step) for k in range(3)).backward()
        opt.step()
        for k, (p, o) in enumerate(zip(alone, opts)):
            o.zero_grad()
            loss(p, k, step).backward()
            o.step()
    torch.testing.assert_close(together.detach(), torch.stack([p.detach() for p in alone]), rtol=1e-4, atol=1e-4)
    assert all(loss(together[k], k) < 0.5 * loss(s, k) for k, s in enumerate(starts))


def test_a_soap_run_resumes_exactly(photos, tmp_path):
    train(tiny(photos, tmp_path / "whole", optimizer="soap"))
    train(tiny(photos, tmp_path / "split", optimizer="soap", stop_at=3))
    train(tiny(photos, tmp_path / "split", optimizer="soap", resume=True))
    whole, split = (load_checkpoint(tmp_path / r)["model"] for r in ("whole", "split"))
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=0, atol=0)


def test_the_moving_average_is_validated_and_exported_unless_the_last_weights_are_asked_for(photos, tmp_path):
    run = tmp_path / "run"
    train(tiny(photos, run, ema=0.9, val=str(photos), val_every=6))
    with (run / "val.csv").open() as f:
        assert sorted({row["weights"] for row in csv.DictReader(f)}) == ["ema", "last"]
    ckpt = load_checkpoint(run)
    average, last = ckpt["ema"]["average"], ckpt["model"]
    assert ckpt["ema"]["updates"] == 6 and not torch.equal(average["g_a.0.weight"], last["g_a.0.weight"])
    export_weights(run, tmp_path / "ema.safetensors")
    export_weights(run, tmp_path / "last.safetensors", average=False)
    ema, plain = nicodec.load(str(tmp_path / "ema.safetensors")), nicodec.load(str(tmp_path / "last.safetensors"))
    torch.testing.assert_close(ema.model.g_a[0].weight, average["g_a.0.weight"])
    torch.testing.assert_close(plain.model.g_a[0].weight, last["g_a.0.weight"])
    assert ema.metadata["weights"] == "moving average" and plain.metadata["weights"] == "last step"


def test_the_average_warms_up_then_follows_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    average = WeightAverage(model, decay=0.5)
    expected = 0.0
    for n in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(n))
        average.update(model)
        decay = min(0.5, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * n
        assert average.state(model)["weight"].item() == pytest.approx(expected)


def test_a_new_run_can_continue_with_the_optimiser_state_of_the_one_it_starts_from(photos, tmp_path):
    train(tiny(photos, tmp_path / "a"))
    weights = tmp_path / "a.safetensors"
    export_weights(tmp_path / "a", weights)
    train(tiny(photos, tmp_path / "b", steps=2, init=str(weights), init_optimizer=str(tmp_path / "a")))
    carried = load_checkpoint(tmp_path / "b")["optimizer"]["state"]
    assert all(int(s["step"]) == 6 + 2 for s in carried.values())  # Adam's step count went on from the first run's 6
    train(tiny(photos, tmp_path / "c", steps=2, init=str(weights)))
    assert all(int(s["step"]) == 2 for s in load_checkpoint(tmp_path / "c")["optimizer"]["state"].values())
    with pytest.raises(NicodecError, match="not soap"):
        train(tiny(photos, tmp_path / "d", steps=2, init=str(weights), init_optimizer=str(tmp_path / "a"), optimizer="soap"))
    with pytest.raises(NicodecError, match="needs --init"):
        tiny(photos, tmp_path / "e", init_optimizer=str(tmp_path / "a"))
