"""Which latent elements the probability model (ARM) may look at, and in what order they are coded.

One function, :func:`gather`, builds the ARM's inputs for the encoder (training and coding) and the
decoder alike, so the two cannot drift apart.

Grids are coded coarsest first. Within a grid, the elements are split into *passes*; each pass
reads only elements of earlier passes (of this grid) and of the coarser grid, which is decoded:

``raster`` (the format's order) — one causal pass in raster order over 16 neighbours of the rows
above and the left, as Cool-chic's ARM: decoded one element at a time (:mod:`.raster`).

``parallel`` and ``checkerboard`` (measured, not in the format: they cost 8–22 % more rate,
docs/overfit.md) — passes over sub-lattices, each decodable in a few vectorised calls::

    A B A B      checkerboard: pass 0 (A, a quarter) sees the coarser grid only; pass 1 (D) 12 A
    C D C D      neighbours at (±1,±1), (±1,±3), (±3,±1); pass 2 (B and C, half) 12 A/D neighbours
    A B A B      at (0,±1), (±1,0), (±1,±2), (±2,±1) — pass 1's pattern is pass 2's turned by 45°.

  ``parallel`` applies this recursively on the anchors (3 levels: anchors 1/64 of the grid, 7
  passes), each level's offsets scaled by its lattice period.

Every element also sees a 3×3 patch of the coarser grid around its parent, flipped so that its
first row and column are always those nearer the element (one meaning for every sub-lattice phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_CHECKER = ((0, 1), (1, 0), (0, -1), (-1, 0), (2, 1), (1, 2), (-1, 2), (-2, 1), (-2, -1), (-1, -2), (1, -2), (2, -1))
_ROTATED = tuple((dr + dc, dr - dc) for dr, dc in _CHECKER)  # the same pattern turned by 45°
_CAUSAL = ((0, -1), (0, -2), (0, -3), (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-1, 3),
           (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-3, 0))
COARSE = 9  # 3×3 parent patch


@dataclass(frozen=True)
class Pass:
    """Sub-lattices (row phase, column phase) with period ``step`` coded together, and their
    neighbours' offsets."""

    phases: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[int, int], ...]
    step: int = 2


def _recursive(levels: int) -> tuple[Pass, ...]:
    """Anchors on a lattice of period 2^levels, then per level (coarsest first) the rotated and
    the upright checkerboard pass at that scale: 1 + 2·levels passes."""
    passes = [Pass(((0, 0),), (), 1 << levels)]
    for level in range(levels - 1, -1, -1):
        s = 1 << level
        passes.append(Pass(((s, s),), tuple((dr * s, dc * s) for dr, dc in _ROTATED), 2 * s))
        passes.append(Pass(((0, s), (s, 0)), tuple((dr * s, dc * s) for dr, dc in _CHECKER), 2 * s))
    return tuple(passes)


SCHEMES: dict[str, tuple[Pass, ...]] = {
    "parallel": _recursive(3),
    "checkerboard": _recursive(1),
    "raster": (Pass(((0, 0), (0, 1), (1, 0), (1, 1)), _CAUSAL),),
}
PAD = max(max(abs(v) for o in p.offsets for v in o) for passes in SCHEMES.values() for p in passes if p.offsets)


def neighbours(scheme: str) -> int:
    """Number of same-grid inputs of the ARM for ``scheme`` (the pass slots)."""
    return max(len(p.offsets) for p in SCHEMES[scheme])


def inputs(scheme: str, coarse: bool = True) -> int:
    return neighbours(scheme) + (COARSE if coarse else 0)


def phase_size(n: int, phase: int, step: int = 2) -> int:
    """Elements of a side of length ``n`` with index ≡ phase (mod step)."""
    return max(0, (n - phase + step - 1) // step)


def gather(grid: Tensor, coarse: Tensor | None, scheme: str, p: int, with_coarse: bool = True) -> tuple[Tensor, list]:
    """ARM inputs of pass ``p`` of ``grid`` (G, 1, h, w), given the coarser grid (G, 1, ⌈h/2⌉, ⌈w/2⌉)
    (None for the coarsest: zeros). Returns (G, K, N) inputs and, per phase, its (r0, c0, rows, cols),
    the elements in phase order, each row-major. Reads only elements that precede pass ``p``.

    Inputs come as (G, K, N) — one row per neighbour — so that each row is one contiguous copy."""
    g, _, h, w = grid.shape
    spec = SCHEMES[scheme][p]
    k = neighbours(scheme)
    padded = F.pad(grid, (PAD, PAD, PAD, PAD))
    if with_coarse:
        cpad = F.pad(coarse if coarse is not None else grid.new_zeros(g, 1, (h + 1) // 2, (w + 1) // 2), (1, 1, 1, 1))
    parts, where = [], []
    st = spec.step
    for r0, c0 in spec.phases:
        rows, cols = phase_size(h, r0, st), phase_size(w, c0, st)
        if rows == 0 or cols == 0:
            continue
        r, c = PAD + r0, PAD + c0
        slots = [padded[:, 0, r + dr : r + dr + st * (rows - 1) + 1 : st, c + dc : c + dc + st * (cols - 1) + 1 : st]
                 for dr, dc in spec.offsets]
        slots += [grid.new_zeros(g, rows, cols)] * (k - len(spec.offsets))
        if with_coarse:  # parent (r // 2, c // 2); the nearer coarse neighbour is above / left for even r / c
            sr, sc = (-1 if r0 % 2 == 0 else 1), (-1 if c0 % 2 == 0 else 1)
            cs, pr, pc = st // 2, 1 + r0 // 2, 1 + c0 // 2
            for a in (1, 0, -1):
                for b in (1, 0, -1):
                    ra, cb = pr + sr * a, pc + sc * b
                    slots.append(cpad[:, 0, ra : ra + cs * (rows - 1) + 1 : cs, cb : cb + cs * (cols - 1) + 1 : cs])
        parts.append(torch.stack(slots, 1).reshape(g, len(slots), rows * cols))
        where.append((r0, c0, st, rows, cols))
    if not parts:
        return grid.new_zeros(g, k + (COARSE if with_coarse else 0), 0), where
    return torch.cat(parts, 2), where


def values_at(grid: Tensor, where: list) -> Tensor:
    """(G, N) elements of ``grid`` (G, 1, h, w) at the phases of ``where``, in gather's order."""
    return torch.cat([grid[:, 0, r0 : r0 + st * rows : st, c0 : c0 + st * cols : st].reshape(grid.shape[0], -1)
                      for r0, c0, st, rows, cols in where], 1) if where else grid.new_zeros(grid.shape[0], 0)


def scatter(grid: Tensor, where: list, values: Tensor) -> None:
    """Write (G, N) ``values`` into ``grid`` (G, 1, h, w) at the phases of ``where`` (in place)."""
    start = 0
    for r0, c0, st, rows, cols in where:
        n = rows * cols
        grid[:, 0, r0 : r0 + st * rows : st, c0 : c0 + st * cols : st] = values[:, start : start + n].reshape(-1, rows, cols)
        start += n
