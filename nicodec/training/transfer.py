"""Rate-only training of an entropy model on the frozen transforms of a trained mean-scale model.

Why: ``factorized`` (Ballé et al. 2017), ``hyperprior`` (Ballé et al. 2018) and ``meanscale``
share the analysis and synthesis transforms and the rate-level gains; they differ only in how y is
modelled (a learned factorised density; a Gaussian whose scale, or mean and scale, the
hyper-transforms h_a, h_s predict). With g_a, g_s and the y gains taken from a
trained ``meanscale`` model and frozen, the distortion no longer depends on anything being trained
(rounding y around 0 instead of around μ costs ~0.1 dB of PSNR on Kodak; rounding around another μ
leaves the expected rounding error what it was), so the loss is the rate alone, and the latents
y = g_a(x) can be computed once: each step then costs the entropy model only, at most a tenth of a
full training step, which makes it trainable on a CPU. Three targets:

* ``hyperprior``: a scale hyperprior with fresh hyper-transforms, trained from scratch;
* ``meanscale``: the source's own hyper-transforms, trained further: a test of whether the jointly
  trained entropy model was done (for the shipped weights it was: docs/training.md);
* ``factorized``: a fresh factorised density for y, no hyper-latent: a Ballé 2017 model on
  transforms that had more training (with a hyperprior) than a factorized model of its own
  (docs/training.md);
* ``channelctx``: the source's hyperprior with fresh channel-context networks
  (:class:`~nicodec.models.ChannelContextHyperprior`), trained with it: what coding y in channel
  groups, each predicted from the ones before, saves on these transforms.

    python -m nicodec.training.transfer --source nicodec/weights/meanscale.safetensors \\
        --data ../shared/data/train --out runs/hyperprior --minutes 60 [--target meanscale|factorized]
    python -m nicodec.training.transfer ... --resume        # continue after a stop

Each run exports ``<out>/<target>.safetensors`` (fp16 parameters, as shipped) when it ends,
and ``<target>-fp32.safetensors``, the same in fp32, to check what fp16 costs.
"""

from __future__ import annotations

import argparse
import copy
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from .. import __version__, objective
from ..errors import NicodecError
from ..latent_coders import QuantMode, RelaxedCoder
from ..calibration import CROP, calibrate, calibration_images, needs_calibration
from ..models import ChannelContextHyperprior, CompressionModel, FactorizedPrior, ScaleHyperprior
from ..weights import atomic_write, load_weights, save_weights, weights_id
from .data import list_files, load_images
from .holdout import HOLD_OUT
from .train import Interrupted, _CsvLog, _StopOnSignal, learning_rate, param_groups

SHARED = ("g_a", "g_s", "y_gain", "y_inverse_gain")  # taken from the source and frozen
TARGETS = ("hyperprior", "meanscale", "factorized", "channelctx")
QUANTS = ("mixed", "noise")  # the relaxations rate_bpp offers


@dataclass(frozen=True)
class TransferConfig:
    """A transfer run. ``patch`` is in image pixels (a multiple of 16); the LR schedule fields
    mean what they mean in :class:`~nicodec.training.train.TrainConfig` (``learning_rate`` reads them)."""

    source: str
    data: str
    out: str
    target: str = "hyperprior"
    quant: QuantMode = "mixed"  # what h_s is fed: rounded z ("mixed") or z + u ("noise"); see rate_bpp
    minutes: float = 60.0
    steps: int = 1_000_000
    batch: int = 16
    patch: int = 256
    hold_out: float = HOLD_OUT  # fraction of the photos never trained on (training/holdout.py)
    lr: float = 3e-4
    entropy_lr_ratio: float = 10.0
    warmup: int = 200
    decay_fraction: float = 0.15
    final_lr_ratio: float = 0.05
    clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    checkpoint_minutes: float = 5.0


def transfer_model(source: CompressionModel, target: str = "hyperprior") -> CompressionModel:
    """The model a transfer run trains: ``source``'s transforms and y gains, frozen, with fresh
    scale-only hyper-transforms (``hyperprior``), with ``source``'s own (``meanscale``), with a
    fresh factorised density and no hyper-latent (``factorized``), or with ``source``'s own and
    fresh channel-context networks (``channelctx``)."""
    if source.name != "meanscale":
        raise NicodecError(f"the source must be a meanscale model, got {source.name!r}")
    if target not in TARGETS:
        raise NicodecError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    fresh = {"hyperprior": ScaleHyperprior, "factorized": FactorizedPrior, "channelctx": ChannelContextHyperprior}
    model = copy.deepcopy(source) if target == "meanscale" else fresh[target](replace(source.config, integer_hyper=False))
    if target == "channelctx":  # everything but the context networks starts as the source's
        model.load_state_dict({k: v for k, v in source.state_dict().items() if not k.startswith("h_s_int.")}, strict=False)
    for name in SHARED:
        getattr(model, name).load_state_dict(getattr(source, name).state_dict())
        getattr(model, name).requires_grad_(False)
    return model


