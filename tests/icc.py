"""A hand-written ICC profile for tests: Pillow can only create sRGB, LAB and XYZ ones."""

from __future__ import annotations

import struct

ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))  # D50-adapted colorants


def icc_profile(colorants=ADOBE_RGB, gamma: float = 2.2, gray: bool = False) -> bytes:
    """A minimal ICC v2 display profile (matrix/TRC, or gray TRC) written from the spec."""

    def xyz(values) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    text = b"nicodec test profile\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"cprt", b"text\0\0\0\0none\0\0\0\0")]
    if gray:
        tags.append((b"kTRC", curve))
    else:
        tags += [(b"rXYZ", xyz(colorants[0])), (b"gXYZ", xyz(colorants[1])), (b"bXYZ", xyz(colorants[2]))]
        tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, b"mntr", b"GRAY" if gray else b"RGB ", b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4) + xyz((0.9642, 1.0, 0.8249))[8:]
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body
