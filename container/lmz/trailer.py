"""Stream trailers. Version 1: end marker, frame index, totals, content checksum, and a fixed-size footer.
Version 2: end marker and frame count; streams of INDEX_MIN_FRAMES frames or more add an index and a footer."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from . import varint
from ._io import Source
from .constants import (
    CONTENT_CHECKSUM_SIZE, END_OF_FRAMES, FOOTER2_MAGIC, FOOTER2_SIZE, FOOTER_MAGIC, FOOTER_SIZE, INDEX_ENTRY_SIZE,
    METHOD_NAMES, TRAILER_FIXED_SIZE, Limits,
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
    entries: tuple[TrailerEntry, ...]  # the index: empty in a version-2 stream without one
    total_raw: int  # version 1 (version 2: the sum of the index's raw sizes, 0 without an index)
    content_checksum: bytes  # version 1: BLAKE2b-128 of the stream's content; version 2: b""
    frame_count: int = -1  # -1: len(entries)
    size: int = 0  # bytes of the trailer, footer included
    stream_size: int = 0  # from the footer (version 2 without an index: 0)

    @property
    def count(self) -> int:
        return len(self.entries) if self.frame_count < 0 else self.frame_count


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
    return Trailer(entries, total_raw, tail[8:8 + CONTENT_CHECKSUM_SIZE], -1,
                   TRAILER_FIXED_SIZE + INDEX_ENTRY_SIZE * count + FOOTER_SIZE)


def encode_trailer2(entries: list[TrailerEntry], chunk_size: int, stream_size: int, indexed: bool) -> bytes:
    """A version-2 trailer; stream_size is the size of the stream before the trailer."""
    body = bytearray((END_OF_FRAMES,)) + varint.encode(len(entries) << 1 | indexed)
    if not indexed:
        return bytes(body)
    for e in entries:
        body += varint.encode(e.frame_size)
        body += varint.encode((0 if e.raw_size == chunk_size else e.raw_size) << 2 | e.method)
    size = len(body) + FOOTER2_SIZE
    body += struct.pack("<IQ", size, stream_size + size)
    return bytes(body) + struct.pack("<I", zlib.crc32(body)) + FOOTER2_MAGIC


def read_trailer2(src: Source, limits: Limits, chunk_size: int, expected_count: int | None, where: str) -> Trailer:
    """Parse a version-2 trailer after its END_OF_FRAMES byte (already consumed). The frame count is checked
    against expected_count (when known) before any index entry is read."""
    start = src.offset - 1
    word, raw_word = varint.read(src, f"trailer of {where}")
    count, indexed = word >> 1, word & 1
    if count > limits.max_frames:
        raise LimitError(f"offset {start}: trailer of {where} lists {count} frames, limit {limits.max_frames}")
    if expected_count is not None and count != expected_count:
        raise FormatError(f"offset {start}: trailer of {where} lists {count} frames, expected {expected_count}")
    if not indexed:
        return Trailer((), 0, b"", count, src.offset - start)
    body = bytearray((END_OF_FRAMES,)) + raw_word
    entries = []
    for i in range(count):
        size, raw = varint.read(src, f"index of {where}")
        word, raw2 = varint.read(src, f"index of {where}")
        body += raw + raw2
        method = word & 3
        if method not in METHOD_NAMES:
            raise FormatError(f"offset {start}: index entry {i} of {where} names method {method}")
        entries.append(TrailerEntry(method, size, (word >> 2) or chunk_size))
    tail = src.read_exact(FOOTER2_SIZE, f"footer of {where}")
    body += tail[:12]
    if zlib.crc32(body) != struct.unpack("<I", tail[12:16])[0]:
        raise ChecksumError(f"offset {start}: trailer CRC-32 mismatch in {where}")
    if tail[16:] != FOOTER2_MAGIC:
        raise FormatError(f"offset {src.offset - 4}: bad footer magic {tail[16:].hex()} in {where}")
    size, stream_size = struct.unpack("<IQ", tail[:12])
    if size != src.offset - start:
        raise FormatError(f"offset {start}: trailer of {where} says it is {size} bytes, it is {src.offset - start}")
    return Trailer(tuple(entries), sum(e.raw_size for e in entries), b"", count, size, stream_size)


def parse_footer2(data: bytes, offset: int) -> tuple[int, int]:
    """(trailer size, stream size) from the FOOTER2_SIZE bytes at offset (the trailer CRC is checked later)."""
    if data[-4:] != FOOTER2_MAGIC:
        raise FormatError(f"offset {offset}: bad footer magic {data[-4:].hex()}")
    return struct.unpack("<IQ", data[:12])


def parse_footer(data: bytes, offset: int) -> tuple[int, int]:
    """Version 1: (trailer size, stream size) from the FOOTER_SIZE bytes at offset."""
    if len(data) != FOOTER_SIZE:
        raise FormatError(f"offset {offset}: footer needs {FOOTER_SIZE} bytes")
    if data[-4:] != FOOTER_MAGIC:
        raise FormatError(f"offset {offset}: bad footer magic {data[-4:].hex()}")
    if zlib.crc32(data[:16]) != struct.unpack("<I", data[16:20])[0]:
        raise ChecksumError(f"offset {offset}: footer CRC-32 mismatch")
    return _FOOTER.unpack(data[:16])
