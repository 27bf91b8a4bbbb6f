"""Release weights: safetensors tensors plus JSON metadata that rebuilds the model from config.

Metadata (``nicodec`` key): format, architecture, config (N, M, levels), and whatever the
exporter adds (λ levels, steps, data, date, recipe). Parameters may be stored in fp16;
buffers that define the bitstream (entropy-model quantiles) always keep full precision.

A file may *borrow* tensors from other weights files beside it (``lender``): models built on
the same transforms (the shipped factorized and hyperprior reuse meanscale's g_a and g_s), or a
new release that adds to an old one, then store them once. The borrower records each lender's
file name, the borrowed tensor names and a digest of their values (``borrowed``: one record, or
a list of them for several lenders), so a lender that changed is an error, never a silently
different model. A lender lends only tensors it stores itself (not ones it borrows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import NicodecError
from .models import CompressionModel, ModelConfig, build_model
from .weights_check import check_metadata, check_tensors, check_values

FORMAT = "nicodec-weights-1"


def weights_id(model: CompressionModel) -> bytes:
    """8-byte fingerprint of a model's state (names, shapes and values) as it codes."""
    return _tensors_sha256(model.state_dict()).digest()[:8]


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> "hashlib._Hash":
    """SHA-256 over named tensors in name order: each name, dtype and shape, then the raw bytes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(tensors.items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: numpy has no bfloat16
    return digest


def save_weights(path: str | Path, model: CompressionModel, metadata: dict | None = None, half: bool = False,
                 lender: str | Path | Sequence[str | Path] | None = None) -> None:
    """Write ``model`` to ``path`` atomically. ``half`` stores parameters (not buffers) in fp16.

    ``lender``: a weights file in the same folder, or several; every tensor one of them holds with
    the same name, dtype, shape and values is left out of ``path`` and read from it on loading
    (from the first that has it; see the module docstring).
    """
    params = {name for name, _ in model.named_parameters()}
    tensors = {}
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        tensors[key] = t.half() if half and key in params and t.is_floating_point() else t
    meta = {k: v for k, v in (metadata or {}).items() if k != "borrowed"}
    meta.update(format=FORMAT, architecture=model.name, config=model.config.to_dict())  # the model's own, always
    lenders = [] if lender is None else [Path(lender)] if isinstance(lender, (str, Path)) else [Path(p) for p in lender]
    records = []
    for source in lenders:
        borrowed = _identical(tensors, Path(path), source)
        records.append({"from": source.name, "tensors": sorted(borrowed), "digest": _tensors_sha256(borrowed).hexdigest()})
        tensors = {k: v for k, v in tensors.items() if k not in borrowed}
    if records:
        meta["borrowed"] = records[0] if len(records) == 1 else records
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"nicodec": json.dumps(meta)}))


def _identical(tensors: dict[str, torch.Tensor], path: Path, lender: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``tensors`` that ``lender`` holds exactly (name, dtype, shape, values)."""
    if lender.resolve().parent != path.resolve().parent:
        raise NicodecError(f"the lender {lender} must be in the same folder as {path}")
    if lender.resolve() == path.resolve():
        raise NicodecError(f"{path} cannot borrow from itself")
    read_metadata(lender)  # one of ours
    theirs = load_file(str(lender))  # the tensors it stores itself: the only ones it can lend
    same = {k: v for k, v in tensors.items()
            if k in theirs and theirs[k].dtype == v.dtype and theirs[k].shape == v.shape and torch.equal(theirs[k], v)}
    if not same:
        raise NicodecError(f"{lender} holds none of the tensors of {path}: nothing to borrow")
    return same


def borrowing_records(path: Path, borrowed) -> list[dict]:
    """The borrowing records of a file's metadata (one record, or a list for several lenders), each
    checked to be well formed: NicodecError (damaged metadata) otherwise."""
    records = borrowed if isinstance(borrowed, list) else [borrowed]
    if not records or len(records) > 8 or not all(
            isinstance(r, dict) and isinstance(r.get("from"), str) and isinstance(r.get("digest"), str)
            and isinstance(r.get("tensors"), list) and all(isinstance(t, str) for t in r["tensors"]) for r in records):
        raise NicodecError(f"{path}: damaged metadata (what it borrows is not recorded)")
    return records


def lender_names(borrowed: dict | list | None) -> list[str]:
    """The file names a weights file's ``borrowed`` metadata names as lenders."""
    records = borrowed if isinstance(borrowed, list) else [borrowed] if borrowed else []
    return [str(r.get("from")) for r in records if isinstance(r, dict)]


def _lender(path: Path, record: dict) -> Path:
    """The file one borrowing record of ``path`` names: a file beside it."""
    lender, names = path.parent / record["from"], record["tensors"]
    if lender.name != str(record["from"]):  # a file name beside it, never a path elsewhere
        raise NicodecError(f"{path}: damaged metadata (its lender {record['from']!r} is not a file name)")
    if not lender.is_file():
        raise NicodecError(f"{path} takes {len(names)} tensors (its transforms) from {lender.name}, which is not "
                           f"beside it: keep the two files together")
    return lender


def lenders(path: Path, borrowed) -> list[tuple[Path, list[str]]]:
    """(lender file, tensor names it lends) for each lender a file's metadata names."""
    return [(_lender(path, r), r["tensors"]) for r in borrowing_records(path, borrowed)]


