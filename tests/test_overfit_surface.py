"""Model overfit through nicodec's one surface: load/compress/decompress, the CLI (compress,
decompress, info), ``nicodec eval`` and the Pillow plugin (tiny images, a few iterations)."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

import nicodec
from nicodec import container
from nicodec.cli import main
from nicodec.errors import NicodecError
from nicodec.evaluation.codecs import build_codec, parse_spec
from nicodec.overfit import FitConfig, OverfitCodec
from nicodec.overfit import codec as overfit_module

FEW = FitConfig(iterations=4)


def photo(h: int = 20, w: int = 28, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1)
    return np.clip(127.5 + 90 * base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Every effort a few iterations, one thread: the surface is under test, not the fit."""
    for name in ("fast", "medium", "slow"):
        monkeypatch.setitem(overfit_module.EFFORTS, name, FEW)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def overfit_file(tmp_path):
    data = nicodec.load("overfit").compress(photo(), quality=5, effort="fast")
    path = tmp_path / "photo.nic"
    path.write_bytes(data)
    return path


def test_load_overfit_gives_a_codec_used_like_the_others():
    codec = nicodec.load("overfit")
    assert isinstance(codec, OverfitCodec) and codec.name == "overfit" and codec.levels == 10
    data = codec.compress(photo(), quality=4.5, effort="fast")
    decoded = nicodec.decompress(data)  # found from the header: no weights, no codec given
    assert decoded.size == (28, 20) and decoded.mode == "RGB"
    assert np.array_equal(np.asarray(decoded), np.asarray(codec.decompress(data)))
    assert container.unpack(data).quality == 4.5
    assert nicodec.decompress(nicodec.compress(photo(), quality=3, model="overfit", effort="slow")).size == (28, 20)


