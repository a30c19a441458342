"""Stream header, versions 1 and 2: encode, validate, parse."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from . import varint
from ._io import Source
from .constants import (
    BULK_FRAME, CODER_NONE, DEFAULT_LIMITS, FLAGS_KNOWN, FORMAT_VERSION, FORMAT_VERSIONS, HEADER_FIXED_SIZE, MAGIC,
    MAX_CHUNK, MAX_MODEL_ID, MAX_PARAMS, MODEL_HASH_SIZE, SUPPORTED_CODERS, Limits,
)
from .errors import ChecksumError, FormatError, LimitError, UnsupportedError

# version 1: magic, version, flags, coder id, coder version, chunk size, model sha256, model id length
_FIXED = struct.Struct("<4sBBBBQ32sB")
assert _FIXED.size == HEADER_FIXED_SIZE


@dataclass(frozen=True)
class StreamHeader:
    """A stream's header. model_sha256 is the model's whole SHA-256 (32 bytes) in version 1 and its first 128
    bits in version 2, which names no model id (model_id is then ""; a model cache maps hashes to ids)."""

    model_id: str
    model_sha256: bytes
    chunk_size: int
    coder_id: int
    coder_version: int
    flags: int = 0
    version: int = FORMAT_VERSION
    params: bytes = b""  # the coder's parameters (versions 2 and 3)

    def encode(self) -> bytes:
        check_header(self, DEFAULT_LIMITS, 0)
        if self.version == 1:
            mid = self.model_id.encode("utf-8")
            body = _FIXED.pack(MAGIC, 1, self.flags, self.coder_id, self.coder_version, self.chunk_size,
                               self.model_sha256, len(mid)) + mid
        else:
            body = MAGIC + bytes((self.version, self.flags, self.coder_id, self.coder_version)) + \
                varint.encode(self.chunk_size)
            if self.coder_id != CODER_NONE:
                body += self.model_sha256 + varint.encode(len(self.params)) + self.params
        return body + struct.pack("<I", zlib.crc32(body))

    @property
    def size(self) -> int:
        return len(self.encode())

    @property
    def frame_limit(self) -> int:
        """The largest raw length of any frame: in version 1 the chunk size; in version 2 runs of stored/zstd
        data may share frames of up to BULK_FRAME bytes, while lm frames stay within the chunk size."""
        return self.chunk_size if self.version == 1 else min(max(self.chunk_size, BULK_FRAME), MAX_CHUNK)

    def names_model(self, sha256_hex: str) -> bool:
        """Whether this stream names the model with this (whole, hex) SHA-256."""
        return len(self.model_sha256) >= MODEL_HASH_SIZE and sha256_hex.startswith(self.model_sha256.hex())


def check_header(h: StreamHeader, limits: Limits, offset: int) -> None:
    """Raise if h is not a valid, supported header."""
    where = f"offset {offset}: stream header"
    if h.version not in FORMAT_VERSIONS:
        raise UnsupportedError(f"{where}: unsupported format version {h.version}")
    if not 0 <= h.flags <= 0xFF or h.flags & ~FLAGS_KNOWN:
        raise UnsupportedError(f"{where}: unknown flags 0x{h.flags:02x}")
    if h.coder_id not in SUPPORTED_CODERS:
        raise UnsupportedError(f"{where}: unknown coder id {h.coder_id}")
    if h.coder_version not in SUPPORTED_CODERS[h.coder_id]:
        raise UnsupportedError(f"{where}: unsupported version {h.coder_version} of coder {h.coder_id}")
    want = 32 if h.version == 1 else (0 if h.coder_id == CODER_NONE else MODEL_HASH_SIZE)
    if not isinstance(h.model_sha256, (bytes, bytearray)) or len(h.model_sha256) != want:
        raise FormatError(f"{where}: model hash must be {want} bytes")
    if len(h.model_id.encode("utf-8")) > MAX_MODEL_ID or (h.version >= 2 and h.model_id):
        raise FormatError(f"{where}: model id longer than {MAX_MODEL_ID} bytes, or given in version 2")
    if len(h.params) > MAX_PARAMS or (h.params and (h.version == 1 or h.coder_id == CODER_NONE)):
        raise FormatError(f"{where}: coder parameters longer than {MAX_PARAMS} bytes, or without a coder")
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
    if version[0] not in FORMAT_VERSIONS:
        raise UnsupportedError(f"offset {start}: unsupported format version {version[0]}")
    if version[0] == 1:
        return _read_v1(src, limits, start, magic + version)
    return _read_v2(src, limits, start, magic + version, version[0])


def _check_crc(src: Source, body: bytes, start: int) -> None:
    if zlib.crc32(body) != struct.unpack("<I", src.read_exact(4, "stream header"))[0]:
        raise ChecksumError(f"offset {start}: stream header CRC-32 mismatch")


def _read_v1(src: Source, limits: Limits, start: int, head: bytes) -> StreamHeader:
    fixed = head + src.read_exact(HEADER_FIXED_SIZE - 5, "stream header")
    _, _, flags, coder_id, coder_version, chunk, sha, mid_len = _FIXED.unpack(fixed)
    mid = src.read_exact(mid_len, "stream header")
    _check_crc(src, fixed + mid, start)
    try:
        model_id = mid.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"offset {start}: stream header model id is not UTF-8") from None
    h = StreamHeader(model_id, bytes(sha), chunk, coder_id, coder_version, flags, 1)
    check_header(h, limits, start)
    return h


def _read_v2(src: Source, limits: Limits, start: int, head: bytes, version: int) -> StreamHeader:
    """Versions 2 and 3 (whose headers are alike)."""
    fixed = src.read_exact(3, "stream header")
    flags, coder_id, coder_version = fixed
    chunk, chunk_raw = varint.read(src, "stream header chunk size")
    body = head + fixed + chunk_raw
    sha, params = b"", b""
    if coder_id != CODER_NONE:
        sha = src.read_exact(MODEL_HASH_SIZE, "stream header")
        n, n_raw = varint.read(src, "stream header")
        if n > MAX_PARAMS:
            raise FormatError(f"offset {start}: stream header: {n} bytes of coder parameters, limit {MAX_PARAMS}")
        params = src.read_exact(n, "stream header")
        body += sha + n_raw + params
    _check_crc(src, body, start)
    h = StreamHeader("", sha, chunk, coder_id, coder_version, flags, version, params)
    check_header(h, limits, start)
    return h
