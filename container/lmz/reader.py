"""Incremental reader for pipes: frames one at a time, concatenated streams, trailer validation."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Iterator, Sequence

TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from ._io import Source
from .codec import decode_frame
from .constants import CONTENT_CHECKSUM_SIZE, DEFAULT_LIMITS, END_OF_FRAMES, FOOTER_SIZE, MAGIC, METHOD_LM, Limits
from .errors import ChecksumError, FormatError, LimitError, LmzError, TruncatedError, UnsupportedError
from .frame import Frame, ends_after_frames, read_frame
from .header import StreamHeader, read_header
from .trailer import Trailer, TrailerEntry, parse_footer, read_trailer, read_trailer2

LmDecoder = Callable[[StreamHeader, list[Frame]], Sequence["bytes | LmzError"]]
"""lm_decoder(header, frames) -> one decoded chunk per frame, in order, or in place of a frame that does not
decode, the LmzError that says why (the frames around it are still decoded)."""


@dataclass(frozen=True)
class StreamEnd:
    """Yielded by Reader.items() after a stream's trailer (and footer) have been validated."""

    header: StreamHeader
    stream_index: int
    offset: int  # input offset of the stream's magic
    size: int  # bytes of the whole stream
    trailer: Trailer
    entries: tuple[TrailerEntry, ...] = ()  # (method, frame size, raw length) of each frame, as read

    @property
    def raw_size(self) -> int:
        return sum(e.raw_size for e in self.entries)


