"""Incremental stream writer: works on pipes (never seeks, never patches)."""

from __future__ import annotations

import hashlib
import io
TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from .codec import zstd_compress
from .constants import (
    CONTENT_CHECKSUM_SIZE, DEFAULT_LIMITS, DEFAULT_ZSTD_LEVEL, FOOTER_SIZE, FORMAT_VERSION,
    INDEX_MIN_FRAMES, MAX_FRAMES, METHOD_LM, METHOD_STORED, METHOD_ZSTD,
)
from .errors import FormatError, LimitError
from .frame import check_frame, encode_frame_header, frame_check, frame_head, raw_checksum, store_check
from .header import StreamHeader, check_header
from .trailer import Trailer, TrailerEntry, encode_footer, encode_trailer, encode_trailer2


PROBE_LEVEL = 1
PROBE_SAVING = 64


class Writer:
    """Writes one stream: header now, a frame per write_frame/write_chunk, trailer on close().

    The header's version picks the layout (version 2, the default, unless the header says 1)."""

    def __init__(self, fileobj: BinaryIO, header: StreamHeader, *, close_fileobj: bool = False) -> None:
        check_header(header, DEFAULT_LIMITS, 0)
        self.header = header
        self._f = fileobj
        self._close_fileobj = close_fileobj
        self._entries: list[TrailerEntry] = []
        self._content = hashlib.blake2b(digest_size=CONTENT_CHECKSUM_SIZE)  # version 1 only
        self.raw_written = 0
        self.bytes_written = 0
        self.closed = False
        self._write(header.encode())

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self.bytes_written += len(data)

    def write_frame(self, method: int, raw: bytes, payload: bytes | None = None) -> None:
        """Append one frame. For stored frames payload is raw (pass None or raw)."""
        if self.closed:
            raise FormatError("write_frame after close")
        if method == METHOD_STORED:
            if payload is not None and payload != raw:
                raise FormatError("stored frame payload must equal raw")
            payload = raw
        if payload is None:
            raise FormatError(f"method {method} needs a payload")
        if len(self._entries) >= MAX_FRAMES:
            raise LimitError(f"stream already has MAX_FRAMES={MAX_FRAMES} frames")
        number = len(self._entries)
        check_frame(self.header, method, len(raw), len(payload), f"frame {number}")
        start = self.bytes_written
        if self.header.version == 1:
            self._write(encode_frame_header(method, len(raw), len(payload)))
            self._write(payload)
            self._write(raw_checksum(raw))
            self._content.update(raw)
        else:
            head = frame_head(self.header, method, len(raw), len(payload))
            self._write(head)
            self._write(payload)
            self._write(frame_check(self.raw_written, head, raw))
            if self.header.version >= 3:
                self._write(store_check(head, payload))
        self.raw_written += len(raw)
        self._entries.append(TrailerEntry(method, self.bytes_written - start, len(raw)))

    def write_chunk(self, raw: bytes, lm_payload: bytes | None = None, level: int = DEFAULT_ZSTD_LEVEL) -> int:
        """Append raw as the smallest of stored / zstd / lm (ties go to the simpler). Returns the method.

        zstd runs at PROBE_LEVEL first: data it shrinks by less than 1/PROBE_SAVING (random, JPEG, PNG) is not
        worth a slow level, which would find as little (zstd -19 moves at 2-4 MB/s, level 1 at 300+)."""
        candidates: list[tuple[int, int, bytes]] = [(len(raw), METHOD_STORED, raw)]
        z = zstd_compress(raw, min(level, PROBE_LEVEL))
        if level > PROBE_LEVEL and len(z) * PROBE_SAVING < len(raw) * (PROBE_SAVING - 1):
            z = zstd_compress(raw, level)  # it compresses: worth the slower level
        candidates.append((len(z), METHOD_ZSTD, z))
        if lm_payload is not None:
            candidates.append((len(lm_payload), METHOD_LM, lm_payload))
        _, method, payload = min(candidates, key=lambda c: (c[0], c[1]))
        self.write_frame(method, raw, payload)
        return method

    def write_data(self, data: bytes, level: int = DEFAULT_ZSTD_LEVEL) -> None:
        """Split data into pieces of the largest frame size and write_chunk each (no lm)."""
        step = self.header.frame_limit
        view = memoryview(data)
        for i in range(0, len(data), step):
            self.write_chunk(bytes(view[i:i + step]), level=level)

    @property
    def frame_count(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Write the trailer (and footer) once. Closes fileobj only if close_fileobj was set."""
        if self.closed:
            return
        self.closed = True
        if self.header.version == 1:
            trailer = encode_trailer(Trailer(tuple(self._entries), self.raw_written, self._content.digest()))
            self._write(trailer)
            self._write(encode_footer(len(trailer), self.bytes_written + FOOTER_SIZE))
        else:
            self._write(encode_trailer2(self._entries, self.header.chunk_size, self.bytes_written,
                                        len(self._entries) >= INDEX_MIN_FRAMES))
        if hasattr(self._f, "flush"):
            self._f.flush()
        if self._close_fileobj:
            self._f.close()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()  # on error no trailer is written: the output reads as truncated
        elif self._close_fileobj:
            self._f.close()


def compress_bytes(data: bytes, *, chunk_size: int = 1 << 20, model_id: str = "",
                   model_sha256: bytes = b"", coder_id: int = 0, coder_version: int = 0,
                   level: int = DEFAULT_ZSTD_LEVEL, version: int = FORMAT_VERSION) -> bytes:
    """One stream holding data, with stored/zstd frames only."""
    if version == 1 and not model_sha256:
        model_sha256 = bytes(32)
    out = io.BytesIO()
    with Writer(out, StreamHeader(model_id, model_sha256, chunk_size, coder_id, coder_version, 0, version)) as w:
        w.write_data(data, level)
    return out.getvalue()
