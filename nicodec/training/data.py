"""Training data: every image under a folder, decoded once, served as random P×P crops.

There is no DataLoader. Images are decoded once at start into uint8 tensors (3, H, W) kept in a
list (sizes are ragged): on CUDA the list lives on the GPU and crops are cut there, on CPU it
lives in memory. Cutting a batch is a handful of slicing ops, so the training step never waits
for data. All randomness (which image, where, flips, scales, and the rate level of each batch
element) comes from one ``torch.Generator`` on the CPU whose state goes into checkpoints, so a
resumed run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import NicodecError
from . import holdout

# Pillow's own limit on image size guards against decompression bombs; keep it.
_READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def list_files(folder: str | Path) -> list[Path]:
    """All regular files under ``folder`` (recursive, hidden ones skipped), sorted for reproducibility."""
    root = Path(folder)
    if not root.is_dir():
        raise NicodecError(f"data folder not found: {root}")
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return files


def decode_rgb(path: Path) -> np.ndarray | str:
    """(H, W, 3) uint8, or why Pillow cannot read the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.array(image.convert("RGB"))
    except _READ_ERRORS as exc:
        return f"{exc.__class__.__name__}: {exc}"


def load_images(
    folder: str | Path, min_side: int = 0, shard: tuple[int, int] = (0, 1), threads: int = 8, hold_out: float = 0.0
) -> list[torch.Tensor]:
    """Decode the images of ``folder`` (this shard's slice of them) into (H, W, 3) uint8 tensors.

    Images smaller than ``min_side`` on a side are padded (reflect, or replicate where the image
    is too small to reflect) up to it, with one warning saying how many. ``shard`` = (rank, world)
    keeps files rank, rank + world, ... so that DDP ranks see disjoint data. ``hold_out``: leave
    out that fraction of the files, the held-out photos (:mod:`nicodec.training.holdout`).
    """
    files = list_files(folder)
    if not files:
        raise NicodecError(f"data folder {folder} is empty: put training images (PNG, JPEG, ...) in it")
    files = holdout.split(files, hold_out)[0]
    rank, world = shard
    mine = files[rank::world]
    with ThreadPoolExecutor(max(1, threads)) as pool:  # Pillow releases the GIL while decoding
        decoded = list(pool.map(decode_rgb, mine))
    for path, result in zip(mine, decoded):
        if isinstance(result, str):
            warnings.warn(f"skipping {path}: not a readable image ({result})", stacklevel=2)
    arrays = [a for a in decoded if not isinstance(a, str)]
    if not arrays and world == 1:  # under DDP the caller checks every rank's count together
        raise NicodecError(f"no readable images among the {len(files)} files in {folder}")
    small = 0
    images = []
    for a in arrays:
        h, w = a.shape[:2]
        if h < min_side or w < min_side:
            small += 1
            pad = ((0, max(0, min_side - h)), (0, max(0, min_side - w)), (0, 0))
            a = np.pad(a, pad, mode="reflect" if min(h, w) > max(pad[0][1], pad[1][1]) else "edge")
        images.append(torch.from_numpy(a))  # shares the array's memory: no second copy
    if small:
        warnings.warn(f"{small} image(s) smaller than {min_side}×{min_side} were padded (reflect/replicate)", stacklevel=2)
    return images


class PatchSampler:
    """Random (B, 3, P, P) float batches in [0, 1] cut from uint8 images on ``device``.

    ``min_scale`` < 1 enables random downscaling: each crop is taken at a random scale
    s ∈ [min_scale, 1] (a (P/s)-sided region resized to P with antialiasing), which shows the
    model the statistics of downsampled photos. Horizontal flips with probability ½.
    """

    def __init__(self, images: list[torch.Tensor], patch: int, batch: int, device: torch.device,
                 seed: int, min_scale: float = 1.0):
        self.images = [img.to(device) for img in images]  # uint8 (H, W, 3), ragged sizes
        self.patch, self.batch, self.device, self.min_scale = patch, batch, device, min_scale
        self.generator = torch.Generator().manual_seed(seed)  # CPU: cheap to draw, state saved in checkpoints

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def _crop(self, image: torch.Tensor) -> torch.Tensor:
        """One (3, P, P) float crop in [0, 255] of an (H, W, 3) uint8 image."""
        h, w, _ = image.shape
        side = self.patch
        if self.min_scale < 1:
            low = max(self.min_scale, self.patch / min(h, w))  # the region must fit in the image
            scale = low + (1 - low) * self._uniform() if low < 1 else 1.0
            side = min(round(self.patch / scale), h, w)
        top, left = self._randint(h - side + 1), self._randint(w - side + 1)
        crop = image[top : top + side, left : left + side].permute(2, 0, 1).float()
        if side != self.patch:
            crop = F.interpolate(crop[None], size=(self.patch, self.patch), mode="bilinear",
                                 antialias=True, align_corners=False)[0]
        return crop.flip(-1) if self._uniform() < 0.5 else crop

    def next_batch(self) -> torch.Tensor:
        """(B, 3, P, P) float32 in [0, 1] on the sampler's device."""
        picks = torch.randint(len(self.images), (self.batch,), generator=self.generator).tolist()
        return torch.stack([self._crop(self.images[i]) for i in picks]).div_(255)

    def levels(self, count: int) -> torch.Tensor:
        """(B,) int64 rate levels in 1..count, one per batch element, drawn from the same generator."""
        return torch.randint(1, count + 1, (self.batch,), generator=self.generator)
