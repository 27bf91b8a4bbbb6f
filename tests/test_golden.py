"""Files made by every frozen release keep decoding: the golden files in tests/golden (made once by
scripts/make_golden.py, never re-recorded) decode with today's code to the integers the range coder
carried when they were made, exactly, and to the recorded pixels within ±1 (the synthesis is
float32, whose last bits vary with the machine: docs/format.md, "What decoding promises").

The latents themselves are compared exactly too, except in version 1 and 2 files of a model that
predicts means (meanscale): there a latent is its integer plus a mean from the float32
hyper-synthesis, whose last bits differ between CPUs (an AMD EPYC decodes the Intel-made files to
the same integers and tables, with means a few ulp apart); version 3 computes the means in integers.
``symbols_sha256`` was added on 2026-12-01, read from the files as made (scripts/make_golden.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec import container, releases

GOLDEN = Path(__file__).parent / "golden"
INDEX = json.loads((GOLDEN / "golden.json").read_text())


def _latent_digest(latents: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(latents):
        digest.update(name.encode() + np.ascontiguousarray(latents[name].double().numpy()).tobytes())
    return digest.hexdigest()


def _symbol_digest(symbols: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(symbols):
        digest.update(name.encode() + np.ascontiguousarray(symbols[name].numpy().astype("<i8")).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(INDEX))
def test_a_golden_file_decodes_as_when_it_was_made(name):
    entry = INDEX[name]
    data = (GOLDEN / f"{name}.nic").read_bytes()
    nic = container.unpack(data)
    assert nic.version == entry["version"] and nic.weights_id.hex() == entry["weights_id"]
    image = nicodec.decompress(data)  # the weights are found from the header alone
    decoded = nicodec.load(entry["model"]).decode(data)  # (raises if its coding tables differ from the encoder's)
    assert _symbol_digest(decoded.coded.symbols) == entry["symbols_sha256"]
    float_means = nic.version in container.LEGACY_VERSIONS and entry["model"].startswith("meanscale")
    if not float_means:
        assert _latent_digest(decoded.coded.latents) == entry["latents_sha256"]
    with Image.open(GOLDEN / f"{name}.png") as reference:
        assert hashlib.sha256(reference.tobytes()).hexdigest() == entry["pixels_sha256"]  # the reference itself
        expected = np.asarray(reference, dtype=np.int16)
    assert image.mode == decoded.image.mode and image.size == (96, 64)
    assert np.abs(np.asarray(image, dtype=np.int16) - expected).max() <= 1


def test_every_release_has_golden_files():
    covered = {entry["weights_id"] for entry in INDEX.values()}
    assert {r.weights_id for r in releases.releases()} <= covered
    assert {entry["version"] for entry in INDEX.values()} == {1, 2, 3}


OVERFIT = json.loads((GOLDEN / "overfit.json").read_text())


@pytest.mark.parametrize("name", sorted(OVERFIT))
def test_an_overfit_golden_file_decodes_as_when_it_was_made(name):
    """The overfitted codec's files carry their own decoder: made by the codec as first merged,
    they decode with today's (compiled, vectorised) decoder to the same latents and pixels."""
    entry = OVERFIT[name]
    data = (GOLDEN / f"{name}.nic").read_bytes()
    assert len(data) == entry["bytes"]
    image = nicodec.decompress(data)
    decoded = nicodec.load("overfit").decode(data)
    digest = hashlib.sha256()
    for grids in decoded.latents:
        for grid in grids:
            digest.update(np.ascontiguousarray(grid.numpy().astype("<i8")).tobytes())
    assert digest.hexdigest() == entry["latents_sha256"]
    with Image.open(GOLDEN / f"{name}.png") as reference:
        assert hashlib.sha256(reference.tobytes()).hexdigest() == entry["pixels_sha256"]
        expected = np.asarray(reference, dtype=np.int16)
    assert image.mode == entry["mode"] and list(image.size) == entry["size"]
    assert np.abs(np.asarray(image, dtype=np.int16) - expected).max() <= 1
