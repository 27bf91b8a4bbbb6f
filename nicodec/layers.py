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

    def _norm_parameters(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(γ as a 1×1 convolution kernel, β) in ``dtype``: the norm is conv(x², γ) + β."""
        channels = self.beta.shape[0]
        gamma = self._gamma(self.gamma).reshape(channels, channels, 1, 1)
        return gamma.to(dtype), self._beta(self.beta).to(dtype)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, H, W)
        gamma, beta = self._norm_parameters(x.dtype)
        norm = F.conv2d(x * x, gamma, beta)
        if not torch.is_grad_enabled():  # inference: the same values with two fewer full-size tensors
            norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
            return norm.mul_(x)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    CHUNK_BYTES = 1 << 19  # rows of x per step of normalize_ on CPU: ~0.5 MB, a core's share of L2
    CHUNK_ABOVE = 32 << 20  # ... for tensors this large: glibc maps each such allocation afresh

    @torch.no_grad()
    def normalize_(self, x: Tensor) -> Tensor:
        """x ← GDN(x) in place, a few rows at a time on CPU (inference; the caller owns x).

        Why: at full resolution x², the norm and the output are 50 MB float32 tensors each, and
        glibc maps every allocation that large afresh, so forward() spends more time faulting in
        pages than computing (a 768 × 512 image's last inverse GDN: 69 → 39 ms in float32 on a
        2-core AMD EPYC, ``benchmarks/decode_speed.py --layers``, docs/benchmarks.md). Per chunk the temporaries stay in cache and
        nothing large is allocated (smaller tensors, which glibc recycles, go in one step: chunks
        would only add calls). The same values as forward(): each pixel's sums are its own."""
        gamma, beta = self._norm_parameters(x.dtype)
        height = x.shape[2]
        row_bytes = max(1, x.shape[0] * x.shape[1] * x.shape[3] * x.element_size())
        chunked = x.device.type == "cpu" and x.numel() * x.element_size() >= self.CHUNK_ABOVE
        rows = max(1, self.CHUNK_BYTES // row_bytes) if chunked else height
        for top in range(0, height, rows):
            part = x[:, :, top : top + rows]
            norm = F.conv2d(part * part, gamma, beta)
            part.mul_(norm.sqrt_() if self.inverse else norm.rsqrt_())
        return x


class Transform(nn.Sequential):
    """An analysis or synthesis transform: layers in sequence, and at inference its GDN layers
    normalise the previous layer's output in place (:meth:`GDN.normalize_`) — that output is
    this module's own, so nobody else sees it change. Training runs nn.Sequential's forward."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        for i, layer in enumerate(self):
            x = layer.normalize_(x) if i > 0 and isinstance(layer, GDN) else layer(x)
        return x


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
        return (self.out_channels <= self.SUBPIXEL_MAX_OUT and self.groups == 1 and self.dilation == (1, 1)
                and subpixel_fits(self.kernel_size, self.stride, self.padding, self.output_padding))

    def _subpixel_weights(self) -> tuple[Tensor, Tensor | None]:
        weight, _ = subpixel_kernel(self.weight.detach(), self.stride[0], self.padding[0])
        s = self.stride[0]
        bias = None if self.bias is None else self.bias.detach().repeat_interleave(s * s)
        return weight, bias  # built per call (a few dozen small copies): never stale after a weight edit

    @property
    def _subpixel_pad(self) -> int:
        return subpixel_pad(self.kernel_size[0], self.stride[0], self.padding[0])


def subpixel_fits(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                  output_padding: tuple[int, int]) -> bool:
    """Whether a transposed convolution with this geometry has an output exactly ``stride`` times its
    input, so that :func:`subpixel_kernel` computes it as a stride-1 convolution and a pixel shuffle."""
    s, k, p = stride[0], kernel[0], padding[0]
    return (stride == (s, s) and s > 1 and kernel == (k, k) and padding == (p, p)
            and output_padding == (s - 1, s - 1) and k == 2 * p + 1)


def subpixel_pad(kernel: int, stride: int, padding: int) -> int:
    """r: output phase a at input position i reads inputs i − r … i + r."""
    k, s, p = kernel, stride, padding
    return max(abs((p + a - tap) // s) for a in range(s) for tap in range(k) if (p + a - tap) % s == 0)


def subpixel_kernel(weight: Tensor, stride: int, padding: int) -> tuple[Tensor, int]:
    """A transposed convolution's kernel (in, out, k, k) as the equivalent stride-1 kernel
    (out·s², in, 2r + 1, 2r + 1) and its padding r: output phase (a, b) of channel c is channel
    c·s² + a·s + b; input offset e ∈ [−r, r] of phase a reads the transposed kernel at tap p + a − s·e.
    Entries no tap reaches are zero; the dtype is the weight's (int8 weights stay int8)."""
    k, s, p = weight.shape[-1], stride, padding
    r = subpixel_pad(k, s, p)
    taps = 2 * r + 1
    in_channels, out_channels = weight.shape[:2]
    kernel = weight.new_zeros(out_channels, s, s, in_channels, taps, taps)
    for a in range(s):
        for b in range(s):
            for i in range(taps):
                for j in range(taps):
                    kh, kw = p + a - s * (i - r), p + b - s * (j - r)
                    if 0 <= kh < k and 0 <= kw < k:
                        kernel[:, a, b, :, i, j] = weight[:, :, kh, kw].t()
    return kernel.reshape(out_channels * s * s, in_channels, taps, taps), r
