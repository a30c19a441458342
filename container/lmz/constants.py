"""Format constants and decoder limits (see spec/lmz-format.md)."""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"\x89LMZ"  # stream header magic
FOOTER_MAGIC = b"ZML\x89"  # last 4 bytes of every version-1 stream
FOOTER2_MAGIC = b"ZML\x8a"  # last 4 bytes of a version-2 or -3 stream that carries an index
FORMAT_VERSION = 3  # what the writer writes
FORMAT_VERSIONS = frozenset({1, 2, 3})  # what the reader reads

METHOD_STORED = 0
METHOD_ZSTD = 1
METHOD_LM = 2
END_OF_FRAMES = 0xFF  # takes the place of a frame's method byte
METHOD_NAMES = {METHOD_STORED: "stored", METHOD_ZSTD: "zstd", METHOD_LM: "lm"}

CODER_NONE = 0
CODER_LMCODEC = 1  # "lmcodec range coder", spec/coder.md
# coder id -> coder versions this container accepts (whether an lm decoder can decode them is its business)
SUPPORTED_CODERS: dict[int, frozenset[int]] = {CODER_NONE: frozenset({0}), CODER_LMCODEC: frozenset({1, 2, 3})}
FLAGS_KNOWN = 0  # no flag bits are defined in versions 1 and 2

MAX_MODEL_ID = 64  # bytes of UTF-8
MAX_CHUNK = 64 * 1024 * 1024
MAX_FRAMES = 2**32

HEADER_FIXED_SIZE = 49  # magic .. model id length
HEADER_MIN_SIZE = HEADER_FIXED_SIZE + 4
FRAME_HEADER_SIZE = 13  # method u8, raw u32, payload u32, crc32 u32
FRAME_CHECKSUM_SIZE = 8  # BLAKE2b-64 of the raw bytes
FRAME_OVERHEAD = FRAME_HEADER_SIZE + FRAME_CHECKSUM_SIZE
INDEX_ENTRY_SIZE = 9  # method u8, frame size u32, raw size u32
TRAILER_FIXED_SIZE = 1 + 8 + 8 + 16 + 4  # marker, count, total raw, content checksum, crc32
FOOTER_SIZE = 24  # trailer size u64, stream size u64, crc32 u32, magic
CONTENT_CHECKSUM_SIZE = 16

# version 2 (spec/lmz-format.md, part B)
MODEL_HASH_SIZE = 16  # the model is named by the first 128 bits of its SHA-256
MAX_PARAMS = 255  # bytes of coder parameters in a header
BULK_FRAME = 1 << 20  # stored/zstd frames may hold up to max(chunk size, this) raw bytes
FULL_CHUNK = 0x80  # method-byte flag: the raw length is the chunk size and is not written
CHECK_SIZE = 4  # CRC-32 over a frame's position, header bytes and content (versions 2 and 3)
STORE_CHECK_SIZE = 4  # version 3: CRC-32 over a frame's stored bytes (header bytes and payload), after its check
INDEX_MIN_FRAMES = 64  # streams with fewer frames carry no index: a reader scans their frame headers
FOOTER2_SIZE = 20  # trailer size u32, stream size u64, crc32 u32, magic
MAX_VARINT = 10  # bytes of a LEB128 u64

# zstd level of bulk frames (and of the trial beside each lm frame): never larger than zstd -19 alone. Level 19
# moves at 2-4 MB/s on data that compresses (WAV, executables); data that level 1 cannot shrink is stored without
# trying it (Writer.write_chunk), so incompressible data stays fast. Measured on 2 cores (libzstd 1.5): level 9
# writes 4-10% more at 30-65 MB/s, which lmcodec's fastest presets choose.
DEFAULT_ZSTD_LEVEL = 19


def max_payload(chunk_size: int) -> int:
    """MAX_FRAME: the largest payload a decoder accepts for a stream with this chunk size."""
    return chunk_size + chunk_size // 8 + 1024


@dataclass(frozen=True)
class Limits:
    """Decoder limits, enforced before any allocation sized by the input."""

    max_chunk: int = MAX_CHUNK
    max_frames: int = MAX_FRAMES


DEFAULT_LIMITS = Limits()
