"""lmz: the torch-free container of lmcodec (.lmz files). Format: spec/lmz-format.md."""

from .codec import decode_frame, zstd_compress, zstd_decompress
from .constants import (
    BULK_FRAME, CODER_LMCODEC, CODER_NONE, DEFAULT_LIMITS, DEFAULT_ZSTD_LEVEL, FORMAT_VERSION, FORMAT_VERSIONS,
    INDEX_MIN_FRAMES, MAGIC, MAX_CHUNK, MAX_FRAMES, METHOD_LM, METHOD_NAMES, METHOD_STORED, METHOD_ZSTD,
    MODEL_HASH_SIZE, SUPPORTED_CODERS, Limits, max_payload,
)
from .errors import ChecksumError, FormatError, LimitError, LmzError, TruncatedError, UnsupportedError
from .frame import Frame, frame_check, raw_checksum, store_check
from .header import StreamHeader
from .index import Index, IndexEntry, StreamInfo, check_stored, decode_entry, read_frame_at, read_index, read_range
from .reader import (ContentCheck, LmDecoder, Reader, StreamEnd, decode_frames, decode_items, decode_stream,
                     decompress_bytes)
from .salvage import Damage, salvage
from .summary import StreamSummary, summary
from .trailer import Trailer, TrailerEntry
from .writer import Writer, compress_bytes

__all__ = [
    "BULK_FRAME", "CODER_LMCODEC", "CODER_NONE", "DEFAULT_LIMITS", "DEFAULT_ZSTD_LEVEL", "FORMAT_VERSION",
    "FORMAT_VERSIONS", "INDEX_MIN_FRAMES", "MAGIC", "MAX_CHUNK", "MAX_FRAMES", "METHOD_LM", "METHOD_NAMES",
    "METHOD_STORED", "METHOD_ZSTD", "MODEL_HASH_SIZE", "SUPPORTED_CODERS", "Limits", "max_payload",
    "ChecksumError", "FormatError", "LimitError", "LmzError", "TruncatedError", "UnsupportedError",
    "Frame", "frame_check", "raw_checksum", "store_check", "StreamHeader", "Trailer", "TrailerEntry",
    "Writer", "compress_bytes", "Reader", "StreamEnd", "ContentCheck", "LmDecoder", "decode_frames", "decode_items",
    "decode_stream", "decompress_bytes", "decode_frame", "zstd_compress", "zstd_decompress",
    "Index", "IndexEntry", "StreamInfo", "check_stored", "read_index", "read_frame_at", "decode_entry", "read_range",
    "StreamSummary", "summary", "Damage", "salvage",
]
