"""Which latent elements the probability model (ARM) may look at, and in what order they are coded.

One function, :func:`gather`, builds the ARM's inputs for the encoder (training and coding) and the
decoder alike, so the two cannot drift apart.

Grids are coded coarsest first. Within a grid, the elements are split into *passes*; every element
of a pass is coded in one vectorised call, with a context made only of elements of earlier passes
(of this grid) and of the coarser grid, which is already decoded:

``parallel`` (the format's order) — three passes over the 2×2 sub-lattices of the grid::

    A B A B      pass 0 (A, a quarter): the coarser grid only
    C D C D      pass 1 (D, a quarter): 12 A neighbours at offsets (±1,±1), (±1,±3), (±3,±1)
    A B A B      pass 2 (B and C, half): 12 A/D neighbours at (0,±1), (±1,0), (±1,±2), (±2,±1)

  Pass 1's neighbourhood is pass 2's rotated by 45°, so the two share the ARM's weights slot by slot.

``raster`` (kept to measure what the order costs) — one causal pass in raster order over 16
neighbours of the rows above and the left, as Cool-chic's ARM, decodable only element by element.

Every element also sees a 3×3 patch of the coarser grid around its parent, flipped so that its
first row and column are always those nearer the element (one meaning for every sub-lattice phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PAD = 3  # largest neighbour offset: grids are zero-padded by this much
_CHECKER = ((0, 1), (1, 0), (0, -1), (-1, 0), (2, 1), (1, 2), (-1, 2), (-2, 1), (-2, -1), (-1, -2), (1, -2), (2, -1))
_ROTATED = tuple((dr + dc, dr - dc) for dr, dc in _CHECKER)  # the same pattern turned by 45°
_CAUSAL = ((0, -1), (0, -2), (0, -3), (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-1, 3),
           (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-3, 0))
COARSE = 9  # 3×3 parent patch


@dataclass(frozen=True)
class Pass:
    """Sub-lattices (row phase, column phase) of a grid coded together, and their neighbour offsets."""

    phases: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[int, int], ...]


SCHEMES: dict[str, tuple[Pass, ...]] = {
    "parallel": (Pass(((0, 0),), ()), Pass(((1, 1),), _ROTATED), Pass(((0, 1), (1, 0)), _CHECKER)),
    "raster": (Pass(((0, 0), (0, 1), (1, 0), (1, 1)), _CAUSAL),),
}


def neighbours(scheme: str) -> int:
    """Number of same-grid inputs of the ARM for ``scheme`` (the pass slots)."""
    return max(len(p.offsets) for p in SCHEMES[scheme])


def inputs(scheme: str, coarse: bool = True) -> int:
    return neighbours(scheme) + (COARSE if coarse else 0)


def phase_size(n: int, phase: int) -> int:
    """Elements of a side of length ``n`` with index ≡ phase (mod 2)."""
    return (n - phase + 1) // 2


def gather(grid: Tensor, coarse: Tensor | None, scheme: str, p: int, with_coarse: bool = True) -> tuple[Tensor, list]:
    """ARM inputs of pass ``p`` of ``grid`` (G, 1, h, w), given the coarser grid (G, 1, ⌈h/2⌉, ⌈w/2⌉)
    (None for the coarsest: zeros). Returns (G, N, K) inputs and, per phase, its (r0, c0, rows, cols),
    the elements in phase order, each row-major. Reads only elements that precede pass ``p``."""
    g, _, h, w = grid.shape
    spec = SCHEMES[scheme][p]
    k = neighbours(scheme)
    padded = F.pad(grid, (PAD, PAD, PAD, PAD))
    if with_coarse:
        cpad = F.pad(coarse if coarse is not None else grid.new_zeros(g, 1, (h + 1) // 2, (w + 1) // 2), (1, 1, 1, 1))
    parts, where = [], []
    for r0, c0 in spec.phases:
        rows, cols = phase_size(h, r0), phase_size(w, c0)
        if rows == 0 or cols == 0:
            continue
        slots = [padded[:, 0, PAD + r0 + dr : PAD + r0 + dr + 2 * rows : 2, PAD + c0 + dc : PAD + c0 + dc + 2 * cols : 2]
                 for dr, dc in spec.offsets]
        slots += [grid.new_zeros(g, rows, cols)] * (k - len(spec.offsets))
        if with_coarse:
            sr, sc = (-1 if r0 == 0 else 1), (-1 if c0 == 0 else 1)  # towards the element
            for a in (1, 0, -1):
                for b in (1, 0, -1):
                    slots.append(cpad[:, 0, 1 + sr * a : 1 + sr * a + rows, 1 + sc * b : 1 + sc * b + cols])
        parts.append(torch.stack(slots, -1).reshape(g, rows * cols, -1))
        where.append((r0, c0, rows, cols))
    if not parts:
        return grid.new_zeros(g, 0, k + (COARSE if with_coarse else 0)), where
    return torch.cat(parts, 1), where


def values_at(grid: Tensor, where: list) -> Tensor:
    """(G, N) elements of ``grid`` (G, 1, h, w) at the phases of ``where``, in gather's order."""
    return torch.cat([grid[:, 0, r0 : r0 + 2 * rows : 2, c0 : c0 + 2 * cols : 2].reshape(grid.shape[0], -1)
                      for r0, c0, rows, cols in where], 1) if where else grid.new_zeros(grid.shape[0], 0)


def scatter(grid: Tensor, where: list, values: Tensor) -> None:
    """Write (G, N) ``values`` into ``grid`` (G, 1, h, w) at the phases of ``where`` (in place)."""
    start = 0
    for r0, c0, rows, cols in where:
        n = rows * cols
        grid[:, 0, r0 : r0 + 2 * rows : 2, c0 : c0 + 2 * cols : 2] = values[:, start : start + n].reshape(-1, rows, cols)
        start += n
