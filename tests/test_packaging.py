"""A fresh, non-editable install works: the wheel carries the weights and the sample image, and
the CLI runs from it with no access to the source tree (what `pip install nicodec` gives)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")  # the build backend; in the dev extra
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    # built from a copy: an in-tree build would leave build/ and egg-info in the checkout
    shutil.copytree(ROOT / "nicodec", source / "nicodec", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (found,) = out.glob("nicodec-*.whl")
    return found


def test_the_wheel_carries_the_shipped_weights_and_the_sample(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("nicodec/weights/meanscale.safetensors", "nicodec/weights/factorized.safetensors",
                     "nicodec/weights/hyperprior.safetensors",
                     "nicodec/assets/sample.png", "nicodec/cli.py"):
        assert required in names, required
    assert not any(name.startswith(("tests/", "docs/", "results/")) for name in names)


def test_the_installed_package_runs_the_demo_away_from_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import nicodec; print(nicodec.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    demo = subprocess.run([sys.executable, "-m", "nicodec", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "shipped weights" in demo.stdout and "UNTRAINED" not in demo.stdout
    for model in ("factorized", "hyperprior"):  # their transforms come from meanscale's file in the package
        demo = subprocess.run([sys.executable, "-m", "nicodec", "demo", "-m", model, "-q", "1"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert demo.returncode == 0 and "shipped weights" in demo.stdout, demo.stderr
