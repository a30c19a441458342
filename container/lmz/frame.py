"""Frames: one per chunk. Version 1: header (method, lengths, CRC-32), payload, BLAKE2b-64 of the raw bytes.
Version 2: method byte, varint lengths, payload, CRC-32 of the frame's raw offset, frame header and raw bytes.
Version 3: version 2's frame, then a CRC-32 of its stored bytes (header bytes and payload), so that damage to
what is stored is found by reading, before anything is decoded."""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from . import varint
from ._io import Source
from .constants import (
    CHECK_SIZE, CODER_NONE, FRAME_CHECKSUM_SIZE, FRAME_HEADER_SIZE, FRAME_OVERHEAD, FULL_CHUNK, METHOD_LM,
    METHOD_NAMES, METHOD_STORED, STORE_CHECK_SIZE, max_payload,
)
from .errors import ChecksumError, FormatError, LimitError, TruncatedError, UnsupportedError
from .header import StreamHeader

_LENGTHS = struct.Struct("<BII")  # version 1: method, raw length, payload length


def raw_checksum(raw: bytes) -> bytes:
    """Version 1's frame checksum: BLAKE2b-64 of the raw bytes."""
    return hashlib.blake2b(raw, digest_size=FRAME_CHECKSUM_SIZE).digest()


def frame_check(raw_start: int, head: bytes, raw: bytes) -> bytes:
    """Version 2's frame check: CRC-32 of the frame's raw offset in its stream (u64), its header bytes and its
    raw bytes. Covering the offset means a frame found through damaged lengths of earlier, unread frames
    fails its check instead of returning right bytes at a wrong place."""
    return struct.pack("<I", zlib.crc32(raw, zlib.crc32(head, zlib.crc32(struct.pack("<Q", raw_start)))))


def store_check(head: bytes, payload: bytes) -> bytes:
    """Version 3's store check: CRC-32 of the frame's header bytes and payload, as stored."""
    return struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))


def check_sizes(header: StreamHeader) -> int:
    """Bytes of checks after a version-2 or -3 frame's payload."""
    return CHECK_SIZE + (STORE_CHECK_SIZE if header.version >= 3 else 0)


@dataclass(frozen=True)
class Frame:
    """A frame as read from the input; lm payloads are not decoded here."""

    header: StreamHeader = field(repr=False)
    stream_index: int
    number: int  # frame number within its stream, from 0
    method: int
    raw_length: int
    payload: bytes = field(repr=False)
    checksum: bytes  # as stored: v1 BLAKE2b-64 of the raw bytes, v2 CRC-32 (see frame_check)
    offset: int  # input offset of the frame's method byte
    head: bytes = b""  # version 2: the frame's header bytes (method byte and lengths), covered by the check
    raw_start: int = 0  # version 2: offset of the frame's raw bytes in its stream's content, covered by the check

    @property
    def size(self) -> int:
        if self.header.version == 1:
            return FRAME_OVERHEAD + len(self.payload)
        return len(self.head) + len(self.payload) + check_sizes(self.header)

    @property
    def payload_offset(self) -> int:
        return self.offset + (FRAME_HEADER_SIZE if self.header.version == 1 else len(self.head))

    @property
    def where(self) -> str:
        return f"stream {self.stream_index} frame {self.number} at offset {self.offset}"

    def verify(self, raw: bytes) -> bytes:
        """raw if it has this frame's length and checksum, else FormatError / ChecksumError."""
        if len(raw) != self.raw_length:
            raise FormatError(f"{self.where}: decoded {len(raw)} bytes, raw length is {self.raw_length}")
        want = raw_checksum(raw) if self.header.version == 1 else frame_check(self.raw_start, self.head, raw)
        if want != self.checksum:
            raise ChecksumError(f"{self.where}: checksum mismatch")
        return raw


def encode_frame_header(method: int, raw_length: int, payload_length: int) -> bytes:
    """Version 1's 13-byte frame header."""
    body = _LENGTHS.pack(method, raw_length, payload_length)
    return body + struct.pack("<I", zlib.crc32(body))


def frame_head(header: StreamHeader, method: int, raw_length: int, payload_length: int) -> bytes:
    """Version 2's frame header: the method byte (FULL_CHUNK set when the raw length is the chunk size, which
    is then not written) and the lengths as varints."""
    if raw_length == header.chunk_size:
        return bytes((method | FULL_CHUNK,)) + varint.encode(payload_length)
    return bytes((method,)) + varint.encode(raw_length) + varint.encode(payload_length)


def payload_length_of(header: StreamHeader, raw_length: int, frame_size: int) -> int:
    """The payload length of a version-2 frame of this raw length and total size (-1 if none fits)."""
    fixed = check_sizes(header) + 1 + (0 if raw_length == header.chunk_size else len(varint.encode(raw_length)))
    for k in range(1, 11):
        p = frame_size - fixed - k
        if p >= 0 and len(varint.encode(p)) == k:
            return p
    return -1


