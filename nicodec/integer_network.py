"""An integer copy of a small convolutional network, for the part of decoding that picks coding tables.

The hyper-synthesis h_s turns the decoded hyper-latent into the scale (and mean) of every element
of y, and the scale chooses the table the range decoder reads it with. In float arithmetic the
result depends on the machine (summation order, SIMD width, thread count, GPU), and one table
index off means a file that does not decode. Following Ballé, Johnston & Minnen (ICLR 2019,
"Integer networks for data compression with latent-variable models") and JPEG AI, this module
runs a post-training-quantised copy of the network in integer arithmetic:

* weights: int8 (±127), one scale per output channel; the input scale of each input channel is
  folded into them before quantisation;
* activations: integers of ``act_bits`` bits (unsigned after a ReLU), one scale per channel,
  calibrated on training images (:func:`calibrate`);
* each layer accumulates exactly: acc = Σ w·a + b, with |acc| < 2**31 (checked when the network
  is built, from the actual weights: ``bounds``), then requantises with a dyadic multiplier per
  channel, a = clamp(rint(acc·m / 2**s)), where |m| < 2**21, so acc·m is an exact integer below
  2**52 and the division by 2**s is exact too;
* the last layer's accumulator, times a per-channel float64 scale, is the output.

Every step is an integer result computed exactly, so the output is the same on any CPU, GPU,
thread count or memory layout. How the convolutions run is a matter of speed only, each path
giving the same integers: on CPUs with int8 dot products (AMX, AVX-512 VNNI, AVX-VNNI), as int8
matrix products with int32 sums (``torch._int_mm``) over int8 patches — activations after a ReLU,
0 … 255, shifted by −128 into int8 and the shift's constant contribution added back; transposed
convolutions as stride-1 convolutions and a pixel shuffle (:func:`nicodec.layers.subpixel_kernel`);
elsewhere as float convolutions on integer values: float32 where every partial sum stays below
2**24 (exact whatever the summation order), float64 otherwise and on GPUs (exact below 2**53;
GPU float32 convolutions may use TF32).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cpu
from .layers import subpixel_fits, subpixel_kernel

WEIGHT_MAX = 127  # int8 weights
MULT_BITS = 21  # requantisation multipliers m < 2**21 (then shifted right by s bits, per channel)
MULT_MAX = 1 << MULT_BITS  # |m| < 2**21 and |acc| < 2**31: acc·m is an exact integer in float64
SHIFT_MAX = 80  # right shifts up to 80 bits (the factor 2**−s stays a normal float64)
ACC_MAX = (1 << 31) - 1  # accumulators fit in int32
BIAS_MAX = 1 << 24  # a weight scale is never so fine that the quantised bias exceeds this
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default, which the float networks use
_FLOAT32_EXACT = 1 << 24  # integers up to 2**24 are exact in float32


@dataclass(frozen=True)
class Layer:
    """One convolution of the network and the activation after it (None for the last)."""

    transposed: bool
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    output_padding: int
    activation: str | None  # "relu", "leaky" or None


def layers_of(network: nn.Sequential) -> list[Layer]:
    """The convolutions of a Sequential of Conv2d / ConvTranspose2d / ReLU / LeakyReLU, in order."""
    layers: list[Layer] = []
    for module in network:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            transposed = isinstance(module, nn.ConvTranspose2d)
            layers.append(Layer(
                transposed, module.in_channels, module.out_channels, module.kernel_size[0], module.stride[0],
                module.padding[0], module.output_padding[0] if transposed else 0, None,
            ))
        elif isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            if not layers or layers[-1].activation is not None:
                raise ValueError("an activation must follow a convolution")
            if isinstance(module, nn.LeakyReLU) and module.negative_slope != LEAKY_SLOPE:
                raise ValueError(f"LeakyReLU slope {module.negative_slope} (the integer network knows {LEAKY_SLOPE})")
            kind = "relu" if isinstance(module, nn.ReLU) else "leaky"
            layers[-1] = Layer(**{**layers[-1].__dict__, "activation": kind})
        else:
            raise ValueError(f"cannot make an integer network with a {module.__class__.__name__}")
    return layers


def _weight_shape(layer: Layer) -> tuple[int, int, int, int]:
    k = layer.kernel
    if layer.transposed:
        return (layer.in_channels, layer.out_channels, k, k)
    return (layer.out_channels, layer.in_channels, k, k)


@dataclass
class _Step:
    """One layer's numbers on a device (IntegerNetwork._prepared)."""

    layer: Layer
    dtype: torch.dtype  # of the convolution: float32 where exact, else float64
    weight: Tensor
    bias: Tensor  # (1, C, 1, 1) float64
    output_scale: Tensor | None = None  # last layer only
    mult_pos: Tensor | None = None
    mult_neg: Tensor | None = None
    down: Tensor | None = None  # 2**−shift
    lo: float = 0.0
    hi: float = 0.0
    int8: "_Int8Conv | None" = None  # the int8 form of the convolution, where it runs that way


