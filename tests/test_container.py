"""The .nic container: stable bytes, and every field read back as written."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib

import pytest

from nicodec import container
from nicodec.errors import CorruptFileError

GOLDEN = container.NicFile(
    model="meanscale", weights_id=bytes(range(8)), quality=2.5, width=768, height=512, mode=2,
    param_crc=0xDEADBEEF, streams=[b"\x01\x02\x03\x04", b"\x05\x06\x07\x08\x09\x0a\x0b\x0c", b""], version=1,
)
GOLDEN_V3 = dataclasses.replace(GOLDEN, version=3)


def test_header_layout_is_pinned():
    data = container.pack(GOLDEN)
    assert data[:4] == b"\x89NIC" and data[4] == 1
    assert len(data) == container.header_size(3) + 12 == 75
    # golden: any change to the layout must bump the format version
    assert hashlib.sha256(data).hexdigest()[:16] == _GOLDEN_SHA


def test_version_3_is_version_2_layout_with_the_metadata_stream_always_last():
    data = container.pack(GOLDEN_V3)
    assert data[4] == 3 and data[46] == 4  # n_streams: the model's two, alpha, metadata (empty)
    assert len(data) == container.header_size(4) + 12
    assert hashlib.sha256(data).hexdigest()[:16] == _GOLDEN_V3_SHA
    with_icc = container.pack(dataclasses.replace(GOLDEN_V3, metadata={container.ICC: b"profile"}))
    assert container.unpack(with_icc).metadata == {container.ICC: b"profile"}


def test_what_is_written_is_version_3_unless_a_legacy_version_is_asked_for():
    assert container.NicFile("factorized", bytes(8), 1.0, 1, 1, 0, 0, [b"", b""]).version == 3
    assert container.pack(dataclasses.replace(GOLDEN, metadata={container.ICC: b"p"}))[4] == 2


@pytest.mark.parametrize("golden", [GOLDEN, GOLDEN_V3], ids=["v1", "v3"])
def test_unpack_reads_back_every_field(golden):
    f = container.unpack(container.pack(golden))
    assert f == golden


def test_a_version_3_file_without_its_metadata_stream_is_corrupt():
    data = container.pack(dataclasses.replace(GOLDEN_V3, streams=[]))  # only the (empty) metadata stream
    with pytest.raises(CorruptFileError, match="stream count"):
        container.unpack(data)


def test_trailing_bytes_are_corruption():
    with pytest.raises(CorruptFileError, match="corrupt"):
        container.unpack(container.pack(GOLDEN) + b"\0")


def test_newer_versions_are_refused_by_name():
    data = bytearray(container.pack(GOLDEN))
    data[4] = 9
    with pytest.raises(CorruptFileError, match="version 9"):
        container.unpack(bytes(data))


def test_crc_covers_the_header_too():
    data = bytearray(container.pack(GOLDEN))
    data[30] ^= 1  # inside the header fields
    with pytest.raises(CorruptFileError, match="checksum"):
        container.unpack(bytes(data))
    assert zlib.crc32(b"") == 0


_GOLDEN_SHA = "10ed30bf1aea3262"
_GOLDEN_V3_SHA = "cc6b89b711efeaa2"
