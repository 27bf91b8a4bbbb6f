"""Does fine-tuning only the analysis transform, against the rounding that coding does, lower the loss?

    python benchmarks/encoder_finetune.py [--model factorized] [--relaxation ste] [--steps 1000]
        [--lr 3e-5] [--data ../shared/data/train-gpu] [--kodak ../shared/data/kodak] [--max-images 4]

Encoder-side refinement (``--refine``) shows that each image has latents that cost less than
g_a's; part of that gap could be systematic, and an encoder trained with additive noise (the
factorized model's relaxation) never saw the hard rounding it is used with. This trains g_a alone
— decoder, entropy model and gains frozen, so files stay decodable by the same decoder — on
random 128² crops at random levels with R + λ·D through hard rounding (``ste``: straight-through
rounding for rate and synthesis) or stochastic Gumbel annealing (``sga``, at a fixed temperature),
and prints, every ``--eval-every`` steps, the change of the hard-rounded R + λ·D (estimated bits,
MSE) on Kodak images at every level against the shipped encoder. Nothing here is shipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import nicodec
from nicodec.evaluation.runner import find_images, load_image
from nicodec.latent_coders import SoftRoundingCoder
from nicodec.models import ModelOutput
from nicodec.objective import rd_loss
from nicodec.training.data import PatchSampler, load_images

ROOT = Path(__file__).resolve().parents[1]


def as_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).contiguous()  # uint8 (3, H, W)


@torch.no_grad()
def kodak_loss(model, images: list[torch.Tensor], lambdas: torch.Tensor) -> list[float]:
    """Mean hard-rounded R + λ·D per level over ``images`` (cropped to the model's stride)."""
    model.eval()
    losses = []
    for level in range(1, len(lambdas) + 1):
        total = 0.0
        for x in images:
            total += float(rd_loss(x, model.estimate(x, float(level)), lambdas[level - 1 : level], "mse")[0])
        losses.append(total / len(images))
    model.train()
    return losses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="factorized")
    p.add_argument("--relaxation", choices=("ste", "sga"), default="ste")
    p.add_argument("--temperature", type=float, default=0.3, help="of sga")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train-gpu")
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    p.add_argument("--max-images", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec = nicodec.load(args.model)
    model = codec.model.float()
    lambdas = torch.tensor(codec.metadata["lambdas"])
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("g_a."))
    trainable = [param for param in model.parameters() if param.requires_grad]
    s = model.stride
    kodak = [x[None].float().div(255)[..., : x.shape[1] // s * s, : x.shape[2] // s * s]
             for x in map(as_tensor, find_images(args.kodak, args.max_images))]
    train = load_images(args.data)
    sampler = PatchSampler(train, args.patch, args.batch, torch.device("cpu"), args.seed)  # training's crops and flips
    print(f"{args.model}: g_a's {sum(t.numel() for t in trainable)} parameters, {args.relaxation}, lr {args.lr}; "
          f"{len(train)} training images, {len(kodak)} Kodak images", flush=True)
    before = kodak_loss(model, kodak, lambdas)
    print("shipped R + λD per level:", " ".join(f"{v:.4f}" for v in before), flush=True)
    optimizer = torch.optim.Adam(trainable, lr=args.lr)
    start = time.time()
    for step in range(1, args.steps + 1):
        x = sampler.next_batch()
        levels = sampler.levels(len(lambdas))
        q = levels.float()
        if args.relaxation == "ste":
            out = model(x, q, mode="ste")
        else:
            coder = SoftRoundingCoder(args.temperature)
            y_hat = model.code(coder, q, model._analyze(x), model._latent_size(x.shape))
            out = ModelOutput(model._synthesize(y_hat, q), coder.likelihoods)
        loss = rd_loss(x, out, lambdas[levels - 1], "mse")[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            after = kodak_loss(model, kodak, lambdas)
            change = [100 * (a / b - 1) for a, b in zip(after, before)]
            print(f"step {step} ({(time.time() - start) / 60:.1f} min): R + λD change per level "
                  + " ".join(f"{c:+.2f} %" for c in change) + f"; mean {np.mean(change):+.2f} %", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
