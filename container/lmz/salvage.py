"""Salvage: every intact frame of a damaged file, in order, and the ranges of content that are lost.

    for item in lmz.salvage(f, lm_decoder):
        if isinstance(item, lmz.Damage): report(item)        # offset, length (None: unknown) in the content
        else: out.write(item)                                 # verified bytes, in content order

Frames are read front to back, as the streaming reader reads them; a frame whose payload is damaged is a
lost range of exactly its raw length, and the frames after it go on being read. Where the framing itself is
damaged (a frame header, or bytes lost or inserted), the reader resynchronises. Where the stream's index
survives (streams of 64 frames or more carry one), the index gives the next frame's offset and raw offset.
Where it does not, the next frame is the first position from which whole frames follow one another up to a
trailer that parses (or to the end of the file, for a file that is also cut short). A version-2 or -3 frame's
check covers its position in the content, so the first frame after such a gap tells how long the gap is: the
offset its check was computed with is found by solving the CRC-32 for it (CRC-32 is affine in the message
bits). A damaged stream header loses its stream, up to the next stream's magic. Nothing is ever returned that
has not passed its frame's check.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from ._io import Source
from .codec import decode_payload
from .constants import DEFAULT_LIMITS, END_OF_FRAMES, FOOTER_SIZE, MAGIC, METHOD_LM, Limits
from .errors import LmzError, UnsupportedError
from .frame import Frame, _lengths, frame_check, read_frame
from .index import _from_end
from .header import StreamHeader, read_header
from .reader import LmDecoder
from .trailer import read_trailer, read_trailer2

MIN_FRAME = 8  # bytes of the smallest frame: a method byte, two lengths, a payload byte, a check
MIN_CHAIN = 2  # frames that must follow one another to the end of a cut-short file for a resynchronisation
CHUNK_TRIES = 4096  # gaps of whole chunks tried first
SEARCH_SPAN = 1 << 24  # at most this many raw offsets searched for a gap of another length
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Damage:
    """Content that could not be recovered: `length` bytes (None: not known, to the end of what was readable)
    from `offset` in the file's content (all streams one after another), found at `file_offset` in the file."""

    offset: int
    length: int | None
    file_offset: int
    reason: str

    def __str__(self) -> str:
        span = f"{self.length} bytes" if self.length is not None else "an unknown number of bytes"
        return f"content offset {self.offset}: {span} lost ({self.reason})"


def salvage(fileobj: BinaryIO, lm_decoder: LmDecoder | None = None,
            batch_for: Callable[[StreamHeader], int] | None = None,
            limits: Limits = DEFAULT_LIMITS) -> Iterator[bytes | Damage]:
    """Verified content and Damage items of a (possibly damaged) file, in content order. fileobj is read whole
    into memory (salvage is for files that need it); lm frames are decoded by lm_decoder, batch_for(header) at
    a time (default 1)."""
    data = fileobj.read()
    yield from _Salvage(data, lm_decoder, batch_for or (lambda h: 1), limits).run()


