"""A decoder allocates only what a file's header may claim: a pixel limit checked from the header
before anything is allocated, streams that must be able to hold what the header declares, and
weights files checked against their declared model before it is built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import nicodec
from nicodec import container, weights
from nicodec.cli import main
from nicodec.errors import CorruptFileError, NicodecError


def _resized(data: bytes, width: int, height: int, **changes) -> bytes:
    """The same file claiming another size (the CRC recomputed: it reaches the decoder)."""
    nic = container.unpack(data)
    nic.width, nic.height = width, height
    for key, value in changes.items():
        setattr(nic, key, value)
    return container.pack(nic)


@pytest.fixture(scope="module")
def rgba_file():
    codec = nicodec.create("factorized", N=8, M=12, levels=3, seed=0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 4), dtype=np.uint8), "RGBA")
    return codec, codec.compress(image, quality=2)


_LIMITED = textwrap.dedent("""
    import json, resource, sys, torch
    torch.set_num_threads(1)
    import nicodec
    from nicodec import container
    from PIL import Image
    import numpy as np
    results = {}
    for arch in ("factorized", "hyperprior", "meanscale"):
        codec = nicodec.create(arch, N=8, M=12, levels=3, seed=0)
        nic = container.unpack(codec.compress(Image.fromarray(np.zeros((20, 30, 3), np.uint8)), quality=2))
        nic.width = nic.height = 32768  # ~200 bytes claiming 1.07 gigapixels
        results[arch] = container.pack(nic)
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20),) * 2)  # 256 MB more than it has now
    out = {}
    for arch, data in results.items():
        try:
            nicodec.create(arch, N=8, M=12, levels=3, seed=0).decompress(data)
            out[arch] = [len(data), "decoded"]
        except BaseException as exc:
            chain, e = [], exc
            while e is not None:
                chain.append(type(e).__name__); e = e.__context__
            out[arch] = [len(data), str(exc), chain]
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit needs Linux")
def test_a_tiny_file_claiming_a_gigapixel_image_is_refused_from_its_header_without_allocating():
    result = subprocess.run([sys.executable, "-c", _LIMITED], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for arch, (size, message, chain) in json.loads(result.stdout).items():
        assert size < 300, arch
        assert chain == ["NicodecError"], (arch, message, chain)  # no MemoryError behind it
        assert "1,073,741,824 pixels" in message and "--max-pixels 1073741824" in message, message


def test_the_pixel_limit_is_an_option_of_the_api_and_the_cli(rgba_file, tmp_path, capsys):
    codec, data = rgba_file
    assert nicodec.MAX_PIXELS == 2 * 89_478_485 == 2 * Image.MAX_IMAGE_PIXELS  # where Pillow refuses by default
    with pytest.raises(NicodecError, match="max_pixels=960"):
        codec.decompress(data, max_pixels=959)
    assert codec.decompress(data, max_pixels=960).size == (40, 24)
    assert codec.decompress(data, max_pixels=None).size == (40, 24)
    with pytest.raises(NicodecError, match="max_pixels=960"):
        nicodec.decompress(data, codec, max_pixels=959)
    for bad in (0, -1, True, 1.5, "960"):
        with pytest.raises(NicodecError, match="max_pixels must be"):
            codec.decompress(data, max_pixels=bad)
    weights_file = tmp_path / "tiny.safetensors"
    codec.save(weights_file)
    (tmp_path / "x.nic").write_bytes(data)
    assert main(["decompress", str(tmp_path / "x.nic"), "--max-pixels", "959", "--model", str(weights_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-pixels 960" in err and not (tmp_path / "x.decoded.png").exists()
    assert main(["decompress", str(tmp_path / "x.nic"), "--max-pixels", "960", "--model", str(weights_file)]) == 0


class _Decoding(BaseException):
    """Raised by a stand-in decoder: the file got as far as decoding."""


def test_an_alpha_plane_its_stream_cannot_hold_is_refused_before_the_image_is_decoded(rgba_file, monkeypatch):
    codec, data = rgba_file
    alpha = container.unpack(data).streams[-1]
    side = int((1032 * (len(alpha) + 2)) ** 0.5)  # more alpha values than zlib can inflate it to (1032 per byte)
    monkeypatch.setattr(codec.model, "decompress", lambda *a, **k: (_ for _ in ()).throw(_Decoding()))
    with pytest.raises(CorruptFileError, match="alpha stream cannot hold"):
        codec.decompress(_resized(data, side, side))
    nic = container.unpack(data)  # an alpha stream that can hold it passes this check, and decoding starts
    nic.width = nic.height = side
    nic.streams[-1] = zlib.compress(bytes(side * side), 9)
    with pytest.raises(_Decoding):
        codec.decompress(container.pack(nic))


def test_a_tiny_weights_file_declaring_a_huge_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    meta = {"format": weights.FORMAT, "architecture": "meanscale"}
    cases = [({"N": 2500, "M": 2500, "levels": 6}, "N must be a whole number in 1..1024, got 2500"),
             ({"N": 128, "M": 192, "levels": 1000}, "levels must be a whole number in 1..64"),
             ({"N": 1024, "M": 1024, "levels": 64}, "meanscale \\(N=1024, M=1024, levels=64\\) is not in the file")]
    for i, (config, message) in enumerate(cases):
        path = tmp_path / f"w{i}.safetensors"
        save_file({"g_a.0.weight": torch.zeros(1)}, str(path), metadata={"nicodec": json.dumps({**meta, "config": config})})
        assert path.stat().st_size < 300
        with pytest.raises(NicodecError, match=message):
            nicodec.load(str(path))
