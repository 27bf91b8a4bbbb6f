"""No image data is lost silently: images deeper than 8 bits are refused (Pillow opens 16-bit
RGB(A) files as 8-bit "RGB"/"RGBA"), and so are files of several frames unless the first frame
is asked for (--first-frame, or one frame copied in Python)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec.cli import main


def _png16(array: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB or RGBA)."""
    h, w = array.shape[:2]
    raw = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _deep_files(folder: Path, rng) -> dict[str, Path]:
    files = {
        "rgb16.png": _png16(rng.integers(0, 65536, (6, 7, 3)), 2),
        "rgba16.png": _png16(rng.integers(0, 65536, (6, 7, 4)), 6),
        "la16.png": _png16(rng.integers(0, 65536, (6, 7, 2)), 4),
        "gray16.png": _png16(rng.integers(0, 65536, (6, 7)), 0),
        "rgb16.ppm": b"P6 7 6 65535\n" + rng.integers(0, 65536, (6, 7, 3)).astype(">u2").tobytes(),
    }
    try:
        import imagecodecs

        files["rgb16.tif"] = imagecodecs.tiff_encode(rng.integers(0, 65536, (6, 7, 3)).astype(np.uint16))
    except (ImportError, AttributeError):  # the eval extra; the other formats still run
        pass
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


@pytest.fixture
def codec_and_weights(tmp_path):
    codec = nicodec.create("factorized", N=8, M=8, levels=3, seed=0)
    codec.save(tmp_path / "tiny.safetensors")
    return codec, tmp_path / "tiny.safetensors"


def test_images_deeper_than_8_bits_are_refused_not_reduced(codec_and_weights, tmp_path, rng, capsys):
    codec, weights = codec_and_weights
    files = _deep_files(tmp_path, rng)
    assert Image.open(files["rgb16.png"]).mode == "RGB"  # what Pillow says: the depth is not in the mode
    for name, path in files.items():
        with pytest.raises(nicodec.NicodecError, match="16-bit samples"):
            codec.compress(Image.open(path), quality=1)
        assert main(["compress", str(path), "-o", str(tmp_path / "out.nic"), "--model", str(weights)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "16-bit samples" in err and "8 bits" in err, err
        assert not (tmp_path / "out.nic").exists()


def test_8_bit_images_of_the_same_formats_are_still_coded(codec_and_weights, tmp_path, rng):
    codec, _ = codec_and_weights
    pixels = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    for name, mode in (("rgb.png", "RGB"), ("rgba.png", "RGBA"), ("la.png", "LA"), ("rgb.ppm", "RGB"), ("rgb.tif", "RGB"),
                       ("rgb.bmp", "RGB"), ("p.gif", "P")):
        Image.fromarray(pixels).convert(mode).save(tmp_path / name)
        assert nicodec.decompress(codec.compress(Image.open(tmp_path / name), quality=1), codec).size == (7, 6), name


def _animations(folder: Path) -> dict[str, Path]:
    frames = [Image.new("RGB", (9, 5), (60 * i, 20, 200 - 60 * i)) for i in range(3)]
    paths = {}
    for name in ("anim.gif", "anim.png", "anim.webp", "pages.tif"):
        frames[0].save(folder / name, save_all=True, append_images=frames[1:])
        paths[name] = folder / name
    return paths


def test_files_of_several_frames_are_refused_unless_the_first_frame_is_asked_for(codec_and_weights, tmp_path, capsys):
    codec, weights = codec_and_weights
    for name, path in _animations(tmp_path).items():
        with pytest.raises(nicodec.NicodecError, match="3 frames"):
            codec.compress(Image.open(path), quality=1)
        out = tmp_path / (path.name + ".nic")
        assert main(["compress", str(path), "-o", str(out), "--model", str(weights)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "3 frames" in err and "--first-frame" in err, err
        assert not out.exists()
        assert main(["compress", str(path), "-o", str(out), "--model", str(weights), "--first-frame"]) == 0, name
        assert nicodec.decompress(out.read_bytes(), codec).size == (9, 5)
        with Image.open(path) as animation:  # in Python: one frame, copied
            animation.seek(1)
            assert nicodec.decompress(codec.compress(animation.copy(), quality=1), codec).size == (9, 5)
    capsys.readouterr()


def test_a_jpeg_with_a_preview_picture_codes_its_main_image(codec_and_weights, tmp_path):
    codec, _ = codec_and_weights
    Image.new("RGB", (16, 12), "teal").save(tmp_path / "camera.mpo", save_all=True,
                                            append_images=[Image.new("RGB", (8, 6), "red")])
    with Image.open(tmp_path / "camera.mpo") as photo:
        assert photo.format == "MPO" and photo.n_frames == 2
        assert nicodec.decompress(codec.compress(photo, quality=1), codec).size == (16, 12)
