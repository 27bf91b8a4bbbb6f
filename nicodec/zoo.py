"""The registry: architecture names → released weights, and the functions that load codecs.

Released weights live in ``nicodec/weights/`` and are listed in ``weights/releases.json``
(:mod:`nicodec.releases`); a ``.nic`` file names the architecture and the weights' fingerprint,
so :func:`decompress` finds its model alone, whichever release made it. Model ``overfit``
(:mod:`nicodec.overfit`) has no weights: its files carry their decoder.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from . import container, limits, releases
from .codec import Codec
from .errors import NicodecError
from .models import ARCHITECTURES, ModelConfig, build_model
from .weights import load_weights

WEIGHTS_DIR = releases.WEIGHTS_DIR
SAMPLE = Path(__file__).parent / "assets" / "sample.png"  # Kodak kodim23, see assets/README.md
DEFAULT_MODEL = "meanscale"
OVERFIT = "overfit"  # the per-image fitted codec: no weights, its own codec class


def model_names() -> list[str]:
    """Every name ``load`` takes without a path: the architectures, and ``overfit``."""
    return [*ARCHITECTURES, OVERFIT]


def shipped_weights() -> dict[str, Path]:
    """Architecture name → its newest released weights file (what encoding uses)."""
    found = {name: releases.latest(name) for name in ARCHITECTURES}
    return {name: r.path for name, r in found.items() if r is not None}


def load(name: str = DEFAULT_MODEL, device: str | None = None):
    """A codec from released weights (``"meanscale"``: the newest release; ``"meanscale-r1"``: as in
    release 1) or from a weights file path; ``device`` (e.g. ``"cuda"``): where its transforms run
    (files are the same bits on any device). ``"overfit"``: the per-image fitted codec
    (:class:`nicodec.overfit.OverfitCodec`; ``device``: where it fits)."""
    if name == OVERFIT:
        return _overfit(device)
    codec = _load(name)
    return codec if device is None else _on_device(codec, _device_name(device))


def _overfit(device: str | None = None):
    """A new OverfitCodec (cheap: nothing to load; not cached, so it reads the efforts as they are now)."""
    from .overfit import OverfitCodec

    codec = OverfitCodec()
    return codec if device is None else codec.to(_device_name(device))


def _device_name(device) -> str:
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        raise NicodecError(f"unknown device {device!r}: use cpu or cuda") from None


@lru_cache(maxsize=4)
def _on_device(codec: Codec, device: str) -> Codec:
    """``codec`` with its transforms on ``device`` (one copy per codec and device)."""
    return codec if torch.device(device) == codec.device else codec.to(device)


def _load(name: str) -> Codec:
    name = os.fspath(name) if isinstance(name, os.PathLike) else name
    if not isinstance(name, str) or not name.strip():
        raise NicodecError(f"model must be a name ({', '.join(model_names())}) or a .safetensors path, got {name!r}")
    path = Path(name)
    numbered = re.fullmatch(r"([a-z]+)-r(\d+)", name)
    architecture, number = (numbered.group(1), numbered.group(2)) if numbered else (name, "")
    if architecture not in ARCHITECTURES or path.suffix == ".safetensors":
        if path.suffix != ".safetensors" and not path.exists():
            raise NicodecError(f"unknown model {name!r}: choose from {', '.join(model_names())} or pass a .safetensors file")
        return _load_path(path)
    if number:
        if (release := releases.numbered(architecture, int(number))) is None:
            raise NicodecError(f"no release {number!r} of {architecture}; `nicodec models` lists them")
        return _load_path(release.path)
    weights = shipped_weights().get(architecture)
    if weights is None:
        raise NicodecError(
            f"no shipped weights for {name!r} in this nicodec build; train some with `nicodec train` "
            f"and pass the exported .safetensors file instead"
        )
    return _load_path(weights)


def _load_path(path: Path) -> Codec:
    """Weights files are read once per version: the cache key has the file's inode, mtime and
    size, so a file rewritten in place or replaced (as our atomic writes do) is read again."""
    try:
        st = path.stat()
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        version = (0, 0, 0)  # load_weights says what is wrong
    return _load_file(str(path.resolve()), version)


@lru_cache(maxsize=8)
def _load_file(path: str, version: tuple[int, int, int]) -> Codec:
    model, meta = load_weights(path)
    return Codec(model, meta)


def sample_image() -> Image.Image:
    """The photograph bundled with the package (768×512 RGB), for demos and quick checks."""
    with Image.open(SAMPLE) as image:
        return image.convert("RGB")


def create(architecture: str, *, N: int = 128, M: int = 192, levels: int = 6, seed: int = 0) -> Codec:
    """An untrained codec of a registered architecture (for tests, experiments and training).

    Hyperprior models are calibrated (:mod:`nicodec.calibration`) on a synthetic image, so they
    code like released weights do (container version 3); ``Codec.save`` keeps that calibration."""
    from .calibration import calibrate

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(architecture, ModelConfig(N=N, M=M, levels=levels))
        calibrate(model.eval(), [_synthetic_image(seed)])
    return Codec(model, {"trained": False, "seed": seed})


def _synthetic_image(seed: int, size: int = 256) -> torch.Tensor:
    """A (1, 3, size, size) image in [0, 1]: smooth random colours plus fine noise, photo-like
    enough to calibrate an untrained model's activations."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 32, size // 32, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (smooth + 0.05 * torch.randn(1, 3, size, size, generator=generator)).clamp(0, 1)