class Reader:
    """Reads streams from fileobj front to back without seeking (a pipe is fine)."""

    def __init__(self, fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> None:
        self._src = Source(fileobj)
        self.limits = limits

    def items(self) -> Iterator[Frame | StreamEnd]:
        """Every frame, and a StreamEnd after each stream. Raises LmzError on bad input."""
        src = self._src
        magic = src.read_upto(4)
        if not magic:
            raise FormatError("offset 0: empty input, not an lmz stream")
        stream_index = 0
        while True:
            start = src.offset - len(magic)
            if len(magic) < 4 and MAGIC.startswith(magic):
                raise TruncatedError(f"offset {start}: input ends inside stream magic")
            if magic != MAGIC:
                if stream_index:
                    raise FormatError(f"offset {start}: trailing garbage after stream {stream_index - 1}")
                raise FormatError(f"offset {start}: bad magic {magic.hex()}, not an lmz stream")
            yield from self._stream(start, stream_index, magic)
            stream_index += 1
            magic = src.read_upto(4)
            if not magic:
                return

    def _stream(self, start: int, stream_index: int, magic: bytes) -> Iterator[Frame | StreamEnd]:
        src, limits = self._src, self.limits
        header = read_header(src, limits, magic)
        entries: list[TrailerEntry] = []
        raw_start = 0
        while True:
            first = src.read_upto(1)
            if not first:
                raise ends_after_frames(src.offset, stream_index, len(entries))
            method = first[0]
            if method == END_OF_FRAMES:
                break
            if len(entries) >= limits.max_frames:
                raise LimitError(f"offset {src.offset - 1}: stream {stream_index} exceeds {limits.max_frames} frames")
            frame = read_frame(src, header, stream_index, len(entries), method, raw_start)
            raw_start += frame.raw_length
            entries.append(TrailerEntry(frame.method, frame.size, frame.raw_length))
            yield frame
        trailer_start = src.offset - 1
        where = f"stream {stream_index}"
        if header.version == 1:
            trailer = read_trailer(src, limits, len(entries), where)
        else:
            trailer = read_trailer2(src, limits, header.chunk_size, len(entries), where)
        if trailer.entries:
            for i, (seen, listed) in enumerate(zip(entries, trailer.entries)):
                if seen != listed:
                    raise FormatError(f"offset {trailer_start}: index entry {i} of {where} does not match its frame")
        if header.version == 1:
            if trailer.total_raw != sum(e.raw_size for e in entries):
                raise FormatError(f"offset {trailer_start}: trailer of {where} says {trailer.total_raw} raw bytes, "
                                  f"frames hold {sum(e.raw_size for e in entries)}")
            footer_at = src.offset
            trailer_len, stream_size = parse_footer(src.read_exact(FOOTER_SIZE, f"footer of {where}"), footer_at)
            if trailer_len != footer_at - trailer_start or stream_size != src.offset - start:
                raise FormatError(f"offset {footer_at}: footer sizes of {where} do not match the stream")
        elif trailer.entries and trailer.stream_size != src.offset - start:
            raise FormatError(f"offset {src.offset - 20}: footer of {where} gives the wrong stream size")
        yield StreamEnd(header, stream_index, start, src.offset - start, trailer, tuple(entries))

    def frames(self) -> Iterator[Frame]:
        for item in self.items():
            if isinstance(item, Frame):
                yield item


class ContentCheck:
    """A stream's whole-content check: version 1's BLAKE2b-128 (version 2 frames carry their numbers in their
    checks instead, and the trailer their count, so a stream needs no more than its frames' checks)."""

    def __init__(self) -> None:
        self._h = hashlib.blake2b(digest_size=CONTENT_CHECKSUM_SIZE)

    def update(self, raw: bytes) -> None:
        self._h.update(raw)

    def verify(self, header: StreamHeader, content_checksum: bytes, where: str) -> None:
        """ChecksumError if a version-1 stream's content does not match; resets for the next stream."""
        digest, self._h = self._h.digest(), hashlib.blake2b(digest_size=CONTENT_CHECKSUM_SIZE)
        if header.version == 1 and digest != content_checksum:
            raise ChecksumError(f"{where}: content checksum mismatch")


def decode_frames(frames: Sequence[Frame], lm_decoder: LmDecoder | None) -> Iterator[bytes]:
    """The content of frames of one stream, in order, each verified before it is given: the lm frames among them
    decoded by one call of lm_decoder, stored and zstd frames here. A frame that fails raises its error after the
    frames before it were given, so a caller keeps every good frame up to the damage."""
    lm = [f for f in frames if f.method == METHOD_LM]
    decoded: Iterator = iter(())
    if lm:
        if lm_decoder is None:
            raise UnsupportedError(f"{lm[0].where}: lm frame needs a language model decoder")
        outs = lm_decoder(lm[0].header, lm)
        if len(outs) != len(lm):
            raise FormatError(f"{lm[0].where}: lm decoder returned {len(outs)} chunks for {len(lm)} frames")
        decoded = iter(outs)
    for frame in frames:
        if frame.method != METHOD_LM:
            yield decode_frame(frame)
            continue
        raw = next(decoded)
        if isinstance(raw, LmzError):
            raise raw
        yield frame.verify(bytes(raw))


def decode_stream(fileobj: BinaryIO, lm_decoder: LmDecoder | None = None,
                  batch: int | Callable[[StreamHeader], int] = 1, limits: Limits = DEFAULT_LIMITS) -> Iterator[bytes]:
    """Yield the content of every stream in fileobj, chunk by chunk, each verified before it is yielded
    (decode_items over Reader(fileobj).items())."""
    return decode_items(Reader(fileobj, limits).items(), lm_decoder, batch)


def decode_items(items: Iterable[Frame | StreamEnd], lm_decoder: LmDecoder | None = None,
                 batch: int | Callable[[StreamHeader], int] = 1) -> Iterator[bytes]:
    """Yield the content of the frames among items (as Reader.items() gives them), each verified first.

    Consecutive lm frames of one stream are passed to lm_decoder(header, frames) in batches of up to
    `batch` (or batch(header), asked when a batch starts: the decoder may size it by its memory); a stored/zstd
    frame or the end of a stream flushes the batch first, so order is kept. If items raises (damage after the
    frames read so far), the batch is decoded and given first: an error always leaves every verified frame
    before it. After each version-1 stream its content checksum is checked (ChecksumError after its chunks were
    yielded)."""
    if not callable(batch) and batch < 1:
        raise ValueError("batch must be >= 1")
    limit = batch if not callable(batch) else 1
    pending: list[Frame] = []
    content = ContentCheck()

    def flush() -> Iterator[bytes]:
        if pending:
            batch_frames = pending[:]
            pending.clear()
            for raw in decode_frames(batch_frames, lm_decoder):
                content.update(raw)
                yield raw

    it = iter(items)
    while True:
        try:
            item = next(it, None)
        except LmzError:
            yield from flush()
            raise
        if item is None:
            return
        if isinstance(item, Frame):
            if item.method == METHOD_LM:
                if lm_decoder is None:
                    raise UnsupportedError(f"{item.where}: lm frame needs a language model decoder")
                if not pending and callable(batch):
                    limit = max(1, batch(item.header))
                pending.append(item)
                if len(pending) >= limit:
                    yield from flush()
                continue
            yield from flush()
            raw = decode_frame(item)
            content.update(raw)
            yield raw
        else:
            yield from flush()
            content.verify(item.header, item.trailer.content_checksum, f"offset {item.offset}: stream {item.stream_index}")


def decompress_bytes(data: bytes, lm_decoder: LmDecoder | None = None, batch: int = 1,
                     limits: Limits = DEFAULT_LIMITS) -> bytes:
    return b"".join(decode_stream(io.BytesIO(data), lm_decoder, batch, limits))
