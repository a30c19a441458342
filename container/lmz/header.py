"""Stream header: encode, validate, parse."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ._io import Source
from .constants import (
    DEFAULT_LIMITS, FLAGS_KNOWN, FORMAT_VERSION, HEADER_FIXED_SIZE, MAGIC, MAX_MODEL_ID,
    SUPPORTED_CODERS, Limits,
)
from .errors import ChecksumError, FormatError, LimitError, UnsupportedError

# magic, version, flags, coder id, coder version, chunk size, model sha256, model id length
_FIXED = struct.Struct("<4sBBBBQ32sB")
assert _FIXED.size == HEADER_FIXED_SIZE


@dataclass(frozen=True)
class StreamHeader:
    model_id: str
    model_sha256: bytes
    chunk_size: int
    coder_id: int
    coder_version: int
    flags: int = 0

    def encode(self) -> bytes:
        check_header(self, DEFAULT_LIMITS, 0)
        mid = self.model_id.encode("utf-8")
        body = _FIXED.pack(MAGIC, FORMAT_VERSION, self.flags, self.coder_id, self.coder_version,
                           self.chunk_size, self.model_sha256, len(mid)) + mid
        return body + struct.pack("<I", zlib.crc32(body))

    @property
    def size(self) -> int:
        return HEADER_FIXED_SIZE + len(self.model_id.encode("utf-8")) + 4


def check_header(h: StreamHeader, limits: Limits, offset: int) -> None:
    """Raise if h is not a valid, supported version-1 header."""
    where = f"offset {offset}: stream header"
    if not isinstance(h.model_sha256, (bytes, bytearray)) or len(h.model_sha256) != 32:
        raise FormatError(f"{where}: model SHA-256 must be 32 bytes")
    if not 0 <= h.flags <= 0xFF or h.flags & ~FLAGS_KNOWN:
        raise UnsupportedError(f"{where}: unknown flags 0x{h.flags:02x}")
    if h.coder_id not in SUPPORTED_CODERS:
        raise UnsupportedError(f"{where}: unknown coder id {h.coder_id}")
    if h.coder_version not in SUPPORTED_CODERS[h.coder_id]:
        raise UnsupportedError(f"{where}: unsupported version {h.coder_version} of coder {h.coder_id}")
    if len(h.model_id.encode("utf-8")) > MAX_MODEL_ID:
        raise FormatError(f"{where}: model id longer than {MAX_MODEL_ID} bytes")
    if h.chunk_size < 1:
        raise FormatError(f"{where}: chunk size must be at least 1")
    if h.chunk_size > limits.max_chunk:
        raise LimitError(f"{where}: chunk size {h.chunk_size} exceeds limit {limits.max_chunk}")


def read_header(src: Source, limits: Limits = DEFAULT_LIMITS, magic: bytes | None = None) -> StreamHeader:
    """Parse a header at src (its magic already consumed if given)."""
    start = src.offset - (len(magic) if magic is not None else 0)
    if magic is None:
        magic = src.read_exact(4, "stream header magic")
    if magic != MAGIC:
        raise FormatError(f"offset {start}: bad magic {magic.hex()}, not an lmz stream")
    version = src.read_exact(1, "stream header")
    if version[0] != FORMAT_VERSION:
        raise UnsupportedError(f"offset {start}: unsupported format version {version[0]}")
    rest = src.read_exact(HEADER_FIXED_SIZE - 5, "stream header")
    fixed = magic + version + rest
    _, _, flags, coder_id, coder_version, chunk, sha, mid_len = _FIXED.unpack(fixed)
    tail = src.read_exact(mid_len + 4, "stream header")
    body = fixed + tail[:-4]
    if zlib.crc32(body) != struct.unpack("<I", tail[-4:])[0]:
        raise ChecksumError(f"offset {start}: stream header CRC-32 mismatch")
    try:
        model_id = tail[:-4].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"offset {start}: stream header model id is not UTF-8") from None
    h = StreamHeader(model_id, bytes(sha), chunk, coder_id, coder_version, flags)
    check_header(h, limits, start)
    return h
