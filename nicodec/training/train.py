"""Training: rate–distortion optimisation of a variable-rate nicodec model, in one file.

Read :func:`train` top to bottom: distributed setup → data → model and optimiser → resume →
the loop (batch, loss, step, log, validate, checkpoint) → final checkpoint. The learning-rate
schedule (:func:`learning_rate`) and the loss (:func:`rd_loss`, in :mod:`nicodec.objective`, shared
with encoder-side refinement) are pure functions.

    nicodec train --model meanscale --data ~/photos --out runs/ms             # one CPU / GPU
    torchrun --standalone --nproc_per_node=4 -m nicodec train --data ~/photos  # DDP, 4 GPUs
    nicodec export runs/ms -o meanscale.safetensors

Loss (CompressAI's convention, so λ values mean the same as there): per batch element,
R + λ·255²·MSE with R in bits per pixel and MSE on [0, 1] images, or R + λ·(1 − MS-SSIM).
Each element draws a rate level l ∈ 1..L and is trained with λ_l at quality l.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .. import __version__
from ..calibration import CROP, calibrate, calibration_images, needs_calibration
from ..codec import Codec
from ..errors import NicodecError
from ..models import ARCHITECTURES, CompressionModel, ModelConfig, build_model
from ..objective import ms_ssim, rd_loss  # noqa: F401 (ms_ssim: re-exported for tests and users)
from ..variable_rate import remap_levels
from ..weights import atomic_write, save_weights
from .data import PatchSampler, load_images
from .ema import WeightAverage
from .holdout import HOLD_OUT
from .soap import SOAP

# CompressAI's λ tables (first six of eight levels), so that rates and λ values compare directly.
DEFAULT_LAMBDAS = {
    "mse": (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483),
    "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50),
}
QUANT_MODES = ("noise", "ste", "mixed")
OPTIMIZERS = ("adam", "soap")
CHECKPOINT = "checkpoint.pt"


def default_quant(architecture: str) -> str:
    """Quantisation proxy when none is given: see docs/training.md for how this was chosen."""
    return "noise" if architecture == "factorized" else "mixed"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved in checkpoints and exported weights."""

    data: str  # folder of training images (recursive)
    model: str = "meanscale"  # architecture: factorized | hyperprior | meanscale
    N: int = 128  # transform channels
    M: int = 192  # latent channels
    lambdas: tuple[float, ...] = ()  # one per rate level; () = the --init weights' λ values, else DEFAULT_LAMBDAS[distortion]
    distortion: str = "mse"  # mse | ms-ssim
    quant: str = ""  # noise | ste | mixed; "" = default_quant(model)
    steps: int = 300_000
    batch: int = 16  # per process (global batch = batch × processes)
    patch: int = 256
    min_scale: float = 1.0  # < 1: random downscaling by s ∈ [min_scale, 1] before cropping
    hold_out: float = HOLD_OUT  # fraction of the data folder's photos never trained on (training/holdout.py)
    optimizer: str = "adam"  # adam | soap (training/soap.py)
    ema: float = 0.0  # decay of an exponential moving average of the weights, exported and validated; 0 = none
    lr: float = 1e-4
    entropy_lr_ratio: float = 10.0  # LR multiplier for the densities and rate gains (see param_groups)
    warmup: int = 1000  # linear warm-up steps
    decay_fraction: float = 0.15  # cosine decay over the last 15 % of the steps ...
    final_lr_ratio: float = 0.05  # ... down to lr × 0.05
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    seed: int = 0
    out: str = ""  # run folder; "" = runs/<model>
    resume: bool = False
    init: str = ""  # start a new run from these weights (.safetensors or checkpoint); fresh optimiser
    init_optimizer: str = ""  # with --init: a checkpoint whose optimiser state the new run continues with
    new_levels_only: bool = False  # with --init: train only the gains of levels whose λ the init weights lack
    train_only: tuple[str, ...] = ()  # with --init: train only these parts (top-level modules, e.g. y_gain, y_model)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    val: str = ""  # folder of validation images ("" = no validation)
    val_every: int = 5000
    checkpoint_every: int = 5000
    log_every: int = 50
    stop_at: int = 0  # stop cleanly (checkpoint saved) after this step; 0 = run to `steps`
    time_limit: float = 0.0  # minutes: stop cleanly (checkpoint saved) once this much time has passed; 0 = none
    minutes: float = 0.0  # run length in wall-clock minutes, resumes included: the LR decay is placed by time; 0 = by steps
    threads: int = 0  # torch CPU threads; 0 = torch's default
    compile: bool = False  # torch.compile the model
    compile_mode: str = ""  # torch.compile's mode: "" (default), reduce-overhead (CUDA graphs), max-autotune, ...
    progress: bool = True  # tqdm bar

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.model not in ARCHITECTURES:
            raise NicodecError(f"unknown model {self.model!r}; choose from {', '.join(ARCHITECTURES)}")
        if self.distortion not in DEFAULT_LAMBDAS:
            raise NicodecError(f"unknown distortion {self.distortion!r}; choose mse or ms-ssim")
        lambdas = tuple(float(v) for v in self.lambdas) or (_source_lambdas(self.init) if self.init else ())
        set_("lambdas", lambdas or DEFAULT_LAMBDAS[self.distortion])
        set_("quant", self.quant or default_quant(self.model))
        set_("out", self.out or f"runs/{self.model}")
        stride = ARCHITECTURES[self.model].stride
        checks = [
            (all(v > 0 for v in self.lambdas), f"λ values must be positive, got {self.lambdas}"),
            (self.quant in QUANT_MODES, f"unknown quantisation {self.quant!r}; choose {', '.join(QUANT_MODES)}"),
            (self.patch > 0 and self.patch % stride == 0, f"--patch must be a multiple of {stride} for {self.model}, got {self.patch}"),
            (self.steps > 0 and self.batch > 0, "--steps and --batch must be positive"),
            (0 < self.min_scale <= 1, f"min_scale must be in (0, 1], got {self.min_scale}"),
            (0 <= self.hold_out < 1, f"--hold-out must be in [0, 1), got {self.hold_out}"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}"),
            (0 <= self.ema < 1, f"--ema must be in [0, 1), got {self.ema}"),
            (not self.init_optimizer or self.init, "--init-optimizer needs --init weights from the same checkpoint's run"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.entropy_lr_ratio > 0, f"--entropy-lr-ratio must be positive, got {self.entropy_lr_ratio}"),
            (self.device in ("auto", "cpu", "cuda"), f"unknown device {self.device!r}; choose auto, cpu or cuda"),
            (self.precision in ("auto", "bf16", "fp32"), f"unknown precision {self.precision!r}"),
            (min(self.val_every, self.checkpoint_every, self.log_every) > 0, "--val-every, --checkpoint-every and log_every must be positive"),
            (not (self.init and self.resume), "--init starts a new run; --resume continues one: pass only one"),
            (not self.new_levels_only or self.init or self.resume, "--new-levels-only needs --init weights to add levels to"),
            (not self.train_only or self.init or self.resume, "--train-only needs --init weights to fine-tune"),
            (not (self.train_only and self.new_levels_only), "--train-only and --new-levels-only: pass only one"),
            (self.time_limit >= 0, f"--time-limit must be positive, got {self.time_limit}"),
            (self.minutes >= 0, f"--minutes must be positive, got {self.minutes}"),
        ]
        for ok, message in checks:
            if not ok:
                raise NicodecError(message)

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def model_config(self) -> ModelConfig:
        return ModelConfig(N=self.N, M=self.M, levels=self.levels)


