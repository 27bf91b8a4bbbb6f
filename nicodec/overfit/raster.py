"""Raster-order latent coding: the integer ARM and an rANS coder, compiled with numba.

In raster order every element sees its 16 causal neighbours (and the coarser grid), which costs
~9 % less latent rate than the best parallel order we measured (docs/overfit.md), but each
element's table depends on the one decoded just before: decoding is a loop per element, so it
runs compiled (numba; constriction cannot be called from compiled code, hence our own coder).

The coder is rANS (Duda 2013; "rans64" layout): a 63-bit state, 32-bit words, probabilities
in 1/2^PROB_BITS. The encoder runs over the symbols backwards, so the decoder reads them forwards.
Tables are the exact float64 pmfs of :mod:`.tables`, turned into integer frequencies by
:func:`frequencies` with correctly rounded operations only, so both sides build the same tables.

The ARM here is the same integer arithmetic as :func:`.coding.arm_integer` (integers held in
float64, every sum exact), one element at a time, each layer one vector operation per input
(:mod:`.simd`); tests check they agree.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

from ..errors import CorruptFileError
from . import context, tables
from .coding import arm_integer
from .simd import LANES, OUT_LANES, dense, dense_out
from .tables import ACT_BITS, ACT_MAX, PROB_BITS

_LOW = 1 << 31  # the state stays in [2^31, 2^63)
_CAUSAL = np.array(context.SCHEMES["raster"][0].offsets, dtype=np.int64)  # (16, 2)


def frequencies(pmfs: np.ndarray) -> np.ndarray:
    """Integer frequencies ≥ 1 summing to 2^PROB_BITS per row of float64 pmfs, the same everywhere:
    f = ⌊p / Σp · (2^PROB_BITS − n)⌋ + 1 (Σ correctly rounded: math.fsum), the rest to the mode."""
    n = pmfs.shape[1]
    totals = np.array([math.fsum(row) for row in pmfs.tolist()])
    f = np.floor(pmfs / totals[:, None] * float((1 << PROB_BITS) - n)).astype(np.int64) + 1
    rows = np.arange(len(f))
    f[rows, np.argmax(f, axis=1)] += (1 << PROB_BITS) - f.sum(axis=1)  # integer sums: exact
    return f


@lru_cache(maxsize=1)
def cumulative() -> np.ndarray:
    """(TABLES, SPAN + 1) cumulative frequencies of every latent table (built once per process)."""
    cum = np.zeros((tables.TABLES, tables.SPAN + 1), dtype=np.int64)
    cum[:, 1:] = np.cumsum(frequencies(tables.latent_pmfs()), axis=1)
    return cum


def bits(cum: np.ndarray, table: np.ndarray, symbol: np.ndarray) -> float:
    """Information content of the symbols under the integer tables (what the coder spends)."""
    return _information(cum[table, symbol + 1] - cum[table, symbol])


def _information(freq: np.ndarray) -> float:
    """Bits of symbols coded with these integer frequencies (out of 2^PROB_BITS)."""
    return float(PROB_BITS * len(freq) - np.log2(freq.astype(np.float64)).sum())


@numba.njit(cache=True)
def _encode(table: np.ndarray, symbol: np.ndarray, cum: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(2 * len(table) + 4, dtype=np.uint32)
    n = 0
    x = np.int64(_LOW)
    for i in range(len(table) - 1, -1, -1):
        t, s = table[i], symbol[i]
        start = cum[t, s]
        freq = cum[t, s + 1] - start
        x_max = ((_LOW >> PROB_BITS) << 32) * freq
        if x >= x_max:
            out[n] = np.uint32(x & 0xFFFFFFFF)
            n += 1
            x >>= 32
        x = ((x // freq) << PROB_BITS) + (x % freq) + start
    out[n] = np.uint32(x & 0xFFFFFFFF)
    out[n + 1] = np.uint32(x >> 32)
    return out[: n + 2][::-1].copy()


def encode(table: np.ndarray, symbol: np.ndarray) -> bytes:
    """rANS-code ``symbol`` (indices into the SPAN-entry tables), each with its ``table``."""
    words = _encode(np.ascontiguousarray(table, np.int64), np.ascontiguousarray(symbol, np.int64), cumulative())
    return words.astype("<u4").tobytes()


@numba.njit(cache=True, error_model="numpy")
def _decode_grid(words, pos, x, grid, coarse, has_coarse, w0, b0, w1s, b1s, wo, bo, first_scale, down, cum, tables_out,
                 freqs_out, t_pos, act_bits, act_max, mean_steps, bound, scales, log2_min, span, causal):  # pragma: no cover - compiled
    """Decode one grid in raster order, recording each element's table and frequency; returns the
    reader's (pos, x, t_pos), pos = −1 on damage.

    The ARM runs on integers held in float64, a layer per :func:`.simd.dense` call (weights as
    :func:`_weights` lays them out): every sum is exact (|Σ| < 2^42 < 2^53, module coding's bound),
    so the vector code gives the integers of :func:`.coding.arm_integer`. An all-zero context
    (most of a fine grid at low rates) reuses the table it gave the first time."""
    h, w = grid.shape[0] - 3, grid.shape[1] - 6  # grid: padded by 3 above, left and right
    k_in, width = w0.shape
    ctx = np.zeros(k_in, dtype=np.float64)
    hid = np.zeros(width, dtype=np.float64)
    hid2 = np.zeros(width, dtype=np.float64)
    out = np.zeros(OUT_LANES, dtype=np.float64)
    unit = 1 << (act_bits - 3)
    low = log2_min * (1 << act_bits)
    mask = (1 << PROB_BITS) - 1
    n_words = len(words)
    zero_mi, zero_t = 0, -1
    search = 1
    while search * 2 < span:
        search *= 2
    for r in range(h):
        for c in range(w):
            magnitude = 0.0  # Σ|input|: zero when every input is (then the ARM's answer is cached)
            for j in range(16):
                v = grid[r + 3 + causal[j, 0], c + 3 + causal[j, 1]]
                ctx[j] = v
                magnitude += abs(v)
            if has_coarse:  # coarse: padded by 1 all round
                pr, pc = r // 2 + 1, c // 2 + 1
                sr = -1 if r % 2 == 0 else 1
                sc = -1 if c % 2 == 0 else 1
                j = 16
                for a in (1, 0, -1):
                    for b in (1, 0, -1):
                        v = coarse[pr + sr * a, pc + sc * b]
                        ctx[j] = v
                        magnitude += abs(v)
                        j += 1
            quiet = magnitude == 0.0
            if quiet and zero_t >= 0:
                mi, t = zero_mi, zero_t
            else:
                for col in range(0, width, LANES):
                    dense(ctx, k_in, w0, col, b0, first_scale, 0.0, act_max, hid)
                for layer in range(w1s.shape[0]):
                    for col in range(0, width, LANES):
                        dense(hid, width, w1s[layer], col, b1s[layer], down, 0.0, act_max, hid2)
                    hid, hid2 = hid2, hid
                dense_out(hid, width, wo, 0, bo, down, -np.inf, np.inf, out)
                mi = np.int64(out[0])
                li = np.int64(out[1])
                mi = min(max((mi + unit // 2) >> (act_bits - 3), -mean_steps * bound), mean_steps * bound - 1)
                si = min(max((li - low + unit // 2) >> (act_bits - 3), 0), scales - 1)
                t = si * mean_steps + (mi & (mean_steps - 1))
                if quiet:
                    zero_mi, zero_t = mi, t
            tables_out[t_pos] = t
            v = x & mask
            lo, step = 0, search  # the symbol: cum[t, lo] <= v < cum[t, lo + 1] (branch-free search)
            while step > 0:
                probe = min(lo + step, span)
                lo = probe if cum[t, probe] <= v else lo
                step >>= 1
            start = cum[t, lo]
            freq = cum[t, lo + 1] - start
            freqs_out[t_pos] = freq
            t_pos += 1
            x = freq * (x >> PROB_BITS) + v - start
            if x < (1 << 31):
                if pos >= n_words:
                    return -1, x, t_pos
                x = (x << 32) | np.int64(words[pos])
                pos += 1
            value = lo + mi // mean_steps + (-2 * bound + 1)
            if value < -bound or value > bound:
                return -1, x, t_pos
            grid[r + 3, c + 3] = value
    return pos, x, t_pos


def _weights(w: dict, shift: int, layers: int) -> tuple:
    """The integer ARM in the compiled loop's layout: float64 (integers), output units padded with
    zeros to a multiple of LANES, each layer's rounding half-step folded into its bias; and the
    two power-of-two scales that requantise (first layer, later layers). Padded units stay 0."""
    f = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    k_in, width = f["w0"].shape
    padded = -(-width // LANES) * LANES
    first = shift - ACT_BITS
    half = 2.0 ** (shift - 1)

    def pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
        out = np.zeros((rows, cols))
        out[: a.shape[0], : a.shape[1]] = a
        return out

    w0 = pad(f["w0"], k_in, padded)
    b0 = pad(f["b0"][:1] + (2.0 ** (first - 1) if first > 0 else 0.0), 1, padded)[0]
    w1s = np.stack([pad(f[f"w{i}"], padded, padded) for i in range(1, layers)]) if layers > 1 else np.zeros((0, padded, padded))
    b1s = np.stack([pad(f[f"b{i}"][None] * 2.0**ACT_BITS + half, 1, padded)[0] for i in range(1, layers)]) \
        if layers > 1 else np.zeros((0, padded))
    wo = pad(f["w_out"], padded, OUT_LANES)
    bo = pad(f["b_out"][None] * 2.0**ACT_BITS + half, 1, OUT_LANES)[0]
    return w0, b0, w1s, b1s, wo, bo, 2.0**-first, 2.0**-shift


class Reader:
    """Decodes the latents of one tile after another from one rANS stream."""

    def __init__(self, data: bytes):
        if len(data) % 4 or len(data) < 8:
            raise CorruptFileError("corrupt .nic file (latent stream)")
        self.words = np.frombuffer(data, dtype="<u4").astype(np.int64)
        self.x = (int(self.words[0]) << 32) | int(self.words[1])
        self.pos = 2
        self.tables: list[np.ndarray] = []
        self.bits = 0.0  # information content of what was decoded

    def latents(self, w: dict, shift: int, layers: int, sizes: list[tuple[int, int]], coarse_context: bool) -> list[np.ndarray]:
        """The integer latents of a tile (finest first); its tables are kept for the CRC."""
        weights = _weights(w, shift, layers)
        table = np.empty(sum(h * wd for h, wd in sizes), np.int64)
        freq = np.empty_like(table)
        padded = [np.zeros((h + 3, w + 6)) for h, w in sizes]  # float64 (the ARM's inputs); zeros: what lies outside
        cum, t_pos = cumulative(), 0
        for k in range(len(sizes) - 1, -1, -1):
            coarse = np.pad(padded[k + 1][3:, 3:-3], 1) if k + 1 < len(sizes) else np.zeros((1, 1))
            self.pos, self.x, t_pos = _decode_grid(
                self.words, self.pos, self.x, padded[k], coarse, coarse_context and k + 1 < len(sizes), *weights,
                cum, table, freq, t_pos, ACT_BITS, ACT_MAX, tables.MEAN_STEPS, tables.LATENT_BOUND, tables.SCALES,
                tables.LOG2_SCALE_MIN, tables.SPAN, _CAUSAL)
            if self.pos < 0:
                raise CorruptFileError("corrupt .nic file (latent stream)")
        self.bits += _information(freq)
        self.tables.append(table)
        return [p[3:, 3:-3].astype(np.int64) for p in padded]

    def finish(self) -> None:
        """rANS ends in the state it started from, with every word read: anything else is damage."""
        if self.x != _LOW or self.pos != len(self.words):
            raise CorruptFileError("corrupt .nic file (the latent stream does not end where it should)")


def tables_and_symbols(w: dict, shift: int, layers: int, latents: list, coarse_context: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every element's table and symbol in decoding order (grids coarsest first, raster order),
    from whole known grids: the vectorised integer ARM (:func:`.coding.arm_integer`)."""
    import torch

    grids = [torch.as_tensor(np.asarray(y), dtype=torch.float64)[None, None] for y in latents]
    wt = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in w.items()}
    all_tables, all_symbols = [], []
    for k in range(len(grids) - 1, -1, -1):
        coarse = grids[k + 1] if k + 1 < len(grids) else None
        x, where = context.gather(grids[k], coarse, "raster", 0, coarse_context)
        mean, scale = arm_integer(wt, shift, x[0], 0, layers)
        values = context.values_at(grids[k], where)[0].long()
        table = torch.zeros_like(grids[k][0, 0], dtype=torch.int64)[None, None]
        symbol = torch.zeros_like(table)
        context.scatter(table, where, tables.table_index(mean, scale)[None])
        context.scatter(symbol, where, (values - torch.div(mean, tables.MEAN_STEPS, rounding_mode="floor") + 2 * tables.LATENT_BOUND - 1)[None])
        all_tables.append(table.reshape(-1).numpy())
        all_symbols.append(symbol.reshape(-1).numpy())
    return np.concatenate(all_tables), np.concatenate(all_symbols)
