"""User errors are NicodecErrors with one line (exit status 2 from the CLI), never an internal
error from deep inside: odd option values, damaged weights metadata, files with no streams,
and API arguments of the wrong type."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

import nicodec
from nicodec import container
from nicodec.cli import main
from nicodec.errors import NicodecError


@pytest.fixture(scope="module")
def codec():
    return nicodec.create("hyperprior", N=8, M=12, levels=3, seed=0)


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8))


@pytest.fixture
def workspace(tmp_path, codec, image):
    codec.save(tmp_path / "tiny.safetensors")
    image.save(tmp_path / "photo.png")
    return tmp_path, tmp_path / "tiny.safetensors"


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("nicodec: error:") and err.count("\n") == 1, (argv, err)
    return err


def _streamless(version: int) -> bytes:
    """A well-formed header (correct CRC) declaring no streams at all."""
    fields = [container.MAGIC, version, b"meanscale", bytes(8), 2.0, 4, 4, 2, 0, 0]
    head = struct.pack("<" + "".join(code for _, code in container.HEADER), *fields)
    return head + struct.pack("<I", zlib.crc32(b"", zlib.crc32(head)))


def test_info_on_a_file_without_streams_is_a_corrupt_file(tmp_path, capsys):
    for version in (1, 2):
        path = tmp_path / f"v{version}.nic"
        path.write_bytes(_streamless(version))
        assert "bad stream count" in _one_line_exit_2(["info", str(path)], capsys)
        with pytest.raises(nicodec.CorruptFileError, match="bad stream count"):
            nicodec.decompress(path.read_bytes())


@pytest.mark.parametrize("bpp", ["inf", "nan", "-inf", "0", "-1"])
def test_a_bpp_that_is_not_a_positive_number_is_a_user_error(workspace, capsys, bpp):
    tmp, weights = workspace
    err = _one_line_exit_2(["compress", str(tmp / "photo.png"), f"--bpp={bpp}", "--model", str(weights)], capsys)
    assert "--bpp" in err and not (tmp / "photo.nic").exists()


def _rewrite_metadata(path, change) -> None:
    tensors = load_file(str(path))
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    raw = change(json.loads(header["__metadata__"]["nicodec"]))
    save_file(tensors, str(path), metadata={"nicodec": raw if isinstance(raw, str) else json.dumps(raw)})


@pytest.mark.parametrize("damage, message", [
    (lambda meta: '{"format": "nicodec-weights-1", "architecture": ', "not JSON"),
    (lambda meta: {k: v for k, v in meta.items() if k != "architecture"}, "no architecture"),
    (lambda meta: {**meta, "config": {**meta["config"], "N": "8"}}, "config N must be a whole number"),
    (lambda meta: {**meta, "config": {**meta["config"], "levels": 2.5}}, "config levels must be a whole number"),
    (lambda meta: {**meta, "config": {**meta["config"], "width": 3}}, "unknown config key 'width'"),
    (lambda meta: {**meta, "config": [8, 12, 3]}, "no config"),
    (lambda meta: [meta], "not a JSON object"),
])
def test_damaged_weights_metadata_is_a_one_line_user_error(workspace, capsys, damage, message):
    tmp, weights = workspace
    _rewrite_metadata(weights, damage)
    with pytest.raises(NicodecError, match=message):
        nicodec.load(str(weights))
    err = _one_line_exit_2(["compress", str(tmp / "photo.png"), "--model", str(weights)], capsys)
    assert message.split("'")[0] in err


def test_decompress_takes_bytes_and_names_anything_else(codec, image):
    data = codec.compress(image, quality=2)
    for given in (bytearray(data), memoryview(data)):
        assert codec.decompress(given).size == (28, 20)
        assert nicodec.decompress(given, codec).size == (28, 20)
    for given, name in ((None, "NoneType"), (np.frombuffer(data, np.uint8), "ndarray"), (list(data), "list"),
                        ("x.nic", "str"), (12, "int")):
        with pytest.raises(NicodecError, match=f"expected the bytes of a .nic file .*got {name}$"):
            nicodec.decompress(given)
        with pytest.raises(NicodecError, match=f"got {name}$"):
            codec.decompress(given)


def test_load_names_what_is_wrong_with_the_model_it_is_given(tmp_path):
    for bad in ("", "  ", None, 3):
        with pytest.raises(NicodecError, match="model must be a name") as info:
            nicodec.load(bad)
        assert os.getcwd() not in str(info.value)
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(NicodecError, match="is a folder"):
        nicodec.load(str(tmp_path / "folder.safetensors"))


def test_booleans_and_strings_are_not_numbers(codec, image):
    data = codec.compress(image, quality=1)
    for quality in (True, False, np.True_, "2", b"2"):
        with pytest.raises(NicodecError, match="quality must be a number"):
            codec.compress(image, quality=quality)
    for options, message in (({"refine": True}, "refine must be"), ({"max_bytes": True}, "max_bytes must be"),
                             ({"max_bytes": np.True_}, "max_bytes must be"), ({"refine": np.False_}, "refine must be")):
        with pytest.raises(NicodecError, match=message):
            codec.compress(image, **options)
    with pytest.raises(NicodecError, match="max_pixels must be"):
        codec.decompress(data, max_pixels=True)
    assert codec.compress(image, quality=np.float32(1)) == data == codec.compress(image, quality=1)
