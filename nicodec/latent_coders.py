"""What happens to a latent between analysis and synthesis, in one interface.

A model's ``code`` method is written once and called with one of these coders, so training,
rate estimation, encoding and decoding cannot drift apart:

* :class:`RelaxedCoder` — training: additive uniform noise U(−½, ½) (Ballé et al. 2017) for the
  rate term; the decoder sees the noisy latent or the straight-through rounded one ("mixed").
* :class:`RoundingCoder` — evaluation: hard rounding, likelihoods of the rounded values.
* :class:`EncodingCoder` / :class:`DecodingCoder` — real range coding into one stream per latent.
* :class:`SoftRoundingCoder` — encoder-side refinement: annealed stochastic soft rounding of the
  latents being refined, hard rounding of the others.
* :class:`OverridingCoder` — wraps any of these and codes given values for chosen latents
  instead of the model's (encoder-side refinement, :mod:`nicodec.refinement`).

A coder is called as ``coder(name, entropy_model, value, cond, size)`` and returns the latent
the rest of the model continues with. ``value`` is None when decoding; ``size`` gives the shape
when the conditioning does not (the first latent of a hierarchy).

A latent coded in parts, one after another (the channel groups of ``y`` in a channel-context
model), names them ``y.0``, ``y.1``, ...: the model passes the whole latent through :func:`offer`
first (so that a given ``y`` replaces it) and hands the assembled result to :func:`record`, and
coders treat the parts as members of the family ``y`` (:func:`family`).
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from . import entropy_coding
from .entropy_models import EntropyModel
from .errors import CorruptFileError

QuantMode = Literal["noise", "ste", "mixed"]


def family(name: str) -> str:
    """The latent a part belongs to: ``y`` for ``y.3``; a latent coded whole is its own family."""
    return name.split(".", 1)[0]


def offer(coder, name: str, value: Tensor | None) -> Tensor | None:
    """What to code as the latent ``name`` whose parts are coded one by one: the value an
    :class:`OverridingCoder` was given for it, else ``value`` (None when decoding)."""
    substitute = getattr(coder, "substitute", None)
    return value if substitute is None else substitute(name, value)


def record(coder, name: str, latent: Tensor) -> None:
    """Store the assembled latent ``name`` beside its parts, for coders that keep latents."""
    latents = getattr(coder, "latents", None)
    if latents is not None:
        latents[name] = latent


def _round_around(value: Tensor, center: Tensor | None) -> Tensor:
    return torch.round(value) if center is None else torch.round(value - center) + center


class RelaxedCoder:
    """Training-time stand-in for quantisation; collects likelihoods by latent name.

    mode "noise": rate and decoder both see y + u; "ste": both see round(y) with a
    straight-through gradient; "mixed": rate sees y + u, decoder sees the STE-rounded y.
    """

    def __init__(self, mode: QuantMode = "noise", generator: torch.Generator | None = None):
        self.mode = mode
        self.generator = generator  # None: torch's global generator
        self.likelihoods: dict[str, Tensor] = {}

    def __call__(self, name: str, model: EntropyModel, value: Tensor, cond, size=None) -> Tensor:
        center = model.center(cond)
        noisy = value + torch.empty_like(value).uniform_(-0.5, 0.5, generator=self.generator)
        rounded = value + (_round_around(value, center) - value).detach()
        self.likelihoods[name] = model.likelihood(rounded if self.mode == "ste" else noisy, cond)
        return noisy if self.mode == "noise" else rounded


class RoundingCoder:
    """Hard rounding as in coding, with the model's likelihoods of the rounded values."""

    def __init__(self) -> None:
        self.likelihoods: dict[str, Tensor] = {}

    def __call__(self, name: str, model: EntropyModel, value: Tensor, cond, size=None) -> Tensor:
        rounded = _round_around(value, model.center(cond))
        self.likelihoods[name] = model.likelihood(rounded, cond)
        return rounded


class EncodingCoder:
    """Rounds each latent and range-codes it; ``streams`` and ``latents`` come out in order.

    ``param_crc`` fingerprints the table indices used, so the decoder can prove that it
    derived the same coding parameters (a mismatch would otherwise decode garbage).
    ``exact``: tables from the deterministic path (container version 3), else the legacy one.
    """

    def __init__(self, exact: bool = True) -> None:
        self.exact = exact
        self.streams: list[bytes] = []
        self.latents: dict[str, Tensor] = {}
        self.symbols: dict[str, Tensor] = {}
        self.param_crc = 0

    def __call__(self, name: str, model: EntropyModel, value: Tensor, cond, size=None) -> Tensor:
        center = model.center(cond)
        symbols = torch.round(value if center is None else value - center)
        if not bool(torch.isfinite(symbols).all()):
            raise ValueError(f"latent {name!r} is not finite")
        index, tables = model.coding_tables(cond, value.shape, exact=self.exact)
        self.param_crc = zlib.crc32(np.ascontiguousarray(index, dtype="<i4").tobytes(), self.param_crc)
        self.symbols[name] = symbols.to(torch.int64).cpu()
        self.streams.append(entropy_coding.encode(self.symbols[name].numpy(), index, tables))
        latent = symbols if center is None else symbols + center
        self.latents[name] = latent
        return latent


