"""The Pillow plugin: after ``nicodec.register_pillow()``, ``Image.open("x.nic")`` reads size and
mode from the header without decoding, and ``image.save("x.nic", quality=...)`` writes .nic files."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec import zoo
from nicodec.codec import Codec

from icc import icc_profile


@pytest.fixture
def codec():
    """A tiny codec registered with Pillow; Pillow's registries are restored afterwards."""
    tiny = nicodec.create("meanscale", N=8, M=12, levels=3, seed=4)
    Image.init()  # every plugin of Pillow's own registered first, so that restoring loses none
    saved = {name: dict(getattr(Image, name)) for name in ("OPEN", "SAVE", "SAVE_ALL", "EXTENSION", "MIME")}
    ids = list(Image.ID)
    nicodec.register_pillow([tiny])
    yield tiny
    for name, registry in saved.items():
        getattr(Image, name).clear()
        getattr(Image, name).update(registry)
    Image.ID[:] = ids
    nicodec.pillow_plugin._codecs.clear()


@pytest.fixture
def photo():
    return Image.fromarray(np.random.default_rng(7).integers(0, 256, (30, 44, 4), dtype=np.uint8), "RGBA")


def test_importing_nicodec_registers_nothing_with_pillow():
    code = "import nicodec; from PIL import Image; Image.init(); print('.nic' in Image.registered_extensions())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_save_then_open_round_trips_through_pillow(codec, photo, tmp_path):
    path = tmp_path / "photo.nic"
    photo.save(path, quality=2.5, model=codec)
    data = path.read_bytes()
    assert data[:4] == b"\x89NIC" and data == codec.compress(photo, quality=2.5)  # the same file as the API's
    with Image.open(path) as image:
        assert (image.format, image.size, image.mode) == ("NIC", (44, 30), "RGBA")
        assert image.get_format_mimetype() == "image/x-nic" and image.info["nic_quality"] == 2.5
        assert np.array_equal(np.asarray(image), np.asarray(codec.decompress(data)))
    buffer = io.BytesIO()
    photo.convert("L").save(buffer, format="NIC", model=codec, quality=1)
    buffer.seek(0)
    with Image.open(buffer) as gray:
        assert gray.mode == "L" and gray.convert("RGB").size == (44, 30)
    assert Image.registered_extensions()[".nic"] == "NIC"


def test_open_reads_the_header_and_decodes_nothing_until_load(codec, photo, tmp_path, monkeypatch):
    path = tmp_path / "photo.nic"
    photo.save(path, quality=1.5, model=codec)
    decoded = []
    monkeypatch.setattr(Codec, "decode", lambda self, *a, **k: decoded.append(1) or pytest.fail("decoded on open"))
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("a model was loaded on open"))
    image = Image.open(path)
    assert (image.size, image.mode, image.format) == ((44, 30), "RGBA", "NIC") and not decoded
    monkeypatch.undo()
    image.load()
    assert image.getpixel((0, 0)) == codec.decompress(path.read_bytes()).getpixel((0, 0))
    image.close()


def test_save_honours_its_options(codec, photo, tmp_path):
    budget = len(codec.compress(photo, quality=2))
    photo.save(tmp_path / "fitted.nic", model=codec, max_bytes=budget)
    assert len((tmp_path / "fitted.nic").read_bytes()) <= budget
    profile = icc_profile()
    photo.save(tmp_path / "icc.nic", model=codec, quality=1, icc_profile=profile)
    with Image.open(tmp_path / "icc.nic") as image:
        assert image.info["icc_profile"] == profile
    weights = tmp_path / "tiny.safetensors"
    codec.save(weights)
    photo.save(tmp_path / "by-path.nic", model=str(weights), quality=3)
    with Image.open(tmp_path / "by-path.nic") as image:
        assert image.info["nic_quality"] == 3.0 and image.info["nic_model"] == "meanscale"


def test_an_animation_saves_its_current_frame_and_save_all_is_refused(codec, tmp_path):
    frames = [Image.new("RGB", (9, 5), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "anim.gif") as animation:
        animation.seek(2)
        animation.save(tmp_path / "frame.nic", model=codec, quality=1)  # as Pillow's single-image formats do
        with pytest.raises(nicodec.NicodecError, match="one image, not 3 frames"):
            animation.save(tmp_path / "all.nic", model=codec, save_all=True)
    assert Image.open(tmp_path / "frame.nic").size == (9, 5) and not (tmp_path / "all.nic").exists()


def test_errors_are_one_line_nicodec_errors_that_pillow_users_catch_as_oserror(codec, photo, tmp_path):
    path = tmp_path / "photo.nic"
    photo.save(path, quality=1, model=codec)
    (tmp_path / "cut.nic").write_bytes(path.read_bytes()[:-5])
    with pytest.raises(OSError, match="^truncated .nic file") as info:
        Image.open(tmp_path / "cut.nic")
    assert isinstance(info.value, nicodec.NicodecError) and "\n" not in str(info.value)
    for options, message in (({"quality": 99}, "quality must be in"), ({"refine": 3}, "refinement needs"),
                             ({"model": "no-such-model"}, "unknown model")):
        with pytest.raises(OSError, match=message):
            photo.save(tmp_path / "bad.nic", **{"model": codec, **options})
        assert not (tmp_path / "bad.nic").exists()  # Pillow removes what it created
    foreign = nicodec.create("factorized", N=8, M=12, levels=3, seed=9)
    photo.save(tmp_path / "foreign.nic", model=foreign, quality=1)
    with Image.open(tmp_path / "foreign.nic") as image, pytest.raises(OSError, match="factorized weights"):
        image.load()
