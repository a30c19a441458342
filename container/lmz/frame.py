"""Frames: one per chunk. Header (method, lengths, CRC-32), payload, BLAKE2b-64 of the raw bytes."""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from ._io import Source
from .constants import (
    CODER_NONE, FRAME_CHECKSUM_SIZE, FRAME_HEADER_SIZE, FRAME_OVERHEAD, METHOD_LM, METHOD_NAMES,
    METHOD_STORED, max_payload,
)
from .errors import ChecksumError, FormatError, LimitError, UnsupportedError
from .header import StreamHeader

_LENGTHS = struct.Struct("<BII")  # method, raw length, payload length


def raw_checksum(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=FRAME_CHECKSUM_SIZE).digest()


@dataclass(frozen=True)
class Frame:
    """A frame as read from the input; lm payloads are not decoded here."""

    header: StreamHeader = field(repr=False)
    stream_index: int
    number: int  # frame number within its stream, from 0
    method: int
    raw_length: int
    payload: bytes = field(repr=False)
    checksum: bytes  # BLAKE2b-64 of the raw bytes, as stored
    offset: int  # input offset of the frame's method byte

    @property
    def size(self) -> int:
        return FRAME_OVERHEAD + len(self.payload)

    @property
    def payload_offset(self) -> int:
        return self.offset + FRAME_HEADER_SIZE

    @property
    def where(self) -> str:
        return f"stream {self.stream_index} frame {self.number} at offset {self.offset}"


def encode_frame_header(method: int, raw_length: int, payload_length: int) -> bytes:
    body = _LENGTHS.pack(method, raw_length, payload_length)
    return body + struct.pack("<I", zlib.crc32(body))


def check_frame(header: StreamHeader, method: int, raw_length: int, payload_length: int, where: str) -> None:
    """Raise unless a frame with these fields is valid within a stream with this header."""
    if method not in METHOD_NAMES:
        raise UnsupportedError(f"{where}: unknown method {method}")
    if raw_length < 1:
        raise FormatError(f"{where}: raw length is zero")
    if raw_length > header.chunk_size:
        raise LimitError(f"{where}: raw length {raw_length} exceeds chunk size {header.chunk_size}")
    if payload_length > max_payload(header.chunk_size):
        raise LimitError(f"{where}: payload length {payload_length} exceeds MAX_FRAME {max_payload(header.chunk_size)}")
    if method == METHOD_STORED and payload_length != raw_length:
        raise FormatError(f"{where}: stored payload length {payload_length} != raw length {raw_length}")
    if payload_length < 1:
        raise FormatError(f"{where}: payload is empty")
    if method == METHOD_LM and (header.coder_id == CODER_NONE or not any(header.model_sha256)):
        raise FormatError(f"{where}: lm frame in a stream without a coder or model hash")


def read_frame(src: Source, header: StreamHeader, stream_index: int, number: int, method: int) -> Frame:
    """Read the rest of a frame whose method byte (already consumed) is `method`."""
    offset = src.offset - 1
    where = f"stream {stream_index} frame {number} at offset {offset}"
    rest = src.read_exact(FRAME_HEADER_SIZE - 1, "frame header")
    body = bytes((method,)) + rest[:8]
    if zlib.crc32(body) != struct.unpack("<I", rest[8:])[0]:
        raise ChecksumError(f"{where}: frame header CRC-32 mismatch")
    _, raw_length, payload_length = _LENGTHS.unpack(body)
    check_frame(header, method, raw_length, payload_length, where)
    payload = src.read_exact(payload_length, f"payload of {where}")
    checksum = src.read_exact(FRAME_CHECKSUM_SIZE, f"checksum of {where}")
    return Frame(header, stream_index, number, method, raw_length, payload, checksum, offset)
