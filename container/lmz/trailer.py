"""Stream trailer (end marker, frame index, totals, content checksum) and fixed-size footer."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ._io import Source
from .constants import (
    CONTENT_CHECKSUM_SIZE, END_OF_FRAMES, FOOTER_MAGIC, FOOTER_SIZE, INDEX_ENTRY_SIZE, TRAILER_FIXED_SIZE,
    Limits,
)
from .errors import ChecksumError, FormatError, LimitError

_ENTRY = struct.Struct("<BII")  # method, frame size, raw size
_FOOTER = struct.Struct("<QQ")  # trailer size, stream size


@dataclass(frozen=True)
class TrailerEntry:
    method: int
    frame_size: int  # bytes of the whole frame: header, payload, checksum
    raw_size: int


@dataclass(frozen=True)
class Trailer:
    entries: tuple[TrailerEntry, ...]
    total_raw: int
    content_checksum: bytes  # BLAKE2b-128 of the stream's content

    @property
    def size(self) -> int:
        return TRAILER_FIXED_SIZE + INDEX_ENTRY_SIZE * len(self.entries)


def trailer_size(frame_count: int) -> int:
    return TRAILER_FIXED_SIZE + INDEX_ENTRY_SIZE * frame_count


def encode_trailer(t: Trailer) -> bytes:
    body = bytearray((END_OF_FRAMES,))
    body += struct.pack("<Q", len(t.entries))
    for e in t.entries:
        body += _ENTRY.pack(e.method, e.frame_size, e.raw_size)
    body += struct.pack("<Q", t.total_raw) + t.content_checksum
    body += struct.pack("<I", zlib.crc32(body))
    return bytes(body)


def encode_footer(trailer_len: int, stream_size: int) -> bytes:
    body = _FOOTER.pack(trailer_len, stream_size)
    return body + struct.pack("<I", zlib.crc32(body)) + FOOTER_MAGIC


def read_trailer(src: Source, limits: Limits, expected_count: int | None, where: str) -> Trailer:
    """Parse a trailer after its END_OF_FRAMES byte (already consumed).

    expected_count, when known (streaming: frames seen; seekable: from the footer), is checked
    before the entries are read, so a corrupt count never drives a read."""
    start = src.offset - 1
    raw_count = src.read_exact(8, f"trailer of {where}")
    (count,) = struct.unpack("<Q", raw_count)
    if count > limits.max_frames:
        raise LimitError(f"offset {start}: trailer of {where} lists {count} frames, limit {limits.max_frames}")
    if expected_count is not None and count != expected_count:
        raise FormatError(f"offset {start}: trailer of {where} lists {count} frames, expected {expected_count}")
    table = src.read_exact(INDEX_ENTRY_SIZE * count, f"trailer index of {where}")
    tail = src.read_exact(8 + CONTENT_CHECKSUM_SIZE + 4, f"trailer of {where}")
    body = bytes((END_OF_FRAMES,)) + raw_count + table + tail[:-4]
    if zlib.crc32(body) != struct.unpack("<I", tail[-4:])[0]:
        raise ChecksumError(f"offset {start}: trailer CRC-32 mismatch in {where}")
    entries = tuple(TrailerEntry(*e) for e in _ENTRY.iter_unpack(table))
    (total_raw,) = struct.unpack("<Q", tail[:8])
    return Trailer(entries, total_raw, tail[8:8 + CONTENT_CHECKSUM_SIZE])


def parse_footer(data: bytes, offset: int) -> tuple[int, int]:
    """(trailer size, stream size) from the FOOTER_SIZE bytes at offset."""
    if len(data) != FOOTER_SIZE:
        raise FormatError(f"offset {offset}: footer needs {FOOTER_SIZE} bytes")
    if data[-4:] != FOOTER_MAGIC:
        raise FormatError(f"offset {offset}: bad footer magic {data[-4:].hex()}")
    if zlib.crc32(data[:16]) != struct.unpack("<I", data[16:20])[0]:
        raise ChecksumError(f"offset {offset}: footer CRC-32 mismatch")
    return _FOOTER.unpack(data[:16])
