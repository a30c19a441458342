"""Per-stream listing (for `lmcodec -l`): reads the index, never decodes anything."""

from __future__ import annotations

from dataclasses import dataclass, field
TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from .constants import DEFAULT_LIMITS, METHOD_NAMES, Limits
from .header import StreamHeader
from .reader import Reader, StreamEnd


@dataclass(frozen=True)
class StreamSummary:
    stream_index: int
    model_id: str
    model_sha256: str  # hex
    chunk_size: int
    coder_id: int
    coder_version: int
    offset: int
    compressed_size: int  # bytes of the whole stream, header to footer
    raw_size: int
    frames: int
    frames_by_method: dict[str, int] = field(default_factory=dict)


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def summary(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> list[StreamSummary]:
    """One StreamSummary per stream. Seekable input: from the index at the end; else a full scan
    of the frames (which checks framing and the trailers, but not payloads)."""
    out: list[StreamSummary] = []
    if _seekable(fileobj):
        from .index import read_index

        idx = read_index(fileobj, limits)
        for s in idx.streams:
            counts: dict[str, int] = {}
            for e in idx.entries:
                if e.stream_index == s.stream_index:
                    counts[METHOD_NAMES[e.method]] = counts.get(METHOD_NAMES[e.method], 0) + 1
            out.append(_make(s.stream_index, s.header, s.offset, s.size, s.raw_size, s.frame_count, counts))
        return out
    for item in Reader(fileobj, limits).items():
        if isinstance(item, StreamEnd):
            counts = {}
            for e in item.trailer.entries:
                counts[METHOD_NAMES[e.method]] = counts.get(METHOD_NAMES[e.method], 0) + 1
            out.append(_make(item.stream_index, item.header, item.offset, item.size, item.trailer.total_raw,
                             len(item.trailer.entries), counts))
    return out


def _make(i: int, h: StreamHeader, offset: int, size: int, raw: int, frames: int,
          counts: dict[str, int]) -> StreamSummary:
    return StreamSummary(i, h.model_id, h.model_sha256.hex(), h.chunk_size, h.coder_id, h.coder_version,
                         offset, size, raw, frames, counts)