class _Salvage:
    def __init__(self, data: bytes, lm_decoder: LmDecoder | None, batch_for: Callable[[StreamHeader], int],
                 limits: Limits) -> None:
        self.data, self.lm, self.batch_for, self.limits = data, lm_decoder, batch_for, limits
        self.base = 0  # content offset where the current stream's content starts
        self.indexes = self._indexes()

    def _src(self, offset: int) -> Source:
        f = io.BytesIO(self.data)
        f.seek(offset)
        return Source(f, offset)

    def run(self) -> Iterator[bytes | Damage]:
        pos, index = 0, 0
        if not self.data:
            return
        while pos < len(self.data):
            if self.data[pos: pos + 4] != MAGIC:
                nxt = self.data.find(MAGIC, pos + 1)
                yield Damage(self.base, None, pos, "no stream header here" + ("" if nxt >= 0 else "; none follows"))
                if nxt < 0:
                    return
                pos = nxt
            src = self._src(pos)
            try:
                header = read_header(src, self.limits)
            except LmzError as e:
                nxt = self.data.find(MAGIC, pos + 1)
                yield Damage(self.base, None, pos, f"stream {index}'s header: {e}")
                if nxt < 0:
                    return
                pos = nxt
                continue
            end = yield from self._frames(header, index, pos, src.offset)
            if end is None:
                return
            pos, index = end, index + 1

    def _indexes(self) -> dict[int, list[tuple[int, int, int, int]]]:
        """The streams whose index survives, found from the end of the file as random access finds them:
        stream start -> [(frame offset, frame size, raw start, raw length)]."""
        out: dict[int, list[tuple[int, int, int, int]]] = {}
        f, end = io.BytesIO(self.data), len(self.data)
        while True:
            try:
                found = _from_end(f, end, self.limits)
            except LmzError:
                return out
            if found is None:
                return out
            start, _, _, frames, _ = found
            rows, raw = [], 0
            for _, offset, size, length in frames:
                rows.append((offset, size, raw, length))
                raw += length
            out[start] = rows
            end = start

    def _frames(self, header: StreamHeader, stream_index: int, start: int, pos: int) -> Iterator[bytes | Damage]:
        """A stream's frames from pos; returns where the next stream may start, or None at the end of the file.

        Frames that fail are held until a frame after them verifies (which shows their sizes were right) or the
        stream ends: if the framing breaks first, a failed frame's own header may be what was damaged, so the
        search for the next intact frame starts right after the first held frame's start, and the gap is
        measured from there."""
        raw, number = 0, 0
        pending: list[Frame] = []
        held: list[tuple[Frame, LmzError]] = []
        batch = max(1, self.batch_for(header)) if any(header.model_sha256) else 1

        def settle() -> Iterator[bytes | Damage]:
            """Decode what is pending; a frame that verifies releases the failures held before it. A frame that
            decodes but fails its check after held failures may only be misplaced (a damaged raw length before
            it): it is placed by its check, and what follows moves with it."""
            nonlocal raw
            shift = 0
            decoded = self._decode(pending)
            for f, (content, err) in zip(pending, decoded):
                if shift:
                    f = replace(f, raw_start=f.raw_start + shift)
                    content, err = self._reverify(f, content, err)
                if err is not None and content is not None and held:
                    first = held[0][0]
                    r = self._place(f, content, first.raw_start)
                    if r is not None:
                        shift += r - f.raw_start
                        yield Damage(self.base + first.raw_start, r - first.raw_start, first.offset,
                                     str(held[0][1]))
                        held.clear()
                        f = replace(f, raw_start=r)
                        content, err = self._reverify(f, content, None)
                if err is not None:
                    held.append((f, err))
                    continue
                yield from release()
                yield content
            pending.clear()
            raw += shift

        def release() -> Iterator[Damage]:
            for f, err in held:
                yield Damage(self.base + f.raw_start, f.raw_length, f.offset, str(err))
            held.clear()

        while True:
            if pos >= len(self.data):
                yield from settle()
                yield from release()
                yield Damage(self.base + raw, None, pos, f"the file ends after {number} frames of stream "
                                                         f"{stream_index}")
                return None
            method = self.data[pos]
            if method == END_OF_FRAMES:
                yield from settle()
                yield from release()
                self.base += raw
                return self._end_of_stream(header, pos)
            try:
                frame = read_frame(self._src(pos + 1), header, stream_index, number, method, raw)
            except LmzError as e:
                yield from settle()
                if held:  # the first failed frame's header may be the damage: search from it
                    first, err = held[0]
                    held.clear()
                    pos, raw, number, e = first.offset, first.raw_start, first.number, err
                rows = self.indexes.get(start)
                if rows is not None:  # the stream's index survives: it says where the next frame is
                    nxt = next((i for i, row in enumerate(rows) if row[0] > pos), None)
                    target = rows[nxt][2] if nxt is not None else sum(row[3] for row in rows)
                    yield Damage(self.base + raw, target - raw, pos, f"{e} (placed by the stream's index)")
                    raw = target
                    if nxt is None:
                        self.base += raw
                        return self._end_of_stream(header, rows[-1][0] + rows[-1][1])
                    number, pos = nxt, rows[nxt][0]
                    continue
                found = self._resync(header, pos + 1)
                lost_frames = 0 if found is None else (found[0] - pos) // MIN_FRAME + 1  # at most
                r = None if found is None else self._place(found[1], found[2], raw, lost_frames * header.frame_limit)
                gap = None if r is None else r - raw
                if gap is None:
                    why = "no intact frame follows" if found is None else "the frames after it cannot be placed"
                    yield Damage(self.base + raw, None, pos, f"{e}; {why}")
                    nxt = self.data.find(MAGIC, pos + 1)
                    self.base += raw
                    return nxt if nxt >= 0 else None
                q, frame, content = found
                yield Damage(self.base + raw, gap, pos, str(e))
                raw += gap
                yield replace(frame, stream_index=stream_index, number=number, raw_start=raw).verify(content)
                raw += frame.raw_length
                number += 1
                pos = q + frame.size
                continue
            pending.append(frame)
            raw += frame.raw_length
            number += 1
            pos += frame.size
            if frame.method != METHOD_LM or sum(f.method == METHOD_LM for f in pending) >= batch:
                yield from settle()

    def _decode(self, frames: list[Frame]) -> list[tuple[bytes | None, LmzError | None]]:
        """Each frame's decoded content (None if it does not decode) and why it does not verify (None if it
        does)."""
        lm = [f for f in frames if f.method == METHOD_LM]
        outs: list = []
        if lm:
            if self.lm is None:
                outs = [UnsupportedError(f"{f.where}: lm frame needs a language model decoder") for f in lm]
            else:
                try:
                    outs = list(self.lm(lm[0].header, lm))
                except LmzError as e:
                    outs = [e] * len(lm)
        it = iter(outs)
        result: list[tuple[bytes | None, LmzError | None]] = []
        for f in frames:
            try:
                got = next(it) if f.method == METHOD_LM else decode_payload(f)
                if isinstance(got, LmzError):
                    raise got
            except LmzError as e:
                result.append((None, e))
                continue
            try:
                result.append((f.verify(bytes(got)), None))
            except LmzError as e:
                result.append((bytes(got), e))
        return result

    @staticmethod
    def _reverify(f: Frame, content: bytes | None, err: LmzError | None) -> tuple[bytes | None, LmzError | None]:
        if content is None:
            return None, err
        try:
            return f.verify(content), None
        except LmzError as e:
            return content, e

    def _place(self, f: Frame, content: bytes, after: int, span: int = SEARCH_SPAN) -> int | None:
        """The raw offset above `after` at which a decoded frame passes its check; None if it cannot be told for
        sure. Version 1 frames do not cover their position.

        Whole chunks are tried first (lost lm frames are mostly whole chunks): a few thousand candidates leave a
        false match at about 1 in 10**6. Else every offset within `span` (at most SEARCH_SPAN), and then the
        next frame must verify at the offset that follows, which leaves a false match at 2**-32 per candidate
        times 2**-32."""
        if f.header.version == 1:
            return None
        chunk = f.header.chunk_size
        for k in range(1, min(CHUNK_TRIES, span // chunk + 2)):
            if frame_check(after + k * chunk, f.head, content) == f.checksum:
                return after + k * chunk
        r = solve_raw_offset(f.head, content, f.checksum, after + 1, after + 1 + min(span, SEARCH_SPAN))
        return r if r is not None and self._next_verifies(f, r + len(content)) else None

    def _trailer_end(self, header: StreamHeader, pos: int) -> int | None:
        """The offset just after the trailer (and footer) whose end marker is at pos; None if it does not parse."""
        src = self._src(pos + 1)
        try:
            if header.version == 1:
                read_trailer(src, self.limits, None, "a stream")
                src.read_exact(FOOTER_SIZE, "footer")
            else:
                read_trailer2(src, self.limits, header.chunk_size, None, "a stream")
        except LmzError:
            return None
        return src.offset

    def _end_of_stream(self, header: StreamHeader, pos: int) -> int | None:
        """Where the next stream may start after the trailer at pos (None: the end of the file). A damaged
        trailer loses no content: every frame before it was read; the next stream is looked for by its magic."""
        end = self._trailer_end(header, pos)
        if end is None:
            end = self.data.find(MAGIC, pos + 1)
            return end if end >= 0 else None
        return end if end < len(self.data) else None

    def _chain(self, header: StreamHeader, q: int, memo: dict[int, bool]) -> bool:
        """Whether whole frames follow one another from q up to a trailer that parses, or (MIN_CHAIN of them
        at least) up to the very end of the file."""
        walk: list[int] = []
        frames, ok = 0, False
        while True:
            if q in memo:
                ok = memo[q]
                break
            walk.append(q)
            if q >= len(self.data):
                ok = q == len(self.data) and frames >= MIN_CHAIN
                break
            if self.data[q] == END_OF_FRAMES:
                ok = self._trailer_end(header, q) is not None
                break
            try:
                src = self._src(q + 1)
                _, _, payload, head, check = _lengths(src, header, self.data[q], "a frame")
            except LmzError:
                break
            size = (src.offset - q) + payload + check
            q += size
            frames += 1
        for p in walk:
            memo[p] = ok
        return ok

    def _resync(self, header: StreamHeader, start: int) -> tuple[int, Frame, bytes] | None:
        """(offset, frame, its content) of the first intact frame at or after start from which whole frames
        follow one another to the stream's end; None if there is none."""
        memo: dict[int, bool] = {}
        for q in range(start, len(self.data)):
            if self.data[q] == END_OF_FRAMES or not self._chain(header, q, memo):
                continue
            try:
                frame = read_frame(self._src(q + 1), header, -1, -1, self.data[q], 0)
            except LmzError:
                continue
            content = self._decode([frame])[0][0]  # its check waits: its position is not known yet
            if content is not None:
                return q, frame, content
        return None

    def _next_verifies(self, frame: Frame, raw_next: int) -> bool:
        nxt = frame.offset + frame.size
        if nxt >= len(self.data) or self.data[nxt] == END_OF_FRAMES:
            return False
        try:
            f2 = read_frame(self._src(nxt + 1), frame.header, -1, -1, self.data[nxt], raw_next)
        except LmzError:
            return False
        return self._decode([f2])[0][1] is None


def solve_raw_offset(head: bytes, raw: bytes, check: bytes, lo: int, hi: int) -> int | None:
    """The smallest r in [lo, hi) with CRC-32(u64 r || head || raw) == check, or None.

    CRC-32 is affine in its message bits: crc(r || rest) = XOR over the set bits i of r of v_i, XOR crc(0 || rest),
    with v_i = crc(e_i || 0..0) XOR crc(0 || 0..0). So the 16 low bits of r are looked up in a table of the
    XORs of their v_i, for each value of the bits above them in [lo, hi)."""
    want = struct.unpack("<I", check)[0]
    n = len(head) + len(raw)
    zeros = bytes(n)
    base = zlib.crc32(zeros, zlib.crc32(bytes(8)))
    v = [zlib.crc32(zeros, zlib.crc32(_U64.pack(1 << i))) ^ base for i in range(64)]
    target = want ^ zlib.crc32(raw, zlib.crc32(head, zlib.crc32(bytes(8))))
    low: dict[int, list[int]] = {}
    table = [0] * (1 << 16)
    for x in range(1, 1 << 16):
        table[x] = table[x & (x - 1)] ^ v[(x & -x).bit_length() - 1]
    for x, t in enumerate(table):
        low.setdefault(t, []).append(x)
    for top in range(lo >> 16, ((hi - 1) >> 16) + 1):
        h = 0
        for i in range(48):
            if top >> i & 1:
                h ^= v[16 + i]
        for x in low.get(target ^ h, ()):
            r = top << 16 | x
            if lo <= r < hi:
                return r
    return None
