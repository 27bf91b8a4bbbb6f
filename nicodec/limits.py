"""What a ``.nic`` file may make a decoder allocate, checked from its bytes before allocating.

A range coder codes a flat latent in almost no bytes (a flat 12-megapixel photo takes ~200;
constriction reads past the end of a stream as zeros), so a file's size cannot bound its pixel
count. As with Pillow's decompression-bomb guard, the decoder refuses a header declaring more
than ``max_pixels`` pixels before it allocates anything, and the transforms run in tiles, so
what it then allocates grows with the pixel count only (docs/format.md, "What a decoder
allocates"). Where bytes do bound what they expand to — zlib inflates at most ~1032 bytes per
byte — a header claiming more than its stream can hold is corruption, found before inflating
or decoding anything.
"""

from __future__ import annotations

import operator

import numpy as np

from .errors import CorruptFileError, NicodecError

MAX_PIXELS = 2 * 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS × 2: where Pillow refuses to open
ZLIB_MAX_RATIO = 1032  # deflate's largest expansion: a 258-byte match in 2 bits


def file_bytes(data) -> bytes:
    """The bytes of a ``.nic`` file as given (bytes, bytearray, memoryview); anything else is
    a user error named by its type, not a TypeError from deep inside the parser."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise NicodecError(f"expected the bytes of a .nic file (bytes, bytearray or memoryview), got {type(data).__name__}")


def pixel_limit(max_pixels) -> int | None:
    """A ``max_pixels`` option checked: a whole number > 0, or None for no limit."""
    if max_pixels is None:
        return None
    try:
        limit = operator.index(max_pixels)
    except TypeError:
        limit = 0
    if isinstance(max_pixels, (bool, np.bool_)) or limit <= 0:
        raise NicodecError(f"max_pixels must be a whole number of pixels > 0 (or None: no limit), got {max_pixels!r}")
    return limit


def check_pixels(width: int, height: int, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse an image larger than ``max_pixels``, saying how to lift the limit."""
    limit = pixel_limit(max_pixels)
    if limit is not None and width * height > limit:
        raise NicodecError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,} "
            f"(a guard against decompression bombs): pass max_pixels={width * height} "
            f"(nicodec decompress --max-pixels {width * height}) if you trust the file")


def inflated_at_most(compressed: int) -> int:
    """The most bytes zlib can inflate ``compressed`` bytes to (a little above the true bound)."""
    return ZLIB_MAX_RATIO * compressed + ZLIB_MAX_RATIO


def check_alpha_stream(width: int, height: int, stream: bytes, has_alpha: bool) -> None:
    """The alpha stream must be able to hold a width × height plane (or be empty without alpha)."""
    if has_alpha and width * height > inflated_at_most(len(stream)):
        raise CorruptFileError(f"corrupt .nic file (a {len(stream):,}-byte alpha stream cannot hold "
                               f"{width}x{height} alpha values)")


def check_decodable(nic, max_pixels: int | None = MAX_PIXELS) -> None:
    """Everything about a parsed file (``container.NicFile``) that can be refused before the
    decoder allocates for it: its pixel count, and streams too short for what it declares."""
    check_pixels(nic.width, nic.height, max_pixels)
    check_alpha_stream(nic.width, nic.height, nic.streams[-1], nic.mode in _ALPHA_MODES)


_ALPHA_MODES = (1, 3)  # header mode codes of LA and RGBA (images.MODES)
