"""Random access on seekable files: the index is found from the end (footer -> trailer -> header)."""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from ._io import Source
from .codec import decode_frame
from .constants import (
    DEFAULT_LIMITS, END_OF_FRAMES, FOOTER_SIZE, FRAME_OVERHEAD, HEADER_MIN_SIZE, METHOD_LM,
    INDEX_ENTRY_SIZE, TRAILER_FIXED_SIZE, Limits,
)
from .errors import FormatError
from .frame import Frame, check_frame, read_frame
from .header import StreamHeader, read_header
from .reader import LmDecoder, _decode_lm_batch
from .trailer import parse_footer, read_trailer


@dataclass(frozen=True)
class IndexEntry:
    stream_index: int
    header: StreamHeader
    number: int  # frame number within the stream
    method: int
    offset: int  # file offset of the frame
    frame_size: int
    raw_offset: int  # offset of the frame's content in the whole decoded output
    raw_size: int


@dataclass(frozen=True)
class StreamInfo:
    stream_index: int
    header: StreamHeader
    offset: int
    size: int
    frame_count: int
    raw_offset: int
    raw_size: int
    content_checksum: bytes


@dataclass(frozen=True)
class Index:
    streams: tuple[StreamInfo, ...]
    entries: tuple[IndexEntry, ...]

    @property
    def raw_size(self) -> int:
        return sum(s.raw_size for s in self.streams)

    def find(self, raw_offset: int) -> int:
        """Position in entries of the frame holding decoded byte raw_offset."""
        if not 0 <= raw_offset < self.raw_size:
            raise IndexError(f"raw offset {raw_offset} outside 0..{self.raw_size}")
        starts = [e.raw_offset for e in self.entries]
        return bisect.bisect_right(starts, raw_offset) - 1


def _read_at(f: BinaryIO, offset: int, n: int, what: str) -> bytes:
    f.seek(offset)
    return Source(f, offset).read_exact(n, what)


def read_index(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> Index:
    """Read every stream's index, walking back from the end of a seekable file. Frames are not read."""
    end = fileobj.seek(0, io.SEEK_END)
    if end == 0:
        raise FormatError("offset 0: empty input, not an lmz stream")
    found: list[tuple[int, int, StreamHeader, list[tuple[int, int, int, int]], int, bytes]] = []
    while end > 0:
        if end < HEADER_MIN_SIZE + TRAILER_FIXED_SIZE + FOOTER_SIZE:
            raise FormatError(f"offset {end}: {end} bytes before this point are too few for a stream")
        footer_at = end - FOOTER_SIZE
        trailer_len, stream_size = parse_footer(_read_at(fileobj, footer_at, FOOTER_SIZE, "footer"), footer_at)
        start = end - stream_size
        count, extra = divmod(trailer_len - TRAILER_FIXED_SIZE, INDEX_ENTRY_SIZE)
        if stream_size > end or trailer_len < TRAILER_FIXED_SIZE or extra or \
                trailer_len + FOOTER_SIZE + HEADER_MIN_SIZE > stream_size:
            raise FormatError(f"offset {footer_at}: footer sizes are inconsistent")
        trailer_at = footer_at - trailer_len
        where = f"stream ending at {end}"
        fileobj.seek(trailer_at)
        src = Source(fileobj, trailer_at)
        if src.read_exact(1, "trailer")[0] != END_OF_FRAMES:
            raise FormatError(f"offset {trailer_at}: no end-of-frames marker where the footer points")
        trailer = read_trailer(src, limits, count, where)
        fileobj.seek(start)
        src = Source(fileobj, start)
        header = read_header(src, limits)
        frames, pos, raw = [], src.offset, 0
        for i, e in enumerate(trailer.entries):
            check_frame(header, e.method, e.raw_size, e.frame_size - FRAME_OVERHEAD, f"index entry {i} of {where}")
            frames.append((e.method, pos, e.frame_size, e.raw_size))
            pos += e.frame_size
            raw += e.raw_size
        if pos != trailer_at or raw != trailer.total_raw:
            raise FormatError(f"offset {trailer_at}: index of {where} does not add up to the stream")
        found.append((start, stream_size, header, frames, raw, trailer.content_checksum))
        end = start
    streams: list[StreamInfo] = []
    entries: list[IndexEntry] = []
    raw_offset = 0
    for si, (start, size, header, frames, raw, checksum) in enumerate(reversed(found)):
        streams.append(StreamInfo(si, header, start, size, len(frames), raw_offset, raw, checksum))
        for n, (method, pos, fsize, rsize) in enumerate(frames):
            entries.append(IndexEntry(si, header, n, method, pos, fsize, raw_offset, rsize))
            raw_offset += rsize
    return Index(tuple(streams), tuple(entries))


def read_frame_at(fileobj: BinaryIO, entry: IndexEntry) -> Frame:
    """Read (not decode) the frame an index entry points at, checking it matches the entry."""
    fileobj.seek(entry.offset)
    src = Source(fileobj, entry.offset)
    method = src.read_exact(1, "frame")[0]
    frame = read_frame(src, entry.header, entry.stream_index, entry.number, method)
    if (frame.method, frame.size, frame.raw_length) != (entry.method, entry.frame_size, entry.raw_size):
        raise FormatError(f"{frame.where}: frame does not match its index entry")
    return frame


def decode_entry(fileobj: BinaryIO, entry: IndexEntry, lm_decoder: LmDecoder | None = None) -> bytes:
    """Read, decode and verify the frame of one index entry."""
    frame = read_frame_at(fileobj, entry)
    if frame.method == METHOD_LM:
        return next(iter(_decode_lm_batch([frame], lm_decoder)))
    return decode_frame(frame)


def read_range(fileobj: BinaryIO, index: Index, start: int, length: int,
               lm_decoder: LmDecoder | None = None) -> bytes:
    """Decoded bytes [start, start+length), decoding only the frames that hold them."""
    end = min(start + length, index.raw_size)
    if start < 0 or length < 0:
        raise ValueError("negative start or length")
    if start >= end:
        return b""
    parts = []
    for entry in index.entries[index.find(start):]:
        if entry.raw_offset >= end:
            break
        raw = decode_entry(fileobj, entry, lm_decoder)
        parts.append(raw[max(0, start - entry.raw_offset):end - entry.raw_offset])
    return b"".join(parts)