class SoftRoundingCoder:
    """Stochastic Gumbel annealing (Yang et al. 2020, "Improving inference for neural image
    compression"): each latent in ``soft`` becomes a random blend of its two neighbouring
    integers (around the model's centre), the nearer one likelier, sharper as ``temperature``
    falls towards 0; rate and decoder both see the blend, so gradients see the rounding that
    coding will do, unlike additive noise. Other latents are hard-rounded, as they will be coded.
    """

    EPS = 1e-5

    def __init__(self, temperature: float, generator: torch.Generator | None = None, soft: tuple[str, ...] = ("y",)):
        self.temperature = temperature
        self.generator = generator  # None: torch's global generator
        self.soft = soft
        self.likelihoods: dict[str, Tensor] = {}
        self._hard = RoundingCoder()
        self._hard.likelihoods = self.likelihoods

    def __call__(self, name: str, model: EntropyModel, value: Tensor, cond, size=None) -> Tensor:
        if family(name) not in self.soft:
            return self._hard(name, model, value, cond, size)
        center = model.center(cond)
        offset = value if center is None else value - center
        floor = torch.floor(offset).detach()
        up = offset - floor  # in [0, 1): distance from the floor
        t = self.temperature
        logits = torch.stack([-torch.atanh(up.clamp(max=1 - self.EPS)), -torch.atanh((1 - up).clamp(max=1 - self.EPS))], -1) / t
        uniform = torch.rand(logits.shape, generator=self.generator, dtype=logits.dtype).clamp(1e-10, 1 - 1e-10)
        weights = torch.softmax((logits - torch.log(-torch.log(uniform))) / t, -1)  # relaxed one-hot sample
        soft = floor + weights[..., 1]
        latent = soft if center is None else soft + center
        self.likelihoods[name] = model.likelihood(latent, cond)
        return latent


class OverridingCoder:
    """Passes ``values[name]`` to ``inner`` instead of what the model offers for that latent.

    ``offered`` records what the model offered, by name (the encoder's own latents).
    """

    def __init__(self, inner, values: dict[str, Tensor] | None = None):
        self.inner = inner
        self.values = dict(values or {})
        self.offered: dict[str, Tensor] = {}

    @property
    def likelihoods(self) -> dict[str, Tensor]:
        return self.inner.likelihoods

    @property
    def exact(self) -> bool:
        return getattr(self.inner, "exact", False)

    @property
    def latents(self) -> dict[str, Tensor] | None:
        return getattr(self.inner, "latents", None)

    def substitute(self, name: str, value: Tensor | None) -> Tensor | None:
        """The value to code for ``name``: the given one if any (same shape), else ``value``; records the offer."""
        self.offered[name] = value
        given = self.values.get(name)
        if given is not None and value is not None and given.shape != value.shape:
            raise ValueError(f"latent {name!r} has shape {tuple(value.shape)}, the value given {tuple(given.shape)}")
        return value if given is None else given

    def __call__(self, name: str, model: EntropyModel, value: Tensor | None, cond, size=None) -> Tensor:
        return self.inner(name, model, self.substitute(name, value), cond, size)


class DecodingCoder:
    """Reads the streams back in the order the encoder wrote them."""

    def __init__(self, streams: list[bytes], exact: bool = True):
        self.exact = exact
        self._streams = list(streams)
        self.latents: dict[str, Tensor] = {}
        self.symbols: dict[str, Tensor] = {}
        self.param_crc = 0

    def __call__(self, name: str, model: EntropyModel, value: None, cond, size=None) -> Tensor:
        if not self._streams:
            raise CorruptFileError("corrupt file: fewer streams than the model needs")
        shape = model.shape(cond, size)
        index, tables = model.coding_tables(cond, shape, exact=self.exact)
        self.param_crc = zlib.crc32(np.ascontiguousarray(index, dtype="<i4").tobytes(), self.param_crc)
        symbols = entropy_coding.decode(self._streams.pop(0), index, tables)
        self.symbols[name] = torch.from_numpy(symbols.reshape(tuple(shape))).to(torch.int64)
        device = cond.device if isinstance(cond, Tensor) else cond.scales.device
        latent = torch.from_numpy(symbols.reshape(tuple(shape))).to(device=device, dtype=torch.float64)  # coding runs in float64
        center = model.center(cond)
        latent = latent if center is None else latent + center
        self.latents[name] = latent
        return latent

    def finish(self) -> None:
        if self._streams:
            raise CorruptFileError("corrupt file: more streams than the model needs")
