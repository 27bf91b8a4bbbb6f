"""Calibration: giving a trained hyperprior model the integer hyper-synthesis that coding uses.

The integer copy of h_s (:mod:`nicodec.integer_network`) — and of every channel-context network,
in models that have them — needs the range of every activation it quantises. They are measured once, when weights are exported, by running the model on training
photographs at every rate level, and stored with the weights — the decoder never recomputes them,
so encoder and decoder use the same integers whatever the machine. Measured on Kodak (container
version 3 against the float path, 24 images × 10 levels, `python benchmarks/integer_path.py`), 8-bit
activations cost well under the 0.5 % of rate allowed (docs/format.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import NicodecError
from .integer_network import IntegerNetwork, record_ranges
from .models import ChannelContextHyperprior, CompressionModel, ScaleHyperprior

ACT_BITS = 8  # activations between the layers (unsigned after a ReLU)
INPUT_BITS = 8  # the input ẑ / gain
CALIBRATION_IMAGES = 40  # photographs, each at every rate level and between levels
CROP = 512  # central crop side (a multiple of 64: the models' stride)
_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".tif", ".tiff", ".bmp")


def needs_calibration(model: CompressionModel) -> bool:
    """Whether ``model`` has a hyper-synthesis that coding needs an integer copy of."""
    return isinstance(model, ScaleHyperprior)


def calibrate(model: CompressionModel, images: Iterable[Tensor], qualities: Sequence[float] | None = None) -> CompressionModel:
    """Attach the integer hyper-synthesis to ``model`` (in place; returned for chaining).

    ``images``: (1, 3, H, W) tensors in [0, 1] with H and W multiples of the model's stride.
    ``qualities``: the qualities each image is seen at (default: every level and every midpoint).
    Models without a hyperprior are returned unchanged.
    """
    if not needs_calibration(model):
        return model
    assert isinstance(model, ScaleHyperprior)
    levels = model.config.levels
    qualities = list(qualities) if qualities is not None else [float(q) for q in np.arange(1.0, levels + 0.25, 0.5)]
    images_seen = list(images)
    inputs = [z for x in images_seen for z in model.hyper_synthesis_inputs(x, qualities)]
    if not inputs:
        raise NicodecError("calibration needs at least one image")
    ranges = record_ranges(model.h_s, inputs)
    model.set_integer_hyper(IntegerNetwork.from_float(model.h_s, ranges, act_bits=ACT_BITS, input_bits=INPUT_BITS))
    if isinstance(model, ChannelContextHyperprior):  # what each context network sees, from the float model
        seen = [[] for _ in model.ctx]
        for x in images_seen:
            for k, inputs in enumerate(model.context_inputs(x, qualities)):
                seen[k] += inputs
        model.set_integer_context([
            IntegerNetwork.from_float(network, record_ranges(network, inputs), act_bits=ACT_BITS, input_bits=INPUT_BITS)
            for network, inputs in zip(model.ctx, seen)
        ])
    return model


def calibration_images(folder: str | Path, count: int = CALIBRATION_IMAGES, crop: int = CROP) -> list[Tensor]:
    """The first ``count`` images of ``folder`` (sorted by name), each its central crop×crop region
    (smaller images: their largest region of whole 64-pixel blocks), as (1, 3, h, w) tensors."""
    from .images import open_image, to_planes

    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _EXTENSIONS)[:count] if folder.is_dir() else []
    if not paths:
        raise NicodecError(f"no calibration images in {folder}")
    out = []
    for path in paths:
        rgb = to_planes(open_image(path)).rgb
        h, w = rgb.shape[:2]
        ch, cw = min(crop, h // 64 * 64), min(crop, w // 64 * 64)
        if ch == 0 or cw == 0:
            continue
        top, left = (h - ch) // 2, (w - cw) // 2
        patch = np.array(rgb[top : top + ch, left : left + cw])  # a writable copy (torch wants one)
        out.append(torch.from_numpy(patch)[None].permute(0, 3, 1, 2).float() / 255)
    return out
