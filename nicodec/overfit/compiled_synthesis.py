"""The decoder's upsampling and synthesis as compiled loops over image rows (numba).

The same function as :func:`.model.synthesize` (which stays the differentiable one the fit
uses), computed the way a tiny network should be on a CPU: PyTorch runs each 1×1 layer of 7 or
24 channels as a oneDNN convolution that is bound by memory traffic (most of a decode's
synthesis time for a 768×512 image), while here each image row passes through the whole
per-pixel network while it is in cache, with the innermost loop along the row (vectorised).

Rows are split over ``torch.get_num_threads()`` Python threads running the compiled kernels
without the GIL — not numba's OpenMP layer, which shares libgomp with PyTorch and left a worker
spinning beside PyTorch's own after the first decode (seen in ``top``). Every
pixel is computed by the same sequence of operations whichever thread takes it, so the output
does not depend on the thread count. Float32, as the encoder's synthesis: the two agree to ~1e-6
(tests), and the encoder records this output.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

_pool: ThreadPoolExecutor | None = None


@numba.njit(cache=True, nogil=True)
def _upsample2_rows(z, half, out, r0, r1):  # pragma: no cover - compiled
    """Rows r0…r1 of z (C, h, w) at twice the resolution, cropped to out's (C, H, W): rows then
    columns, each output sample the symmetric 8-tap filter's phase (``half``, mirrored for odd
    positions) over the input with its borders replicated — :func:`.model.upsample2`'s arithmetic."""
    c, h, w = z.shape
    width = out.shape[2]
    line = np.empty(w + 4, dtype=np.float32)  # 2 replicated columns each side
    even = np.empty(w, dtype=np.float32)
    odd = np.empty(w, dtype=np.float32)
    for r in range(r0, r1):
        i, phase = r // 2, r % 2
        for k in range(c):
            for t in range(4):  # the vertical pass: this output row from 4 input rows
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
            for x in range(w):  # the horizontal pass: 2x from x − 2 … x + 1, 2x + 1 from x − 1 … x + 2
                even[x] = half[0] * line[x]
                odd[x] = half[3] * line[x + 1]
            for t in range(1, 4):
                te, to = half[t], half[3 - t]
                for x in range(w):
                    even[x] += te * line[x + t]
                    odd[x] += to * line[x + t + 1]
            for x in range(width):
                out[k, r, x] = even[x // 2] if x % 2 == 0 else odd[x // 2]


@numba.njit(cache=True, nogil=True)
def _pixels_rows(z, w0, b0, w1, b1, out, r0, r1):  # pragma: no cover - compiled
    """Rows r0…r1 of the 1×1 layers: z (C, H, W) → ReLU(w0·z + b0) → w1·h + b1 into out (3, H, W)."""
    c, _, width = z.shape
    hidden = w0.shape[0]
    h = np.empty((hidden, width), dtype=np.float32)
    for r in range(r0, r1):
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


@numba.njit(cache=True, nogil=True)
def _residual3x3_rows(x, padded, weight, bias, relu, out, r0, r1):  # pragma: no cover - compiled
    """Rows r0…r1 of x + act(conv3×3(x) + bias), x (3, H, W), ``padded`` x with its first and last
    columns repeated once (the rows are clamped here: borders replicated); act ReLU or identity."""
    c, height, width = x.shape
    acc = np.empty(width, dtype=np.float32)
    for r in range(r0, r1):
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


def _rows(kernel, height: int, *args) -> None:
    """kernel(*args, r0, r1) over row ranges, one per thread (torch.get_num_threads())."""
    global _pool
    threads = max(1, min(torch.get_num_threads(), height // 16))
    if threads == 1:
        kernel(*args, 0, height)
        return
    if _pool is None or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nicodec-synthesis")
    bounds = [height * i // threads for i in range(threads + 1)]
    for future in [_pool.submit(kernel, *args, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]:
        future.result()


def synthesize(params: dict[str, torch.Tensor], latents: list[np.ndarray]) -> torch.Tensor:
    """(3, H, W) float32 from the integer grids (finest first) and one set's parameters (each a
    (1, *shape) tensor, as :func:`.model.synthesize` takes them)."""
    p = {k: np.ascontiguousarray(v[0].detach().cpu().numpy(), dtype=np.float32) for k, v in params.items()}
    z = np.asarray(latents[-1], dtype=np.float32)[None]
    for k in range(len(latents) - 2, -1, -1):
        finer = np.asarray(latents[k], dtype=np.float32)
        nxt = np.empty((z.shape[0] + 1, *finer.shape), dtype=np.float32)
        nxt[0] = finer
        _rows(_upsample2_rows, finer.shape[0], z, p["up"][k], nxt[1:])
        z = nxt
    x = np.empty((3, *z.shape[1:]), dtype=np.float32)
    _rows(_pixels_rows, x.shape[1], z, p["w0"], p["b0"], p["w1"], p["b1"], x)
    for weight, bias, relu in ((p["r0"], p["rb0"], True), (p["r1"], p["rb1"], False)):
        out = np.empty_like(x)
        _rows(_residual3x3_rows, x.shape[1], x, np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="edge"), weight, bias, relu, out)
        x = out
    return torch.from_numpy(x)
