"""The decoder's upsampling and synthesis as compiled loops over image rows (numba).

The same function as :func:`.model.synthesize` (which stays the differentiable one the fit
uses), computed the way a tiny network should be on a CPU: PyTorch runs each 1×1 layer of 7 or
24 channels as a oneDNN convolution that is bound by memory traffic (~80 % of a decode's
synthesis time for a 768×512 image), while here each image row passes through the whole
per-pixel network while it is in cache, with the innermost loop along the row (vectorised).
Rows are split over threads; every pixel is computed by the same sequence of operations
whichever thread takes it, so the output does not depend on the thread count. Float32, as the
encoder's synthesis: the two agree to ~1e-6 (tests), and the encoder records this output.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange



@numba.njit(cache=True, parallel=True)
def _upsample2(z: np.ndarray, half: np.ndarray, height: int, width: int) -> np.ndarray:  # pragma: no cover - compiled
    """Twice the resolution of z (C, h, w), cropped to (height, width): rows then columns, each
    output sample the symmetric 8-tap filter's phase (``half``, mirrored for odd positions) over
    the input with its borders replicated — :func:`.model.upsample2`'s arithmetic."""
    c, h, w = z.shape
    rows = np.empty((c, height, w + 4), dtype=np.float32)  # 2 replicated columns each side
    for r in prange(height):
        i, phase = r // 2, r % 2
        for k in range(c):
            line = rows[k, r]
            for t in range(4):
                tap = half[t] if phase == 0 else half[3 - t]
                src = z[k, min(max(i + t - 2 + phase, 0), h - 1)]
                if t == 0:
                    for x in range(w):
                        line[x + 2] = tap * src[x]
                else:
                    for x in range(w):
                        line[x + 2] += tap * src[x]
            line[0] = line[1] = line[2]
            line[w + 2] = line[w + 3] = line[w + 1]
    out = np.empty((c, height, width), dtype=np.float32)
    for r in prange(height):
        even = np.empty(w, dtype=np.float32)
        odd = np.empty(w, dtype=np.float32)
        for k in range(c):
            line = rows[k, r]
            for x in range(w):  # output 2x: taps h0..h3 over x − 2 … x + 1; 2x + 1: h3..h0 over x − 1 … x + 2
                even[x] = half[0] * line[x]
                odd[x] = half[3] * line[x + 1]
            for t in range(1, 4):
                te, to = half[t], half[3 - t]
                for x in range(w):
                    even[x] += te * line[x + t]
                    odd[x] += to * line[x + t + 1]
            for x in range(width):
                out[k, r, x] = even[x // 2] if x % 2 == 0 else odd[x // 2]
    return out


@numba.njit(cache=True, parallel=True)
def _pixels(z, w0, b0, w1, b1):  # pragma: no cover - compiled
    """The 1×1 layers: z (C, H, W) → ReLU(w0·z + b0) → w1·h + b1, (3, H, W), a row at a time."""
    c, height, width = z.shape
    hidden = w0.shape[0]
    out = np.empty((3, height, width), dtype=np.float32)
    for r in prange(height):
        h = np.empty((hidden, width), dtype=np.float32)
        for u in range(hidden):
            for x in range(width):
                h[u, x] = b0[u]
            for j in range(c):
                wt = w0[u, j]
                for x in range(width):
                    h[u, x] += wt * z[j, r, x]
            for x in range(width):
                h[u, x] = max(h[u, x], np.float32(0.0))
        for k in range(3):
            for x in range(width):
                out[k, r, x] = b1[k]
            for u in range(hidden):
                wt = w1[k, u]
                for x in range(width):
                    out[k, r, x] += wt * h[u, x]
    return out


@numba.njit(cache=True, parallel=True)
def _residual3x3(x, weight, bias, relu):  # pragma: no cover - compiled
    """x + act(conv3×3(x) + bias) for x (3, H, W), borders replicated (act: ReLU or identity)."""
    c, height, width = x.shape
    padded = np.empty((c, height, width + 2), dtype=np.float32)
    for r in prange(height):
        for j in range(c):
            padded[j, r, 1 : width + 1] = x[j, r]
            padded[j, r, 0] = x[j, r, 0]
            padded[j, r, width + 1] = x[j, r, width - 1]
    out = np.empty_like(x)
    for r in prange(height):
        acc = np.empty(width, dtype=np.float32)
        for k in range(c):
            for p in range(width):
                acc[p] = bias[k]
            for j in range(c):
                for dy in range(3):
                    line = padded[j, min(max(r + dy - 1, 0), height - 1)]
                    for dx in range(3):
                        wt = weight[k, j, dy, dx]
                        for p in range(width):
                            acc[p] += wt * line[p + dx]
            for p in range(width):
                a = max(acc[p], np.float32(0.0)) if relu else acc[p]
                out[k, r, p] = x[k, r, p] + a
    return out


def synthesize(params: dict[str, torch.Tensor], latents: list[np.ndarray]) -> torch.Tensor:
    """(3, H, W) float32 from the integer grids (finest first) and one set's parameters (each a
    (1, *shape) tensor, as :func:`.model.synthesize` takes them)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    p = {k: np.ascontiguousarray(v[0].detach().cpu().numpy(), dtype=np.float32) for k, v in params.items()}
    z = np.asarray(latents[-1], dtype=np.float32)[None]
    for k in range(len(latents) - 2, -1, -1):
        finer = np.asarray(latents[k], dtype=np.float32)
        up = _upsample2(z, p["up"][k], finer.shape[0], finer.shape[1])
        z = np.concatenate([finer[None], up])
    x = _pixels(z, p["w0"], p["b0"], p["w1"], p["b1"])
    x = _residual3x3(x, p["r0"], p["rb0"], True)
    x = _residual3x3(x, p["r1"], p["rb1"], False)
    return torch.from_numpy(x)
