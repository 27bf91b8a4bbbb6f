"""One float-model fit of the overfit codec on a training crop: what a design choice is worth.

    python benchmarks/overfit_float.py '{"image": "001", "arch": {"scheme": "parallel"}}'
    python benchmarks/overfit_float.py '{"image": "001", "init": "pretrained", "lam": 0.0009}'

The JSON argument: ``image`` (a ../shared/data/train name, never Kodak), ``size`` (centre crop,
default [256, 384]), ``lam`` (default 0.013, quality 6), ``arch`` (model.Architecture fields),
``init`` ("pretrained": start from init_state.py; else random networks), and any FitConfig field
(``iterations``, ``latent_lr``, ...). Prints bpp (−log2 of the float ARM's likelihoods of the
rounded latents; the networks' bits are not counted), PSNR of the float synthesis, the loss
bpp + λ·255²·MSE that compares two settings at one λ, and the latent bits per grid.
This is how docs/logs/overfit-2026-12-01/context-and-init.txt was measured.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nicodec.overfit import fit as F
from nicodec.overfit import model as M
from nicodec.overfit.codec import quality_to_lambda, starting_networks

_ROOT = Path(__file__).resolve().parents[1]
TRAIN = next((p / "shared" for p in (_ROOT.parent, _ROOT.parent.parent) if (p / "shared").exists()), _ROOT.parent / "shared") / "data" / "train"  # ../shared, or ../../shared from a worktree


def main() -> None:
    torch.set_num_threads(1)
    args = json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")
    h, w = args.pop("size", (256, 384))
    img = np.array(Image.open(TRAIN / f"{args.pop('image', '001')}.png").convert("RGB"))
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    x = torch.from_numpy(img[top : top + h, left : left + w].copy()).permute(2, 0, 1)[None].float() / 255
    lam = args.pop("lam", 0.013)
    arch = M.Architecture(**args.pop("arch", {}))
    nearest = min(range(1, 11), key=lambda q: abs(np.log(quality_to_lambda(q) / lam)))
    init = starting_networks(arch, nearest) if args.pop("init", None) == "pretrained" else None
    config = F.FitConfig(**args)
    start = time.time()
    result = F.fit(x, torch.tensor([lam]), arch, config, init=None if init is None else [init])
    bpp, psnr = F.evaluate(result.nets, result.latents, x)
    loss = bpp.item() + lam * 255**2 * 10 ** (-psnr.item() / 10)
    with torch.no_grad():
        grids = [torch.round(y) for y in result.latents]
        inputs, targets = M.ContextIndex([tuple(y.shape[-2:]) for y in grids], arch)(grids)
        mean, log2_scale = M.arm_float(dict(result.nets.arm), inputs, arch.arm_layers)
        bits = M.laplace_bits(targets, mean, log2_scale)[0]
        per_grid = torch.split(bits, [y.shape[-1] * y.shape[-2] for y in grids][::-1])
    print(f"{sys.argv[1] if len(sys.argv) > 1 else '{}'} bpp {bpp.item():.4f} psnr {psnr.item():.3f} loss {loss:.4f} "
          f"time {time.time() - start:.0f} s")
    print("bits per grid (coarse->fine):", [round(p.sum().item()) for p in per_grid])


if __name__ == "__main__":
    main()