def check_frame(header: StreamHeader, method: int, raw_length: int, payload_length: int, where: str) -> None:
    """Raise unless a frame with these fields is valid within a stream with this header."""
    if method not in METHOD_NAMES:
        raise UnsupportedError(f"{where}: unknown method {method}")
    if raw_length < 1:
        raise FormatError(f"{where}: raw length is zero")
    limit = header.chunk_size if method == METHOD_LM else header.frame_limit
    if raw_length > limit:
        raise LimitError(f"{where}: raw length {raw_length} exceeds the limit {limit}")
    if payload_length > max_payload(header.frame_limit):
        raise LimitError(f"{where}: payload length {payload_length} exceeds MAX_FRAME {max_payload(header.frame_limit)}")
    if method == METHOD_STORED and payload_length != raw_length:
        raise FormatError(f"{where}: stored payload length {payload_length} != raw length {raw_length}")
    if payload_length < 1:
        raise FormatError(f"{where}: payload is empty")
    if method == METHOD_LM and (header.coder_id == CODER_NONE or not any(header.model_sha256)):
        raise FormatError(f"{where}: lm frame in a stream without a coder or model hash")


def _lengths(src: Source, header: StreamHeader, method: int, where: str) -> tuple[int, int, int, bytes, int]:
    """(method, raw length, payload length, v2 frame-header bytes, checksum size) of a frame whose method byte
    (already consumed) is `method`; validated before anything of those sizes is read."""
    if header.version == 1:
        rest = src.read_exact(FRAME_HEADER_SIZE - 1, "frame header")
        body = bytes((method,)) + rest[:8]
        if zlib.crc32(body) != struct.unpack("<I", rest[8:])[0]:
            raise ChecksumError(f"{where}: frame header CRC-32 mismatch")
        _, raw_length, payload_length = _LENGTHS.unpack(body)
        head, check_size = b"", FRAME_CHECKSUM_SIZE
    else:
        base = method & ~FULL_CHUNK
        if base not in METHOD_NAMES:
            raise UnsupportedError(f"{where}: unknown method {method}")
        head = bytes((method,))
        if method & FULL_CHUNK:
            raw_length = header.chunk_size
        else:
            raw_length, raw = varint.read(src, f"raw length of {where}")
            head += raw
            if raw_length == header.chunk_size:
                raise FormatError(f"{where}: a full-chunk frame must be written with the full-chunk flag")
        payload_length, raw = varint.read(src, f"payload length of {where}")
        head += raw
        method, check_size = base, check_sizes(header)
    check_frame(header, method, raw_length, payload_length, where)
    return method, raw_length, payload_length, head, check_size


def _frame_lengths(src: Source, header: StreamHeader, method: int, offset: int,
                   where: str) -> tuple[int, int, int, bytes, int, int]:
    """_lengths and the frame's whole size; an input that ends inside the frame's header is named as the
    frame's truncation (one offset: the frame's)."""
    try:
        method, raw_length, payload_length, head, check_size = _lengths(src, header, method, where)
    except TruncatedError:
        raise TruncatedError(f"{where}: the input ends {_bytes(src.offset - offset)} into the frame, inside its "
                             "header") from None
    size = (FRAME_HEADER_SIZE if header.version == 1 else len(head)) + payload_length + check_size
    return method, raw_length, payload_length, head, check_size, size


def ends_after_frames(offset: int, stream_index: int, frames: int) -> TruncatedError:
    """The input ends where a frame or the end of a stream's frames should start."""
    return TruncatedError(f"offset {offset}: the input ends after {frames} frame{'' if frames == 1 else 's'} of "
                          f"stream {stream_index}; the rest of the stream (its index and footer) is missing")


def _cut(src: Source, offset: int, size: int, where: str) -> TruncatedError:
    return TruncatedError(f"{where}: the input ends {_bytes(src.offset - offset)} into the frame of {size} bytes")


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def read_frame(src: Source, header: StreamHeader, stream_index: int, number: int, method: int,
               raw_start: int) -> Frame:
    """Read the rest of a frame whose method byte (already consumed) is `method`; its raw bytes start at
    raw_start in the stream's content."""
    offset = src.offset - 1
    where = f"stream {stream_index} frame {number} at offset {offset}"
    method, raw_length, payload_length, head, check_size, size = _frame_lengths(src, header, method, offset, where)
    body = src.read_upto(payload_length + check_size)
    if len(body) != payload_length + check_size:
        raise _cut(src, offset, size, where)
    payload, checks = body[:payload_length], body[payload_length:]
    if header.version >= 3:
        if store_check(head, payload) != checks[CHECK_SIZE:]:
            raise ChecksumError(f"{where}: stored bytes damaged (the store check fails)")
        checks = checks[:CHECK_SIZE]
    return Frame(header, stream_index, number, method, raw_length, payload, checks, offset, head, raw_start)


def skip_frame(src: Source, header: StreamHeader, stream_index: int, number: int, method: int) -> tuple[int, int, int]:
    """(method, frame size, raw length) of a frame whose method byte was consumed; its payload and checksum are
    skipped unread (src must be seekable): for finding frames in streams without an index."""
    offset = src.offset - 1
    where = f"stream {stream_index} frame {number} at offset {offset}"
    method, raw_length, payload_length, head, check_size, size = _frame_lengths(src, header, method, offset, where)
    try:
        src.skip(payload_length + check_size, where)
    except TruncatedError:
        raise _cut(src, offset, size, where) from None
    return method, size, raw_length
