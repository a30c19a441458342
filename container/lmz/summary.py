"""Per-stream listing (for `lmcodec -l`): reads the index, never decodes anything."""

from __future__ import annotations

from dataclasses import dataclass, field
TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from .constants import DEFAULT_LIMITS, METHOD_LM, METHOD_NAMES, Limits
from .header import StreamHeader
from .reader import Reader, StreamEnd


@dataclass(frozen=True)
class StreamSummary:
    stream_index: int
    model_id: str
    model_sha256: str  # hex
    chunk_size: int  # the chunking chosen: the largest raw length of a text (lm) frame
    coder_id: int
    coder_version: int
    offset: int
    compressed_size: int  # bytes of the whole stream, header to footer
    raw_size: int
    frames: int
    frames_by_method: dict[str, int] = field(default_factory=dict)
    version: int = 1  # container format version
    frame_limit: int = 0  # the largest raw length any frame may have (runs of binary data share one frame)
    coder_params: str = ""  # the coder's parameters, as words


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
            entries = [(e.method, e.raw_size) for e in idx.entries if e.stream_index == s.stream_index]
            out.append(_make(s.stream_index, s.header, s.offset, s.size, s.raw_size, entries))
        return out
    for item in Reader(fileobj, limits).items():
        if isinstance(item, StreamEnd):
            entries = [(e.method, e.raw_size) for e in item.entries]
            out.append(_make(item.stream_index, item.header, item.offset, item.size, item.raw_size, entries))
    return out


def _make(i: int, h: StreamHeader, offset: int, size: int, raw: int, entries: list[tuple[int, int]]) -> StreamSummary:
    counts: dict[str, int] = {}
    for method, _ in entries:
        counts[METHOD_NAMES[method]] = counts.get(METHOD_NAMES[method], 0) + 1
    # A version-1 header holds the largest frame, which is the bulk-frame limit when binary runs were coded;
    # the chunking chosen shows in the lm frames. A version-2 header holds the chunking itself.
    chunk = h.chunk_size if h.version != 1 else max((r for m, r in entries if m == METHOD_LM), default=h.chunk_size)
    return StreamSummary(i, h.model_id, h.model_sha256.hex(), chunk, h.coder_id, h.coder_version, offset, size, raw,
                         len(entries), counts, h.version, h.frame_limit, h.params.hex())
