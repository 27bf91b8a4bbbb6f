"""The registry: architecture names → shipped weights, and the functions that load codecs.

Shipped weights live in ``nicodec/weights/<architecture>.safetensors``; a ``.nic`` file names
the architecture and the weights' fingerprint, so :func:`decompress` finds its model alone.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from . import container, limits
from .codec import Codec
from .errors import NicodecError
from .models import ARCHITECTURES, ModelConfig, build_model
from .weights import load_weights

WEIGHTS_DIR = Path(__file__).parent / "weights"
SAMPLE = Path(__file__).parent / "assets" / "sample.png"  # Kodak kodim23, see assets/README.md
DEFAULT_MODEL = "meanscale"


def shipped_weights() -> dict[str, Path]:
    """Architecture name → weights file shipped inside the package."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors")) if p.stem in ARCHITECTURES}


def load(name: str = DEFAULT_MODEL) -> Codec:
    """A codec from shipped weights (``"meanscale"``, ``"factorized"``, ...) or a weights file path."""
    name = os.fspath(name) if isinstance(name, os.PathLike) else name
    if not isinstance(name, str) or not name.strip():
        raise NicodecError(f"model must be a name ({', '.join(ARCHITECTURES)}) or a .safetensors path, got {name!r}")
    path = Path(name)
    if name not in ARCHITECTURES or path.suffix == ".safetensors":
        if path.suffix != ".safetensors" and not path.exists():
            raise NicodecError(f"unknown model {name!r}: choose from {', '.join(ARCHITECTURES)} or pass a .safetensors file")
        return _load_path(path)
    weights = shipped_weights().get(name)
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
    """An untrained codec of a registered architecture (for tests, experiments and training)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(architecture, ModelConfig(N=N, M=M, levels=levels))
    return Codec(model, {"trained": False, "seed": seed})


def compress(image, quality: float | None = None, model: str = DEFAULT_MODEL, **options) -> bytes:
    """``.nic`` bytes of ``image`` with a shipped model (or a weights path): ``load(model).compress``,
    the weights read once per process. ``options``: ``refine``, ``max_bytes``, ``progress``."""
    return load(model).compress(image, quality, **options)


def decompress(data: bytes, codec: Codec | None = None, max_pixels: int | None = limits.MAX_PIXELS) -> Image.Image:
    """Decode ``.nic`` bytes; the model is found from the header unless ``codec`` is given. A file
    declaring more than ``max_pixels`` pixels is refused before anything is allocated (None: no limit)."""
    if codec is None:
        nic = container.unpack(data)
        limits.check_decodable(nic, max_pixels)
        codec = _codec_for(nic.model, nic.weights_id)
    return codec.decompress(data, max_pixels)


def _codec_for(model: str, weights_id: bytes) -> Codec:
    if model not in ARCHITECTURES:
        raise NicodecError(f"file needs model {model!r}, which this nicodec does not know")
    if model not in shipped_weights():
        raise NicodecError(f"file needs {model} weights {weights_id.hex()}, not shipped here: pass the weights file")
    codec = load(model)
    if codec.weights_id != weights_id:
        raise NicodecError(
            f"file was made with {model} weights {weights_id.hex()}; the shipped ones are "
            f"{codec.weights_id.hex()}: pass the weights file it was made with"
        )
    return codec
