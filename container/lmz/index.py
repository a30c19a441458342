"""Random access on seekable files: where every frame is, without decoding any.

Streams are found from the end when they end in a footer (version 1 always; version 2 when it carries an
index): footer -> trailer -> header, then the stream before it. The streams before the last one found so (all
of them, if the last stream has no footer) are found from the start instead, by reading each frame's header and
seeking over its payload."""

from __future__ import annotations

import bisect
import io
from collections.abc import Iterator
from dataclasses import dataclass
TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from ._io import Source
from .constants import (
    DEFAULT_LIMITS, END_OF_FRAMES, FOOTER2_MAGIC, FOOTER2_SIZE, FOOTER_MAGIC, FOOTER_SIZE, FRAME_OVERHEAD,
    HEADER_MIN_SIZE, INDEX_ENTRY_SIZE, MAGIC, TRAILER_FIXED_SIZE, Limits,
)
from .errors import FormatError, LimitError, LmzError, TruncatedError
from .frame import Frame, check_frame, ends_after_frames, payload_length_of, read_frame, skip_frame
from .header import StreamHeader, read_header
from .reader import LmDecoder, decode_frames
from .trailer import TrailerEntry, parse_footer, parse_footer2, read_trailer, read_trailer2


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
    raw_start: int = 0  # offset of the frame's content in its stream's content


@dataclass(frozen=True)
class StreamInfo:
    stream_index: int
    header: StreamHeader
    offset: int
    size: int
    frame_count: int
    raw_offset: int
    raw_size: int
    content_checksum: bytes  # version 1; b"" in version 2


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


# one stream found: (start, size, header, [(method, offset, frame size, raw size)], content checksum)
_Found = tuple[int, int, StreamHeader, list[tuple[int, int, int, int]], bytes]


def _read_at(f: BinaryIO, offset: int, n: int, what: str) -> bytes:
    f.seek(offset)
    return Source(f, offset).read_exact(n, what)


def _frames_from(header: StreamHeader, first: int, entries: tuple[TrailerEntry, ...], trailer_at: int,
                 where: str) -> list[tuple[int, int, int, int]]:
    frames, pos = [], first
    for i, e in enumerate(entries):
        payload = e.frame_size - FRAME_OVERHEAD if header.version == 1 else \
            payload_length_of(header, e.raw_size, e.frame_size)
        check_frame(header, e.method, e.raw_size, payload, f"index entry {i} of {where}")
        frames.append((e.method, pos, e.frame_size, e.raw_size))
        pos += e.frame_size
    if pos != trailer_at:
        raise FormatError(f"offset {trailer_at}: index of {where} does not add up to the stream")
    return frames


def _from_end(f: BinaryIO, end: int, limits: Limits) -> _Found | None:
    """The stream ending at `end` if it ends in a footer, else None."""
    if end < 4:
        return None
    tail = _read_at(f, end - 4, 4, "footer")
    where = f"stream ending at {end}"
    if tail == FOOTER_MAGIC and end >= FOOTER_SIZE:
        footer_at = end - FOOTER_SIZE
        trailer_len, stream_size = parse_footer(_read_at(f, footer_at, FOOTER_SIZE, "footer"), footer_at)
        count, extra = divmod(trailer_len - TRAILER_FIXED_SIZE, INDEX_ENTRY_SIZE)
        if stream_size > end or trailer_len < TRAILER_FIXED_SIZE or extra or \
                trailer_len + FOOTER_SIZE + HEADER_MIN_SIZE > stream_size:
            raise FormatError(f"offset {footer_at}: footer sizes are inconsistent")
        trailer_at = footer_at - trailer_len
        f.seek(trailer_at)
        src = Source(f, trailer_at)
        if src.read_exact(1, "trailer")[0] != END_OF_FRAMES:
            raise FormatError(f"offset {trailer_at}: no end-of-frames marker where the footer points")
        trailer = read_trailer(src, limits, count, where)
    elif tail == FOOTER2_MAGIC and end >= FOOTER2_SIZE:
        footer_at = end - FOOTER2_SIZE
        trailer_len, stream_size = parse_footer2(_read_at(f, footer_at, FOOTER2_SIZE, "footer"), footer_at)
        if stream_size > end or not FOOTER2_SIZE + 2 <= trailer_len < stream_size:
            raise FormatError(f"offset {footer_at}: footer sizes are inconsistent")
        trailer_at = end - trailer_len
    else:
        return None
    start = end - stream_size
    f.seek(start)
    src = Source(f, start)
    header = read_header(src, limits)
    if tail == FOOTER2_MAGIC:
        if header.version == 1:
            raise FormatError(f"offset {start}: a version-2 footer ends a version-1 stream")
        f.seek(trailer_at)
        tsrc = Source(f, trailer_at)
        if tsrc.read_exact(1, "trailer")[0] != END_OF_FRAMES:
            raise FormatError(f"offset {trailer_at}: no end-of-frames marker where the footer points")
        trailer = read_trailer2(tsrc, limits, header.chunk_size, None, where)
        if tsrc.offset != end or not trailer.entries:
            raise FormatError(f"offset {trailer_at}: trailer of {where} does not end where its footer does")
    elif header.version != 1:
        raise FormatError(f"offset {start}: a version-1 footer ends a version-{header.version} stream")
    frames = _frames_from(header, src.offset, trailer.entries, trailer_at, where)
    if header.version == 1 and sum(fr[3] for fr in frames) != trailer.total_raw:
        raise FormatError(f"offset {trailer_at}: index of {where} does not add up to the stream")
    return start, stream_size, header, frames, trailer.content_checksum


