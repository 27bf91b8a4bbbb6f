"""Damaged, truncated or foreign files fail fast with a clear error and leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec import container
from nicodec.errors import CorruptFileError, NicodecError

from icc import icc_profile


@pytest.fixture(scope="module", params=["v1", "v2-icc", "v3", "v3-icc"])
def codec_and_file(request):
    """An RGBA file of each container version: 1 and 2 (legacy coding path; 2 has a metadata
    stream) and 3 (the deterministic path), with and without an ICC profile."""
    codec = nicodec.create("meanscale", N=8, M=8, levels=2, seed=0)
    if request.param[1] != "3":
        codec.version = 1  # write legacy files
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (20, 26, 4), dtype=np.uint8), "RGBA")
    if request.param.endswith("icc"):
        image.info["icc_profile"] = icc_profile()
    data = codec.compress(image, quality=1.5)
    assert data[4] == int(request.param[1])
    return codec, data


def test_every_truncation_gives_a_clean_error(codec_and_file):
    codec, data = codec_and_file
    start = time.perf_counter()
    for cut in range(len(data)):
        with pytest.raises(NicodecError):
            codec.decompress(data[:cut])
    assert time.perf_counter() - start < 30


def test_a_thousand_single_byte_flips_each_give_a_clean_error(codec_and_file, rng):
    codec, data = codec_and_file
    start = time.perf_counter()
    for _ in range(1000):
        damaged = bytearray(data)
        position = int(rng.integers(len(data)))
        damaged[position] ^= int(rng.integers(1, 256))
        with pytest.raises(NicodecError):
            codec.decompress(bytes(damaged))
    assert time.perf_counter() - start < 60


def test_empty_and_foreign_files_are_named_as_such(codec_and_file, tmp_path):
    codec, _ = codec_and_file
    with pytest.raises(CorruptFileError, match="empty"):
        nicodec.decompress(b"")
    png = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(png)
    with pytest.raises(CorruptFileError, match="not a .nic file"):
        nicodec.decompress(png.read_bytes())


@pytest.mark.parametrize("case", ["truncated", "flipped", "empty", "png"])
def test_the_cli_exits_2_with_one_line_and_writes_nothing(case, codec_and_file, tmp_path):
    codec, data = codec_and_file
    if data[4] == 2 or container.unpack(data).metadata:
        pytest.skip("one legacy and one current version suffice for the command line (a process each)")
    weights = tmp_path / "tiny.safetensors"
    codec.save(weights)
    bad = tmp_path / "bad.nic"
    if case == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif case == "flipped":
        bad.write_bytes(data[:40] + bytes([data[40] ^ 0x10]) + data[41:])
    elif case == "empty":
        bad.write_bytes(b"")
    else:
        Image.new("RGB", (4, 4)).save(bad, format="PNG")
    out = tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, "-m", "nicodec", "decompress", str(bad), "-o", str(out), "--model", str(weights)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("nicodec: error:")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nic", "tiny.safetensors"]