@dataclass
class _Int8Conv:
    """A layer's convolution as an int8 matrix product: int8 patches (k × k × C per output
    position) times ``matrix`` (N, k·k·C), int32 sums; then a pixel shuffle for a transposed layer."""

    matrix: Tensor  # int8 (N, K), row n the kernel of output channel n (before any shuffle)
    kernel: int
    stride: int
    padding: int
    shuffle: int  # > 1: the layer is transposed, outputs are N / shuffle² channels, shuffle× larger
    offset: int  # 128 where inputs are 0 … 255 (after a ReLU), coded as input − 128; else 0
    constant: Tensor  # int32 (N,): the bias plus offset · Σ kernel, added to the sums

    def __call__(self, a: Tensor) -> Tensor:
        """Σ w·a + b for integer-valued float64 a (B, C, H, W): exact integers, in float64."""
        k, s, p = self.kernel, self.stride, self.padding
        x = a.permute(0, 2, 3, 1)  # NHWC: a patch is k·k runs of C contiguous bytes
        x = (x - self.offset if self.offset else x).to(torch.int8)
        x = F.pad(x, (0, 0, p, p, p, p), value=-self.offset)  # the padding is a = 0
        b, h, w, c = x.shape
        out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
        patches = torch.stack([x[:, i : i + (out_h - 1) * s + 1 : s, j : j + (out_w - 1) * s + 1 : s]
                               for i in range(k) for j in range(k)], dim=3)
        sums = torch._int_mm(patches.reshape(b * out_h * out_w, k * k * c), self.matrix.t()).add_(self.constant)
        out = sums.reshape(b, out_h, out_w, -1).permute(0, 3, 1, 2).to(torch.float64)
        return F.pixel_shuffle(out, self.shuffle) if self.shuffle > 1 else out

    @classmethod
    def of(cls, layer: Layer, weight: Tensor, bias: Tensor, input_range: tuple[int, int],
           device: torch.device) -> "_Int8Conv | None":
        """The int8 form of a layer with int8 ``weight`` and integer ``bias`` whose inputs lie in
        ``input_range``, or None where it has none (inputs beyond int8 even shifted, a transposed
        geometry that is not a plain upsampling)."""
        lo, hi = input_range
        offset = 0 if -128 <= lo and hi <= 127 else 128 if 0 <= lo and hi <= 255 else None
        if offset is None:
            return None
        if layer.transposed:
            geometry = ((layer.kernel,) * 2, (layer.stride,) * 2, (layer.padding,) * 2, (layer.output_padding,) * 2)
            if not subpixel_fits(*geometry):
                return None
            kernel, padding = subpixel_kernel(weight, layer.stride, layer.padding)
            stride, shuffle = 1, layer.stride
        else:
            kernel, padding, stride, shuffle = weight, layer.padding, layer.stride, 1
        n, c, k, _ = kernel.shape
        matrix = kernel.permute(0, 2, 3, 1).reshape(n, k * k * c).contiguous().to(device)
        # Σ w·a + b = Σ w·(a − offset) + (b + offset·Σ w): |each| ≤ the layer's bound (check()) < 2**31
        constant = bias.to(torch.int64).repeat_interleave(shuffle * shuffle) + offset * matrix.to(torch.int64).sum(dim=1)
        return cls(matrix, k, stride, padding, shuffle, offset, constant.to(device=device, dtype=torch.int32))