@torch.no_grad()
def latent_cache(model: CompressionModel, images: list[Tensor], crop: int) -> list[Tensor]:
    """y = g_a(x) of every image and of its mirror image, as (M, H/16, W/16) fp16 tensors.

    Images are cut to multiples of 16 pixels; those smaller than ``crop`` latents on a side are left
    out. The mirror images are analysed, not the latents flipped: g_a is not mirror-symmetric."""
    cache = []
    for image in images:
        h, w = (s // 16 * 16 for s in image.shape[:2])
        if min(h, w) < crop * 16:
            continue
        x = image[None, :h, :w].permute(0, 3, 1, 2).float().div(255)
        for view in (x, x.flip(-1)):
            cache.append(model.analyze(view)[0].half().contiguous())
    if not cache:
        raise NicodecError(f"no training image is at least {crop * 16} pixels on a side")
    return cache


def sample(cache: list[Tensor], batch: int, crop: int, levels: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(B, M, crop, crop) float32 latent crops and (B,) integer rate levels in 1..levels."""
    picks = torch.randint(len(cache), (batch,), generator=generator).tolist()
    crops = []
    for i in picks:
        _, h, w = cache[i].shape
        top = int(torch.randint(h - crop + 1, (), generator=generator))
        left = int(torch.randint(w - crop + 1, (), generator=generator))
        crops.append(cache[i][:, top : top + crop, left : left + crop])
    quality = torch.randint(1, levels + 1, (batch,), generator=generator).float()
    return torch.stack(crops).float(), quality


def rate_bpp(model: CompressionModel, y: Tensor, quality: Tensor, noise: torch.Generator | None = None,
             quant: QuantMode = "mixed") -> Tensor:
    """(B,) bits per image pixel of y (and z) under the training relaxation: additive uniform noise
    (drawn from ``noise``, else torch's global generator) for every rate; a hyper-synthesis is
    fed the rounded z it will decode from (``mixed``, straight-through, as training's default for
    hyperprior models) or z + u (``noise``). For ``factorized`` the two are the same."""
    coder = RelaxedCoder(quant, generator=noise)
    model.code(coder, quality, y, tuple(y.shape))
    return objective.rate_bpp(coder.likelihoods, y.shape[-2] * y.shape[-1] * 256)  # 16² pixels per latent


def train_transfer(c: TransferConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the run in ``c.out``; returns the exported weights' path."""
    if c.quant not in QUANTS:
        raise NicodecError(f"unknown quant {c.quant!r}; choose from {', '.join(QUANTS)}")
    if c.patch % 16 or c.patch < 64:
        raise NicodecError(f"--patch must be a multiple of 16 and at least 64, got {c.patch}")
    out = Path(c.out)
    checkpoint_path = out / "checkpoint.pt"
    if resume and not checkpoint_path.exists():
        raise NicodecError(f"nothing to resume: {checkpoint_path} does not exist")
    if not resume and checkpoint_path.exists():
        raise NicodecError(f"{out} holds a run already: continue it with --resume, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    source, source_meta = load_weights(c.source)
    source.eval()
    with torch.random.fork_rng():  # the fresh hyper-transforms' initial values follow --seed
        torch.manual_seed(c.seed)
        model = transfer_model(source, c.target)
    crop = c.patch // 16

    cache_path = out / "latents.pt"
    source_id = weights_id(source).hex()
    try:
        cached = torch.load(cache_path) if cache_path.exists() else None
    except Exception:  # a damaged cache is only a cache: compute it again
        cached = None
    if cached is None or cached["source"] != source_id or cached["crop"] != crop or cached["data"] != str(c.data) \
            or cached.get("hold_out", 0.0) != c.hold_out:
        t0 = time.time()
        images = load_images(c.data, hold_out=c.hold_out)
        cache, n_images = latent_cache(source, images, crop), len(images)
        atomic_write(cache_path, lambda tmp: torch.save({"source": source_id, "crop": crop, "data": str(c.data),
                                                        "hold_out": c.hold_out, "images": n_images, "latents": cache}, tmp))
        _say(progress, f"analysed {len(images)} images (and their mirror images) in {time.time() - t0:.0f} s")
    else:
        cache, n_images = cached["latents"], cached["images"]

    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in param_groups(model, c.entropy_lr_ratio)]
    optimizer = torch.optim.Adam([g for g in groups if g["params"]], lr=c.lr)
    generator = torch.Generator().manual_seed(c.seed)  # crops and levels
    noise = torch.Generator().manual_seed(c.seed + 1)  # the uniform noise
    step, minutes_before = 0, 0.0
    if resume:
        ckpt = torch.load(checkpoint_path, weights_only=False)
        if ckpt["source"] != source_id:
            raise NicodecError(f"{checkpoint_path} was trained on other source weights ({ckpt['source']})")
        trained = ckpt["config"].get("target", "hyperprior")  # the first version trained hyperpriors only
        if trained != c.target:
            raise NicodecError(f"{checkpoint_path} trains a {trained} model, not {c.target}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        generator.set_state(ckpt["generator"])
        if "noise" in ckpt:  # checkpoints of the first version drew the noise from torch's global generator
            noise.set_state(ckpt["noise"])
        step, minutes_before = ckpt["step"], ckpt["minutes"]

    def save() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                 "noise": noise.get_state(), "step": step, "minutes": minutes(), "source": source_id, "config": asdict(c)}
        atomic_write(checkpoint_path, lambda tmp: torch.save(state, tmp))

    start = time.time()

    def minutes() -> float:
        return minutes_before + (time.time() - start) / 60

    log = _CsvLog(out / "train.csv", ["step", "minutes", "lr", "bpp"], step, enabled=True)
    try:
        window, last_save = [], time.time()
        model.train()
        with _StopOnSignal() as stop:  # SIGINT / SIGTERM: finish the step, save, then raise
            while step < c.steps and minutes() < c.minutes and stop.signal is None:
                lr = learning_rate(step, c, minutes())
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_ratio"]
                y, quality = sample(cache, c.batch, crop, source.config.levels, generator)
                loss = rate_bpp(model, y, quality, noise, c.quant).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], c.clip)
                optimizer.step()
                step += 1
                window.append(loss.item())
                if step % c.log_every == 0:
                    log.write({"step": step, "minutes": round(minutes(), 2), "lr": lr, "bpp": sum(window) / len(window)})
                    _say(progress, f"step {step}  {minutes():.1f} min  lr {lr:.2g}  rate {sum(window) / len(window):.4f} bpp")
                    window = []
                if time.time() - last_save > c.checkpoint_minutes * 60:
                    save()
                    last_save = time.time()
    finally:
        log.close()
    save()
    if stop.signal is not None:
        raise Interrupted(checkpoint_path, signal.Signals(stop.signal).name)
    return export(model, source_meta, source_id, c, step, minutes(), n_images, out / f"{c.target}.safetensors")


def export(model: CompressionModel, source_meta: dict, source_id: str, c: TransferConfig, steps: int, minutes: float,
           images: int, path: Path) -> Path:
    """Release weights with the source's λ levels and default quality, and the run's record: ``path``
    with fp16 parameters, as shipped, and ``<stem>-fp32.safetensors`` beside it, the same in fp32
    (for benchmarks/half_precision.py). Models with a hyperprior get their integer copies calibrated
    on the run's photos (:mod:`nicodec.calibration`), so that they code container version 3.
    Returns ``path``."""
    model.update()
    calibrated = {}
    if needs_calibration(model):
        photos = calibration_images(c.data)
        calibrate(model.eval(), photos)
        calibrated = {"calibration": {"images": len(photos), "folder": Path(c.data).name, "crop": CROP}}
    source_runs = source_meta.get("lineage", []) + [
        {k: source_meta.get(k) for k in ("command", "steps", "date", "data", "lambdas")}]
    metadata = {
        "trained": True,
        "lambdas": source_meta.get("lambdas"),
        "distortion": source_meta.get("distortion"),
        "quant": c.quant,  # rate_bpp's relaxation; the synthesis is the source's, trained with its own
        "steps": steps,
        "minutes": round(minutes, 2),
        "transfer": {"source": Path(c.source).name, "source_id": source_id,
                     "frozen": list(SHARED), "source_runs": source_runs},
        "data": {"folder": Path(c.data).name, "images": images},
        "recipe": {k: v for k, v in asdict(c).items() if k not in ("source", "data", "out")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m nicodec.training.transfer " + " ".join(sys.argv[1:]),
        "nicodec_version": __version__,
        **({"default_quality": source_meta["default_quality"]} if "default_quality" in source_meta else {}),
        **calibrated,
    }
    save_weights(path, model, metadata, half=True)
    save_weights(path.with_name(f"{path.stem}-fp32{path.suffix}"), model, metadata)
    return path


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nicodec.training.transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="trained meanscale weights (.safetensors)")
    parser.add_argument("--data", required=True, help="folder of training images")
    parser.add_argument("--out", required=True, help="run folder (checkpoint, latents, log, weights)")
    parser.add_argument("--target", choices=TARGETS, default="hyperprior",
                        help="a scale hyperprior trained from scratch, the source's own entropy model trained "
                             "further, or a factorised density trained from scratch")
    parser.add_argument("--quant", choices=QUANTS, default="mixed",
                        help="the hyper-synthesis sees the rounded z (mixed, default) or z + U(-1/2, 1/2) (noise)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--no-progress", action="store_true")
    defaults = TransferConfig("", "", "")
    for name in ("minutes", "steps", "batch", "patch", "hold_out", "lr", "warmup", "seed", "log_every", "checkpoint_minutes"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("resume", "no_progress")}
    try:
        if not Path(args.data).is_dir() or not list_files(args.data):
            raise NicodecError(f"data folder {args.data} is missing or empty")
        path = train_transfer(TransferConfig(**options), resume=args.resume, progress=not args.no_progress)
    except NicodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"{exc}; continue with --resume", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
