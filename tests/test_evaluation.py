"""`nicodec eval` / `nicodec bench`: outputs, resuming, codec adapters and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec.cli import main
from nicodec.errors import NicodecError
from nicodec.evaluation import codecs as codecs_mod
from nicodec.evaluation.codecs import CLASSICAL, build_codec, parse_spec
from nicodec.evaluation.results import Curve, PointResult, read_rows
from nicodec.evaluation.report import pick_anchor
from nicodec.evaluation.runner import _execute, find_images, load_image, measure

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VTM = SHARED / "anchors" / "kodak" / "vtm.json"
REPO = Path(__file__).resolve().parents[1]


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 80 * np.sin(x / (5 + c) + seed) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two 64x48 images and a tiny untrained model saved as weights."""
    root = tmp_path_factory.mktemp("eval")
    data = root / "data"
    data.mkdir()
    for i, name in enumerate(["one.png", "two.png"]):
        Image.fromarray(_photo(48, 64, i)).save(data / name)
    weights = root / "tiny.safetensors"
    nicodec.create("factorized", N=8, M=8, levels=3, seed=0).save(weights)
    return root, data, weights


def _eval_args(data: Path, out: Path, weights: Path) -> list[str]:
    args = ["eval", "--data", str(data), "--out", str(out), "--jobs", "1", "--quiet"]
    args += ["--codec", "jpeg", "--codec", "webp", "--codec", f"nicodec:{weights}"]
    if VTM.exists():
        args += ["--anchors", str(VTM), "--anchor", "vtm"]
    return args


