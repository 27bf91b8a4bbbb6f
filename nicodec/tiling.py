"""Run a convolutional transform over a large image in overlapping tiles, so that coding memory
stays bounded whatever the image size.

The transforms' activations are what limit image size: the synthesis g_s holds N channels at
half resolution (N = 128: ~1.5 GB per tensor for a 12-megapixel photo, ~6.8 GB peak in all),
so a 48-megapixel photo would not decode on a laptop. Each output pixel of g_a and g_s depends
only on a bounded neighbourhood of the input (the receptive field: ±30 pixels for g_a's four
5×5 stride-2 convolutions, ±2 latents for g_s), so cutting the input into tiles, extending each
by a ``halo`` at least that wide, and keeping only the tile's own part of the output gives the
values of the whole-image pass, up to float32 rounding (convolution kernels pick their
summation order by tensor size). Tiles are aligned to the stride, so every tile sees the same
sampling grid as the whole image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction

import torch
from torch import Tensor


def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, scale: Fraction | int, tile: int, halo: int) -> Tensor:
    """``fn(x)`` computed tile by tile; ``fn`` maps (B, C, h, w) to (B, C', h·scale, w·scale).

    ``tile`` and ``halo`` are in input pixels; each must make whole output pixels (multiples of
    the stride for a downsampling ``fn``). An input no larger than one tile is passed through
    whole, so small images take exactly the untiled path.
    """
    scale = Fraction(scale)
    height, width = x.shape[-2:]
    if tile <= 0 or halo < 0 or (tile * scale).denominator != 1 or (halo * scale).denominator != 1:
        raise ValueError(f"tile {tile} and halo {halo} must give whole output pixels at scale {scale}")
    if height <= tile and width <= tile:
        return fn(x)
    out = None
    for (top, bottom, left, right), (t0, t1, l0, l1) in tile_windows(height, width, tile, halo):
        piece = fn(x[..., t0:t1, l0:l1])
        if out is None:
            layout = torch.channels_last if piece.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            shape = (*piece.shape[:2], int(height * scale), int(width * scale))
            out = torch.empty(shape, dtype=piece.dtype, device=piece.device, memory_format=layout)
        rows = slice(int((top - t0) * scale), int((bottom - t0) * scale))
        cols = slice(int((left - l0) * scale), int((right - l0) * scale))
        out[..., int(top * scale) : int(bottom * scale), int(left * scale) : int(right * scale)] = piece[..., rows, cols]
    return out


Box = tuple[int, int, int, int]  # top, bottom, left, right


def tile_windows(height: int, width: int, tile: int, halo: int) -> Iterator[tuple[Box, Box]]:
    """Each tile of a height × width grid, row by row, and its window: the tile extended by
    ``halo`` on every side, within the grid."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            yield (top, bottom, left, right), (max(0, top - halo), min(bottom + halo, height),
                                               max(0, left - halo), min(right + halo, width))
