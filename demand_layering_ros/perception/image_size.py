# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Width and height of a JPEG or PNG from its header, without decoding it.

A few megabytes of JPEG can decode to gigabytes; reading the size first lets a node refuse an
image before a single pixel is allocated.
"""

from __future__ import annotations

import struct

from .errors import ImageError

# the frame header follows the APPn segments (EXIF with a thumbnail stays below 64 KiB each)
HEADER_BYTES = 1 << 20
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# markers without a length field
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def compressed_size(data: bytes | memoryview) -> tuple[str, int, int]:
    """(format, width, height) of a JPEG or PNG; ImageError for anything else or a bad header."""
    buf = bytes(data[:HEADER_BYTES])
    if buf.startswith(PNG_SIGNATURE):
        return ('png', *_png_size(buf))
    if buf.startswith(b'\xff\xd8'):
        return ('jpeg', *_jpeg_size(buf))
    raise ImageError('compressed image is neither JPEG nor PNG (the formats image_transport '
                     'publishes); its size cannot be checked before decoding')


def _png_size(buf: bytes) -> tuple[int, int]:
    if len(buf) < 24 or buf[12:16] != b'IHDR':
        raise ImageError('PNG header is truncated or has no IHDR chunk first')
    width, height = struct.unpack('>II', buf[16:24])
    return width, height


def _jpeg_size(buf: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:
            raise ImageError(f'JPEG header is corrupt (no marker at byte {i})')
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack('>H', buf[i + 2:i + 4])
        if marker in _SOF:
            if i + 9 > len(buf):
                break
            height, width = struct.unpack('>HH', buf[i + 5:i + 9])
            if height == 0 or width == 0:
                raise ImageError('JPEG declares its height later (DNL); refused')
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        i += 2 + length
    raise ImageError('JPEG header has no frame size (no SOF marker before the image data)')
