"""The learned codecs: analysis transform → latent coding → synthesis transform.

Every model implements ``code(coder, quality, y, size)`` — the latent hierarchy written once —
and inherits training (``forward``), rate estimation, ``compress`` and ``decompress`` from
:class:`CompressionModel`. A new architecture only changes transforms and configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .entropy_models import EntropyBottleneck, GaussianConditional, GaussianParams
from .integer_network import IntegerNetwork, layers_of
from . import cpu
from . import exact as xm
from .latent_coders import (
    DecodingCoder, EncodingCoder, OverridingCoder, QuantMode, RelaxedCoder, RoundingCoder, offer, record,
)
from .layers import GDN, Transform, conv, deconv
from .tiling import tiled
from .variable_rate import Gains


@dataclass(frozen=True)
class ModelConfig:
    """Widths and rate levels. N: transform channels; M: latent channels; levels: trained λ count;
    integer_hyper: the model carries an integer copy of its hyper-synthesis (:mod:`nicodec.calibration`),
    which container version 3 codes with (ignored by models without a hyperprior)."""

    N: int = 128
    M: int = 192
    levels: int = 6
    integer_hyper: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelOutput:
    """x_hat: (B, 3, H, W) reconstruction; likelihoods: per latent name, same shape as the latent."""

    x_hat: Tensor
    likelihoods: dict[str, Tensor]


@dataclass
class Coded:
    """Result of compress/decompress: range-coded streams, the quantised latents by name, the
    reconstruction (B, 3, H, W; None when compress was told not to make it), a CRC of the
    coding-table indices (see EncodingCoder) and the integers the range coder carried (int64, by
    name: the latents less their predicted means, where a model predicts them)."""

    streams: list[bytes]
    latents: dict[str, Tensor]
    x_hat: Tensor | None
    param_crc: int
    symbols: dict[str, Tensor] = field(default_factory=dict)


def _nhwc(t: Tensor) -> Tensor:
    """Channels-last layout for the transforms when coding: oneDNN's convolutions run ~1.5× faster
    on CPU that way (benchmarks/codec_speed.py). Values are the same up to float32 rounding; the
    coding path does not depend on it (it runs in float64 on contiguous tensors).

    The strides are made canonical too: a tensor whose size-1 batch axis has an odd stride (as
    ``image.permute(2, 0, 1)[None]`` gives: 3) counts as channels-last for PyTorch, but oneDNN
    does not take it as such and reorders every layer's output (``benchmarks/decode_speed.py``,
    2026-12-02: encode 0.295 → 0.177 s with this and the int8 hyper-synthesis, docs/benchmarks.md)."""
    t = t.contiguous(memory_format=torch.channels_last)
    b, c, h, w = t.shape
    canonical = (c * h * w, 1, w * c, c)
    # the same memory: strides of size-1 axes are never used to address an element
    return t if t.stride() == canonical else t.as_strided(t.shape, canonical, t.storage_offset())


# Inference runs every transform in tiles of TILE² image pixels (nicodec.tiling), each extended
# by a halo covering the transform's receptive field, in its input's units (tests/test_tiling.py
# checks that each is enough and one step less is not): an output of g_a sees ±30 pixels (four
# 5×5 stride-2 convolutions: 2 + 4 + 8 + 16), of h_a ±7 latents (3×3, then two 5×5 stride 2:
# 1 + 2 + 4), of g_s ±2 latents and of h_s ±2 hyper-latents (rounded up to the input's stride),
# of a channel-context network ±4 latents (a 5×5 and two 3×3 convolutions, stride 1: 2 + 1 + 1).
TILE = 1024
HALOS = {"g_a": 32, "h_a": 8, "g_s": 2, "h_s": 2, "ctx": 4}


@functools.lru_cache(maxsize=4)
def fast_synthesis(device: torch.device) -> bool:
    """Whether bfloat16 convolutions pay on ``device`` (for ``fast`` analysis and synthesis): CUDA
    GPUs, and CPUs with AMX or AVX-512 BF16 (oneDNN's fast bf16 kernels); elsewhere bf16 would be
    emulated, slower than float32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu.has_bf16()


def exact_coding(coder) -> bool:
    """Whether ``coder`` codes with the deterministic path of container version 3 (exact gains,
    integer hyper-synthesis, exact tables) rather than with the float modules."""
    return getattr(coder, "exact", False)


class CompressionModel(nn.Module):
    """Base class: owns the variable-rate gains, the synthesis and the shared coding logic.

    Inputs are RGB in [0, 1], shape (B, 3, H, W) with H and W multiples of ``stride``;
    ``quality`` is a float or a (B,) tensor of values in [1, levels].

    Coding comes in two versions (``exact``): the deterministic path of container version 3,
    whose coding tables are the same on every machine by construction, and the float64 path of
    versions 1 and 2, kept so that their files decode as they always did (docs/format.md).
    """

    name: ClassVar[str]
    stride: ClassVar[int]
    warm_start_from: ClassVar[tuple[str, ...]] = ()  # architectures whose weights this one can start from (--init)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        N, M = config.N, config.M
        self.g_a = Transform(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = Transform(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        self.y_gain = Gains(config.levels, M)
        self.y_inverse_gain = Gains(config.levels, M, invert=True)

    def code(self, coder, quality: Tensor, y: Tensor | None, size: tuple[int, ...]) -> Tensor:
        """Run the latent hierarchy through ``coder``; returns ŷ in the gained domain."""
        raise NotImplementedError

    def _quality(self, quality: float | Tensor, batch: int) -> Tensor:
        q = torch.as_tensor(quality, dtype=torch.float32).reshape(-1)
        return q.expand(batch) if q.numel() == 1 else q

    def _transform(self, name: str, x: Tensor, scale: Fraction | int, stride: int) -> Tensor:
        """The transform ``name`` applied to x, which has one element per ``stride`` image pixels,
        in tiles of TILE image pixels when x is larger than one: bounded memory on large images."""
        return tiled(getattr(self, name), x, scale, TILE // stride, HALOS[name])

    @torch.no_grad()
    def analyze(self, x: Tensor, fast: bool = False) -> Tensor:
        """y = g_a(x) as coding computes it (channels-last, tiled): the same for every quality.
        ``fast``: in bfloat16 where the hardware has it (:func:`fast_synthesis`), float32 out."""
        if fast and fast_synthesis(x.device):
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self._analyze(_nhwc(x)).float()
        return self._analyze(_nhwc(x))

    def _analyze(self, x: Tensor) -> Tensor:
        return self._transform("g_a", x, Fraction(1, 16), 1)

    def _synthesize(self, y_hat: Tensor, q: Tensor, fast: bool = False) -> Tensor:
        """x̂ = g_s(ŷ / gain). ``fast``: in bfloat16 where the hardware has it (:func:`fast_synthesis`),
        float32 out; else float32 throughout (the reference)."""
        y = y_hat * self.y_inverse_gain(q)
        if fast and fast_synthesis(y.device):
            with torch.autocast(y.device.type, dtype=torch.bfloat16):
                return self._transform("g_s", y, 16, 16).float()
        return self._transform("g_s", y, 16, 16)

    def _latent_size(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        b, _, h, w = x_shape
        return (b, self.config.M, h // 16, w // 16)

    def forward(self, x: Tensor, quality: float | Tensor, mode: QuantMode = "noise") -> ModelOutput:
        """Training pass with the uniform-noise relaxation (or STE / mixed, see RelaxedCoder)."""
        q = self._quality(quality, x.shape[0])
        coder = RelaxedCoder(mode)
        y_hat = self.code(coder, q, self._analyze(x), self._latent_size(x.shape))
        return ModelOutput(self._synthesize(y_hat, q), coder.likelihoods)

    @torch.no_grad()
    def estimate(self, x: Tensor, quality: float | Tensor) -> ModelOutput:
        """Hard-rounded pass: the likelihoods the coder will realise, without coding."""
        q = self._quality(quality, x.shape[0])
        coder = RoundingCoder()
        y_hat = self.code(coder, q, self._analyze(x), self._latent_size(x.shape))
        return ModelOutput(self._synthesize(y_hat, q).clamp(0, 1), coder.likelihoods)

    @property
    def exact_ready(self) -> bool:
        """Whether this model can code with the deterministic path (container version 3)."""
        return True

    @torch.no_grad()
    def compress(
        self, x: Tensor, quality: float, reconstruct: bool = True, latents: dict[str, Tensor] | None = None,
        y: Tensor | None = None, exact: bool = True,
    ) -> Coded:
        """x: (1, 3, H, W). One range-coded stream per latent, in coding order.

        ``reconstruct=False`` skips the synthesis (``x_hat`` is None): about half of the encoding
        time, and not needed to write a file. ``latents`` replaces named latents (in the gained
        domain, as the coders see them) with given values, e.g. refined ones
        (:mod:`nicodec.refinement`); the others come from the analysis transforms as usual.
        ``y``: :meth:`analyze` of x when the caller has it already (it does not depend on the
        quality: rate control codes one image at several). ``exact``: the coding path of
        container version 3, else that of versions 1 and 2.
        """
        q = self._quality(quality, 1)
        coder = EncodingCoder(exact=exact)
        coding = self._coder_model(exact)  # legacy: a float64 copy on the CPU
        device = coding.y_gain.log_gain.device
        overriding = OverridingCoder(coder, {k: v.detach().to(device).double() for k, v in (latents or {}).items()})
        y = (self.analyze(x) if y is None else y).contiguous().to(device).double()
        y_hat = coding.code(overriding, q.double(), y, self._latent_size(x.shape)).to(x.device).float()
        x_hat = self._synthesize(_nhwc(y_hat), q).contiguous().clamp(0, 1) if reconstruct else None
        return Coded(coder.streams, coder.latents, x_hat, coder.param_crc, coder.symbols)

    @torch.no_grad()
    def decompress(self, streams: list[bytes], size: tuple[int, int], quality: float, exact: bool = True,
                   fast: bool = False) -> Coded:
        """Rebuild (1, 3, H, W) from the streams; ``size`` is the padded (H, W); ``exact`` as in
        :meth:`compress`; ``fast``: the synthesis in bfloat16 where the hardware has it."""
        q = self._quality(quality, 1)
        coder = DecodingCoder(streams, exact=exact)
        device = self.y_gain.log_gain.device
        y_hat = self._coder_model(exact).code(coder, q.double(), None, self._latent_size((1, 3, *size))).to(device).float()
        coder.finish()
        x_hat = self._synthesize(_nhwc(y_hat), q, fast).contiguous().clamp(0, 1)
        return Coded(list(streams), coder.latents, x_hat, coder.param_crc, coder.symbols)

    def _coder_model(self, exact: bool) -> CompressionModel:
        if not exact:
            return self._coding_copy()
        if not self.exact_ready:
            raise ValueError(f"this {self.name} model has no integer hyper-synthesis: calibrate it (nicodec.calibration)")
        return self

    def _coding_copy(self) -> CompressionModel:
        """A float64 copy of everything but the transforms g_a and g_s, to code with.

        The decoder must derive the coding tables (from the gains and the hyper-synthesis)
        bit-identically to the encoder, on whatever machine it runs. float32 results change with
        the thread count, the memory layout and the instruction set (most elements differ in
        the last bits); in float64 such differences (~1e-15 relative) essentially never move a
        value across a table boundary, and the file's parameter CRC reports the case that would.
        """
        modules = self._modules
        self._modules = {k: v for k, v in modules.items() if k not in ("g_a", "g_s") and not k.endswith("_int")}
        try:
            coding = copy.deepcopy(self)
        finally:
            self._modules = modules
        return coding.cpu().double()  # on the CPU, as nicodec 0.1 computed it

    @torch.no_grad()
    def update(self) -> None:
        """Freeze the entropy models for coding (tail quantiles). Idempotent."""
        for module in self.modules():
            if isinstance(module, EntropyBottleneck):
                module.update()


class FactorizedPrior(CompressionModel):
    """Ballé et al. 2017 (ICLR): GDN transforms, y coded with a learned factorised density."""

    name = "factorized"
    stride = 16

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.y_model = EntropyBottleneck(config.M)

    def code(self, coder, quality, y, size):
        gain = self.y_gain.exact(quality) if exact_coding(coder) else self.y_gain(quality)
        return coder("y", self.y_model, None if y is None else y * gain, gain, size)


class ScaleHyperprior(CompressionModel):
    """Ballé et al. 2018 (ICLR): a hyper-latent z carries the scale of each element of y.

    Rate levels scale y by a gain g and z by a gain h; predicted scales live in the unscaled
    domain and are multiplied by g, so the hyper-synthesis need not infer the level.
    """

    name = "hyperprior"
    stride = 64

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        N, M = config.N, config.M
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        self.h_s = self._hyper_synthesis(N, M)
        self.z_gain = Gains(config.levels, N)
        self.z_model = EntropyBottleneck(N)
        self.y_model = GaussianConditional()
        self.h_s_int = IntegerNetwork(layers_of(self.h_s)) if config.integer_hyper else None

    @staticmethod
    def _hyper_synthesis(N: int, M: int) -> nn.Module:
        return nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, N), nn.ReLU(), conv(N, M, 3, 1), nn.ReLU())

    def _hyper_input(self, y_gained: Tensor) -> Tensor:
        return torch.abs(y_gained)

    def _gaussian(self, hyper: Tensor, gain: Tensor) -> GaussianParams:
        return GaussianParams(scales=hyper * gain)

    @property
    def exact_ready(self) -> bool:
        return self.h_s_int is not None and int(self.h_s_int.input_limit) > 0

    def code(self, coder, quality, y, size):
        exact = exact_coding(coder)
        gain = self.y_gain.exact(quality) if exact else self.y_gain(quality)
        y_gained = None if y is None else y * gain
        hyper = self._hyper_prediction(coder, quality, y_gained, size, exact)
        return coder("y", self.y_model, y_gained, self._gaussian(hyper, gain), size)

    def _hyper_prediction(self, coder, quality, y_gained: Tensor | None, size, exact: bool) -> Tensor:
        """z = h_a(y) when encoding, ẑ through ``coder``, then h_s(ẑ): what y's densities are made of."""
        z_gain = self.z_gain.exact(quality) if exact else self.z_gain(quality)
        z = None
        if y_gained is not None:
            hyper_input = self._hyper_input(y_gained).to(self.z_gain.log_gain.dtype)
            z = self._transform("h_a", hyper_input, Fraction(1, 4), 16).to(z_gain.dtype) * z_gain
        b, _, h, w = size
        z_hat = coder("z", self.z_model, z, z_gain, (b, self.config.N, h // 4, w // 4))
        if exact:  # the integer copy of h_s: the same scales and means on every machine
            return tiled(lambda t: self.h_s_int(t, divisor=z_gain), z_hat, 4, TILE // 64, HALOS["h_s"])
        return self._transform("h_s", z_hat / z_gain, 4, 64)

    @torch.no_grad()
    def hyper_synthesis_inputs(self, x: Tensor, qualities: list[float]) -> list[Tensor]:
        """ẑ / gain for image x at each of ``qualities``: what h_s sees when coding (calibration data)."""
        y = self.analyze(x)
        out = []
        for quality in qualities:
            q = self._quality(quality, x.shape[0])
            z_gain = self.z_gain(q)
            z_hat = torch.round(self._transform("h_a", self._hyper_input(y * self.y_gain(q)), Fraction(1, 4), 16) * z_gain)
            out.append(z_hat / z_gain)
        return out

    def set_integer_hyper(self, network: IntegerNetwork) -> None:
        """Attach a calibrated integer copy of h_s (:mod:`nicodec.calibration`); the config says so."""
        if network.layers != layers_of(self.h_s):
            raise ValueError("the integer network does not match this model's hyper-synthesis")
        network.check()
        self.h_s_int = network
        self.config = dataclasses.replace(self.config, integer_hyper=True)


class MeanScaleHyperprior(ScaleHyperprior):
    """Minnen et al. 2018: the hyperprior predicts a mean and a scale for every element of y
    (without the serial autoregressive context model)."""

    name = "meanscale"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        N, M = config.N, config.M
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(), conv(N, N), nn.LeakyReLU(), conv(N, N))

    @staticmethod
    def _hyper_synthesis(N: int, M: int) -> nn.Module:
        return nn.Sequential(
            deconv(N, M), nn.LeakyReLU(), deconv(M, M * 3 // 2), nn.LeakyReLU(), conv(M * 3 // 2, 2 * M, 3, 1)
        )

    def _hyper_input(self, y_gained: Tensor) -> Tensor:
        return y_gained

    def _gaussian(self, hyper: Tensor, gain: Tensor) -> GaussianParams:
        scales, means = hyper.chunk(2, dim=1)
        return GaussianParams(scales=scales * gain, means=means * gain)


def channel_groups(M: int) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each channel group of y: ELIC's uneven split (He et al. 2022) scaled to M,
    s, s, 2s, 4s and the rest with s = M // 12 (16, 16, 32, 64, 64 for M = 192), fewer groups when
    M is too small for five. Small groups first: the first channels carry most of the energy, and
    each later group has more decoded channels to be predicted from."""
    s = max(1, M // 12)
    sizes, left = [], M
    for want in (s, s, 2 * s, 4 * s):
        if left - want < 1:
            break
        sizes.append(want)
        left -= want
    sizes.append(left)
    bounds = [0, *itertools.accumulate(sizes)]
    return tuple(zip(bounds[:-1], bounds[1:]))


class ChannelContextHyperprior(MeanScaleHyperprior):
    """Minnen & Singh 2020: y coded in channel groups, each conditioned on the hyperprior and the groups before.

    ELIC's uneven channel groups (He et al. 2022); no spatial context inside a group.

    y is coded in groups one after another (``y.0``, ``y.1``, ...). Group 0 uses the mean and scale
    the hyper-synthesis predicts, as meanscale does; each later group k has a small network
    ``ctx[k-1]`` that sees the group's hyper prediction and the decoded groups before it and
    corrects it: scale · exp(Δs), mean + Δm (unscaled domain; the decoded groups enter divided by
    their gains, so one network serves every rate). Its last layer starts at zero, so a model
    warm-started from meanscale's weights (``--init``) codes exactly as meanscale does and training
    can only add. The decoder runs the groups in turn: no serial per-pixel context. In container
    version 3 every context network runs as an integer network (:mod:`nicodec.integer_network`),
    calibrated with h_s, and the corrections are exact float64 arithmetic.
    """

    name = "channelctx"
    warm_start_from = ("meanscale",)
    LOG_SCALE_LIMIT = 10.0  # |Δs| is clamped: exp stays finite whatever an untrained network says

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.groups = channel_groups(config.M)
        self.ctx = nn.ModuleList(self._context_network(start, stop - start) for start, stop in self.groups[1:])
        for network in self.ctx:
            nn.init.zeros_(network[-1].weight)
            nn.init.zeros_(network[-1].bias)
        self.ctx_int = nn.ModuleList(IntegerNetwork(layers_of(n)) for n in self.ctx) if config.integer_hyper else None

    @staticmethod
    def _context_network(decoded: int, width: int) -> nn.Sequential:
        """(hyper scale and mean of the group, the ``decoded`` channels before it) → (Δs, Δm)."""
        inputs, outputs = 2 * width + decoded, 2 * width
        hidden = max(8, (inputs + outputs) // 2)
        return nn.Sequential(
            conv(inputs, hidden, 5, 1), nn.ReLU(), conv(hidden, hidden, 3, 1), nn.ReLU(), conv(hidden, outputs, 3, 1),
        )

    @property
    def exact_ready(self) -> bool:
        return super().exact_ready and self.ctx_int is not None and all(int(n.input_limit) > 0 for n in self.ctx_int)

    def code(self, coder, quality, y, size):
        exact = exact_coding(coder)
        gain = self.y_gain.exact(quality) if exact else self.y_gain(quality)
        y_gained = offer(coder, "y", None if y is None else y * gain)
        scales, means = self._hyper_prediction(coder, quality, y_gained, size, exact).chunk(2, dim=1)
        decoded: list[Tensor] = []  # ŷ of each group so far, gained domain
        seen = getattr(coder, "context_inputs", None)  # calibration collects what each network sees
        for k, (start, stop) in enumerate(self.groups):
            s, m = scales[:, start:stop], means[:, start:stop]
            if k:
                s, m = self._corrected(k - 1, s, m, torch.cat(decoded, dim=1), gain[:, :start], exact, seen)
            part = None if y_gained is None else y_gained[:, start:stop]
            g = gain[:, start:stop]
            decoded.append(coder(f"y.{k}", self.y_model, part, GaussianParams(scales=s * g, means=m * g), size))
        y_hat = torch.cat(decoded, dim=1)
        record(coder, "y", y_hat)
        return y_hat

    def _corrected(self, index: int, s: Tensor, m: Tensor, previous: Tensor, gain: Tensor, exact: bool,
                   seen: list[list[Tensor]] | None) -> tuple[Tensor, Tensor]:
        """The group's (scale, mean) after context network ``index`` (unscaled domain); ``previous``:
        the decoded groups before it (gained), ``gain``: their gains."""
        inputs = torch.cat([s, m, previous.to(s.dtype)], dim=1)
        ones = torch.ones_like(s[:1, :, :1, :1]).expand(gain.shape[0], -1, -1, -1)
        divisor = torch.cat([ones, ones, gain.to(s.dtype)], dim=1)  # (B, C, 1, 1): the decoded groups lose their gains
        if seen is not None:
            seen[index].append((inputs / divisor).detach())
        if exact:
            network = self.ctx_int[index]
            delta = tiled(lambda t: network(t, divisor=divisor), inputs, 1, TILE // 16, HALOS["ctx"])
            d_log, d_mean = delta.chunk(2, dim=1)
            factor = torch.from_numpy(xm.exp(np.clip(d_log.cpu().numpy(), -self.LOG_SCALE_LIMIT, self.LOG_SCALE_LIMIT)))
            return s * factor.to(s.device), m + d_mean
        network = self.ctx[index]
        delta = tiled(network, (inputs / divisor).to(self.z_gain.log_gain.dtype), 1, TILE // 16, HALOS["ctx"]).to(s.dtype)
        d_log, d_mean = delta.chunk(2, dim=1)
        return s * torch.exp(d_log.clamp(-self.LOG_SCALE_LIMIT, self.LOG_SCALE_LIMIT)), m + d_mean

    @torch.no_grad()
    def context_inputs(self, x: Tensor, qualities: list[float]) -> list[list[Tensor]]:
        """What each context network sees (divided by the gains, as its integer copy divides it)
        when image x is coded at each of ``qualities`` with the float model: calibration data."""
        y = self.analyze(x)
        coder = RoundingCoder()
        coder.context_inputs = [[] for _ in self.ctx]
        for quality in qualities:
            self.code(coder, self._quality(quality, x.shape[0]), y, self._latent_size(x.shape))
        return coder.context_inputs

    def set_integer_context(self, networks: list[IntegerNetwork]) -> None:
        """Attach calibrated integer copies of the context networks (:mod:`nicodec.calibration`)."""
        if len(networks) != len(self.ctx) or any(n.layers != layers_of(c) for n, c in zip(networks, self.ctx)):
            raise ValueError("the integer networks do not match this model's context networks")
        for network in networks:
            network.check()
        self.ctx_int = nn.ModuleList(networks)
        self.config = dataclasses.replace(self.config, integer_hyper=True)


ARCHITECTURES: dict[str, type[CompressionModel]] = {
    cls.name: cls for cls in (FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior, ChannelContextHyperprior)
}


def build_model(architecture: str, config: ModelConfig | None = None) -> CompressionModel:
    """A fresh (untrained) model of a registered architecture."""
    if architecture not in ARCHITECTURES:
        from .errors import NicodecError

        raise NicodecError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](config or ModelConfig())
