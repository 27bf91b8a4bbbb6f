"""scripts/bd_levels.py: BD-rate over some of a curve's levels, the like-for-like comparison of
weights whose level sets differ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bd_levels.py"


def _curve(path: Path, name: str, bpp: list[float], psnr: list[float], quality: bool = True) -> Path:
    results = {"bpp": bpp, "psnr-rgb": psnr}
    if quality:  # as nicodec eval writes it: one point per level
        results["quality"] = [float(i + 1) for i in range(len(bpp))]
    path.write_text(json.dumps({"name": name, "results": results}))
    return path


def _run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True)


def test_only_the_chosen_levels_enter_the_bd_rate(tmp_path):
    bpp = [0.1, 0.2, 0.4, 0.8, 1.6]
    anchor = _curve(tmp_path / "a.json", "A", bpp[:4], [26.0, 29.0, 32.0, 35.0], quality=False)
    # levels 1-4 equal the anchor; level 5 is far worse and must not count in 1-4
    ours = _curve(tmp_path / "o.json", "ours", bpp, [26.0, 29.0, 32.0, 35.0, 30.0])
    same = _run(ours, "--levels", "1-4", "--anchors", anchor)
    assert same.returncode == 0, same.stderr
    assert same.stdout.strip() == "ours levels 1-4 vs A: BD-rate +0.0 %"
    worse = _run(ours, "--levels", "1-5", "--anchors", anchor)
    assert worse.returncode == 0 and "BD-rate +0.0 %" not in worse.stdout


def test_levels_outside_the_curve_or_a_missing_file_are_one_line_errors(tmp_path):
    ours = _curve(tmp_path / "o.json", "ours", [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0])
    published = _curve(tmp_path / "p.json", "published", [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0], quality=False)
    for argv in (
        (ours, "--levels", "1-6", "--anchors", ours),
        (tmp_path / "none.json", "--levels", "1-4", "--anchors", ours),
        (published, "--levels", "1-4", "--anchors", ours),  # no qualities: not a curve of ours
    ):
        r = _run(*argv)
        assert r.returncode == 2 and r.stderr.startswith("bd_levels: error:") and len(r.stderr.strip().splitlines()) == 1


def test_ms_ssim_and_the_gaps_at_each_point(tmp_path):
    bpp = [0.1, 0.2, 0.4, 0.8]
    anchor = tmp_path / "a.json"
    anchor.write_text(json.dumps({"name": "A", "results": {"bpp": bpp, "psnr-rgb": [26.0, 29.0, 32.0, 35.0],
                                                          "ms-ssim-rgb-db": [10.0, 12.0, 14.0, 16.0]}}))
    # as good as A in PSNR, 1 dB better in MS-SSIM; its last point lies beyond A's rates
    ours = tmp_path / "o.json"
    ours.write_text(json.dumps({"name": "ours", "results": {
        "bpp": [0.1, 0.2, 0.4, 0.8, 1.6], "psnr-rgb": [26.0, 29.0, 32.0, 35.0, 38.0],
        "ms-ssim-rgb-db": [11.0, 13.0, 15.0, 17.0, 19.0], "quality": [1.0, 2.0, 3.0, 4.0, 5.0]}}))
    psnr = _run(ours, "--levels", "1-4", "--anchors", anchor, "--gaps")
    assert psnr.returncode == 0, psnr.stderr
    assert psnr.stdout.splitlines() == ["ours levels 1-4 vs A: BD-rate +0.0 %", "    bpp:ΔdB 0.10:+0.00 0.20:+0.00 0.40:+0.00 0.80:+0.00"]
    ms = _run(ours, "--levels", "1-5", "--anchors", anchor, "--metric", "ms-ssim", "--gaps")
    assert ms.returncode == 0, ms.stderr
    head, gaps = ms.stdout.splitlines()
    assert head.startswith("ours levels 1-5 vs A: BD-rate (ms-ssim) -")
    assert gaps == "    bpp:ΔdB MS-SSIM 0.10:+1.00 0.20:+1.00 0.40:+1.00 0.80:+1.00"  # 1.6 bpp: beyond A
    no_msssim = _curve(tmp_path / "p.json", "P", bpp, [26.0, 29.0, 32.0, 35.0], quality=False)
    r = _run(ours, "--levels", "1-4", "--anchors", no_msssim, "--metric", "ms-ssim")
    assert r.returncode == 2 and "no ms-ssim values" in r.stderr