def _borrowed_tensors(path: Path, borrowed) -> dict[str, torch.Tensor]:
    """The tensors ``path`` borrows, read from its lenders and checked against the recorded digests."""
    out: dict[str, torch.Tensor] = {}
    for record in borrowing_records(path, borrowed):
        lender = _lender(path, record)
        try:
            with safe_open(str(lender), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in record["tensors"]}
        except (SafetensorError, OSError, ValueError, KeyError):
            tensors = None
        if tensors is None or _tensors_sha256(tensors).hexdigest() != record["digest"]:
            raise NicodecError(f"{path} takes tensors from {lender.name}, which has changed since it was written: "
                               f"rebuild {path.name} from the new {lender.name}")
        out.update(tensors)
    return out


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata of a weights file, checked (``weights_check.check_metadata``): a model
    can be built from it. NicodecError, one line, if it is not one of ours or is damaged."""
    path = Path(path)
    if path.is_dir():
        raise NicodecError(f"{path} is a folder, not a weights file")
    if not path.is_file():
        raise NicodecError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("nicodec")
    except (SafetensorError, OSError, ValueError) as exc:
        raise NicodecError(f"{path} is not a safetensors weights file ({exc})") from None
    if raw is None:
        raise NicodecError(f"{path} has no nicodec metadata (not a nicodec weights file)")
    try:
        meta = json.loads(raw)
    except ValueError:  # JSONDecodeError, or numbers too long to convert
        raise NicodecError(f"{path}: damaged metadata (not JSON)") from None
    if not isinstance(meta, dict):
        raise NicodecError(f"{path}: damaged metadata (not a JSON object)")
    if meta.get("format") != FORMAT:
        raise NicodecError(f"{path}: unsupported weights format {meta.get('format')!r}")
    return check_metadata(meta, path)


def stored_in_half(path: str | Path) -> bool:
    """Whether the file stores its parameters in fp16 (rewrite it with ``half=True`` to keep it so)."""
    with safe_open(str(path), framework="pt") as f:
        return any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def megabytes(size: int) -> str:
    """A file size in MB as the CLI and benchmarks print it: one decimal, two below 0.1 MB."""
    return f"{size / 1e6:.1f}" if size >= 1e5 else f"{size / 1e6:.2f}"


def stored_bytes(path: str | Path) -> tuple[int, int, str | None]:
    """(the file's own size, the size of the tensors it borrows, its lenders' file names or None)."""
    path = Path(path)
    borrowed = read_metadata(path).get("borrowed")
    if not borrowed:
        return path.stat().st_size, 0, None
    shared = sum(t.nbytes for t in _borrowed_tensors(path, borrowed).values())  # checked as loading checks them
    return path.stat().st_size, shared, " and ".join(lender_names(borrowed))


def load_weights(path: str | Path) -> tuple[CompressionModel, dict]:
    """Rebuild the model described by the file's metadata and load its tensors (as fp32).

    Metadata and tensor shapes are checked before anything is built (``weights_check``), so a
    damaged or hostile file is a one-line NicodecError, and what loading allocates is bounded
    by the bytes of the file and its lenders."""
    path = Path(path)
    meta = read_metadata(path)
    check_tensors(path, meta, lenders(path, meta["borrowed"]) if "borrowed" in meta else [])
    model = build_model(meta["architecture"], ModelConfig(**meta["config"]))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise NicodecError(f"{path}: cannot read its tensors ({exc})") from None
    if "borrowed" in meta:
        state.update(_borrowed_tensors(path, meta["borrowed"]))
    check_values(path, state)
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise NicodecError(f"{path}: weights do not match their declared architecture ({str(exc).splitlines()[0]})") from None
    integer = getattr(model, "h_s_int", None)
    if integer is not None:
        try:
            integer.check()  # numbers that could overflow the exact arithmetic: damaged weights
        except ValueError as exc:
            raise NicodecError(f"{path}: {exc}") from None
    return model, meta


def keep_levels(model: CompressionModel, metadata: dict, levels: Sequence[int]) -> tuple[CompressionModel, dict]:
    """The same model with only the rate ``levels`` (1-based, increasing) of its trained ones: their
    gain rows and λ values; transforms and entropy tables unchanged, so each kept level (and any
    quality between two kept levels that were neighbours) codes exactly as before. For shipping fewer levels than
    were trained, e.g. a top level that does not pay for its bits. The files differ only in the
    header's weights id: each decodes with its own weights."""
    total = model.config.levels
    levels = [int(v) for v in levels]
    if not levels or levels != sorted(set(levels)) or levels[0] < 1 or levels[-1] > total:
        raise NicodecError(f"levels to keep must increase within 1..{total}, got {levels}")
    rows = [v - 1 for v in levels]
    kept = build_model(model.name, dataclasses.replace(model.config, levels=len(rows)))
    kept.load_state_dict({k: v[rows] if k.endswith("log_gain") else v for k, v in model.state_dict().items()})
    meta = dict(metadata)
    if meta.get("lambdas") is not None:
        meta["lambdas"] = [meta["lambdas"][i] for i in rows]
    chosen = meta.pop("default_quality", None)
    if chosen in levels:  # the same level under its new number; otherwise the default rule applies
        meta["default_quality"] = float(levels.index(chosen) + 1)
    meta["kept_levels"] = {"levels": levels, "of": total, "from": weights_id(model).hex()}
    return kept, meta


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A crash or error leaves no partial output behind. The file gets the permissions a plain
    ``open(path, "w")`` would give (mkstemp's are owner-only).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
