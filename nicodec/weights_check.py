"""A weights file is checked against what it declares before anything is built from it.

Building a model allocates what its config asks for: a 100-byte file declaring N = M = 2500
would make ~8 GB of parameters before its tensors are even read. So the metadata is checked
first (types, required and unknown keys, sane widths), then every tensor the architecture needs
must be in the file (or its lender) with the right shape — shapes read from the safetensors
headers, the expected ones from the model built on the ``meta`` device, neither allocating.
Only then is the model built, and its size is bounded by the bytes of the files that fill it.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .errors import NicodecError
from .models import ARCHITECTURES, ModelConfig, build_model

MAX_WIDTH = 1024  # N and M: 8x and 5x the shipped models; one such meanscale is ~1 GB of float32
MAX_LEVELS = 64  # rate levels (the shipped models have 10)
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INTEGER_DTYPES = {torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64", torch.bool: "BOOL"}


def check_metadata(meta, path: str | Path) -> dict:
    """``meta`` if it describes a model nicodec can build (NicodecError naming what is wrong)."""
    if not isinstance(meta, dict):
        raise NicodecError(f"{path}: damaged metadata (not a JSON object)")
    architecture = meta.get("architecture")
    if architecture is None:
        raise NicodecError(f"{path}: damaged metadata (no architecture)")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise NicodecError(f"{path}: unknown architecture {architecture!r}; this nicodec knows {', '.join(ARCHITECTURES)}")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise NicodecError(f"{path}: damaged metadata (no config)")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise NicodecError(f"{path}: unknown config key {unknown[0]!r} (a config has {', '.join(CONFIG_KEYS)})")
    for key, top in (("N", MAX_WIDTH), ("M", MAX_WIDTH), ("levels", MAX_LEVELS)):
        value = config.get(key)
        if key not in config:
            raise NicodecError(f"{path}: damaged metadata (config has no {key})")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise NicodecError(f"{path}: config {key} must be a whole number in 1..{top}, got {value!r}")
    if not isinstance(config.get("integer_hyper", False), bool):
        raise NicodecError(f"{path}: config integer_hyper must be true or false, got {config['integer_hyper']!r}")
    lambdas = meta.get("lambdas")
    if lambdas is not None and not (
            isinstance(lambdas, list) and all(_number(v) and math.isfinite(v) and v > 0 for v in lambdas)):
        raise NicodecError(f"{path}: damaged metadata (lambdas must be a list of positive numbers)")
    if "distortion" in meta and not isinstance(meta["distortion"], str):
        raise NicodecError(f"{path}: damaged metadata (distortion must be a name)")
    return meta  # what it borrows is checked on loading (weights._lender)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=16)
def expected_tensors(architecture: str, config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name → (shape, dtype) of every tensor of the model, from one built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build_model(architecture, config)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def stored_tensors(path: str | Path, names=None) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name → (shape, safetensors dtype) of the tensors in a file (only ``names`` if given), read
    from its header: no tensor data is read."""
    try:
        with safe_open(str(path), framework="pt") as f:
            present = list(f.keys())
            keys = present if names is None else sorted(set(names) & set(present))
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in keys}
    except (SafetensorError, OSError, ValueError) as exc:
        raise NicodecError(f"{path} is not a readable safetensors file ({exc})") from None


def check_tensors(path: str | Path, meta: dict, lenders: list[tuple[Path, list[str]]] = ()) -> None:
    """Every tensor the declared model needs is stored (in ``path``, or the lenders it borrows
    from: (file, names) pairs) with the shape the model has, and nothing else is: before a byte of
    data is read."""
    config = meta["config"]
    architecture = meta["architecture"]
    expected = expected_tensors(architecture, ModelConfig(**config))
    own = stored_tensors(path)
    have = dict(own)
    for lender, names in lenders:
        both = sorted(set(have) & set(names))
        if both:
            raise NicodecError(f"{path}: damaged metadata (tensor {both[0]!r} is both stored and borrowed)")
        have.update(stored_tensors(lender, names))
    what = f"{architecture} (N={config['N']}, M={config['M']}, levels={config['levels']})"
    missing = [k for k in expected if k not in have]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        where = f" or its lenders {', '.join(lender.name for lender, _ in lenders)}" if lenders else ""
        raise NicodecError(f"{path}: tensor {missing[0]!r}{more} of {what} is not in the file{where}")
    extra = sorted(set(have) - set(expected))
    if extra:
        raise NicodecError(f"{path}: holds tensor {extra[0]!r}, which {what} does not have")
    for name, (shape, dtype) in expected.items():
        stored_shape, stored_dtype = have[name]
        if stored_shape != shape:
            raise NicodecError(f"{path}: tensor {name!r} has shape {stored_shape}, {what} needs {shape}")
        if dtype.is_floating_point and stored_dtype not in _FLOAT_DTYPES:
            raise NicodecError(f"{path}: tensor {name!r} is stored as {stored_dtype}, not as floating point")
        if not dtype.is_floating_point and stored_dtype != _INTEGER_DTYPES.get(dtype):
            raise NicodecError(f"{path}: tensor {name!r} is stored as {stored_dtype}, not as {_INTEGER_DTYPES.get(dtype)}")


def check_values(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """No NaN or infinity in the weights: they would code garbage or fail deep in the coder."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NicodecError(f"{path}: tensor {name!r} holds NaN or infinity")
