"""The rate–distortion objective R + λ·D, shared by training and encoder-side refinement.

CompressAI's convention, so λ values mean the same as there: per image, R in bits per pixel
(−log2 of the likelihoods) plus λ·255²·MSE on [0, 1] images, or λ·(1 − MS-SSIM).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import MSSSIM_WEIGHTS, msssim_scales
from .models import ModelOutput


def rd_loss(x: Tensor, out: ModelOutput, lam: Tensor, distortion: str) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean over the batch of R + λ·D; x: (B, 3, H, W) in [0, 1], lam: (B,) per-element λ.

    R is in bits per pixel (−log2 of the likelihoods, in fp32 whatever the autocast dtype);
    D is 255²·MSE or 1 − MS-SSIM. Returns the loss and detached (scalar) loss, bpp and MSE.
    """
    b, _, h, w = x.shape
    bpp = rate_bpp(out.likelihoods, h * w)
    x_hat = out.x_hat.float()
    mse = (x_hat - x).square().reshape(b, -1).mean(1)  # (B,)
    dist = 255**2 * mse if distortion == "mse" else 1 - ms_ssim(x_hat, x)
    loss = (bpp + lam * dist).mean()
    return loss, {"loss": loss.detach(), "bpp": bpp.mean().detach(), "mse": mse.mean().detach()}


def rate_bpp(likelihoods: dict[str, Tensor], pixels: int) -> Tensor:
    """(B,) bits per image pixel: −log2 of every latent's likelihoods (in fp32 whatever the
    autocast dtype), summed per batch element, over the ``pixels`` of each image."""
    bits = sum(-torch.log2(p.float()).flatten(1).sum(1) for p in likelihoods.values())
    return bits / pixels


def ms_ssim(x: Tensor, y: Tensor) -> Tensor:
    """Differentiable MS-SSIM of (B, 3, H, W) images in [0, 1] → (B,), averaged over channels.

    Same definition as :func:`nicodec.metrics.ms_ssim` (Gaussian 11×11 σ 1.5 "valid" window,
    5 scales with fewer for small images, negative terms clamped); computed in fp32.
    """
    scales, win = msssim_scales(x.shape[2], x.shape[3])
    weights = torch.tensor(MSSSIM_WEIGHTS[:scales], device=x.device)
    weights = weights / weights.sum()
    g = torch.exp(-((torch.arange(win, device=x.device, dtype=torch.float32) - win // 2) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).repeat(x.shape[1], 1, 1, 1)  # (C, 1, 1, win)
    blur = lambda t: F.conv2d(F.conv2d(t, g, groups=t.shape[1]), g.transpose(2, 3), groups=t.shape[1])  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    terms = []
    for i in range(scales):
        mu_x, mu_y = blur(x), blur(y)
        s_xx, s_yy, s_xy = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
        cs = (2 * s_xy + c2) / (s_xx + s_yy + c2)
        if i < scales - 1:
            terms.append(cs.mean((2, 3)))  # (B, C)
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    terms.append(((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs).mean((2, 3)))
    # clamp instead of relu: x**w has an infinite gradient at 0
    values = torch.stack(terms).clamp(min=1e-6) ** weights[:, None, None]  # (scales, B, C)
    return values.prod(0).mean(1)
