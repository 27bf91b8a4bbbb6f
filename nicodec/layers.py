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
    return Deconv(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


class Deconv(nn.ConvTranspose2d):
    """A transposed convolution that, at inference, computes a few output channels (a synthesis's
    last layer: RGB) as a stride-1 convolution to ``stride²`` times the channels followed by a
    pixel shuffle — the same sums (up to float rounding), but oneDNN runs ``128 → 3`` that way
    ~2× faster in float32 and bfloat16 (``benchmarks/decode_speed.py --layers``). Parameters and
    state dict are those of :class:`torch.nn.ConvTranspose2d`; training uses its kernels."""

    SUBPIXEL_MAX_OUT = 16  # wider layers run faster as transposed convolutions (measured: 128 → 128 slower)

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if output_size is None and not torch.is_grad_enabled() and self._subpixel_ok():
            weight, bias = self._subpixel_weights()
            return F.pixel_shuffle(F.conv2d(x, weight, bias, padding=self._subpixel_pad), self.stride[0])
        return super().forward(x, output_size)

    def _subpixel_ok(self) -> bool:
        s = self.stride[0]
        return (self.out_channels <= self.SUBPIXEL_MAX_OUT and self.groups == 1 and self.dilation == (1, 1)
                and self.stride == (s, s) and s > 1 and self.kernel_size[0] == self.kernel_size[1]
                and self.padding[0] == self.padding[1] and self.output_padding == (s - 1, s - 1)
                and self.kernel_size[0] == 2 * self.padding[0] + 1)  # output exactly stride × input

    @property
    def _subpixel_pad(self) -> int:
        """r: output phase a at input position i reads inputs i − r … i + r."""
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        return max(abs((p + a - tap) // s) for a in range(s) for tap in range(k) if (p + a - tap) % s == 0)

    def _subpixel_weights(self) -> tuple[Tensor, Tensor | None]:
        """The equivalent stride-1 kernel: output phase (a, b) of channel c is channel c·s² + a·s + b;
        input offset e ∈ [−r, r] of phase a reads the transposed kernel at tap p + a − s·e."""
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        r = self._subpixel_pad
        taps = 2 * r + 1
        w = self.weight.detach()  # (in, out, k, k)
        kernel = w.new_zeros(self.out_channels, s, s, self.in_channels, taps, taps)
        for a in range(s):
            for b in range(s):
                for i in range(taps):
                    for j in range(taps):
                        kh, kw = p + a - s * (i - r), p + b - s * (j - r)
                        if 0 <= kh < k and 0 <= kw < k:
                            kernel[:, a, b, :, i, j] = w[:, :, kh, kw].t()
        weight = kernel.reshape(self.out_channels * s * s, self.in_channels, taps, taps)
        bias = None if self.bias is None else self.bias.detach().repeat_interleave(s * s)
        return weight, bias  # built per call (a few dozen small copies): never stale after a weight edit
