"""The held-out photos: a fixed share of a training folder, chosen by file name, that training
never sees, the same whatever the format of the copy (PNG, or the JPEG pack on a GPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nicodec.training.data import list_files, load_images
from nicodec.training.holdout import held_out_stems, split

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "train"


def test_eight_percent_of_the_names_are_held_out_and_the_choice_is_pinned():
    stems = [f"{i:03d}" for i in range(1, 303)]
    held = held_out_stems(stems)
    assert len(held) == 24 and held == held_out_stems(reversed(stems))  # the order of the files does not matter
    assert sorted(held)[:4] == ["010", "057", "063", "089"]  # pinned: a change would silently move photos into training
    assert held_out_stems(stems, 0.0) == frozenset() and len(held_out_stems(stems[:6])) == 0  # round(0.48)
    with pytest.raises(ValueError):
        held_out_stems(stems, 1.0)


def test_a_photo_is_held_out_in_every_format_and_the_loader_leaves_it_out(tmp_path):
    stems = [f"{i:03d}" for i in range(1, 26)]  # 25 names: two held out
    held = held_out_stems(stems)
    for i, stem in enumerate(stems):
        Image.new("RGB", (8 + i, 8), (i, i, i)).save(tmp_path / f"{stem}.{'png' if i % 2 else 'jpg'}")
    train, out = split(list_files(tmp_path))
    assert {p.stem for p in out} == held and len(out) == 2 and len(train) == 23
    widths = sorted(image.shape[1] for image in load_images(tmp_path, hold_out=0.08))
    assert widths == sorted(8 + i for i, s in enumerate(stems) if s not in held)


@pytest.mark.skipif(not TRAIN.is_dir(), reason="needs ../shared/data/train")
def test_the_script_copies_the_24_held_out_project_photos(tmp_path):
    result = subprocess.run([sys.executable, "scripts/held_out.py", str(TRAIN), str(tmp_path / "ho"), "--crop", "64", "--count", "3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    held = split(list_files(TRAIN))[1]
    assert len(held) == 24 and sorted(p.name for p in (tmp_path / "ho").iterdir()) == [f"{p.stem}.png" for p in held[:3]]
    assert all(Image.open(p).size == (64, 64) for p in (tmp_path / "ho").iterdir())
