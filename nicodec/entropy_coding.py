"""Range coding of integer symbols into bytes, with constriction's queue (FIFO) range coder.

Every symbol is coded with one of a list of categorical tables (``CodingTables``); the table
each symbol uses is given by ``table_index``. Symbols that share a table are coded together in
one vectorised call, tables in increasing index order, so there is no Python loop per symbol.
The decoder knows the table indices (it computes them from already decoded data), so it can
replay exactly the same order.

Values outside a table's range are never clipped: they are coded as the table's last,
"escape" entry, and their true value follows after all regular symbols, coded with an
Elias-gamma-like code over uniform models (bit length, then the bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from .errors import CorruptFileError, NicodecError

_ESCAPE_MAX_BITS = 30  # escaped values are zig-zagged into [0, 2**30); larger means broken input
_CHUNK_BITS = 15  # constriction's uniform model takes alphabets below 2**24; 15-bit chunks stay clear


@dataclass(frozen=True)
class CodingTables:
    """Categorical models for coding: ``pmfs[t][i]`` is the probability of value ``offsets[t] + i``.

    Each pmf's last entry is the escape probability (everything outside the table's range).
    """

    pmfs: list[np.ndarray]  # float64 arrays, each of length (range size + 1)
    offsets: np.ndarray  # int64, value of entry 0 of each table


def _groups(table_index: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]], np.ndarray]:
    """Stable order of symbols grouped by table, (table, start, stop) slices of that order, and
    the table of each position of that order."""
    top = int(table_index.max()) if len(table_index) else -1
    if top >= 0 and 0 <= table_index.min() and top < 1 << 15:
        keys = table_index.astype(np.uint8 if top < 1 << 8 else np.int16)
        order = np.argsort(keys, kind="stable")  # radix sort: linear time, the same order as any stable sort
        counts = np.bincount(table_index)
        tables = np.flatnonzero(counts)
    else:
        order = np.argsort(table_index, kind="stable")
        tables, counts = np.unique(table_index, return_counts=True)
    counts = counts[counts > 0]
    stops = np.cumsum(counts)
    groups = [(int(t), int(b - c), int(b)) for t, b, c in zip(tables, stops, counts)]
    return order, groups, np.repeat(tables, counts)


def _categorical(pmf: np.ndarray):
    return constriction.stream.model.Categorical(pmf, perfect=False)


def _sizes(tables: CodingTables) -> np.ndarray:
    """Each table's number of regular entries (its escape entry's index)."""
    return np.array([len(p) - 1 for p in tables.pmfs], dtype=np.int64)


def encode(symbols: np.ndarray, table_index: np.ndarray, tables: CodingTables) -> bytes:
    """Range-code integer ``symbols`` (any shape), each with the table ``table_index`` names."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    table_index = np.asarray(table_index, dtype=np.int64).reshape(-1)
    if symbols.shape != table_index.shape:
        raise ValueError("symbols and table_index must have the same number of elements")
    encoder = constriction.stream.queue.RangeEncoder()
    order, groups, sorted_tables = _groups(table_index)
    size = _sizes(tables)[sorted_tables]
    relative = symbols[order] - tables.offsets[sorted_tables]
    outside = (relative < 0) | (relative >= size)
    coded = np.where(outside, size, relative).astype(np.int32)
    for t, start, stop in groups:
        encoder.encode(coded[start:stop], _categorical(tables.pmfs[t]))
    _encode_escapes(encoder, relative[outside])  # in coding order: by table, then position
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, table_index: np.ndarray, tables: CodingTables) -> np.ndarray:
    """Inverse of :func:`encode`: the symbols, flat, in their original order (int64)."""
    if len(data) % 4:
        raise CorruptFileError("corrupt stream: length is not a whole number of 32-bit words")
    table_index = np.asarray(table_index, dtype=np.int64).reshape(-1)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    order, groups, sorted_tables = _groups(table_index)
    coded = [decoder.decode(_categorical(tables.pmfs[t]), stop - start) for t, start, stop in groups]
    relative = np.concatenate(coded).astype(np.int64) if coded else np.zeros(0, np.int64)
    escaped = relative == _sizes(tables)[sorted_tables]
    relative[escaped] = _decode_escapes(decoder, int(escaped.sum()))
    if not decoder.maybe_exhausted():
        raise CorruptFileError("corrupt stream: data left over after the last symbol")
    symbols = np.empty(len(table_index), dtype=np.int64)
    symbols[order] = relative + tables.offsets[sorted_tables]
    return symbols


def _encode_escapes(encoder, values: np.ndarray) -> None:
    """Code escaped values as (bit length, bits) of their zig-zag form, all vectorised."""
    if len(values) == 0:
        return
    zigzag = np.where(values >= 0, 2 * values, -2 * values - 1)
    if zigzag.max() >= 2**_ESCAPE_MAX_BITS:
        raise NicodecError("a latent value is too large to code (is the input finite?)")
    nbits = np.zeros(len(zigzag), dtype=np.int64)
    positive = zigzag > 0
    nbits[positive] = np.floor(np.log2(zigzag[positive])).astype(np.int64) + 1
    uniform = constriction.stream.model.Uniform()
    encoder.encode(nbits.astype(np.int32), uniform, np.full(len(nbits), _ESCAPE_MAX_BITS + 1, np.int32))
    for chunk, sizes, has in _chunks(nbits):
        rest = zigzag[has] - (1 << (nbits[has] - 1))
        encoder.encode(((rest >> (chunk * _CHUNK_BITS)) & ((1 << _CHUNK_BITS) - 1)).astype(np.int32), uniform, sizes)


def _decode_escapes(decoder, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, np.int64)
    uniform = constriction.stream.model.Uniform()
    nbits = decoder.decode(uniform, np.full(count, _ESCAPE_MAX_BITS + 1, np.int32)).astype(np.int64)
    zigzag = np.where(nbits > 0, 1 << np.maximum(nbits - 1, 0), 0)
    for chunk, sizes, has in _chunks(nbits):
        zigzag[has] += decoder.decode(uniform, sizes).astype(np.int64) << (chunk * _CHUNK_BITS)
    return np.where(zigzag % 2 == 0, zigzag // 2, -(zigzag + 1) // 2)


def _chunks(nbits: np.ndarray):
    """For each 15-bit chunk of the bits below the leading one: its alphabet sizes and who has it."""
    free_bits = np.maximum(nbits - 1, 0)
    for chunk in range((_ESCAPE_MAX_BITS + _CHUNK_BITS - 1) // _CHUNK_BITS):
        bits = np.clip(free_bits - chunk * _CHUNK_BITS, 0, _CHUNK_BITS)
        has = bits > 0
        if has.any():
            yield chunk, (1 << bits[has]).astype(np.int32), has
