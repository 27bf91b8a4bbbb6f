"""Shared fixtures: tiny untrained codecs (fast on CPU) and the bundled sample photograph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nicodec
from nicodec.images import open_image

SAMPLE = Path(nicodec.__file__).parent / "assets" / "sample.png"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session", params=sorted(nicodec.ARCHITECTURES))
def tiny_codec(request) -> nicodec.Codec:
    """One tiny untrained codec per architecture, 3 rate levels."""
    return nicodec.create(request.param, N=8, M=12, levels=3, seed=0)


@pytest.fixture(scope="session")
def sample_image():
    return open_image(SAMPLE)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