def test_a_decoder_limit_and_options_that_do_not_apply_are_one_line_errors():
    codec = nicodec.load("overfit")
    data = codec.compress(photo(), effort="fast")
    with pytest.raises(NicodecError, match="over the limit"):
        nicodec.decompress(data, max_pixels=100)
    for options, message in (({"refine": 5}, "refine"), ({"max_bytes": 900}, "size budget"), ({"fast": True}, "fast"),
                             ({"effort": "ludicrous"}, "effort")):
        with pytest.raises(NicodecError, match=message):
            codec.compress(photo(), **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(NicodecError, match="no CUDA device"):
        nicodec.load("overfit", device="cuda")
    with pytest.raises(NicodecError, match="no CUDA device"):
        nicodec.load("overfit").compress(photo(), effort="fast", device="cuda")
    with pytest.raises(NicodecError, match="no CUDA device"):
        build_codec(dataclasses.replace(parse_spec("nicodec:overfit"), device="cuda"))  # nicodec eval --device cuda


def test_cli_compresses_with_an_effort_and_decompresses_without_weights(tmp_path, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(photo()).save(source)
    assert main(["compress", str(source), "--model", "overfit", "--quality", "6", "--effort", "fast"]) == 0
    line = capsys.readouterr().out
    assert "overfit quality 6" in line and "effort fast" in line
    assert main(["decompress", str(tmp_path / "photo.nic")]) == 0
    assert Image.open(tmp_path / "photo.decoded.png").size == (28, 20)


def test_cli_info_shows_the_files_own_decoder(overfit_file, capsys):
    assert main(["info", str(overfit_file)]) == 0
    out = capsys.readouterr().out
    for what in ("model:      overfit", "grids:", "arm:", "synthesis:", "MAC/pixel", "parameters", "latents"):
        assert what in out, out


def test_cli_models_and_demo_know_overfit(tmp_path, capsys, monkeypatch):
    assert main(["models"]) == 0
    assert "overfit" in capsys.readouterr().out
    Image.fromarray(photo()).save(tmp_path / "sample.png")
    monkeypatch.setattr(nicodec.zoo, "SAMPLE", tmp_path / "sample.png")
    assert main(["demo", "--model", "overfit", "--quality", "3"]) == 0
    assert "quality 3.00" in capsys.readouterr().out


def test_cli_effort_for_another_model_and_budgets_for_overfit_are_refused(tmp_path, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(photo()).save(source)
    assert main(["compress", str(source), "--effort", "fast"]) == 2
    assert main(["compress", str(source), "--model", "overfit", "--bpp", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("nicodec: error: ") for e in err)
    assert not (tmp_path / "photo.nic").exists()


def test_cli_damaged_overfit_files_are_one_line_errors(overfit_file, tmp_path, capsys):
    data = overfit_file.read_bytes()
    nic = container.unpack(data)
    damaged = {
        "truncated": data[: len(data) // 2],
        "short-latents": container.pack(container.NicFile(**{**vars(nic), "streams": [*nic.streams[:2], nic.streams[2][:5], nic.streams[3]]})),
        "flipped": data[:-3] + bytes([data[-3] ^ 0x10]) + data[-2:],
    }
    for name, bad in damaged.items():
        path = tmp_path / f"{name}.nic"
        path.write_bytes(bad)
        for command in (["decompress", str(path), "-o", str(tmp_path / f"{name}.png")], ["info", str(path)]):
            capsys.readouterr()
            status = main(command)
            err = capsys.readouterr().err.strip().splitlines()
            assert status == 2 and len(err) == 1 and err[0].startswith("nicodec: error: "), (name, command, err)


def test_eval_measures_overfit_resumes_per_point_and_records_encode_time(tmp_path, capsys):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(2):
        Image.fromarray(photo(seed=i)).save(data / f"im{i}.png")
    out = tmp_path / "eval"
    base = ["eval", "--data", str(data), "--out", str(out), "--jobs", "1", "--quiet"]
    assert main(base + ["--codec", "nicodec:overfit:effort=fast@3,6"]) == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 4 and {r["codec"] for r in rows} == {"nicodec-overfit-fast"}
    assert all(float(r["enc_s"]) > 0 and float(r["bpp"]) > 0 for r in rows)
    capsys.readouterr()
    assert main(base + ["--codec", "nicodec:overfit:effort=fast@3,6,8"]) == 0
    assert "2 new points to compute, 4 already" in capsys.readouterr().out
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 6


def test_eval_specs_name_the_effort_and_check_it():
    spec = parse_spec("nicodec:overfit:effort=slow@2,6")
    assert (spec.target, spec.effort, spec.grid) == ("overfit", "slow", (2.0, 6.0))
    codec = build_codec(parse_spec("nicodec:overfit"))
    assert codec.label == "nicodec-overfit-medium" and codec.default_grid == (2.0, 4.0, 6.0, 8.0)
    assert "iterations" in codec.identity()
    with pytest.raises(NicodecError, match="effort"):
        build_codec(parse_spec("nicodec:overfit:effort=ludicrous"))
    with pytest.raises(NicodecError, match="overfit only"):
        build_codec(parse_spec("nicodec:meanscale:effort=fast"))


@pytest.fixture
def pillow():
    Image.init()
    saved = {name: dict(getattr(Image, name)) for name in ("OPEN", "SAVE", "SAVE_ALL", "EXTENSION", "MIME")}
    ids = list(Image.ID)
    nicodec.register_pillow()
    yield
    for name, registry in saved.items():
        getattr(Image, name).clear()
        getattr(Image, name).update(registry)
    Image.ID[:] = ids
    nicodec.pillow_plugin._codecs.clear()


def test_pillow_opens_overfit_files_and_saves_them_with_an_effort(pillow, overfit_file, tmp_path):
    with Image.open(overfit_file) as image:
        assert image.info["nic_model"] == "overfit" and image.size == (28, 20)
        assert np.array_equal(np.asarray(image), np.asarray(nicodec.decompress(overfit_file.read_bytes())))
    buffer = io.BytesIO()
    Image.fromarray(photo(seed=3)).save(buffer, format="NIC", model="overfit", quality=7, effort="fast")
    assert container.unpack(buffer.getvalue()).model == "overfit"
    with pytest.raises(OSError, match="overfit only"):
        Image.fromarray(photo()).save(io.BytesIO(), format="NIC", quality=3, effort="fast")
