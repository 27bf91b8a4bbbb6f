"""Ship weights as a new release beside the old ones (nicodec/weights/releases.json).

    python scripts/add_release.py --release 2 --note "integer hyper-synthesis (.nic version 3)" \
        meanscale=nicodec/weights/meanscale.safetensors hyperprior=nicodec/weights/hyperprior.safetensors \
        --calibration ../shared/data/train

Each ARCH=WEIGHTS becomes nicodec/weights/ARCH-rN.safetensors: calibrated first when the
architecture has a hyperprior and the weights lack their integer hyper-synthesis
(nicodec/calibration.py, on the first 40 photos of --calibration), then written borrowing every
tensor an already released file stores identically (so an unchanged transform costs nothing), and
appended to the registry with its weights id and SHA-256. Released files and registry entries are
never touched: weights whose id is already released are skipped. Architectures not named keep
their current release.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import date
from pathlib import Path

from safetensors.torch import load_file

from nicodec import releases
from nicodec.calibration import calibrate, calibration_images, needs_calibration
from nicodec.errors import NicodecError
from nicodec.weights import load_weights, read_metadata, save_weights, stored_in_half, weights_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="+", metavar="ARCH=WEIGHTS")
    p.add_argument("--release", type=int, required=True, help="the new release number (one more than the newest)")
    p.add_argument("--note", required=True, help="one line: what this release changes")
    p.add_argument("--calibration", type=Path, help="folder of training photos for calibration (needed for hyperprior models)")
    p.add_argument("--date", default=date.today().isoformat())
    args = p.parse_args(argv)
    try:
        entry = add_release(args)
    except NicodecError as e:
        print(f"add_release: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(entry, indent=2))
    return 0


def add_release(args) -> dict:
    registry = json.loads(releases.REGISTRY.read_text())
    newest = max(r["release"] for r in registry["releases"])
    if args.release != newest + 1:
        raise NicodecError(f"the next release is {newest + 1}, not {args.release}")
    pairs = [item.split("=", 1) for item in args.weights]
    if any(len(pair) != 2 for pair in pairs):
        raise NicodecError("give the weights as ARCH=PATH")
    models = {}
    for architecture, source in pairs:
        model, meta = load_weights(source)
        if model.name != architecture:
            raise NicodecError(f"{source} holds {model.name}, not {architecture}")
        if needs_calibration(model) and not model.exact_ready:
            if args.calibration is None:
                raise NicodecError(f"{architecture} needs calibration images: --calibration FOLDER")
            images = calibration_images(args.calibration)
            calibrate(model.eval(), images)
            meta["calibration"] = {"images": len(images), "folder": args.calibration.name, "crop": 512}
        wid = weights_id(model).hex()
        if any(r.weights_id == wid for r in releases.releases()):
            print(f"{architecture}: weights {wid} are already released, skipped", file=sys.stderr)
            continue
        target = releases.WEIGHTS_DIR / f"{architecture}-r{args.release}.safetensors"
        if target.exists():
            raise NicodecError(f"{target} exists")
        meta["release"] = args.release
        save_weights(target, model, meta, half=stored_in_half(source), lender=_lenders(model))
        if weights_id(load_weights(target)[0]).hex() != wid:
            target.unlink()
            raise NicodecError(f"{target} would not reload as the same model")
        sha = hashlib.sha256(target.read_bytes()).hexdigest()
        models[architecture] = {"file": target.name, "weights_id": wid, "sha256": sha}
        print(f"{architecture}: {target} ({target.stat().st_size / 1e6:.2f} MB of its own), weights id {wid}", file=sys.stderr)
    if not models:
        raise NicodecError("nothing new to release")
    entry = {"release": args.release, "date": args.date, "note": args.note, "models": models}
    registry["releases"].append(entry)
    releases.REGISTRY.write_text(json.dumps(registry, indent=2) + "\n")
    return entry


def _lenders(model) -> list[Path]:
    """Released files storing some of ``model``'s tensors identically: greedily, the one lending the
    most bytes first, each lending only what the ones before it did not."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    offers = {}
    for release in releases.releases():
        read_metadata(release.path)
        stored = load_file(str(release.path))
        offers[release.path] = {k: t.nbytes for k, t in stored.items()
                                if k in state and state[k].shape == t.shape and state[k].to(t.dtype).equal(t)}
    chosen: list[Path] = []
    taken: set[str] = set()
    while True:
        best = max(offers, key=lambda p: sum(n for k, n in offers[p].items() if k not in taken), default=None)
        if best is None or not any(k not in taken for k in offers[best]):
            return chosen
        chosen.append(best)
        taken |= set(offers.pop(best))


if __name__ == "__main__":
    sys.exit(main())
