"""The command line: what users type, what it prints, exit codes, --force, atomic outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec import releases, zoo
from nicodec.cli import main


@pytest.fixture
def workspace(tmp_path, rng):
    codec = nicodec.create("factorized", N=8, M=8, levels=3, seed=0)
    weights = tmp_path / "tiny.safetensors"
    codec.save(weights)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(image)
    return tmp_path, weights, image


def test_compress_then_decompress_prints_what_it_did(workspace, capsys):
    tmp, weights, image = workspace
    assert main(["compress", str(image), "--model", str(weights), "--quality", "2.5"]) == 0
    line = capsys.readouterr().out
    assert "photo.nic" in line and "bytes" in line and "bpp" in line and " s" in line
    nic = tmp / "photo.nic"
    assert nic.read_bytes()[:4] == b"\x89NIC"
    assert main(["decompress", str(nic), "--model", str(weights)]) == 0
    assert "photo.decoded.png" in capsys.readouterr().out
    decoded = Image.open(tmp / "photo.decoded.png")
    assert decoded.size == (45, 30) and decoded.mode == "RGB"


def test_existing_outputs_need_force_and_inputs_are_never_overwritten(workspace, capsys):
    tmp, weights, image = workspace
    out = tmp / "x.nic"
    out.write_bytes(b"keep me")
    assert main(["compress", str(image), "-o", str(out), "--model", str(weights)]) == 2
    assert out.read_bytes() == b"keep me"
    assert "--force" in capsys.readouterr().err
    assert main(["compress", str(image), "-o", str(out), "--model", str(weights), "--force"]) == 0
    assert out.read_bytes()[:4] == b"\x89NIC"
    assert main(["compress", str(image), "-o", str(image), "--model", str(weights), "--force"]) == 2
    assert "input" in capsys.readouterr().err
    assert Image.open(image).size == (45, 30)


def test_outputs_get_the_usual_file_permissions(workspace):
    """Atomic writes go through a private temp file; the result must still be an ordinary file."""
    import os

    from nicodec import weights as weights_module

    tmp, weights, image = workspace
    assert main(["compress", str(image), "--model", str(weights)]) == 0
    assert main(["decompress", str(tmp / "photo.nic"), "--model", str(weights)]) == 0
    expected = 0o666 & ~weights_module._UMASK
    for path in (tmp / "photo.nic", tmp / "photo.decoded.png", weights):
        assert os.stat(path).st_mode & 0o777 == expected, path


def test_info_shows_the_header(workspace, capsys):
    tmp, weights, image = workspace
    main(["compress", str(image), "--model", str(weights), "-q", "1.5"])
    capsys.readouterr()
    assert main(["info", str(tmp / "photo.nic")]) == 0
    out = capsys.readouterr().out
    assert "factorized" in out and "45x30 RGB" in out and "quality:    1.5" in out and "bpp" in out


def test_models_lists_every_architecture(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in nicodec.ARCHITECTURES:
        assert name in out
    for name in nicodec.shipped_weights():  # what a user needs to pick a quality
        codec = nicodec.load(name)
        assert f"quality 1–{codec.levels} (λ " in out and f"default {codec.default_quality:g}," in out


def test_user_errors_exit_2_with_one_line(workspace, capsys):
    tmp, weights, image = workspace
    cases = [
        ["compress", str(tmp / "missing.png"), "--model", str(weights)],
        ["compress", str(image), "--model", "no-such-model"],
        ["compress", str(image), "--model", str(weights), "--quality", "9"],
        ["compress", str(image), "--model", str(weights), "--refine", "-1"],
        ["compress", str(image), "--model", str(weights), "--refine", "5"],  # untrained: no λ to refine for
        ["compress", str(weights), "-o", str(tmp / "w.nic"), "--model", str(weights)],
        ["info", str(image)],
        ["decompress", str(tmp / "missing.nic")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nicodec: error:") and err.count("\n") == 1, (argv, err)
    assert not (tmp / "w.nic").exists()


def test_several_inputs_share_one_model_load_and_a_bad_one_does_not_stop_the_rest(workspace, capsys, rng):
    tmp, weights, image = workspace
    (tmp / "more").mkdir()
    second = tmp / "more" / "second.png"
    Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)).save(second)
    (tmp / "broken.png").write_bytes(b"not a png")
    out = tmp / "out"
    out.mkdir()
    argv = ["compress", str(image), str(tmp / "broken.png"), str(second), "-o", str(out), "--model", str(weights), "-q", "2"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["photo.nic", "second.nic"]
    assert captured.out.count("\n") == 2 and "broken.png" in captured.err
    assert captured.err.splitlines()[-1] == "nicodec: 1 of 3 files failed" and len(captured.err.splitlines()) == 2
    # each file is the one a single compress gives
    assert main(["compress", str(second), "-o", str(tmp / "alone.nic"), "--model", str(weights), "-q", "2"]) == 0
    assert (tmp / "alone.nic").read_bytes() == (out / "second.nic").read_bytes()

    back = tmp / "back"
    back.mkdir()
    nics = [str(out / "photo.nic"), str(out / "second.nic")]
    assert main(["decompress", *nics, "-o", str(back), "--model", str(weights)]) == 0
    assert {p.name: Image.open(p).size for p in back.iterdir()} == {"photo.decoded.png": (45, 30), "second.decoded.png": (23, 17)}


def test_several_inputs_need_a_folder_and_distinct_names(workspace, capsys):
    tmp, weights, image = workspace
    (tmp / "a").mkdir()
    twin = tmp / "a" / image.name
    twin.write_bytes(image.read_bytes())
    cases = [
        (["compress", str(image), str(twin), "-o", str(tmp / "file.nic")], "names a folder"),
        (["compress", str(image), str(twin), "-o", str(tmp)], "would both be written"),
        (["compress", str(image), "-o", str(tmp / "nowhere") + "/"], "does not exist"),
    ]
    for argv, message in cases:
        assert main([*argv, "--model", str(weights)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not list(tmp.glob("*.nic")) and not (tmp / "a" / "photo.nic").exists()


def test_standard_input_and_output_make_a_pipe(workspace):
    tmp, weights, image = workspace
    run = lambda *argv, data: subprocess.run([sys.executable, "-m", "nicodec", *argv, "--model", str(weights)],  # noqa: E731
                                             input=data, capture_output=True, timeout=120)
    nic = run("compress", "-", "-o", "-", "-q", "2", data=image.read_bytes())
    assert nic.returncode == 0, nic.stderr
    assert nic.stdout[:4] == b"\x89NIC" and b"<stdin> (45x30 RGB) -> <stdout>: " in nic.stderr
    assert main(["compress", str(image), "-o", str(tmp / "same.nic"), "--model", str(weights), "-q", "2"]) == 0
    assert (tmp / "same.nic").read_bytes() == nic.stdout
    png = run("decompress", "-", "-o", "-", data=nic.stdout)
    assert png.returncode == 0, png.stderr
    assert Image.open(__import__("io").BytesIO(png.stdout)).size == (45, 30)


def test_standard_input_errors_are_one_line(workspace, monkeypatch, capsysbinary):
    import io

    tmp, weights, image = workspace
    for argv, data, message in [(("compress", "-", "-o", "-"), b"", b"nothing to read on standard input"),
                                (("compress", "-"), image.read_bytes(), b"give -o FILE"),
                                (("compress", "-", "-o", "-"), b"garbage", b"cannot read standard input as an image"),
                                (("compress", "-", str(image), "-o", str(tmp)), b"", b"the one input"),
                                (("decompress", "-", "-o", "-"), b"garbage", b"not a .nic file")]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert main([*argv, "--model", str(weights)]) == 2, argv
        out, err = capsysbinary.readouterr()
        assert message in err and err.count(b"\n") == 1 and out == b"", (argv, err)


def test_an_output_format_that_cannot_hold_the_image_is_a_user_error(workspace, capsys, rng):
    tmp, weights, _ = workspace
    Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA").save(tmp / "alpha.png")
    assert main(["compress", str(tmp / "alpha.png"), "--model", str(weights), "-q", "1"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(tmp / "alpha.nic"), "-o", str(tmp / "alpha.jpg"), "--model", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nicodec: error: cannot write") and "RGBA" in err and err.count("\n") == 1
    assert not (tmp / "alpha.jpg").exists() and [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_is_a_user_error_that_leaves_nothing_behind(workspace, capsys):
    tmp, weights, image = workspace
    assert main(["compress", str(image), "--model", str(weights)]) == 0
    out = tmp / "out"
    out.mkdir()
    for name in ("photo.nic", "photo.decoded.png"):  # a folder where --force would replace the output
        (out / name).mkdir()
        (out / name / "inside").write_bytes(b"")
    capsys.readouterr()
    for argv in (["compress", str(image)], ["decompress", str(tmp / "photo.nic")]):
        assert main([*argv, "-o", str(out), "--model", str(weights), "--force"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nicodec: error: cannot write") and err.count("\n") == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["photo.decoded.png", "photo.nic"]  # no temp files left


def test_demo_runs_the_default_model_on_the_bundled_sample():
    result = subprocess.run([sys.executable, "-m", "nicodec", "demo", "--quality", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "sample.png" in result.stdout and "bpp" in result.stdout and "PSNR" in result.stdout


def test_shipped_weights_are_found_by_name_and_from_the_file_header(tmp_path, monkeypatch, sample_image):
    codec = nicodec.create("meanscale", N=8, M=8, levels=2, seed=5)
    codec.save(tmp_path / "meanscale.safetensors", half=True)
    saved_id = nicodec.load(str(tmp_path / "meanscale.safetensors")).weights_id.hex()  # fp16: not codec's id
    registry = {"format": releases.FORMAT, "releases": [{"release": 1, "date": "today", "models": {"meanscale": {
        "file": "meanscale.safetensors", "weights_id": saved_id, "sha256": ""}}}]}
    (tmp_path / "releases.json").write_text(json.dumps(registry))
    monkeypatch.setattr(releases, "REGISTRY", tmp_path / "releases.json")
    zoo._load_file.cache_clear()
    assert "meanscale" in zoo.shipped_weights()
    shipped = nicodec.load("meanscale")
    data = shipped.compress(sample_image.crop((0, 0, 64, 64)), quality=1.5)
    assert nicodec.decompress(data).size == (64, 64)  # model found from the header alone
    assert nicodec.compress(sample_image.crop((0, 0, 64, 64)), 1.5) == data  # the shortcut: default model
    fitted = nicodec.compress(sample_image.crop((0, 0, 64, 64)), model=str(tmp_path / "meanscale.safetensors"),
                              max_bytes=len(data))  # options go through
    assert len(fitted) <= len(data) and nicodec.decompress(fitted).size == (64, 64)
    zoo._load_file.cache_clear()


def test_fp16_weights_keep_the_bitstream_buffers_exact(tmp_path):
    codec = nicodec.create("hyperprior", N=8, M=8, levels=2, seed=2)
    codec.save(tmp_path / "w.safetensors", half=True)
    loaded = nicodec.load(str(tmp_path / "w.safetensors"))
    assert np.array_equal(loaded.model.z_model.quantiles.numpy(), codec.model.z_model.quantiles.numpy())
    zoo._load_file.cache_clear()
