"""Recover weights that were only ever a development snapshot, from this repository's git history.

    python scripts/restore_weights.py 0c54ca7e3a247b7a -o old-weights/
    nicodec decompress photo.nic --model old-weights/meanscale.safetensors

Files made with weights that no release packages (``not_packaged`` in
nicodec/weights/releases.json) decode with those weights; this writes them (and any file they
borrow tensors from) into a folder, checked against the weights id, using `git show` in a clone of
the nicodec repository.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from nicodec import releases
from nicodec.errors import NicodecError
from nicodec.weights import lender_names, load_weights, read_metadata, weights_id

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights_id", help="16 hex digits, as `nicodec info` prints them")
    p.add_argument("-o", "--output", type=Path, default=Path("restored-weights"), help="folder to write into")
    args = p.parse_args(argv)
    try:
        path = restore(args.weights_id.lower(), args.output)
    except NicodecError as e:
        print(f"restore_weights: error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: weights id {args.weights_id}; decode with --model {path}")
    return 0


def restore(hex_id: str, folder: Path) -> Path:
    found = next((s for s in releases.snapshots() if s.weights_id == hex_id), None)
    if found is None:
        raise NicodecError(f"{hex_id} is not a known development snapshot (released weights are packaged)")
    folder.mkdir(parents=True, exist_ok=True)
    path = _git_show(found.commit, f"{found.architecture}.safetensors", folder)
    for lender in lender_names(read_metadata(path).get("borrowed")):
        _git_show(found.commit, lender, folder)
    if weights_id(load_weights(path)[0]).hex() != hex_id:
        raise NicodecError(f"{path} restored from {found.commit} does not have weights id {hex_id}")
    return path


def _git_show(commit: str, name: str, folder: Path) -> Path:
    result = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:nicodec/weights/{name}"], capture_output=True)
    if result.returncode != 0:
        raise NicodecError(f"cannot read {name} at commit {commit} (is this a full clone of the nicodec repository?)")
    out = folder / name
    out.write_bytes(result.stdout)
    return out


if __name__ == "__main__":
    sys.exit(main())
