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
def one_thread():
    """One torch thread for the test, restored after (training sets its own count; tiny tensors
    gain nothing from a second thread). Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def decodes_across_threads():
    """check(codec, image, quality) -> the file: encoded with 2 threads, decoded with 1, it must be
    a version-3 file whose decoder reads exactly the encoder's latents (same tables, same CRC)."""

    def check(codec: nicodec.Codec, image, quality: float) -> bytes:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            data, encoded = codec.encode(image, quality=quality)
            torch.set_num_threads(1)
            decoded = codec.decode(data)
        finally:
            torch.set_num_threads(threads)
        assert data[4] == 3 and decoded.coded.param_crc == encoded.param_crc
        for key, latent in encoded.latents.items():
            assert torch.equal(decoded.coded.latents[key], latent), key
        return data

    return check


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def payload_and_model_bits():
    """measure(codec, image, quality) -> (bits the range coder wrote, bits ``model.estimate``
    predicts): the two must agree, or the rate the model trains on is not the rate it codes at."""

    def measure(codec: nicodec.Codec, image, quality: float) -> tuple[int, float]:
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
        _, coded = codec.encode(image, quality)
        estimate = codec.model.estimate(x, quality)
        model_bits = sum(float((-torch.log2(p.double())).sum()) for p in estimate.likelihoods.values())
        return 8 * sum(len(s) for s in coded.streams), model_bits

    return measure
