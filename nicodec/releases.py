"""Released weights: every set nicodec has shipped, frozen, so that every file keeps decoding.

A ``.nic`` file names its weights by id (the first 8 bytes of a SHA-256 over their tensors). A
release is a set of weights files, one per architecture, listed in ``weights/releases.json`` with
their ids and the SHA-256 of their bytes; a released file is never changed or removed, and a new
release adds files beside the old ones (borrowing the tensors that did not change,
:mod:`nicodec.weights`). Encoding uses the newest release; decoding finds whichever release the
file's header names. Weights that were only ever development snapshots in the repository's history
are listed too (``not_packaged``), so that a file made with them gets an error saying where they
are, rather than "unknown weights".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import NicodecError

WEIGHTS_DIR = Path(__file__).parent / "weights"
REGISTRY = WEIGHTS_DIR / "releases.json"
FORMAT = "nicodec-releases-1"


@dataclass(frozen=True)
class Release:
    """One released weights file: ``release`` is the release number (1, 2, ...)."""

    release: int
    architecture: str
    path: Path
    weights_id: str  # 16 hex digits
    sha256: str  # of the file's bytes
    date: str
    note: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Weights that appeared in the repository's history but in no release."""

    architecture: str
    weights_id: str
    commit: str
    date: str


def _registry() -> tuple[tuple[Release, ...], tuple[Snapshot, ...]]:
    return _read(REGISTRY)


@lru_cache(maxsize=4)
def _read(registry: Path) -> tuple[tuple[Release, ...], tuple[Snapshot, ...]]:
    """The registry file's releases (their files beside it) and snapshots."""
    try:
        raw = json.loads(registry.read_text())
    except FileNotFoundError:
        return (), ()
    if raw.get("format") != FORMAT:
        raise NicodecError(f"{registry}: unknown registry format {raw.get('format')!r}")
    releases = []
    for entry in raw["releases"]:
        for architecture, model in entry["models"].items():
            releases.append(Release(
                int(entry["release"]), architecture, registry.parent / model["file"], model["weights_id"],
                model["sha256"], entry["date"], entry.get("note", ""),
            ))
    snapshots = [Snapshot(s["architecture"], s["weights_id"], s["commit"], s["date"]) for s in raw.get("not_packaged", [])]
    return tuple(releases), tuple(snapshots)


def releases() -> list[Release]:
    """Every released weights file, oldest release first."""
    return sorted(_registry()[0], key=lambda r: (r.release, r.architecture))


def latest(architecture: str) -> Release | None:
    """The newest release of ``architecture`` (what encoding uses), or None if none ships."""
    found = [r for r in releases() if r.architecture == architecture]
    return found[-1] if found else None


def numbered(architecture: str, release: int) -> Release | None:
    """``architecture`` as it was in release ``release`` (the newest earlier file if that release
    did not change it), or None."""
    found = [r for r in releases() if r.architecture == architecture and r.release <= release]
    return found[-1] if found else None


def by_id(architecture: str, weights_id: bytes) -> Release | None:
    """The released file of ``architecture`` with this weights id, or None."""
    hex_id = weights_id.hex()
    for r in releases():
        if r.architecture == architecture and r.weights_id == hex_id:
            return r
    return None


def snapshot(architecture: str, weights_id: bytes) -> Snapshot | None:
    """The development snapshot with this weights id (never released), or None."""
    hex_id = weights_id.hex()
    return next((s for s in _registry()[1] if s.architecture == architecture and s.weights_id == hex_id), None)


def snapshots() -> list[Snapshot]:
    return list(_registry()[1])
