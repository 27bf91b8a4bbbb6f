"""Photos come out as they went in: EXIF orientation applied, non-sRGB ICC profiles carried."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import nicodec
from nicodec import container
from nicodec.cli import main
from nicodec.errors import CorruptFileError
from nicodec.images import to_planes

from icc import ADOBE_RGB, icc_profile

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def codec() -> nicodec.Codec:
    return nicodec.create("factorized", N=8, M=12, levels=3, seed=0)


def _photo(rng, mode: str = "RGB", size=(40, 24)) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8).squeeze(), mode)


def test_the_handmade_profile_is_a_real_one():
    profile = ImageCms.ImageCmsProfile(__import__("io").BytesIO(icc_profile()))
    assert profile.profile.xcolor_space == "RGB "


def test_a_wide_gamut_profile_travels_with_the_file(codec, rng, tmp_path):
    image = _photo(rng)
    image.info["icc_profile"] = icc_profile()
    data = codec.compress(image, 2)
    nic = container.unpack(data)
    assert nic.version == 3 and nic.metadata == {container.ICC: icc_profile()}
    decoded = codec.decompress(data)
    assert decoded.info["icc_profile"] == icc_profile()
    plain = image.copy()
    plain.info.clear()
    assert codec.decompress(data).tobytes() == codec.decompress(codec.compress(plain, 2)).tobytes()

    # the command line writes it into PNG and JPEG outputs
    image.save(tmp_path / "in.png", icc_profile=icc_profile())
    assert main([ "compress", str(tmp_path / "in.png"), "-m", str(_saved(codec, tmp_path)), "-q", "2"]) == 0
    for suffix in (".png", ".jpg"):
        out = tmp_path / f"out{suffix}"
        assert main(["decompress", str(tmp_path / "in.nic"), "-o", str(out), "-m", str(tmp_path / "w.safetensors")]) == 0
        with Image.open(out) as written:
            assert written.info.get("icc_profile") == icc_profile()


def _saved(codec: nicodec.Codec, tmp_path) -> object:
    path = tmp_path / "w.safetensors"
    if not path.exists():
        codec.save(path)
    return path


@pytest.mark.parametrize("profile", [SRGB, b"not an ICC profile", icc_profile(gray=True)], ids=["sRGB", "garbage", "gray-on-RGB"])
def test_profiles_that_add_nothing_are_dropped(codec, rng, profile):
    image = _photo(rng)
    plain = codec.compress(image, 2)
    image.info["icc_profile"] = profile
    assert codec.compress(image, 2) == plain  # no metadata stream content, byte for byte


def test_srgb_is_recognised_by_what_it_does_not_by_its_bytes(codec, rng):
    """An sRGB-like profile with a plain 2.2 gamma differs visibly from sRGB in the shadows: kept."""
    srgb_primaries = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
    image = _photo(rng)
    image.info["icc_profile"] = icc_profile(srgb_primaries, gamma=2.2)
    assert container.ICC in container.unpack(codec.compress(image, 2)).metadata
    image.info["icc_profile"] = icc_profile(ADOBE_RGB, gamma=1.0)
    assert container.ICC in container.unpack(codec.compress(image, 2)).metadata


def test_gray_images_keep_a_gray_profile(codec, rng):
    image = _photo(rng, "L")
    image.info["icc_profile"] = icc_profile(gray=True)
    decoded = codec.decompress(codec.compress(image, 2))
    assert decoded.mode == "L" and decoded.info["icc_profile"] == icc_profile(gray=True)


@pytest.mark.parametrize("orientation", [3, 6, 8, 2])
def test_exif_orientation_is_applied_to_the_pixels(codec, rng, tmp_path, orientation):
    image = _photo(rng, size=(48, 16))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=95)
    with Image.open(path) as stored:
        upright = ImageOps.exif_transpose(stored)
        planes = to_planes(stored)
    np.testing.assert_array_equal(planes.rgb, np.asarray(upright))
    rotated = orientation in (6, 8)
    assert planes.rgb.shape[:2] == ((48, 16) if rotated else (16, 48))
    with Image.open(path) as stored:
        assert codec.decompress(codec.compress(stored, 2)).size == ((16, 48) if rotated else (48, 16))


def test_cli_reports_orientation_and_profile(codec, rng, tmp_path, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6
    _photo(rng).save(tmp_path / "in.png", exif=exif, icc_profile=icc_profile())
    assert main(["compress", str(tmp_path / "in.png"), "-m", str(_saved(codec, tmp_path)), "-q", "1"]) == 0
    line = capsys.readouterr().out
    assert "(24x40 RGB)" in line and "turned upright" in line and f"ICC profile kept ({len(icc_profile()):,} bytes)" in line
    assert main(["info", str(tmp_path / "in.nic")]) == 0
    info = capsys.readouterr().out
    assert ".nic version 3" in info and f"ICC profile, {len(icc_profile()):,} bytes" in info


def test_metadata_container_roundtrip_and_damage():
    nic = container.NicFile(model="m", weights_id=b"12345678", quality=2.0, width=3, height=4, mode=2,
                            param_crc=7, streams=[b"abc", b""], metadata={"ICC ": b"x" * 100, "Xtra": b""})
    back = container.unpack(container.pack(nic))
    assert back.version == 3 and back.streams == nic.streams and back.metadata == nic.metadata
    legacy = container.unpack(container.pack(container.NicFile(**{**vars(nic), "version": 1})))
    assert legacy.version == 2 and legacy.streams == nic.streams and legacy.metadata == nic.metadata
    assert container.unpack(container.pack(container.NicFile(**{**vars(nic), "metadata": {}, "version": 1}))).version == 1
    for bad in (b"garbage", __import__("zlib").compress(b"ICC \xff\xff\xff\x00short"), __import__("zlib").compress(b"ICC")):
        with pytest.raises(CorruptFileError, match="metadata"):
            container._unpack_metadata(bad)
    with pytest.raises(ValueError, match="4 ASCII"):
        container.pack(container.NicFile(**{**vars(nic), "metadata": {"ICC": b""}}))


@pytest.mark.parametrize("exif", [b"Exif\x00\x00garbage", b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff"])
def test_damaged_exif_is_ignored_not_fatal(codec, rng, exif):
    image = _photo(rng)
    plain = codec.compress(image, 2)
    image.info["exif"] = exif
    assert codec.compress(image, 2) == plain