def compress(image, quality: float | None = None, model: str = DEFAULT_MODEL, device: str | None = None, **options) -> bytes:
    """``.nic`` bytes of ``image`` with a shipped model (or a weights path): ``load(model, device).compress``,
    the weights read once per process. ``options``: ``refine``, ``max_bytes``, ``progress``."""
    return load(model, device).compress(image, quality, **options)


def decompress(data: bytes, codec=None, max_pixels: int | None = limits.MAX_PIXELS,
               device: str | None = None, fast: bool = False) -> Image.Image:
    """Decode ``.nic`` bytes; the model is found from the header unless ``codec`` is given. A file
    declaring more than ``max_pixels`` pixels is refused before anything is allocated (None: no limit).
    ``device``: where the transforms run (``"cuda"``); the latents are the same on any device.
    ``fast``: the synthesis in bfloat16 where the hardware has it (:meth:`Codec.decompress`)."""
    if codec is None:
        nic = container.unpack(data)
        limits.check_decodable(nic, max_pixels)
        codec = _codec_for(nic.model, nic.weights_id)
    if device is not None:
        codec = _on_device(codec, _device_name(device))
    return codec.decompress(data, max_pixels, fast)


def _codec_for(model: str, weights_id: bytes):
    """The codec of the released weights a file names (any release, old ones included); for
    ``overfit`` files, the overfit decoder (the file holds its networks)."""
    if model == OVERFIT:
        return _overfit()
    if model not in ARCHITECTURES:
        raise NicodecError(f"file needs model {model!r}, which this nicodec does not know")
    release = releases.by_id(model, weights_id)
    if release is not None:
        codec = _load_path(release.path)
        if codec.weights_id != weights_id:  # a released file changed: never decode with other weights
            raise NicodecError(f"the packaged {release.path.name} is not release {release.release}'s: reinstall nicodec")
        return codec
    snap = releases.snapshot(model, weights_id)
    if snap is not None:
        raise NicodecError(
            f"file was made with {model} weights {weights_id.hex()}, a development snapshot (git commit {snap.commit}, "
            f"{snap.date}) that no release packages: recover them with `python scripts/restore_weights.py "
            f"{weights_id.hex()}` in a clone of the nicodec repository and pass them with --model"
        )
    raise NicodecError(
        f"file was made with {model} weights {weights_id.hex()}, which no nicodec release has: "
        f"pass the weights file it was made with"
    )