# Fields that define the model and its objective: a resumed run must not change them.
_FIXED_ON_RESUME = ("model", "N", "M", "lambdas", "distortion")


# --------------------------------------------------------------------------- pure functions


def learning_rate(step: int, c: TrainConfig, minutes_done: float = 0.0) -> float:
    """LR for optimiser step ``step`` (0-based): linear warm-up, constant, cosine decay at the end.

    The end is ``c.steps``, or, for a run sized in time (``c.minutes``), whichever of the steps
    and the minutes runs out first: on a borrowed GPU the step count that fits is not known in
    advance, yet the run must still end with its LR decayed.
    """
    if step < c.warmup:
        return c.lr * (step + 1) / c.warmup
    if c.minutes:
        done = max(step / c.steps, minutes_done / c.minutes)
        t = (done - (1 - c.decay_fraction)) / c.decay_fraction
        if t <= 0:
            return c.lr
    else:
        decay_start = int(c.steps * (1 - c.decay_fraction))
        if step < decay_start:
            return c.lr
        t = (step - decay_start) / max(1, c.steps - decay_start)
    t = min(1.0, t)
    return c.lr * (c.final_lr_ratio + (1 - c.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def param_groups(model: nn.Module, entropy_lr_ratio: float) -> list[dict]:
    """Two Adam groups: the transforms at the base LR, and the learned densities
    (EntropyBottleneck) and rate-level gains at ``entropy_lr_ratio`` times it.

    Adam moves every parameter by about the LR per step whatever its gradient, and these few
    parameters start O(1) in log units from where they end (the density is initialised ten
    times too wide, the gains at a guessed spread), so at 1e-4 they take ~10⁴ steps just to
    get there while the rate stays high (docs/training.md has the comparison). The schedule
    decays both groups alike.
    """
    from ..entropy_models import EntropyBottleneck
    from ..variable_rate import Gains

    fast = {id(p) for m in model.modules() if isinstance(m, (EntropyBottleneck, Gains)) for p in m.parameters()}
    params = list(model.parameters())
    return [
        {"params": [p for p in params if id(p) not in fast], "lr_ratio": 1.0},
        {"params": [p for p in params if id(p) in fast], "lr_ratio": entropy_lr_ratio},
    ]


def make_optimizer(name: str, groups: list[dict], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam (PyTorch's fused kernel on CUDA: the same update in fewer launches) or SOAP
    (:mod:`nicodec.training.soap`), over ``param_groups`` (frozen parameters get no gradient, so no step)."""
    if name == "soap":
        return SOAP(groups, lr=lr)
    return torch.optim.Adam(groups, lr=lr, fused=device.type == "cuda")


def _optimizer_state(source: str | Path, c: TrainConfig) -> dict:
    """The optimiser state of the checkpoint ``source`` (``--init-optimizer``): that run's moments,
    continued instead of restarted. Its step counters stay (Adam's bias corrections are done)."""
    ckpt = load_checkpoint(source)
    saved = ckpt["config"]
    if saved.get("model") != c.model or saved.get("optimizer", "adam") != c.optimizer:
        raise NicodecError(f"--init-optimizer {source} holds a {saved.get('optimizer', 'adam')} state of a "
                           f"{saved.get('model')} run, not {c.optimizer} for {c.model}")
    return ckpt["optimizer"]


# --------------------------------------------------------------------------- the loop


def train(c: TrainConfig) -> Path:
    """Train (or resume) the run in ``c.out``; returns the path of its last checkpoint.

    Stops cleanly on SIGINT/SIGTERM: finishes the step, saves a checkpoint and raises
    :class:`Interrupted` (a KeyboardInterrupt); ``resume=True`` then continues exactly.
    """
    # -- processes and device: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK
    rank, world, local_rank = (int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
    device = _device(c.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=60))
    master = rank == 0
    if c.threads:
        torch.set_num_threads(c.threads)
    bf16 = c.precision == "bf16" or (c.precision == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = True  # TF32 convolutions; matmuls (the density) stay fp32
        torch.backends.cudnn.benchmark = True
    out = Path(c.out)
    ckpt_path = out / CHECKPOINT
    if c.resume and not ckpt_path.is_file():
        raise NicodecError(f"nothing to resume: no checkpoint at {ckpt_path}")
    if not c.resume and ckpt_path.exists():
        raise NicodecError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    log = tqdm.write if master else (lambda *_: None)

    # -- data: decoded once; this rank's slice of the files; crops cut on the device
    try:
        images = load_images(c.data, min_side=c.patch, shard=(rank, world), hold_out=c.hold_out)  # (H, W, 3) uint8, in RAM
        sampler = PatchSampler(images, c.patch, c.batch, device, seed=2 * (c.seed * 1024 + rank), min_scale=c.min_scale)
        del images  # the sampler holds the (GPU) copies
        counts = _all_sum([len(sampler.images), min(1, len(sampler.images))], device, world)  # images, ranks with data
        if counts[1] < world:
            raise NicodecError(f"{c.data} has too few readable images for {world} processes")
    except torch.cuda.OutOfMemoryError:
        raise NicodecError(f"the training images of {c.data} do not fit in GPU memory; use fewer or smaller images") from None
    data_info = {"folder": Path(c.data).resolve().name, "images": int(counts[0]), "hold_out": c.hold_out}
    val_images = load_images(c.val) if c.val else []  # every rank, so that a bad folder stops them all
    if master:  # only once the data is known to be good: a failed start leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(c), indent=2) + "\n")

    # -- model and optimiser (same initial weights on every rank; DDP broadcasts rank 0's anyway)
    torch.manual_seed(c.seed)
    raw_model = build_model(c.model, c.model_config()).to(device)
    optimizer = make_optimizer(c.optimizer, param_groups(raw_model, c.entropy_lr_ratio), c.lr, device)
    torch.manual_seed(2 * (c.seed * 1024 + rank) + 1)  # the quantisation noise differs per rank
    step, minutes_before = 0, 0.0
    lineage = initial_weights(raw_model, c.init, c.lambdas) if c.init else []
    if c.init_optimizer:  # the moments of the run the --init weights come from, not a fresh start
        optimizer.load_state_dict(_optimizer_state(c.init_optimizer, c))
    average = WeightAverage(raw_model, c.ema) if c.ema else None
    if c.resume:  # model, optimiser, step and every random stream (the LR is a function of step)
        ckpt = load_checkpoint(ckpt_path)
        _check_compatible(ckpt["config"], c)
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if average is not None and ckpt.get("ema") is not None:
            average.load_state_dict(ckpt["ema"])
        step, minutes_before = ckpt["step"], float(ckpt.get("minutes", 0.0))
        lineage = ckpt.get("lineage", [])
        if len(ckpt["rng"]) == world:
            _set_rng_state(ckpt["rng"][rank], sampler, device)
        else:
            warnings.warn(f"checkpoint was made by {len(ckpt['rng'])} processes, not {world}: random streams restart")
        log(f"resuming {ckpt_path} at step {step}")
    trained = (lineage or [{}])[-1].get("lambdas", c.lambdas)  # the λ values of the weights this run started from
    new_levels = freeze_all_but_new_levels(raw_model, c.lambdas, trained) if c.new_levels_only else None
    if c.train_only:
        freeze_all_but(raw_model, c.train_only)
    if device.type == "cuda":
        raw_model = raw_model.to(memory_format=torch.channels_last)
    if bf16:
        _autocast_transforms(raw_model, device.type)
    model: nn.Module = raw_model
    if world > 1:
        model = nn.parallel.DistributedDataParallel(raw_model, device_ids=[local_rank] if device.type == "cuda" else None)
    if c.compile:
        model = torch.compile(model, mode=c.compile_mode or None)
    lambdas = torch.tensor(c.lambdas, device=device)

    # -- logs (rank 0): progress bar, CSVs, optional TensorBoard
    train_log = _CsvLog(out / "train.csv", ["step", "lr", "loss", "bpp", "mse", "psnr", "mpix_s", "seconds"], step, master)
    val_log = _CsvLog(out / "val.csv", ["step", "level", "lambda", "bpp_real", "bpp_est", "psnr", "ms_ssim", "images", "weights"],
                      step, master and bool(c.val))
    tb = _tensorboard(out / "tb") if master else None
    params = sum(p.numel() for p in raw_model.parameters())
    log(f"training {c.model} (N={c.N}, M={c.M}, {c.levels} levels, {params / 1e6:.2f} M parameters) on "
        f"{data_info['images']} images, {world} process(es), {device.type}{' bf16' if bf16 else ' fp32'}, quant {c.quant}")
    bar = tqdm(total=c.steps, initial=step, unit="step", dynamic_ncols=True, disable=not (master and c.progress))
    pixels_per_step = c.batch * c.patch**2 * world
    sums, n, t_last = torch.zeros(3, device=device), 0, time.perf_counter()
    stopped_by, timed_out, t_start = None, False, time.monotonic()
    session_minutes = lambda: (time.monotonic() - t_start) / 60  # noqa: E731
    minutes_done = minutes_before  # agreed between processes at log steps (the LR must not differ)

    # -- the loop
    with _StopOnSignal() as stop:
        while step < c.steps:
            lr = learning_rate(step, c, minutes_done)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_ratio"]
            x = sampler.next_batch()  # (B, 3, P, P) in [0, 1]
            levels = sampler.levels(c.levels)  # (B,) in 1..L
            if new_levels is not None:  # only the levels being added
                levels = new_levels[sampler.levels(len(new_levels)) - 1]
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            levels = levels.to(device)
            out_ = model(x, levels.float(), mode=c.quant)
            loss, stats = rd_loss(x, out_, lambdas[levels - 1], c.distortion)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if c.clip:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), c.clip)
            optimizer.step()
            if average is not None:
                average.update(raw_model)
            step += 1
            bar.update(1)
            sums += torch.stack([stats["loss"], stats["bpp"], stats["mse"]])
            n += 1

            # log every log_every steps; under DDP this is also where ranks agree on stopping
            session = session_minutes()
            out_of_time = (bool(c.time_limit) and session >= c.time_limit) or (
                bool(c.minutes) and minutes_before + session >= c.minutes)
            stop_now = world == 1 and (stop.signal is not None or out_of_time)
            if step % c.log_every == 0 or step == c.steps:
                flag = torch.tensor([float(stop.signal is not None), float(out_of_time)], device=device)
                loss_v, bpp_v, mse_v, flag_v, time_v, session_v = _mean_and_flag(
                    sums / n, flag, world, extra=session)
                out_of_time = time_v > 0
                minutes_done = minutes_before + session_v
                if not math.isfinite(loss_v):  # keep the last good checkpoint rather than overwrite it
                    raise NicodecError(f"training diverged at step {step} (loss {loss_v}); the last checkpoint "
                                       f"({ckpt_path}) is kept: resume with a lower --lr")
                seconds = time.perf_counter() - t_last
                row = {"step": step, "lr": lr, "loss": loss_v, "bpp": bpp_v, "mse": mse_v,
                       "psnr": -10 * math.log10(max(mse_v, 1e-10)), "mpix_s": n * pixels_per_step / seconds / 1e6,
                       "seconds": seconds}
                train_log.write(row)
                _tb_add(tb, "train", row, step)
                bar.set_postfix(loss=f"{loss_v:.4g}", bpp=f"{bpp_v:.3f}", psnr=f"{row['psnr']:.2f}", mpix_s=f"{row['mpix_s']:.2f}")
                sums.zero_()
                n, t_last = 0, time.perf_counter()
                stop_now = flag_v > 0 or out_of_time
            if master and val_images and (step % c.val_every == 0 or step == c.steps):
                t_val = time.perf_counter()
                for weights, state in [("last", raw_model.state_dict()), *([("ema", average.state(raw_model))] if average else [])]:
                    rows = validate(state, c, val_images, device)
                    for r in rows:
                        val_log.write({"step": step, **r, "weights": weights})
                        _tb_add(tb, f"val{'-ema' if weights == 'ema' else ''}/level{r['level']}", r, step)
                    column = lambda key, fmt: " ".join(format(r[key], fmt) for r in rows)  # noqa: E731
                    log(f"val step {step}{' (EMA)' if weights == 'ema' else ''}, levels 1..{c.levels}: bpp {column('bpp_real', '.3f')} "
                        f"(estimated {column('bpp_est', '.3f')}), PSNR {column('psnr', '.2f')} dB")
                t_last += time.perf_counter() - t_val  # throughput counts training time only
            stop_now = stop_now or step == c.stop_at
            if step % c.checkpoint_every == 0 or step == c.steps or stop_now:
                t_save = time.perf_counter()
                save_checkpoint(ckpt_path, raw_model, optimizer, step, c, sampler, data_info, device, rank, world,
                                lineage, minutes_before + session_minutes(), average)
                log(f"checkpoint at step {step}: {ckpt_path}")
                t_last += time.perf_counter() - t_save
            if stop_now:
                stopped_by, timed_out = stop.signal, out_of_time and stop.signal is None
                break
    bar.close()
    train_log.close(), val_log.close()
    if tb is not None:
        tb.close()
    if world > 1:
        dist.destroy_process_group()
    if timed_out and c.minutes and minutes_before + session_minutes() >= c.minutes:
        log(f"run length of {c.minutes:g} min reached at step {step}; checkpoint saved: {ckpt_path}")
    elif timed_out:
        log(f"time limit of {c.time_limit:g} min reached at step {step}; checkpoint saved: {ckpt_path} (continue with --resume)")
    if stopped_by is not None:
        name = signal.Signals(stopped_by).name
        log(f"stopped by {name} at step {step}; checkpoint saved: {ckpt_path} (continue with --resume)")
        raise Interrupted(ckpt_path, name)
    return ckpt_path


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT / SIGTERM after saving a checkpoint (``.checkpoint``)."""

    def __init__(self, checkpoint: Path, signal_name: str):
        super().__init__(f"stopped by {signal_name}; checkpoint saved: {checkpoint}")
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(state: dict[str, Tensor], c: TrainConfig, images: list[Tensor], device: torch.device) -> list[dict]:
    """Per rate level, over (H, W, 3) uint8 images: the REAL bpp of ``Codec.compress`` (whole
    ``.nic`` files, header included), the estimated bpp of ``model.estimate`` and PSNR-RGB
    (MS-SSIM too when training for it), averaged over images.

    Works on a fresh fp32 model holding ``state`` (the trained weights, or their average), frozen
    with ``update()``: estimates on ``device``, range coding on the CPU (the coder works on NumPy arrays).
    """
    from ..metrics import ms_ssim as ms_ssim_u8, psnr

    copy = build_model(c.model, c.model_config()).to(device)
    copy.load_state_dict(state)
    copy.eval()
    estimates = {level: [] for level in range(1, c.levels + 1)}
    for image in images:
        h, w = image.shape[:2]
        s = copy.stride
        x = image[None].permute(0, 3, 1, 2).to(device).float() / 255  # (1, 3, H, W); batch axis first: canonical strides
        x = F.pad(x, (0, -w % s, 0, -h % s), mode="replicate")
        for level in estimates:
            q = torch.full((1,), float(level), device=device)  # a float quality would be a CPU tensor
            lik = copy.estimate(x, q).likelihoods
            estimates[level].append(sum(float(-torch.log2(p.double()).sum()) for p in lik.values()) / (h * w))
    copy = copy.cpu()
    copy.update()
    codec = Codec(copy)
    rows = []
    for level, lam in zip(estimates, c.lambdas):
        real, psnrs, ssims = [], [], []
        for image in images:
            h, w = image.shape[:2]
            reference = image.numpy()  # (H, W, 3) uint8
            data, coded = codec.encode(reference, quality=float(level))
            decoded = (coded.x_hat[0, :, :h, :w] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            real.append(len(data) * 8 / (h * w))
            psnrs.append(psnr(reference, decoded))
            if c.distortion == "ms-ssim":
                ssims.append(ms_ssim_u8(reference, decoded))
        mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
        rows.append({"level": level, "lambda": lam, "bpp_real": mean(real), "bpp_est": mean(estimates[level]),
                     "psnr": mean(psnrs), "ms_ssim": mean(ssims), "images": len(images)})
    return rows


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model: CompressionModel, optimizer, step: int, c: TrainConfig,
                    sampler: PatchSampler, data_info: dict, device: torch.device, rank: int, world: int,
                    lineage: list[dict] = (), minutes: float = 0.0, average: WeightAverage | None = None) -> None:
    """Everything needed to continue exactly; collective under DDP (RNG states of every rank).

    ``lineage``: the earlier runs these weights started from (see :func:`initial_weights`);
    ``minutes``: wall-clock minutes trained so far, resumes included; ``average``: the EMA of the
    weights, if the run keeps one."""
    rng = [_rng_state(sampler, device)]
    if world > 1:
        rng = [None] * world
        dist.all_gather_object(rng, _rng_state(sampler, device))
    if rank != 0:
        return
    ckpt = {
        "step": step,
        "minutes": minutes,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "ema": average.state_dict() if average is not None else None,
        "config": asdict(c),
        "rng": rng,
        "data": data_info,
        "lineage": list(lineage),
        "command": _command_line(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nicodec_version": __version__,
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(path: str | Path, lazy: bool = False) -> dict:
    """A checkpoint written by :func:`train`; a run folder stands for its checkpoint.

    ``lazy``: memory-map the tensors instead of reading them, so that only those used are read:
    the config, or the model without the optimiser state (a checkpoint is ~3× the weights)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise NicodecError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=lazy)
    except Exception as exc:  # truncated file, not a checkpoint, ...
        raise NicodecError(f"{path} is not a nicodec training checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or not {"model", "config", "step"} <= ckpt.keys():
        raise NicodecError(f"{path} is not a nicodec training checkpoint")
    return ckpt


def initial_weights(model: CompressionModel, source: str | Path, lambdas: Sequence[float] | None = None) -> list[dict]:
    """Load ``model``'s weights from release weights or a checkpoint, to continue training them
    in a new run (fresh optimiser and schedule: how training goes on across machines when only
    the weights travel). Returns the lineage: one entry per earlier run, oldest first.

    ``lambdas``, the new run's λ values, may differ from the source's: the rate-level gain tables
    are then re-indexed by λ (:func:`nicodec.variable_rate.remap_levels`), so a trained model can
    be given more levels or a wider range; everything else is copied.

    The source may also be of an architecture the model extends (``model.warm_start_from``:
    ``channelctx`` starts from ``meanscale``): the shared tensors are copied, the model's own new
    parts keep their initial values.
    """
    from ..weights import load_weights

    source = Path(source)
    if source.suffix == ".safetensors":
        trained, meta = load_weights(source)
        name, config, state = meta["architecture"], meta["config"], trained.state_dict()
        earlier, source_lambdas = meta.get("lineage", []), meta.get("lambdas")
        entry = {"command": meta.get("command"), "steps": meta.get("steps"), "date": meta.get("date"), "data": meta.get("data")}
    else:
        ckpt = load_checkpoint(source, lazy=True)  # the model's tensors only, not the optimiser's
        saved = ckpt["config"]
        name, config, state = saved["model"], {"N": saved["N"], "M": saved["M"], "levels": len(saved["lambdas"])}, ckpt["model"]
        earlier, source_lambdas = ckpt.get("lineage", []), saved["lambdas"]
        entry = {"command": ckpt.get("command"), "steps": ckpt["step"], "date": ckpt.get("date"), "data": ckpt.get("data")}
    remap = lambdas is not None and source_lambdas is not None and [float(v) for v in source_lambdas] != [float(v) for v in lambdas]
    # integer copies (h_s_int, ctx_int) are derived from the trained float networks at export (nicodec.calibration): not trained
    state = {k: v for k, v in state.items() if not k.split(".", 1)[0].endswith("_int")}
    ignored = ("levels", "integer_hyper") if remap else ("integer_hyper",)
    comparable = lambda c: {k: v for k, v in c.items() if k not in ignored}  # noqa: E731
    if name not in (model.name, *model.warm_start_from) or comparable(config) != comparable(model.config.to_dict()):
        raise NicodecError(f"--init {source} holds {name} {config}, not {model.name} {model.config.to_dict()}")
    if remap:
        state = {k: remap_levels(v, source_lambdas, lambdas) if k.endswith("log_gain") else v for k, v in state.items()}
    own = {k for k in model.state_dict() if not k.split(".", 1)[0].endswith("_int")}
    if name != model.name and not set(state) < own:
        raise NicodecError(f"--init {source}: {name} weights do not fit inside {model.name}")
    model.load_state_dict({k: v.float() if v.is_floating_point() and v.dtype != torch.float64 else v for k, v in state.items()},
                          strict=name == model.name)
    return [*earlier, {"from": source.name, **entry, **({"lambdas": list(source_lambdas)} if remap else {})}]


def freeze_all_but(model: CompressionModel, parts: Sequence[str]) -> None:
    """Freeze ``model`` except the named top-level modules (``g_a``, ``y_gain``, ``y_model``, ...).

    For fine-tuning a few parameters on top of trained ones on a CPU: e.g. the gains and density of a
    factorized model built on another model's transforms (docs/training.md). The frozen transforms
    still run forward (and g_s backward, for the gradient reaching the gains), without weight gradients.
    """
    known = dict(model.named_children())
    if unknown := sorted(set(parts) - set(known)):
        raise NicodecError(f"--train-only: {model.name} has no part {', '.join(unknown)}; its parts: {', '.join(known)}")
    model.requires_grad_(False)
    for name in parts:
        known[name].requires_grad_(True)


def freeze_all_but_new_levels(model: CompressionModel, lambdas: Sequence[float], trained: Sequence[float]) -> Tensor:
    """Freeze ``model`` except the gain-table rows of levels whose λ is not in ``trained`` (the
    λ values of the weights it started from); returns those levels (1-based). A trained model
    gets new rate levels without any of its existing files or qualities changing: with
    everything else fixed, each new level only learns how finely to quantise. Cheap (CPU
    minutes), and enough to extend the low end; not the high end, where the frozen decoder
    saturates (docs/training.md, "Range")."""
    from ..variable_rate import Gains

    new = [i for i, lam in enumerate(lambdas) if all(not math.isclose(lam, t, rel_tol=1e-6) for t in trained)]
    if not new:
        raise NicodecError(f"--new-levels-only: every λ of {list(lambdas)} is already trained; add new ones with --lambdas")
    mask = torch.zeros(len(lambdas), 1)
    mask[new] = 1
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, Gains):
            module.log_gain.requires_grad_(True)
            module.log_gain.register_hook(lambda grad: grad * mask.to(grad.device))
    return torch.tensor(new) + 1


def _source_lambdas(source: str | Path) -> tuple[float, ...]:
    """The λ levels of release weights or a checkpoint (``--init``): a run continuing from
    weights keeps their levels unless told otherwise."""
    from ..weights import read_metadata

    if Path(source).suffix == ".safetensors":
        values = read_metadata(source).get("lambdas") or ()
    else:
        values = load_checkpoint(source, lazy=True)["config"].get("lambdas") or ()
    return tuple(float(v) for v in values)


def config_from_checkpoint(ckpt: dict, **overrides) -> TrainConfig:
    """The run's TrainConfig, with ``overrides`` applied (unknown saved fields are ignored)."""
    known = {f.name for f in fields(TrainConfig)}
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items() if k in known}
    saved.setdefault("hold_out", 0.0)  # runs from before the held-out photos trained on every photo
    return TrainConfig(**{**saved, **overrides})


def export_weights(checkpoint: str | Path, output: str | Path, half: bool = False,
                   default_quality: float | None = None, calibration: str | Path | None = None,
                   average: bool = True) -> Path:
    """Release weights from a checkpoint: frozen (``update()``) model + metadata, via save_weights.

    ``nicodec.load(output)`` rebuilds the codec. ``default_quality``: the quality it codes at when
    none is asked for (else :attr:`Codec.default_quality`'s rule), e.g. to keep a default level
    when levels are added below it. Hyperprior models get their integer hyper-synthesis
    (:mod:`nicodec.calibration`), calibrated on the photos in ``calibration`` (default: the run's
    training folder), so that they code container version 3. ``average``: export the moving
    average of the weights when the run kept one (``--ema``), else the last weights.
    """
    ckpt = load_checkpoint(checkpoint, lazy=True)  # the model's tensors only, not the optimiser's
    c = config_from_checkpoint(ckpt)
    if default_quality is not None and not 1 <= default_quality <= c.levels:
        raise NicodecError(f"--default-quality must be in [1, {c.levels}], got {default_quality}")
    model = build_model(c.model, c.model_config())
    averaged = average and ckpt.get("ema") is not None
    model.load_state_dict({**ckpt["model"], **(ckpt["ema"]["average"] if averaged else {})})
    if not c.new_levels_only:  # else the densities are the --init weights' and keep their tail quantiles exactly
        model.update()
    calibrated = {}
    inherited = _inherited_integer_hyper(c) if c.new_levels_only else None
    if inherited is not None:  # the old levels keep coding exactly as the --init weights did
        model.set_integer_hyper(inherited)
        calibrated = {"calibration": {"inherited_from": Path(c.init).name}}
    elif needs_calibration(model):
        folder = Path(calibration or c.data)
        if not folder.is_dir():
            raise NicodecError(f"{c.model} weights need calibration photos (the run's {folder} is not here): --calibration FOLDER")
        images = calibration_images(folder)
        calibrate(model.eval(), images)
        calibrated = {"calibration": {"images": len(images), "folder": folder.name, "crop": CROP}}
    metadata = {
        "trained": True,
        "lambdas": list(c.lambdas),
        "distortion": c.distortion,
        "quant": c.quant,
        "steps": ckpt["step"],
        "minutes": round(float(ckpt.get("minutes", 0.0)), 2),
        "total_steps": ckpt["step"] + sum(run.get("steps") or 0 for run in ckpt.get("lineage", [])),
        "lineage": ckpt.get("lineage", []),
        "data": ckpt.get("data", {}),
        "recipe": {k: getattr(c, k) for k in ("batch", "patch", "min_scale", "hold_out", "optimizer", "ema", "lr", "entropy_lr_ratio", "warmup",
                                              "decay_fraction", "final_lr_ratio", "clip", "seed", "new_levels_only", "train_only")},
        "weights": "moving average" if averaged else "last step",
        "date": ckpt.get("date"),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ckpt.get("command"),
        "nicodec_version": __version__,
        **({"default_quality": float(default_quality)} if default_quality is not None else {}),
        **calibrated,
    }
    output = Path(output)
    if not output.parent.is_dir():
        raise NicodecError(f"output folder {output.parent} does not exist")
    save_weights(output, model, metadata, half=half)
    return output


# --------------------------------------------------------------------------- helpers


def _inherited_integer_hyper(c: TrainConfig):
    """The --init weights' integer hyper-synthesis, for a --new-levels-only export: recalibrating
    over the new level's ranges would move the old levels' requantisation and so their files. A
    new level outside the calibrated ranges saturates (integer clamps), which stays exact."""
    from ..weights import load_weights

    if not c.init or Path(c.init).suffix != ".safetensors":
        return None
    parent, _ = load_weights(Path(c.init))
    network = getattr(parent, "h_s_int", None)
    return network if network is not None and parent.exact_ready else None


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise NicodecError("--device cuda, but torch sees no CUDA GPU")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _autocast_transforms(model: CompressionModel, device_type: str) -> None:
    """Run the transforms (g_a, g_s, h_a, h_s: the model's nn.Sequential children) under bf16
    autocast. Entropy models and gains run outside it, so likelihoods and rates stay fp32.
    (An instance attribute: the state dict is unchanged.)"""
    for module in model.children():
        if isinstance(module, nn.Sequential):
            module.forward = torch.autocast(device_type, dtype=torch.bfloat16)(module.forward)


def _all_sum(values, device: torch.device, world: int) -> list[float]:
    """Sum a list of numbers over processes (identity for one process)."""
    if world == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _mean_and_flag(means: Tensor, flag: Tensor, world: int, extra: float = 0.0) -> list[float]:
    """Average the per-process means (and ``extra``, appended last) over processes; any
    process's stop flags stop all."""
    values = torch.cat([means.double(), flag.double(), torch.tensor([extra], dtype=torch.float64, device=flag.device)])
    if world > 1:
        dist.all_reduce(values)
        values[: len(means)] /= world
        values[-1] /= world
    return values.tolist()


def _rng_state(sampler: PatchSampler, device: torch.device) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "data": sampler.generator.get_state(),
    }


def _set_rng_state(state: dict, sampler: PatchSampler, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    sampler.generator.set_state(state["data"])


def _check_compatible(saved: dict, c: TrainConfig) -> None:
    for name in _FIXED_ON_RESUME:
        old, new = saved[name], getattr(c, name)
        if (tuple(old) if isinstance(old, list) else old) != new:
            raise NicodecError(f"the checkpoint was trained with {name}={old}, not {new}: resume with the same settings or start a new --out")


def _command_line() -> str:
    return " ".join(["nicodec" if Path(sys.argv[0]).name in ("nicodec", "__main__.py") else sys.argv[0], *sys.argv[1:]])


class _StopOnSignal:
    """SIGINT / SIGTERM set ``signal``; the loop finishes its step, checkpoints and stops.

    Repeated signals are ignored: under torchrun a Ctrl-C reaches each worker twice (from the
    terminal and forwarded by the agent), and the checkpoint must still be written. Does nothing
    outside the main thread.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signum

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class _CsvLog:
    """Append rows to a CSV; on resume, rows after the resumed step are dropped first."""

    def __init__(self, path: Path, columns: list[str], resume_step: int, enabled: bool):
        self.file = None
        if not enabled:
            return
        kept = []
        if resume_step and path.exists():
            with path.open(newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(kept)
        self.file.flush()

    def write(self, row: dict) -> None:
        if self.file is not None:
            self.writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: CSV logs only
        return None
    return SummaryWriter(str(folder))


def _tb_add(tb, prefix: str, row: dict, step: int) -> None:
    if tb is not None:
        for k, v in row.items():
            if k not in ("step", "level") and isinstance(v, (int, float)) and math.isfinite(v):
                tb.add_scalar(f"{prefix}/{k}", v, step)