class IntegerNetwork(nn.Module):
    """The integer copy of a float network (see the module docstring); all its numbers are buffers.

    ``forward(x)`` takes the network's float input, (B, C, H, W), already divided by nothing: it is
    quantised with the calibrated input scales. Returns the output (B, C', H', W') in float64.
    For the hyper-synthesis the input is ẑ / gain; use :meth:`forward_integers` to pass the integer
    input directly.
    """

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = list(layers)
        self._cache_key: tuple | None = None
        self._cache: list[_Step] = []
        first = layers[0]
        self.register_buffer("input_scale", torch.ones(first.in_channels, dtype=torch.float64))
        self.register_buffer("input_limit", torch.zeros((), dtype=torch.int64))
        for i, layer in enumerate(layers):
            self.register_buffer(f"weight{i}", torch.zeros(_weight_shape(layer), dtype=torch.int8))
            self.register_buffer(f"bias{i}", torch.zeros(layer.out_channels, dtype=torch.int64))
            if i == len(layers) - 1:
                self.register_buffer(f"output_scale{i}", torch.ones(layer.out_channels, dtype=torch.float64))
            else:
                if layer.activation is None:
                    raise ValueError("hidden layers of an integer network need an activation")
                self.register_buffer(f"mult_pos{i}", torch.zeros(layer.out_channels, dtype=torch.int64))
                self.register_buffer(f"mult_neg{i}", torch.zeros(layer.out_channels, dtype=torch.int64))
                self.register_buffer(f"shift{i}", torch.zeros(layer.out_channels, dtype=torch.int64))
                self.register_buffer(f"limits{i}", torch.zeros(2, dtype=torch.int64))  # activation range [lo, hi]

    # --- exact inference -------------------------------------------------------------------
    def quantize_input(self, x: Tensor, divisor: Tensor | None = None) -> Tensor:
        """rint(x / (divisor · input_scale)) clamped to ±input_limit, in float64 (integer values).

        ``divisor``: per-channel values broadcastable to x (the gains the input is divided by), in
        float64; the two are multiplied first, then x is divided by the product (a fixed order).
        """
        scale = self.input_scale.reshape(1, -1, 1, 1).to(x.device)
        if divisor is not None:
            scale = divisor.to(torch.float64) * scale
        limit = float(self.input_limit)
        return torch.clamp(torch.round(x.to(torch.float64) / scale), -limit, limit)

    def forward(self, x: Tensor, divisor: Tensor | None = None) -> Tensor:
        return self.forward_integers(self.quantize_input(x, divisor))

    def forward_integers(self, a: Tensor) -> Tensor:
        """The network on integer-valued float64 input a → real-valued float64 output."""
        a = a.to(torch.float64)
        for step in self._prepared(a.device):
            if step.int8 is not None:
                acc = step.int8(a)  # Σ w·a + b, an exact integer
            else:
                x = a.to(step.dtype)
                if step.layer.transposed:
                    out = F.conv_transpose2d(x, step.weight, None, step.layer.stride, step.layer.padding, step.layer.output_padding)
                else:
                    out = F.conv2d(x, step.weight, None, step.layer.stride, step.layer.padding)
                out = out.to(torch.float64)
                if step.dtype == torch.float64:
                    # exact already for a direct summation; rint absorbs the < 0.5 error of any other
                    # algorithm a library may pick in float64 (FFT, Winograd)
                    out = out.round_()
                acc = out.add_(step.bias)  # Σ w·a + b, an exact integer
            # in place from here: the same operations in the same order, without full-size temporaries
            if step.output_scale is not None:
                return _final_activation(acc.mul_(step.output_scale), step.layer.activation)
            multiplier = torch.where(acc >= 0, step.mult_pos, step.mult_neg)
            a = acc.mul_(multiplier).mul_(step.down).round_().clamp_(step.lo, step.hi)
        raise AssertionError("unreachable")

    def _prepared(self, device: torch.device) -> list[_Step]:
        """Each layer's numbers, ready to compute with on ``device`` (cached until a buffer changes)."""
        int8 = device.type == "cpu" and int8_matmul_pays()
        key = (str(device), _cpu_float32_is_ieee(), int8, tuple(b._version for b in self.buffers()),
               tuple(b.data_ptr() for b in self.buffers()))
        if self._cache_key != key:
            steps = []
            input_range = (-int(self.input_limit), int(self.input_limit))
            for i, (layer, bound) in enumerate(zip(self.layers, self.bounds(include_bias=False))):
                dtype = torch.float32 if device.type == "cpu" and bound < _FLOAT32_EXACT and key[1] else torch.float64
                column = lambda t: t.to(device, torch.float64).reshape(1, -1, 1, 1)  # noqa: E731
                weight = getattr(self, f"weight{i}")
                int8_conv = _Int8Conv.of(layer, weight, getattr(self, f"bias{i}"), input_range, device) if int8 else None
                weight = weight.to(device=device, dtype=dtype)
                if i == len(self.layers) - 1:
                    steps.append(_Step(layer, dtype, weight, column(getattr(self, f"bias{i}")),
                                       output_scale=column(getattr(self, f"output_scale{i}")), int8=int8_conv))
                    continue
                lo, hi = (float(v) for v in getattr(self, f"limits{i}"))
                steps.append(_Step(layer, dtype, weight, column(getattr(self, f"bias{i}")),
                                   mult_pos=column(getattr(self, f"mult_pos{i}")), mult_neg=column(getattr(self, f"mult_neg{i}")),
                                   down=column(_inverse_power_of_two(getattr(self, f"shift{i}"))), lo=lo, hi=hi, int8=int8_conv))
                input_range = (int(lo), int(hi))
            self._cache_key, self._cache = key, steps
        return self._cache

    def bounds(self, include_bias: bool = True) -> list[float]:
        """The largest |accumulator| each layer can reach for any input: Σ|w|·max|a| + |b|
        (without |b|: the largest partial sum of the convolution itself)."""
        out, limit = [], float(self.input_limit)
        for i, layer in enumerate(self.layers):
            w = getattr(self, f"weight{i}").to(torch.float64).abs()
            per_channel = w.sum(dim=(0 if layer.transposed else 1, 2, 3)) * limit
            if include_bias:
                per_channel = per_channel + getattr(self, f"bias{i}").abs().to(torch.float64)
            out.append(float(per_channel.max()))
            if i < len(self.layers) - 1:
                limit = float(getattr(self, f"limits{i}").abs().max())
        return out

    def check(self) -> None:
        """Refuse numbers that could overflow the exact arithmetic (damaged or badly calibrated weights)."""
        if any(b > ACC_MAX for b in self.bounds()):
            raise ValueError(f"integer network accumulators could reach {max(self.bounds()):.3g} (> 2**31)")
        for i, layer in enumerate(self.layers):
            if int(getattr(self, f"weight{i}").abs().max()) > WEIGHT_MAX:
                raise ValueError("integer network weight outside int8's ±127")
            if i < len(self.layers) - 1:
                mults = torch.cat([getattr(self, f"mult_pos{i}"), getattr(self, f"mult_neg{i}")]).abs()
                shifts = getattr(self, f"shift{i}")
                if int(mults.max()) >= MULT_MAX or int(shifts.min()) < 0 or int(shifts.max()) > SHIFT_MAX:
                    raise ValueError("integer network multiplier or shift out of range")
        if not bool(torch.isfinite(self.input_scale).all()) or not bool((self.input_scale > 0).all()):
            raise ValueError("integer network input scales must be positive")

    # --- building from a float network -------------------------------------------------------
    @classmethod
    def from_float(cls, network: nn.Sequential, ranges: list[Tensor], act_bits: int = 8, input_bits: int = 8) -> "IntegerNetwork":
        """Quantise ``network`` given the calibrated range (max |value| per channel) of its input
        (``ranges[0]``) and of the activation after each convolution but the last (``ranges[1:]``)."""
        layers = layers_of(network)
        convs = [m for m in network if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        if len(ranges) != len(layers):
            raise ValueError(f"need {len(layers)} ranges (input and each hidden activation), got {len(ranges)}")
        net = cls(layers)
        with torch.no_grad():
            input_limit = (1 << (input_bits - 1)) - 1
            in_scale = _positive(ranges[0].to(torch.float64)) / input_limit
            net.input_scale.copy_(in_scale)
            net.input_limit.fill_(input_limit)
            for i, (layer, conv) in enumerate(zip(layers, convs)):
                W = conv.weight.detach().to(torch.float64)
                b = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(layer.out_channels, dtype=torch.float64)
                # fold the input channels' scales into the weights, then one scale per output channel
                # (a scale too fine for the bias, when the inputs barely move, would blow up b / scale)
                if layer.transposed:
                    folded = W * in_scale.reshape(-1, 1, 1, 1)
                    w_scale = torch.maximum(_positive(folded.abs().amax(dim=(0, 2, 3))) / WEIGHT_MAX, b.abs() / BIAS_MAX)
                    w_int = torch.round(folded / w_scale.reshape(1, -1, 1, 1))
                else:
                    folded = W * in_scale.reshape(1, -1, 1, 1)
                    w_scale = torch.maximum(_positive(folded.abs().amax(dim=(1, 2, 3))) / WEIGHT_MAX, b.abs() / BIAS_MAX)
                    w_int = torch.round(folded / w_scale.reshape(-1, 1, 1, 1))
                getattr(net, f"weight{i}").copy_(w_int.to(torch.int8))
                getattr(net, f"bias{i}").copy_(torch.round(b / w_scale).to(torch.int64))
                if i == len(layers) - 1:
                    getattr(net, f"output_scale{i}").copy_(w_scale)
                    continue
                unsigned = layer.activation == "relu"
                hi = (1 << act_bits) - 1 if unsigned else (1 << (act_bits - 1)) - 1
                lo = 0 if unsigned else -hi
                out_scale = _positive(ranges[i + 1].to(torch.float64)) / hi
                ratio = (w_scale / out_scale).numpy()  # acc · ratio = activation in units of out_scale
                mult, shift = _dyadic(ratio)
                slope = 0.0 if unsigned else LEAKY_SLOPE
                getattr(net, f"mult_pos{i}").copy_(torch.from_numpy(mult))
                getattr(net, f"mult_neg{i}").copy_(torch.from_numpy(np.rint(mult * slope).astype(np.int64)))
                getattr(net, f"shift{i}").copy_(torch.from_numpy(shift))
                getattr(net, f"limits{i}").copy_(torch.tensor([lo, hi]))
                in_scale = out_scale
        net.check()
        return net


def _final_activation(x: Tensor, activation: str | None) -> Tensor:
    """The last layer's activation, on its float64 output (elementwise IEEE operations: exact
    functions of the exact accumulators)."""
    if activation == "relu":
        return torch.clamp(x, min=0.0)
    if activation == "leaky":
        return torch.where(x >= 0, x, x * LEAKY_SLOPE)
    return x


def _dyadic(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ratio ≈ m / 2**s with 2**20 ≤ m < 2**21 (21 significant bits), s clamped to [0, SHIFT_MAX]."""
    mantissa, exponent = np.frexp(ratio)  # ratio = mantissa · 2**exponent, mantissa in [0.5, 1)
    shift = np.clip(MULT_BITS - exponent, 0, SHIFT_MAX).astype(np.int64)
    mult = np.minimum(np.rint(np.ldexp(ratio, shift)), MULT_MAX - 1).astype(np.int64)
    return mult, shift


def _inverse_power_of_two(shift: Tensor) -> Tensor:
    """2**−s as float64, built from its exponent bits (exact)."""
    return ((1023 - shift.to(torch.int64)) << 52).view(torch.float64)


def _positive(t: Tensor) -> Tensor:
    """Scales must be > 0: a channel that never moved in calibration gets a tiny one."""
    return torch.clamp(t, min=1e-12)


@functools.lru_cache(maxsize=1)
def int8_matmul_pays() -> bool:
    """Whether to run the convolutions as int8 matrix products on this CPU: it has fast int8 dot
    products (:func:`nicodec.cpu.has_int8_dot`) and PyTorch's ``_int_mm`` computes a probe exactly.
    Either answer gives the same integers; this decides only the speed (meanscale's hyper-synthesis
    17 → 6 ms on a 2-core AMX VM, benchmarks/decode_speed.py, docs/benchmarks.md)."""
    if not cpu.has_int8_dot() or not hasattr(torch, "_int_mm"):
        return False
    a = torch.arange(-128, 128, dtype=torch.int16).reshape(16, 16).to(torch.int8)
    try:
        product = torch._int_mm(a, a.t().contiguous())
    except RuntimeError:
        return False
    return torch.equal(product.to(torch.int64), a.to(torch.int64) @ a.t().to(torch.int64))


def _cpu_float32_is_ieee() -> bool:
    """False when the user has asked PyTorch for reduced-precision float32 on CPU (bf16/TF32-style
    convolutions), which would break exactness; then everything runs in float64."""
    try:
        precision = torch.backends.mkldnn.conv.fp32_precision  # PyTorch ≥ 2.7
    except AttributeError:
        precision = "ieee"
    return precision in ("ieee", "none") and torch.get_float32_matmul_precision() == "highest"


@torch.no_grad()
def record_ranges(network: nn.Sequential, inputs: list[Tensor]) -> list[Tensor]:
    """Max |value| per channel of the input and of each hidden activation over ``inputs`` (calibration)."""
    layers = layers_of(network)
    ranges: list[Tensor] = [torch.zeros(layers[0].in_channels, dtype=torch.float64)]
    ranges += [torch.zeros(layer.out_channels, dtype=torch.float64) for layer in layers[:-1]]
    for x in inputs:
        x = x.to(torch.float64)
        ranges[0] = torch.maximum(ranges[0], x.abs().amax(dim=(0, 2, 3)))
        k = 0
        h = x
        modules = list(network)
        for j, module in enumerate(modules):
            h = _apply_double(module, h)
            if isinstance(module, (nn.ReLU, nn.LeakyReLU)) and j < len(modules) - 1:
                k += 1
                ranges[k] = torch.maximum(ranges[k], h.abs().amax(dim=(0, 2, 3)))
    return ranges


def _apply_double(module: nn.Module, x: Tensor) -> Tensor:
    if isinstance(module, nn.Conv2d):
        return F.conv2d(x, module.weight.double(), None if module.bias is None else module.bias.double(),
                        module.stride, module.padding)
    if isinstance(module, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, module.weight.double(), None if module.bias is None else module.bias.double(),
                                  module.stride, module.padding, module.output_padding)
    return module(x)


def reference_integers(net: IntegerNetwork, a: np.ndarray) -> np.ndarray:
    """The last layer's accumulators computed in int64 NumPy, one multiply-add at a time (slow):
    the definition the fast path must match exactly. For tests on small inputs."""
    x = a.astype(np.int64)
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        w = getattr(net, f"weight{i}").numpy().astype(np.int64)
        b = getattr(net, f"bias{i}").numpy()
        acc = _int_conv(x, w, layer) + b.reshape(1, -1, 1, 1)
        if i == last:
            return acc  # before the output scale and the last activation
        pos = getattr(net, f"mult_pos{i}").numpy().reshape(1, -1, 1, 1)
        neg = getattr(net, f"mult_neg{i}").numpy().reshape(1, -1, 1, 1)
        shift = getattr(net, f"shift{i}").numpy().reshape(1, -1, 1, 1)
        lo, hi = getattr(net, f"limits{i}").numpy()
        prod = acc * np.where(acc >= 0, pos, neg)  # exact in int64
        x = np.clip(_round_shift(prod, np.broadcast_to(shift, prod.shape)), lo, hi)
    raise AssertionError("unreachable")


def _round_shift(v: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """rint(v / 2**shift) with ties to even, in Python integers (shifts may exceed 63 bits)."""
    out = np.empty(v.shape, dtype=np.int64)
    for index, (value, s) in enumerate(zip(v.reshape(-1).tolist(), shift.reshape(-1).tolist())):
        if s == 0:
            out.flat[index] = value
            continue
        q, r = divmod(value, 1 << s)
        half = 1 << (s - 1)
        out.flat[index] = q + (r > half or (r == half and q % 2 == 1))
    return out


def _int_conv(x: np.ndarray, w: np.ndarray, layer: Layer) -> np.ndarray:
    """Integer (transposed) convolution with PyTorch's padding conventions, in int64."""
    b, c, h, wd = x.shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    if layer.transposed:
        out_h = (h - 1) * s - 2 * p + k + layer.output_padding
        out_w = (wd - 1) * s - 2 * p + k + layer.output_padding
        full = np.zeros((b, w.shape[1], (h - 1) * s + k + layer.output_padding, (wd - 1) * s + k + layer.output_padding), np.int64)
        for i in range(h):
            for j in range(wd):
                full[:, :, i * s : i * s + k, j * s : j * s + k] += np.einsum("bc,cokl->bokl", x[:, :, i, j], w)
        return full[:, :, p : p + out_h, p : p + out_w]
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out_h = (h + 2 * p - k) // s + 1
    out_w = (wd + 2 * p - k) // s + 1
    out = np.zeros((b, w.shape[0], out_h, out_w), np.int64)
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, :, i * s : i * s + k, j * s : j * s + k]
            out[:, :, i, j] = np.einsum("bckl,ockl->bo", patch, w)
    return out
