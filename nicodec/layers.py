"""Building blocks of the transforms: GDN / inverse GDN and the strided convolutions around them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it would push x back above the bound."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, bound)
        return torch.maximum(x, bound)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad < 0)
        return pass_through.to(grad.dtype) * grad, None


def lower_bound(x: Tensor, bound: float) -> Tensor:
    """Differentiable lower bound (Ballé et al.): keeps parameters positive without dead gradients."""
    return _LowerBound.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """Reparameterises a positive tensor as (bounded p)² − pedestal, which trains better near zero."""

    def __init__(self, minimum: float = 0.0, offset: float = 2**-18) -> None:
        super().__init__()
        self.pedestal = offset**2
        self.bound = (minimum + self.pedestal) ** 0.5

    def init(self, value: Tensor) -> Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, p: Tensor) -> Tensor:
        return lower_bound(p, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalised divisive normalisation (Ballé et al. 2016): y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²).

    With ``inverse=True`` it multiplies instead (IGDN), the approximate inverse used in decoders.
    β and γ stay positive through the :class:`NonNegative` reparameterisation.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._beta = NonNegative(minimum=beta_min)
        self._gamma = NonNegative()
        self.beta = nn.Parameter(self._beta.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self._gamma.init(gamma_init * torch.eye(channels)))

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, H, W)
        channels = x.shape[1]
        beta = self._beta(self.beta)
        gamma = self._gamma(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x * x, gamma.to(x.dtype), beta.to(x.dtype))
        if not torch.is_grad_enabled():  # inference: the same values with two fewer full-size tensors
            norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
            return norm.mul_(x)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """'Same'-padded convolution that divides height and width by ``stride``."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that multiplies height and width by ``stride`` exactly."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )
