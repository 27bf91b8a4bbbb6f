"""Learn the overfit codec's starting networks once, over training photos (never Kodak).

    python benchmarks/overfit_pretrain.py --iterations 1500            # writes nicodec/overfit/init_state.py

The per-image networks (ARM, upsampling, synthesis) are tiny, so one fit of them shared over a
mosaic of crops from ``../shared/data/train`` (each crop with its own latents) takes minutes on a
CPU. The result is the encoder's starting point for every image: its fitting then spends its
iterations on the latents instead of rediscovering generic networks. Decoding does not use it.
The module written holds the state as base64 float32 with the λ and architecture it was fitted for.
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nicodec.overfit import fit as F
from nicodec.overfit.codec import quality_to_lambda
from nicodec.overfit.model import Architecture

ROOT = Path(__file__).resolve().parents[1]
TRAIN = next((p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").exists()), ROOT.parent / "shared") / "data" / "train"  # ../shared, or ../../shared from a worktree
OUT = ROOT / "nicodec" / "overfit" / "init_state.py"


def mosaic(names: list[str], crop: tuple[int, int], per_row: int) -> torch.Tensor:
    """Centre crops of the named training photos, side by side: (1, 3, H, W) in [0, 1]."""
    crops = []
    for name in names:
        img = np.asarray(Image.open(TRAIN / f"{name}.png").convert("RGB"))
        top, left = (img.shape[0] - crop[0]) // 2, (img.shape[1] - crop[1]) // 2
        crops.append(img[top : top + crop[0], left : left + crop[1]])
    rows = [np.concatenate(crops[i : i + per_row], 1) for i in range(0, len(crops), per_row)]
    return torch.from_numpy(np.concatenate(rows, 0)).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="10-17", help="training photos, e.g. 10-17 (three-digit names)")
    parser.add_argument("--crop", default="128,192")
    parser.add_argument("--per-row", type=int, default=4)
    parser.add_argument("--quality", type=float, default=6.0)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lo, _, hi = args.images.partition("-")
    names = [f"{i:03d}" for i in range(int(lo), int(hi or lo) + 1)]
    x = mosaic(names, tuple(int(v) for v in args.crop.split(",")), args.per_row)
    lam = quality_to_lambda(args.quality)
    a = Architecture()
    start = time.time()
    result = F.fit(x, torch.tensor([lam]), a, F.FitConfig(iterations=args.iterations))
    bpp, psnr = F.evaluate(result.nets, result.latents, x)
    seconds = time.time() - start
    print(f"mosaic {tuple(x.shape[-2:])} of {len(names)} photos, λ {lam:.4g}: {bpp.item():.3f} bpp, "
          f"{psnr.item():.2f} dB, {seconds:.0f} s")
    state = {k: v[0].detach().float().contiguous() for k, v in result.nets.state_dict().items()}
    raw = b"".join(v.numpy().astype("<f4").tobytes() for v in state.values())
    states, notes = _existing(Path(args.out), a)
    states[args.quality] = base64.b64encode(raw).decode("ascii")
    notes[args.quality] = (f"photos {args.images} ({args.crop} crops), λ {lam:.4g}, {args.iterations} iterations, "
                           f"{time.strftime('%Y-%m-%d')}: {bpp.item():.3f} bpp, {psnr.item():.2f} dB on the mosaic")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    lines = ['"""Starting networks for the overfit encoder, per quality (written by benchmarks/overfit_pretrain.py;',
             "do not edit). Each was fitted over a mosaic of training photos:", ""]
    lines += [f"* quality {q:g}: {notes[q]}" for q in sorted(notes)]
    lines += ['"""', "", "from .model import Architecture", "", f"ARCHITECTURE = {a!r}", f"SHAPES = {shapes!r}",
              f"NOTES = {dict(sorted(notes.items()))!r}", "STATES = {"]
    for q in sorted(states):
        lines.append(f"    {q!r}: (")
        lines += [f'        "{chunk}"' for chunk in _chunks(states[q], 96)]
        lines.append("    ),")
    lines.append("}")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _existing(path: Path, a: Architecture) -> tuple[dict, dict]:
    """The states already in the module at ``path`` (for this architecture), to keep the others."""
    if not path.exists():
        return {}, {}
    namespace: dict = {}
    source = path.read_text().replace("from .model import Architecture", "from nicodec.overfit.model import Architecture")
    exec(compile(source, str(path), "exec"), namespace)
    if namespace.get("ARCHITECTURE") != a or "STATES" not in namespace:
        return {}, {}
    return {float(q): "".join(v) for q, v in namespace["STATES"].items()}, dict(namespace.get("NOTES", {}))


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


if __name__ == "__main__":
    main()
