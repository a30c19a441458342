"""Unsigned LEB128 integers (version-2 headers, frames and trailers): 7 bits a byte, low bits first, the high
bit set on every byte but the last. Only the shortest encoding is valid, so every value has one spelling."""
from __future__ import annotations

import io

from ._io import Source
from .constants import MAX_VARINT
from .errors import FormatError


def encode(n: int) -> bytes:
    if n < 0 or n >= 1 << 64:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read(src: Source, what: str) -> tuple[int, bytes]:
    """(value, its bytes) read from src; TruncatedError at end of input, FormatError if over-long or not shortest."""
    start = src.offset
    raw = bytearray()
    n = shift = 0
    while True:
        b = src.read_exact(1, what)[0]
        raw.append(b)
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if len(raw) == MAX_VARINT:
            raise FormatError(f"offset {start}: {what}: integer longer than {MAX_VARINT} bytes")
    if (len(raw) > 1 and raw[-1] == 0) or n >= 1 << 64:
        raise FormatError(f"offset {start}: {what}: integer not in its shortest form")
    return n, bytes(raw)


def decode(data: bytes, what: str) -> int:
    """The one integer that data spells, exactly (FormatError for anything else, TruncatedError if it ends
    inside the integer)."""
    src = Source(io.BytesIO(data))
    n, raw = read(src, what)
    if len(raw) != len(data):
        raise FormatError(f"offset {len(raw)}: {what}: {len(data) - len(raw)} bytes after the integer")
    return n
