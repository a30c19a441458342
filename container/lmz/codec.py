"""Stored and zstd payloads: encode, bounded decode and verification."""

from __future__ import annotations

import threading
from types import ModuleType

from .constants import DEFAULT_ZSTD_LEVEL, METHOD_LM, METHOD_STORED, METHOD_ZSTD
from .errors import FormatError, UnsupportedError
from .frame import Frame

_local = threading.local()  # zstd contexts are not thread-safe: one set per thread


def _zstd() -> ModuleType:
    import zstandard  # lazy: keeps `import lmz` cheap

    return zstandard


def zstd_compress(raw: bytes, level: int = DEFAULT_ZSTD_LEVEL) -> bytes:
    """One zstd frame with the content size, without zstd's own checksum; single-threaded."""
    cache = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = _zstd().ZstdCompressor(level=level, write_content_size=True,
                                                     write_checksum=False, threads=0)
    return cctx.compress(raw)


def zstd_decompress(payload: bytes, raw_length: int, where: str = "frame") -> bytes:
    """Decode exactly one zstd frame that declares content size raw_length; nothing may follow it.

    The declared size is checked before decoding, and zstd stops at the declared size, so output
    never exceeds raw_length (no decompression bombs)."""
    z = _zstd()
    try:
        declared = z.frame_content_size(payload)
    except z.ZstdError:
        raise FormatError(f"{where}: zstd payload has a bad frame header") from None
    if declared != raw_length:
        raise FormatError(f"{where}: zstd frame declares {declared} bytes, frame raw length is {raw_length}")
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = z.ZstdDecompressor(max_window_size=1 << 27)
    obj = dctx.decompressobj()
    try:
        raw = obj.decompress(payload)
    except z.ZstdError as e:
        raise FormatError(f"{where}: corrupt zstd payload ({str(e).splitlines()[0]})") from None
    if not obj.eof or obj.unused_data or len(raw) != raw_length:
        raise FormatError(f"{where}: zstd payload is not exactly one frame of {raw_length} bytes")
    return raw


def decode_frame(frame: Frame) -> bytes:
    """Decode and verify a stored or zstd frame. lm frames need lmcodec (see decode_stream)."""
    return frame.verify(decode_payload(frame))


def decode_payload(frame: Frame) -> bytes:
    """A stored or zstd frame's content, not yet verified against the frame's check (zstd's declared size and
    framing are checked); salvage places frames by that check."""
    if frame.method == METHOD_STORED:
        return frame.payload
    if frame.method == METHOD_ZSTD:
        return zstd_decompress(frame.payload, frame.raw_length, frame.where)
    if frame.method == METHOD_LM:
        raise UnsupportedError(f"{frame.where}: lm frame needs a language model decoder "
                               f"(model {frame.header.model_id or frame.header.model_sha256.hex()})")
    raise UnsupportedError(f"{frame.where}: unknown method {frame.method}")
