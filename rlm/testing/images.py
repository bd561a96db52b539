"""Real PNG and JPEG files for tests and demos, made with the standard library (no image library).

``png`` writes a true-colour PNG of one colour, a stripe pattern or noise; ``jpeg``
writes a baseline grey JPEG (every 8x8 block the same mid grey), as small as a
JPEG can be. Both decode in any viewer or browser, and their headers say their size,
which is all rlm reads of an image.
"""

from __future__ import annotations

import math
import random
import struct
import zlib

from rlm.lm.images import PNG_SIGNATURE

__all__ = ["jpeg", "png"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int = 64, height: int = 48, rgb: tuple[int, int, int] = (200, 60, 40), *,
        stripes: int = 0, noise: int | None = None) -> bytes:
    """A ``width`` x ``height`` PNG: one colour, ``stripes`` vertical bands of it, or seeded ``noise`` (large)."""
    pixel = bytes(rgb)
    if stripes:
        band = max(1, width // (2 * stripes))
        row = b"".join(pixel if (x // band) % 2 == 0 else b"\xff\xff\xff" for x in range(width))
    else:
        row = pixel * width
    packer = zlib.compressobj(6)
    rows = random.Random(noise) if noise is not None else None
    body = []
    for _ in range(height):
        data = rows.randbytes(3 * width) if rows is not None else row
        body.append(packer.compress(b"\x00" + data))
    body.append(packer.flush())
    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", head) + _chunk(b"IDAT", b"".join(body)) + _chunk(b"IEND", b"")


def jpeg(width: int = 64, height: int = 48) -> bytes:
    """A ``width`` x ``height`` baseline grey JPEG: one Huffman code each for "no change" and "end of block"."""
    segments = [
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
        b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64,
        b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00",
        b"\xff\xc4" + struct.pack(">H", 20) + b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00",
        b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00",
        b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00",
    ]
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    bits = 2 * blocks  # per block: DC difference 0 (code "0"), then end of block (code "0")
    scan = bytearray(bits // 8)
    if bits % 8:
        scan.append((1 << (8 - bits % 8)) - 1)  # pad the last byte with ones
    return b"\xff\xd8" + b"".join(segments) + bytes(scan) + b"\xff\xd9"
