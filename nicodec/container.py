"""The ``.nic`` file: a fixed header declared once (``HEADER``), then the streams.

Reader and writer both use the one declaration, so they cannot disagree. See docs/format.md.

    header fields (little-endian, see HEADER)
    stream lengths     n_streams × uint32
    crc32              uint32, over everything before it and the payload
    payload            the streams, concatenated (model streams, the alpha stream, and in
                       version 2 a last stream of metadata chunks, e.g. the ICC profile)

Version 3 (what nicodec writes now) has the same layout with the metadata stream always last
(empty when there is none) and marks the deterministic coding path: coding tables built with
:mod:`nicodec.exact` and an integer hyper-synthesis. Versions 1 (no metadata) and 2 (metadata)
are read and decoded with the float64 coding path they were written with; older readers refuse
version 3 by name rather than misreading it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .errors import CorruptFileError
from .limits import file_bytes

MAGIC = b"\x89NIC"
VERSION = 1  # float64 coding path, without metadata
VERSION_METADATA = 2  # float64 coding path, with a trailing metadata stream
VERSION_EXACT = 3  # deterministic coding path; the metadata stream is always there (maybe empty)
VERSIONS = (VERSION, VERSION_METADATA, VERSION_EXACT)
LEGACY_VERSIONS = (VERSION, VERSION_METADATA)  # decoded with the float64 coding path
MAX_SIDE = 1 << 15  # refuse absurd sizes before allocating anything
MAX_STREAMS = 16
MAX_METADATA = 1 << 24  # bytes of metadata chunks after inflating (ICC profiles are KBs)
MAX_METADATA_CHUNKS = 64  # distinct tags in one file: 16 MB of empty records would take seconds to read
ICC = "ICC "  # metadata tag: the image's ICC colour profile, as in the source file

# (field, struct code) in file order. The one declaration of the header.
HEADER = (
    ("magic", "4s"),
    ("version", "B"),
    ("model", "16s"),  # registry name of the architecture, ASCII, NUL-padded
    ("weights_id", "8s"),  # first 8 bytes of the SHA-256 of the weights (see weights.weights_id)
    ("quality", "f"),  # float32, in [1, levels]
    ("width", "I"),
    ("height", "I"),
    ("mode", "B"),  # index into images.MODES: L, LA, RGB, RGBA
    ("param_crc", "I"),  # CRC32 of the coding-table indices, to detect decoder mismatch
    ("n_streams", "B"),
)
_HEADER = struct.Struct("<" + "".join(code for _, code in HEADER))


@dataclass
class NicFile:
    model: str
    weights_id: bytes
    quality: float
    width: int
    height: int
    mode: int
    param_crc: int
    streams: list[bytes]  # model streams, then the alpha stream (empty when there is no alpha)
    metadata: dict[str, bytes] = field(default_factory=dict)  # 4-character tag -> bytes
    version: int = VERSION_EXACT  # 3; or a legacy file (1 or 2: pack picks which from the metadata)


def pack(f: NicFile) -> bytes:
    """Serialise a NicFile to bytes."""
    if f.version == VERSION_EXACT:
        version, streams = VERSION_EXACT, [*f.streams, _pack_metadata(f.metadata) if f.metadata else b""]
    elif f.version in LEGACY_VERSIONS:
        version = VERSION_METADATA if f.metadata else VERSION
        streams = [*f.streams, _pack_metadata(f.metadata)] if f.metadata else f.streams
    else:
        raise ValueError(f"cannot write .nic version {f.version}")
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"{len(streams)} streams; a .nic file holds at most {MAX_STREAMS}")
    values = dict(
        magic=MAGIC, version=version, model=f.model.encode("ascii"), weights_id=f.weights_id,
        quality=f.quality, width=f.width, height=f.height, mode=f.mode, param_crc=f.param_crc,
        n_streams=len(streams),
    )
    if len(values["model"]) > 16:
        raise ValueError("model name longer than 16 bytes")
    head = _HEADER.pack(*(values[name] for name, _ in HEADER))
    head += struct.pack(f"<{len(streams)}I", *(len(s) for s in streams))
    payload = b"".join(streams)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def unpack(data: bytes) -> NicFile:
    """Parse and validate; raises CorruptFileError with a one-line reason on anything wrong."""
    data = file_bytes(data)  # bytes, bytearray or memoryview; anything else: NicodecError naming its type
    if len(data) == 0:
        raise CorruptFileError("empty file")
    if data[: len(MAGIC)] != MAGIC[: min(len(data), len(MAGIC))] or len(data) < len(MAGIC):
        raise CorruptFileError("not a .nic file (bad magic bytes)")
    if len(data) < _HEADER.size:
        raise CorruptFileError("truncated .nic file (header incomplete)")
    fields = dict(zip((name for name, _ in HEADER), _HEADER.unpack_from(data)))
    if fields["version"] not in VERSIONS:
        raise CorruptFileError(
            f"unsupported .nic format version {fields['version']} (this nicodec reads versions "
            f"{', '.join(map(str, VERSIONS[:-1]))} and {VERSIONS[-1]}; a newer nicodec may read it)")
    n = fields["n_streams"]
    if not (2 if fields["version"] == VERSION else 3) <= n <= MAX_STREAMS:  # model stream(s), alpha (, metadata)
        raise CorruptFileError("corrupt .nic file (bad stream count)")
    lengths_end = _HEADER.size + 4 * n
    if len(data) < lengths_end + 4:
        raise CorruptFileError("truncated .nic file (header incomplete)")
    lengths = struct.unpack_from(f"<{n}I", data, _HEADER.size)
    (crc,) = struct.unpack_from("<I", data, lengths_end)
    payload = data[lengths_end + 4 :]
    if sum(lengths) != len(payload):
        kind = "truncated" if sum(lengths) > len(payload) else "corrupt"
        raise CorruptFileError(f"{kind} .nic file (expected {sum(lengths)} payload bytes, found {len(payload)})")
    if zlib.crc32(payload, zlib.crc32(data[:lengths_end])) != crc:
        raise CorruptFileError("corrupt .nic file (checksum mismatch)")
    try:
        model = fields["model"].rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise CorruptFileError("corrupt .nic file (bad model name)") from None
    if not (1 <= fields["width"] <= MAX_SIDE and 1 <= fields["height"] <= MAX_SIDE):
        raise CorruptFileError("corrupt .nic file (bad image size)")
    if fields["mode"] > 3 or not (fields["quality"] == fields["quality"]):
        raise CorruptFileError("corrupt .nic file (bad mode or quality)")
    streams, offset = [], 0
    for length in lengths:
        streams.append(payload[offset : offset + length])
        offset += length
    metadata = {}
    if fields["version"] in (VERSION_METADATA, VERSION_EXACT):
        last = streams.pop()
        if last or fields["version"] == VERSION_METADATA:
            metadata = _unpack_metadata(last)
    return NicFile(
        model=model, weights_id=fields["weights_id"], quality=fields["quality"], width=fields["width"],
        height=fields["height"], mode=fields["mode"], param_crc=fields["param_crc"], streams=streams,
        metadata=metadata, version=fields["version"],
    )


def _pack_metadata(chunks: dict[str, bytes]) -> bytes:
    """Chunks as (4-byte ASCII tag, uint32 length, bytes) records, zlib-compressed as one."""
    records = []
    for tag, value in chunks.items():
        if len(tag) != 4 or not tag.isascii():
            raise ValueError(f"metadata tags are 4 ASCII characters, got {tag!r}")
        records.append(struct.pack("<4sI", tag.encode("ascii"), len(value)) + value)
    raw = b"".join(records)
    if len(raw) > MAX_METADATA:
        raise ValueError(f"metadata of {len(raw):,} bytes is over the {MAX_METADATA:,} a .nic file holds")
    return zlib.compress(raw, 9)


def _unpack_metadata(stream: bytes) -> dict[str, bytes]:
    """The chunks of a metadata stream; unknown tags are kept (and ignored by the decoder)."""
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(stream, MAX_METADATA + 1)
    except zlib.error:
        raw = None
    if raw is None or len(raw) > MAX_METADATA or not inflate.eof or inflate.unused_data:
        raise CorruptFileError("corrupt .nic file (metadata)")
    chunks, offset = {}, 0
    while offset < len(raw):
        if offset + 8 > len(raw):
            raise CorruptFileError("corrupt .nic file (metadata)")
        tag, length = struct.unpack_from("<4sI", raw, offset)
        if len(chunks) == MAX_METADATA_CHUNKS or tag.decode("latin-1") in chunks:  # a writer writes each tag once
            raise CorruptFileError("corrupt .nic file (metadata)")
        value = raw[offset + 8 : offset + 8 + length]
        if len(value) != length or not tag.isascii():
            raise CorruptFileError("corrupt .nic file (metadata)")
        chunks[tag.decode("ascii")] = value
        offset += 8 + length
    return chunks


def header_size(n_streams: int) -> int:
    """Bytes before the payload for a file with ``n_streams`` streams (the metadata stream included)."""
    return _HEADER.size + 4 * n_streams + 4