def test_eval_writes_results_plots_and_report_then_resumes_without_encoding(setup, capsys, monkeypatch):
    root, data, weights = setup
    out = root / "out"
    assert main(_eval_args(data, out, weights)) == 0
    printed = capsys.readouterr().out
    assert "BD against anchor" in printed and "report.html" in printed

    labels = ["jpeg", "webp", "nicodec-tiny"]
    grids = {"jpeg": 10, "webp": 10, "nicodec-tiny": 8}
    for label in labels:
        doc = json.loads((out / f"{label}.json").read_text())
        res = doc["results"]
        assert doc["name"] == label and doc["description"]
        keys = ["bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db", "encoding_time", "decoding_time", "quality"]
        assert all(len(res[k]) == grids[label] for k in keys)
        assert res["bpp"] == sorted(res["bpp"])
        assert all(0 < m <= 1 for m in res["ms-ssim-rgb"])
    with (out / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * sum(grids.values())
    row = rows[0]
    assert list(row) == ["codec", "quality", "image", "width", "height", "bytes", "bpp", "psnr", "msssim", "enc_s", "dec_s"]
    assert (row["width"], row["height"]) == ("64", "48")
    assert float(row["bpp"]) == pytest.approx(int(row["bytes"]) * 8 / (64 * 48))
    for name in ["rd_psnr.png", "rd_psnr.svg", "rd_msssim.png", "rd_msssim.svg", "bdrate.md", "crops/original.png"]:
        assert (out / name).stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "rd_psnr.svg" in html and "crops/original.png" in html and "nicodec-tiny" in html
    crops = [p for p in (out / "crops").glob("*.png") if p.name != "original.png"]
    assert len(crops) == sum(grids.values()) and Image.open(crops[0]).size == (64, 48)

    # Second run: every point is already in the CSV, so no codec may encode anything.
    csv_before = (out / "per_image.csv").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run must not encode")

    for cls in (codecs_mod.Jpeg, codecs_mod.WebP, codecs_mod.NicodecModel):
        monkeypatch.setattr(cls, "encode", refuse)
    assert main(_eval_args(data, out, weights)) == 0
    assert "0 new points to compute, 56 already" in capsys.readouterr().out
    assert (out / "per_image.csv").read_bytes() == csv_before


def test_eval_in_parallel_processes_adds_only_missing_points(setup, capsys):
    root, data, weights = setup
    out = root / "parallel"
    base = ["eval", "--data", str(data), "--out", str(out), "--quiet", "--jobs", "2"]
    assert main(base + ["--codec", "jpeg@20,80"]) == 0
    assert "4 new points" in capsys.readouterr().out
    assert main(base + ["--codec", "jpeg@20,50,80", "--codec", f"nicodec:{weights}@1,3"]) == 0
    assert "6 new points to compute, 4 already" in capsys.readouterr().out
    res = json.loads((out / "jpeg.json").read_text())["results"]
    assert sorted(res["quality"]) == [20, 50, 80]


def test_points_of_retrained_weights_under_the_same_name_are_measured_again(setup, tmp_path, capsys):
    _, data, _ = setup
    weights = tmp_path / "model.safetensors"
    nicodec.create("factorized", N=8, M=8, levels=3, seed=0).save(weights)
    out = tmp_path / "out"
    args = ["eval", "--data", str(data), "--out", str(out), "--quiet", "--jobs", "1",
            "--codec", "jpeg@50", "--codec", f"nicodec:{weights}@1,3"]
    assert main(args) == 0
    first = json.loads((out / "nicodec-model.json").read_text())["results"]["psnr-rgb"]
    capsys.readouterr()
    assert main(args) == 0
    assert "0 new points" in capsys.readouterr().out
    nicodec.create("factorized", N=8, M=8, levels=3, seed=1).save(weights)  # other weights, same file
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "nicodec-model changed" in printed and "4 new points to compute, 2 already" in printed
    assert json.loads((out / "nicodec-model.json").read_text())["results"]["psnr-rgb"] != first
    with (out / "per_image.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2 + 4  # jpeg kept, the model's old points gone


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nicodec", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("problem", ["empty folder", "unknown codec", "unreadable image"])
def test_bad_input_gives_one_line_and_exit_status_2(tmp_path, setup, problem):
    _, data, _ = setup
    codec = "jpeg"
    if problem == "empty folder":
        data = tmp_path / "empty"
        data.mkdir()
    elif problem == "unknown codec":
        codec = "bpg9000"
    else:
        data = tmp_path / "bad"
        data.mkdir()
        (data / "broken.png").write_bytes(b"not a png at all")
    proc = _cli("eval", "--data", str(data), "--codec", codec, "--out", str(tmp_path / "o"), "--jobs", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nicodec: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    expected = {"empty folder": "no images in", "unknown codec": "unknown codec 'bpg9000'", "unreadable image": "cannot read image"}
    assert expected[problem] in lines[0]


def test_specs_parse_names_and_quality_grids():
    assert parse_spec("webp@10,30,50").grid == (10.0, 30.0, 50.0)
    assert parse_spec("JPEG").kind == "jpeg" and parse_spec("jpeg").grid is None
    spec = parse_spec("nicodec:/tmp/a@b/model.safetensors@1,2.5")
    assert (spec.kind, spec.target, spec.grid) == ("nicodec", "/tmp/a@b/model.safetensors", (1.0, 2.5))
    assert parse_spec("nicodec:meanscale").target == "meanscale" and parse_spec("nicodec:meanscale").refine == 0
    spec = parse_spec("nicodec:meanscale:refine=50@1,6")
    assert (spec.target, spec.refine, spec.grid) == ("meanscale", 50, (1.0, 6.0))
    for bad, msg in [
        ("bpg", "unknown codec"), ("webp@x", "bad quality grid"), ("nicodec:", "needs a model"),
        ("nicodec:meanscale:refine=x", "bad refinement"), ("nicodec::refine=5", "needs a model"),
    ]:
        with pytest.raises(NicodecError, match=msg):
            parse_spec(bad)
    with pytest.raises(NicodecError, match="outside"):
        build_codec(parse_spec("jpeg@0,50"))


def test_model_specs_load_weights_and_default_to_an_even_grid_over_the_levels(setup):
    _, _, weights = setup
    codec = build_codec(parse_spec(f"nicodec:{weights}"))
    assert codec.label == "nicodec-tiny"
    refined = build_codec(parse_spec("nicodec:meanscale:refine=7"))
    assert refined.label == "nicodec-meanscale-refine7" and refined.identity().endswith("; refine 7")
    assert codec.default_grid[0] == 1 and codec.default_grid[-1] == 3 and len(codec.default_grid) == 8
    with pytest.raises(NicodecError, match=r"outside \[1, 3\]"):
        build_codec(parse_spec(f"nicodec:{weights}@0.5"))


def test_a_model_with_eight_or_more_levels_is_measured_at_every_trained_level(tmp_path):
    weights = tmp_path / "nine.safetensors"
    nicodec.create("factorized", N=8, M=8, levels=9, seed=0).save(weights)
    assert build_codec(parse_spec(f"nicodec:{weights}")).default_grid == tuple(range(1, 10))


@pytest.mark.parametrize("name", sorted(CLASSICAL))
def test_every_classical_codec_round_trips_an_odd_sized_image(name):
    codec = build_codec(parse_spec(name))
    rgb = _photo(37, 45, 3)
    row, out = measure(codec, codec.default_grid[-1], rgb, "x.png")  # the grid's best quality
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert row.bytes > 0 and row.psnr > 25 and 0.5 < row.msssim <= 1


def test_hevc_really_stores_4_4_4_chroma():
    codec = build_codec(parse_spec("hevc"))
    assert codec.decode_heif(codec.encode(_photo(32, 48, 0), 50)).info["chroma"] == 444


def test_folders_and_images_are_checked(tmp_path):
    with pytest.raises(NicodecError, match="not found"):
        find_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(NicodecError, match="no images"):
        find_images(tmp_path)
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(NicodecError, match="cannot read image"):
        load_image(tmp_path / "x.png")


def test_anchor_is_picked_by_name_or_file_stem():
    a = Curve("VTM", [1.0], source="/x/vtm.json")
    b = Curve("jpeg", [1.0])
    assert pick_anchor([b, a], "vtm") is a and pick_anchor([b, a], "JPEG") is b
    with pytest.raises(NicodecError, match="matches no curve"):
        pick_anchor([a, b], "hm")


def test_bench_prints_a_timing_table(setup, capsys):
    _, data, weights = setup
    assert main(["bench", "--data", str(data), "--codec", "jpeg", "--codec", f"nicodec:{weights}@2", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "| jpeg | 30 | 2 |" in out and "| nicodec-tiny | 2 | 2 |" in out


def _point_after(seconds: float) -> PointResult:
    """A fake measurement taking ``seconds`` (module level: the worker processes unpickle it)."""
    time.sleep(seconds)
    return PointResult("fake", seconds, f"{seconds}.png", 1, 1, 1, 8.0, 30.0, 0.9, seconds, 0.0)


def test_parallel_eval_writes_each_point_as_soon_as_it_is_measured(tmp_path):
    """An interrupted parallel run must keep its finished points: the CSV gets the three quick
    points while the slow one is still being measured."""
    path = tmp_path / "per_image.csv"
    run = threading.Thread(target=_execute, args=([8.0, 0.0, 0.01, 0.02], path, 2, False), kwargs={"do": _point_after})
    run.start()
    seen_quick_only = False
    while run.is_alive():
        qualities = {r.quality for r in read_rows(path)}
        seen_quick_only |= qualities == {0.0, 0.01, 0.02}
        time.sleep(0.05)
    run.join()
    assert seen_quick_only
    assert {r.quality for r in read_rows(path)} == {0.0, 0.01, 0.02, 8.0}
