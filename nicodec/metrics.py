"""Image quality metrics used to report rate-distortion results: PSNR-RGB and MS-SSIM-RGB.

Both follow the conventions of the published Kodak results we compare against (CompressAI's
``psnr-rgb`` / ``ms-ssim-rgb``), so our numbers and theirs sit on the same axes:

* PSNR is computed from the MSE over all pixels *and* channels of the 8-bit RGB images, peak 255.
* MS-SSIM is Wang, Simoncelli & Bovik (2003): 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363,
  0.1333), an 11x11 Gaussian window with sigma 1.5 applied as a separable "valid" filter,
  K = (0.01, 0.03), data range 255, 2x2 average-pool downsampling (padding odd sizes as
  pytorch-msssim does), negative contrast terms clamped at 0; computed per channel and averaged
  over R, G and B. It is computed in float64 and agrees with ``pytorch_msssim.ms_ssim`` (whose
  window is float32) to ~1e-6.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from nicodec.errors import NicodecError

__all__ = ["psnr", "mse", "ms_ssim", "ms_ssim_db", "msssim_scales", "to_uint8_rgb"]

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
# PSNR of identical images is infinite; JSON cannot hold inf, so we report this cap instead.
PSNR_CAP = 100.0


def to_uint8_rgb(image) -> np.ndarray:
    """Return `image` (PIL image, HxWx3 uint8 array or (3,H,W)/(1,3,H,W) tensor in [0,1]) as HxWx3 uint8."""
    if isinstance(image, np.ndarray):
        arr = image
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            t = t[0]
        arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:  # PIL image
        arr = np.asarray(image.convert("RGB"))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise NicodecError(f"expected an RGB uint8 image of shape HxWx3, got {arr.dtype} {arr.shape}")
    return arr


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_uint8_rgb(a), to_uint8_rgb(b)
    if a.shape != b.shape:
        raise NicodecError(f"images differ in size: {a.shape} vs {b.shape}")
    return a, b


def mse(a, b) -> float:
    """Mean squared error over all pixels and channels of two 8-bit RGB images."""
    a, b = _check_pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a, b) -> float:
    """PSNR-RGB in dB (peak 255) of two 8-bit RGB images; identical images give `PSNR_CAP`."""
    m = mse(a, b)
    if m == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(DATA_RANGE**2 / m))


@lru_cache(maxsize=8)
def _gauss_1d(size: int, sigma: float) -> tuple[float, ...]:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return tuple((g / g.sum()).tolist())


def _blur(x: torch.Tensor, g: list[float]) -> torch.Tensor:
    """Separable Gaussian blur with no padding ("valid"), per channel, x: (N, C, H, W).

    Written as a sum of shifted slices: in float64 on CPU this is ~10x faster than a grouped conv2d.
    """
    k = len(g)
    h = x.shape[2] - k + 1
    rows = x[:, :, 0:h] * g[0]
    for i in range(1, k):
        rows.add_(x[:, :, i : i + h], alpha=g[i])
    w = x.shape[3] - k + 1
    out = rows[:, :, :, 0:w] * g[0]
    for i in range(1, k):
        out.add_(rows[:, :, :, i : i + w], alpha=g[i])
    return out


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, g: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and contrast-structure terms, each of shape (C,); x, y: (1, C, H, W)."""
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    mu1, mu2, e11, e22, e12 = _blur(torch.stack([x, y, x * x, y * y, x * y]).squeeze(1), g).unbind(0)
    s11 = e11 - mu1 * mu1
    s22 = e22 - mu2 * mu2
    s12 = e12 - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
    return ssim_map.flatten(1).mean(-1), cs_map.flatten(1).mean(-1)


def msssim_scales(height: int, width: int) -> tuple[int, int]:
    """Number of scales and window size used for an image of this size (see `ms_ssim`)."""
    side = min(height, width)
    if side < WIN_SIZE:
        return 1, max(1, side if side % 2 else side - 1)
    scales = 1
    while scales < len(MSSSIM_WEIGHTS):
        side = (side + 1) // 2  # 2x2 average pooling with odd sizes padded, as pytorch-msssim does
        if side < WIN_SIZE:
            break
        scales += 1
    return scales, WIN_SIZE


def ms_ssim(a, b) -> float:
    """MS-SSIM-RGB of two 8-bit RGB images (1.0 for identical images).

    Small images: the standard 5 scales need the smallest side to be at least 161 px (after 4
    halvings the 11x11 window must still fit). Smaller images use as many scales as fit
    (every scale at least 11 px) with the first weights renormalised to sum to 1, which equals
    the standard definition whenever all 5 scales fit; images under 11 px on a side fall back to
    single-scale SSIM with the window shrunk to the largest odd size that fits. Such values are
    not comparable with full-size MS-SSIM but are stable and sensible for tests and thumbnails.
    """
    a, b = _check_pair(a, b)
    h, w = a.shape[:2]
    scales, win = msssim_scales(h, w)
    weights = torch.tensor(MSSSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    g = _gauss_1d(win, WIN_SIGMA)
    with torch.no_grad():
        x = torch.tensor(a, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0)
        y = torch.tensor(b, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0)
        terms = []
        for i in range(scales):
            ssim_c, cs_c = _ssim_cs(x, y, g)
            if i < scales - 1:
                terms.append(torch.relu(cs_c))
                pad = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=pad)
                y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        terms.append(torch.relu(ssim_c))
        per_channel = torch.prod(torch.stack(terms) ** weights.view(-1, 1), dim=0)
    return float(per_channel.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10*log10(1 - value), which spreads out the values near 1 (capped)."""
    if value >= 1.0:
        return PSNR_CAP
    return min(PSNR_CAP, -10.0 * math.log10(1.0 - value))
