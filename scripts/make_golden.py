"""Golden .nic files: one per released model and container version, made once and kept in tests/golden.

    python scripts/make_golden.py

tests/test_golden.py decodes every one of them with today's code and compares with what was
recorded when it was made: the latents exactly (the format's promise) and the pixels within ±1
(the synthesis is float; docs/format.md). Run this when a release is added: it writes the files
the new release needs and never touches existing ones, so a change that breaks old files fails
the test instead of being re-recorded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import nicodec
from nicodec import releases

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
TESTS = Path(__file__).resolve().parents[1] / "tests"


def cases() -> list[tuple[str, str, int, str, bool]]:
    """(name, model spec, container version, image mode, with an ICC profile) for every release:
    each model of each release in the container version(s) it writes; the first release also in
    version 2 (with metadata), since 0.1.0 wrote it."""
    out = []
    for release in releases.releases():
        spec = f"{release.architecture}-r{release.release}"
        codec = nicodec.load(spec)
        versions = [1] if release.release < 2 else [codec.version]
        if release.release == 1 and release.architecture == "factorized":
            versions.append(3)  # release 1's factorized also codes version 3 files today
        for version in versions:
            out.append((f"{spec}-v{version}", spec, version, "RGB", False))
        if release.release in (1, 2) and release.architecture == "meanscale":
            version = versions[-1]
            out.append((f"{spec}-v{2 if version == 1 else version}-rgba-icc", spec, version, "RGBA", True))
    return out


def golden_image(mode: str, icc: bool) -> Image.Image:
    rgb = np.asarray(nicodec.sample_image())[180:244, 280:376]  # 96 × 64, a textured part of the sample
    if mode == "RGBA":
        alpha = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
        image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if icc:
        sys.path.insert(0, str(TESTS))
        from icc import icc_profile

        image.info["icc_profile"] = icc_profile()
    return image


def latent_digest(latents: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(latents):
        digest.update(name.encode() + np.ascontiguousarray(latents[name].double().numpy()).tobytes())
    return digest.hexdigest()


def symbol_digest(symbols: dict) -> str:
    """The integers the range coder carried: the same on every machine (the tables that read them
    are, and param_crc proves it), where a legacy file's float latents are not (see test_golden)."""
    digest = hashlib.sha256()
    for name in sorted(symbols):
        digest.update(name.encode() + np.ascontiguousarray(symbols[name].numpy().astype("<i8")).tobytes())
    return digest.hexdigest()


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    index_path = GOLDEN / "golden.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for name, spec, version, mode, icc in cases():
        if name in index:
            if "symbols_sha256" not in index[name]:  # added 2026-12-01: read from the file as made
                data = (GOLDEN / f"{name}.nic").read_bytes()
                index[name]["symbols_sha256"] = symbol_digest(nicodec.load(index[name]["model"]).decode(data).coded.symbols)
            continue
        codec = copy.copy(nicodec.load(spec))  # (load's codecs are shared)
        codec.version = version
        data = codec.compress(golden_image(mode, icc), quality=5.0)
        version = 2 if version == 1 and icc else version  # a legacy file with metadata is version 2
        assert data[4] == version, (name, data[4])
        decoded = codec.decode(data)
        (GOLDEN / f"{name}.nic").write_bytes(data)
        decoded.image.save(GOLDEN / f"{name}.png")
        index[name] = {
            "model": spec, "version": version, "weights_id": codec.weights_id.hex(), "bytes": len(data),
            "latents_sha256": latent_digest(decoded.coded.latents),
            "symbols_sha256": symbol_digest(decoded.coded.symbols),
            "pixels_sha256": hashlib.sha256(decoded.image.tobytes()).hexdigest(),
        }
        print(f"{name}: {len(data)} bytes", file=sys.stderr)
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