def _scan(f: BinaryIO, end: int, limits: Limits) -> list[_Found]:
    """The streams in [0, end), found from the start by reading frame headers."""
    found: list[_Found] = []
    f.seek(0)
    src = Source(f, 0)
    while src.offset < end:
        start = src.offset
        magic = src.read_upto(min(4, end - start))
        if magic != MAGIC:
            if len(magic) < 4 and MAGIC.startswith(magic):
                raise TruncatedError(f"offset {start}: input ends inside stream magic")
            what = "trailing garbage after a stream" if found else f"bad magic {magic.hex()}, not an lmz stream"
            raise FormatError(f"offset {start}: {what}")
        header = read_header(src, limits, magic)
        where = f"stream {len(found)}"
        frames: list[tuple[int, int, int, int]] = []
        while True:
            if src.offset >= end:
                raise ends_after_frames(src.offset, len(found), len(frames))
            at = src.offset
            method = src.read_exact(1, f"{where} frame {len(frames)}")[0]
            if method == END_OF_FRAMES:
                break
            if len(frames) >= limits.max_frames:
                raise LimitError(f"offset {at}: {where} exceeds {limits.max_frames} frames")
            m, size, raw = skip_frame(src, header, len(found), len(frames), method)
            frames.append((m, at, size, raw))
        if header.version == 1:
            trailer = read_trailer(src, limits, len(frames), where)
            src.read_exact(FOOTER_SIZE, f"footer of {where}")
        else:
            trailer = read_trailer2(src, limits, header.chunk_size, len(frames), where)
        if src.offset > end:
            raise FormatError(f"offset {start}: {where} runs past the stream that follows it")
        found.append((start, src.offset - start, header, frames, trailer.content_checksum))
    return found


def read_index(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> Index:
    """Where every frame of every stream is, in a seekable file. Payloads are not read."""
    end = fileobj.seek(0, io.SEEK_END)
    if end == 0:
        raise FormatError("offset 0: empty input, not an lmz stream")
    magic = _read_at(fileobj, 0, min(4, end), "stream header magic")
    if magic != MAGIC[: len(magic)]:
        raise FormatError(f"offset 0: bad magic {magic.hex()}, not an lmz stream")
    if end < 4:
        raise TruncatedError("offset 0: input ends inside stream magic")
    tail: list[_Found] = []
    while end > 0:
        one = _from_end(fileobj, end, limits)
        if one is None:
            break
        tail.append(one)
        end = one[0]
    found = (_scan(fileobj, end, limits) if end > 0 else []) + tail[::-1]
    streams: list[StreamInfo] = []
    entries: list[IndexEntry] = []
    raw_offset = 0
    for si, (start, size, header, frames, checksum) in enumerate(found):
        raw = sum(fr[3] for fr in frames)
        streams.append(StreamInfo(si, header, start, size, len(frames), raw_offset, raw, checksum))
        for n, (method, pos, fsize, rsize) in enumerate(frames):
            entries.append(IndexEntry(si, header, n, method, pos, fsize, raw_offset, rsize,
                                      raw_offset - streams[-1].raw_offset))
            raw_offset += rsize
    return Index(tuple(streams), tuple(entries))


def read_frame_at(fileobj: BinaryIO, entry: IndexEntry) -> Frame:
    """Read (not decode) the frame an index entry points at, checking it matches the entry."""
    fileobj.seek(entry.offset)
    src = Source(fileobj, entry.offset)
    method = src.read_exact(1, "frame")[0]
    frame = read_frame(src, entry.header, entry.stream_index, entry.number, method, entry.raw_start)
    if (frame.method, frame.size, frame.raw_length) != (entry.method, entry.frame_size, entry.raw_size):
        raise FormatError(f"{frame.where}: frame does not match its index entry")
    return frame


def check_stored(fileobj: BinaryIO, index: Index | None = None) -> Iterator[LmzError]:
    """Every frame of a seekable file read (not decoded), in order: for a version-3 stream its stored bytes are
    checked, for every stream its framing. Yields the error of each frame that fails; nothing needs a model.
    Version 1 and 2 frames have no store check: damage to their payloads is found by decoding them."""
    index = index or read_index(fileobj)
    for e in index.entries:
        try:
            read_frame_at(fileobj, e)
        except LmzError as err:
            yield err


def decode_entry(fileobj: BinaryIO, entry: IndexEntry, lm_decoder: LmDecoder | None = None) -> bytes:
    """Read, decode and verify the frame of one index entry."""
    return next(decode_frames([read_frame_at(fileobj, entry)], lm_decoder))


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
