"""The overfit model's own header: the first stream of an ``overfit`` ``.nic`` file.

Declared once (``FIELDS``, ``MODULE_FIELDS``) and used by both reader and writer, as
``container.HEADER`` is. Every size in it is bounded before anything is allocated: a file that
asks for more grids, wider layers or bigger parameters than these bounds is refused in one line.

    FIELDS                      the architecture (see model.Architecture)
    per tile, per module        MODULE_FIELDS: the parameters' quantisation step 2^−shift, the
    (arm, up, syn)              Laplace scale index of their coding table and their largest |value|

Tiles: images are cut into TILE × TILE tiles (the last row and column smaller), each coded as an
independent model, so that fitting and decoding keep memory bounded on large photos.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import CorruptFileError
from . import tables
from .model import Architecture

LAYOUT = 1  # version of this header and of the coding order it implies
TILE = 1024  # tile side (pixels): the largest area fitted or decoded at once
MODULES = ("arm", "up", "syn")  # parameter groups, each with its own step and table, in file order

# (field, struct code, smallest, largest). The one declaration of the header.
FIELDS = (
    ("layout", "B", LAYOUT, LAYOUT),
    ("grids", "B", 1, 8),
    ("arm_width", "B", 1, 64),
    ("arm_layers", "B", 1, 4),
    ("synthesis_width", "B", 1, 128),
    ("coarse_context", "B", 0, 1),
)
MODULE_FIELDS = (
    ("shift", "B", 0, 24),  # parameters are integers times 2^−shift
    ("scale", "B", 0, tables.PARAM_SCALES - 1),  # their table: Laplace(0, 2^(scale/2))
    ("bound", "H", 0, tables.PARAM_BOUND),  # their largest magnitude: the table's range
)
_FIXED = struct.Struct("<" + "".join(code for _, code, _, _ in FIELDS))
_MODULE = struct.Struct("<" + "".join(code for _, code, _, _ in MODULE_FIELDS))


@dataclass(frozen=True)
class Quantisation:
    """How one module's parameters are stored."""

    shift: int
    scale: int
    bound: int


@dataclass(frozen=True)
class Header:
    arch: Architecture
    tiles: list[dict[str, Quantisation]]  # per tile: module name → its quantisation


def tile_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each tile, row by row."""
    return [(top, left, min(TILE, height - top), min(TILE, width - left))
            for top in range(0, height, TILE) for left in range(0, width, TILE)]


def pack(header: Header) -> bytes:
    a = header.arch
    values = dict(layout=LAYOUT, grids=a.grids, arm_width=a.arm_width, arm_layers=a.arm_layers,
                  synthesis_width=a.synthesis_width, coarse_context=int(a.coarse_context))
    _check(values, FIELDS, ValueError)
    out = [_FIXED.pack(*(values[name] for name, *_ in FIELDS))]
    for tile in header.tiles:
        for module in MODULES:
            q = vars(tile[module])
            _check(q, MODULE_FIELDS, ValueError)
            out.append(_MODULE.pack(*(q[name] for name, *_ in MODULE_FIELDS)))
    return b"".join(out)


def unpack(data: bytes, height: int, width: int) -> Header:
    """Parse and bound-check the header of an image of this size; CorruptFileError otherwise."""
    n_tiles = len(tile_boxes(height, width))
    if len(data) != _FIXED.size + n_tiles * len(MODULES) * _MODULE.size:
        raise CorruptFileError("corrupt .nic file (overfit header has the wrong size)")
    values = dict(zip((name for name, *_ in FIELDS), _FIXED.unpack_from(data)))
    _check(values, FIELDS, CorruptFileError)
    arch = Architecture(grids=values["grids"], arm_width=values["arm_width"], arm_layers=values["arm_layers"],
                        synthesis_width=values["synthesis_width"], coarse_context=bool(values["coarse_context"]))
    tiles, offset = [], _FIXED.size
    for _ in range(n_tiles):
        tile = {}
        for module in MODULES:
            q = dict(zip((name for name, *_ in MODULE_FIELDS), _MODULE.unpack_from(data, offset)))
            _check(q, MODULE_FIELDS, CorruptFileError)
            tile[module] = Quantisation(**q)
            offset += _MODULE.size
        tiles.append(tile)
    return Header(arch, tiles)


def _check(values: dict, fields: tuple, error: type[Exception]) -> None:
    for name, _, low, high in fields:
        if not low <= values[name] <= high:
            message = f"overfit header field {name} = {values[name]} is outside [{low}, {high}]"
            raise error(f"corrupt .nic file ({message})" if error is CorruptFileError else message)
