"""A model ready to code images: padding, colour modes, alpha and the ``.nic`` container.

All models share this one compress/decompress path; models only provide their latent coding.
"""

from __future__ import annotations

import copy
import operator
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import container, limits, rate_control, refinement
from .entropy_models import EntropyBottleneck
from .errors import CorruptFileError, NicodecError
from .images import MODES, from_planes, to_planes
from .models import Coded, CompressionModel
from .variable_rate import quality_lambda
from .weights import save_weights, weights_id


@dataclass
class Decoded:
    """Everything a decoder produced: the image, the quantised latents and the reconstruction."""

    image: Image.Image
    coded: Coded
    header: container.NicFile


class UnrefinedWarning(UserWarning):
    """Refinement was asked for with a size budget, and only the unrefined file fitted it."""


class Codec:
    """Compress images to ``.nic`` bytes and back with one (variable-rate) model.

    ``quality`` is any float in [1, levels]: 1 is the lowest rate, ``levels`` the highest.
    """

    def __init__(self, model: CompressionModel, metadata: dict | None = None):
        model.eval()
        if any(not bool(m.quantiles.any()) for m in model.modules() if isinstance(m, EntropyBottleneck)):
            model.update()  # never-frozen model (fresh or straight from training)
        self.model = model
        self.metadata = dict(metadata or {})
        self.weights_id = weights_id(model)
        # the container version written: 3 (deterministic coding path) when the model can, else the
        # legacy float64 path (1, or 2 with metadata) — for weights without an integer hyper-synthesis,
        # and for tests that need legacy files
        self.version = container.VERSION_EXACT if model.exact_ready else container.VERSION

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def device(self) -> torch.device:
        return self.model.y_gain.log_gain.device

    def to(self, device: str | torch.device) -> "Codec":
        """Run the transforms on ``device`` (``"cuda"``, ``"cpu"``); returns a codec sharing nothing
        with this one, so a cached codec stays where it was. Files are the same bits either way:
        coding runs the deterministic path (container version 3) on any device."""
        try:
            device = torch.device(device)
            if device.type == "cuda" and not torch.cuda.is_available():
                raise NicodecError("--device cuda: no CUDA device here (this torch build or machine has none)")
            model = copy.deepcopy(self.model).to(device)
        except (RuntimeError, AssertionError) as exc:
            raise NicodecError(f"cannot use device {device}: {exc}") from None
        moved = Codec(model, self.metadata)
        moved.version = self.version
        return moved

    @property
    def levels(self) -> int:
        return self.model.config.levels

    @property
    def default_quality(self) -> float:
        return default_quality(self.metadata, self.levels)

    def __repr__(self) -> str:
        c = self.model.config
        return f"Codec({self.name}, N={c.N}, M={c.M}, levels={c.levels}, id={self.weights_id.hex()})"

    def _check_quality(self, quality: float | None) -> float:
        q = self.default_quality if quality is None else quality
        if isinstance(q, (bool, np.bool_, str, bytes)):  # float() takes them: True would be quality 1
            raise NicodecError(f"quality must be a number, got {quality!r}")
        try:
            q = float(np.float32(q))  # the file stores float32: code with exactly that value
        except (TypeError, ValueError):
            raise NicodecError(f"quality must be a number, got {quality!r}") from None
        if not 1 <= q <= self.levels:
            raise NicodecError(f"quality must be in [1, {self.levels}] for this model, got {quality}")
        return q

    def _padded(self, h: int, w: int) -> tuple[int, int]:
        s = self.model.stride
        return (-(-h // s) * s, -(-w // s) * s)

    def compress(self, image, quality: float | None = None, refine: int = 0, max_bytes: int | None = None,
                 progress: bool = False, fast: bool = False) -> bytes:
        """Compress a PIL image, (H, W[, C]) uint8 array or (C, H, W) tensor to ``.nic`` bytes.

        A PIL image is coded upright (its EXIF orientation applied) and keeps its ICC profile
        unless that is sRGB (:mod:`nicodec.images`); the decoded image has it in ``info``.

        ``refine``: steps of encoder-side latent refinement (:mod:`nicodec.refinement`) — slower
        encoding (each step costs about two decodes), a lower rate–distortion cost; the file
        decodes as any other. ``max_bytes`` (instead of ``quality``): the highest quality whose
        file fits in that many bytes (:mod:`nicodec.rate_control`); with ``refine``, the refined
        file where it fits too. ``progress``: a progress bar on stderr while refining. ``fast``:
        the analysis transform in bfloat16 where the CPU (AMX, AVX-512 BF16) or GPU has it — faster,
        slightly different latents (docs/benchmarks.md); the file decodes as any other.
        """
        return self._encode(image, quality, False, refine, max_bytes, progress, fast)[0]

    def encode(self, image, quality: float | None = None, refine: int = 0, max_bytes: int | None = None,
               progress: bool = False, fast: bool = False) -> tuple[bytes, Coded]:
        """Like :meth:`compress`, also returning the encoder's latents and reconstruction (which
        costs a run of the synthesis transform: :meth:`compress` skips it)."""
        return self._encode(image, quality, True, refine, max_bytes, progress, fast)

    def _refinement_lambda(self, quality: float) -> tuple[float, str]:
        lambdas = self.metadata.get("lambdas")
        if not lambdas or len(lambdas) != self.levels:
            raise NicodecError("refinement needs the λ values the weights were trained with; these weights carry none")
        return quality_lambda(lambdas, quality), str(self.metadata.get("distortion", "mse"))

    @staticmethod
    def _check_refine(refine) -> int:
        try:
            steps = operator.index(refine)
        except TypeError:
            steps = -1
        if isinstance(refine, bool) or steps < 0:
            raise NicodecError(f"refine must be a whole number of steps ≥ 0, got {refine!r}")
        return steps

    def _encode(self, image, quality: float | None, reconstruct: bool, refine: int = 0,
                max_bytes: int | None = None, progress: bool = False, fast: bool = False) -> tuple[bytes, Coded]:
        steps = self._check_refine(refine)
        budget = self._check_budget(max_bytes, quality)
        planes = to_planes(image)
        q = self._check_quality(quality)
        h, w = planes.rgb.shape[:2]
        if max(h, w) > container.MAX_SIDE:
            raise NicodecError(f"image is {w}×{h}; the largest side a .nic file holds is {container.MAX_SIDE}")
        ph, pw = self._padded(h, w)
        rgb = np.pad(planes.rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")  # in uint8: one float copy below
        x = torch.from_numpy(rgb)[None].permute(0, 3, 1, 2).to(self.device).float().div_(255)  # (1, 3, H, W), canonical channels-last strides
        alpha = b"" if planes.alpha is None else zlib.compress(planes.alpha.tobytes(), 9)
        y = self.model.analyze(x, fast=fast)

        version = self.version
        exact = version not in container.LEGACY_VERSIONS

        def pack(q: float, reconstruct: bool = False, latents: dict | None = None) -> tuple[bytes, Coded]:
            coded = self.model.compress(x, q, reconstruct=reconstruct, latents=latents, y=y, exact=exact)
            nic = container.NicFile(
                model=self.name, weights_id=self.weights_id, quality=q, width=w, height=h,
                mode=MODES.index(planes.mode), param_crc=coded.param_crc, streams=[*coded.streams, alpha],
                metadata={container.ICC: planes.icc} if planes.icc else {}, version=version,
            )
            return container.pack(nic), coded

        if budget is not None:
            q = rate_control.largest_quality(lambda q: len(pack(self._check_quality(q))[0]), 1.0, float(self.levels), budget)
            q = self._check_quality(q)
        if steps:
            lam, distortion = self._refinement_lambda(q)
            refinement.check_memory(ph * pw, distortion)
            config = refinement.RefineConfig(steps=steps)
            latents = refinement.refine(self.model, x, q, lam, distortion, (h, w), config, progress=progress, y=y).latents
            data, coded = pack(q, reconstruct, latents)
            if budget is None or len(data) <= budget:
                return data, coded
            warnings.warn(f"the refined file ({len(data):,} bytes) is over the budget: the unrefined one is returned",
                          UnrefinedWarning, stacklevel=3)
        return pack(q, reconstruct)

    @staticmethod
    def _check_budget(max_bytes, quality) -> int | None:
        if max_bytes is None:
            return None
        if quality is not None:
            raise NicodecError("give a quality or a size budget (max_bytes), not both")
        try:
            budget = operator.index(max_bytes)
        except TypeError:
            budget = 0
        if isinstance(max_bytes, bool) or budget <= 0:
            raise NicodecError(f"max_bytes must be a whole number of bytes > 0, got {max_bytes!r}")
        return budget

    def decompress(self, data: bytes, max_pixels: int | None = limits.MAX_PIXELS, fast: bool = False) -> Image.Image:
        """Decode ``.nic`` bytes made by this codec's model to a PIL image. A file declaring more
        than ``max_pixels`` pixels is refused before anything is allocated (None: no limit).
        ``fast``: the synthesis in bfloat16 where the CPU (AMX, AVX-512 BF16) or GPU has it — faster,
        pixels within a few levels of the float32 reference (docs/benchmarks.md); else float32."""
        return self.decode(data, max_pixels, fast).image

    def decode(self, data: bytes, max_pixels: int | None = limits.MAX_PIXELS, fast: bool = False) -> Decoded:
        """Like :meth:`decompress`, also returning the decoder's latents and reconstruction."""
        nic = container.unpack(data)
        limits.check_decodable(nic, max_pixels)
        self._check_origin(nic)
        if not 1 <= nic.quality <= self.levels:
            raise CorruptFileError("corrupt .nic file (quality outside the model's range)")
        exact = nic.version not in container.LEGACY_VERSIONS
        if exact and not self.model.exact_ready:
            raise NicodecError(f"these {self.name} weights have no integer hyper-synthesis, which .nic version "
                               f"{nic.version} files need: pass the weights the file was made with")
        try:
            coded = self.model.decompress(nic.streams[:-1], self._padded(nic.height, nic.width), nic.quality, exact=exact,
                                          fast=fast)
        except NicodecError:
            raise
        except Exception as exc:  # constriction or shape errors on a damaged stream
            raise CorruptFileError(f"corrupt .nic file (cannot decode: {exc.__class__.__name__})") from None
        if coded.param_crc != nic.param_crc:
            raise CorruptFileError(
                "decoder derived different coding parameters than the encoder "
                "(file made on another platform or torch build?)"
            )
        rgb = _to_uint8(coded.x_hat[0, :, : nic.height, : nic.width])
        mode = MODES[nic.mode]
        image = from_planes(rgb, self._alpha(nic, mode), mode, nic.metadata.get(container.ICC))
        return Decoded(image, coded, nic)

    def _check_origin(self, nic: container.NicFile) -> None:
        if nic.model != self.name:
            raise NicodecError(f"file was made with model {nic.model!r}, not {self.name!r}")
        if nic.weights_id != self.weights_id:
            raise NicodecError(
                f"file was made with {nic.model} weights {nic.weights_id.hex()}, "
                f"but these are {self.weights_id.hex()}; pass the weights it was made with"
            )

    @staticmethod
    def _alpha(nic: container.NicFile, mode: str) -> np.ndarray | None:
        if mode not in ("LA", "RGBA"):
            if nic.streams[-1]:
                raise CorruptFileError("corrupt .nic file (alpha data for an opaque image)")
            return None
        try:
            raw = zlib.decompressobj().decompress(nic.streams[-1], nic.width * nic.height + 1)
        except zlib.error:
            raise CorruptFileError("corrupt .nic file (alpha plane)") from None
        if len(raw) != nic.width * nic.height:
            raise CorruptFileError("corrupt .nic file (alpha plane has the wrong size)")
        return np.frombuffer(raw, np.uint8).reshape(nic.height, nic.width)

    def save(self, path: str | Path, half: bool = False) -> None:
        """Write this codec's weights (+ metadata) so that ``nicodec.load(path)`` rebuilds it."""
        save_weights(path, self.model, self.metadata, half=half)


def default_quality(metadata: dict, levels: int) -> float:
    """The quality used when none is given: the weights' own choice (metadata
    ``default_quality``), else the upper middle of the range: good quality at a moderate rate."""
    chosen = metadata.get("default_quality")
    if isinstance(chosen, (int, float)) and 1 <= chosen <= levels:
        return float(chosen)
    return float(round(1 + 0.6 * (levels - 1)))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] → (H, W, 3) uint8, rounding to nearest."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

