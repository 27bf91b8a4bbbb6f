"""Bjøntegaard deltas: exact synthetic cases and the published Kodak figures."""

import json
from pathlib import Path

import numpy as np
import pytest

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_psnr, bd_rate, pchip, quality_gaps
from nicodec.evaluation.results import load_curve

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KODAK = SHARED / "anchors" / "kodak"

RATE = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [27.0, 30.0, 33.0, 36.0, 39.0]


@pytest.mark.parametrize("piecewise", [False, True])
def test_identical_curves_have_zero_deltas(piecewise):
    assert bd_rate(RATE, PSNR, RATE, PSNR, piecewise=piecewise) == pytest.approx(0, abs=1e-9)
    assert bd_psnr(RATE, PSNR, RATE, PSNR, piecewise=piecewise) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("piecewise", [False, True])
def test_a_curve_using_20_percent_fewer_bits_has_bd_rate_minus_20(piecewise):
    fewer = [r * 0.8 for r in RATE]
    assert bd_rate(RATE, PSNR, fewer, PSNR, piecewise=piecewise) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(fewer, PSNR, RATE, PSNR, piecewise=piecewise) == pytest.approx(25.0, abs=1e-6)


def test_a_curve_one_db_higher_has_bd_psnr_plus_one():
    assert bd_psnr(RATE, PSNR, RATE, [p + 1 for p in PSNR]) == pytest.approx(1.0, abs=1e-9)


def test_too_few_points_or_no_overlap_is_a_clear_error():
    with pytest.raises(NicodecError, match="at least 4 points"):
        bd_rate(RATE[:3], PSNR[:3], RATE, PSNR)
    with pytest.raises(NicodecError, match="do not overlap"):
        bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR])


def test_pchip_interpolates_the_points_and_stays_monotone():
    x = np.array([0.0, 1, 2, 3, 5])
    y = np.array([0.0, 1, 1.5, 4, 4.2])
    assert np.allclose(pchip(x, y, x), y)
    xs = np.linspace(0, 5, 200)
    assert np.all(np.diff(pchip(x, y, xs)) >= -1e-12)


def _published(name: str):
    if not KODAK.is_dir():
        pytest.skip(f"published anchors not found at {KODAK}")
    return load_curve(KODAK / f"{name}.json")


@pytest.mark.parametrize(
    "name, expected",
    [("webp", 78.0), ("bpg_444_x265_ycbcr", 22.0), ("compressai-bmshj2018-hyperprior_mse_cuda", 30.0)],
)
def test_published_kodak_bd_rates_against_vtm(name, expected):
    vtm, curve = _published("vtm"), _published(name)
    assert bd_rate(vtm.bpp, vtm.psnr, curve.bpp, curve.psnr) == pytest.approx(expected, abs=1.0)


def test_published_files_without_ms_ssim_in_linear_units_still_load():
    curve = _published("paper-elic2022_ms-ssim")
    assert curve.msssim_db and not curve.msssim and len(curve.msssim_db) == len(curve.bpp)
    vtm = _published("vtm")
    assert vtm.msssim_db[0] == pytest.approx(-10 * np.log10(1 - vtm.msssim[0]))


def test_loading_a_file_that_is_not_a_results_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(NicodecError, match="CompressAI's layout"):
        load_curve(bad)


def test_quality_gaps_read_the_anchor_at_each_rate_in_log_rate():
    # RATE doubles per point and PSNR rises 3 dB: halfway in log-rate between 0.2 and 0.4 is 31.5 dB
    rates = [0.4, 0.2 * 2**0.5, 0.05, 3.2]  # unsorted; beyond the ends the anchor is held flat
    gaps = quality_gaps(list(reversed(RATE)), list(reversed(PSNR)), rates, [34.0, 31.0, 28.0, 40.0])
    assert [r for r, _ in gaps] == rates
    assert [d for _, d in gaps] == pytest.approx([1.0, -0.5, 1.0, 1.0])
