"""Incremental compressor and decompressor objects, in the manner of lzma.LZMACompressor / LZMADecompressor.

    c = LmzCompressor(level=9)  # or LmzCompressor(settings), settings an lmcodec.Settings
    blob = c.compress(part1) + c.compress(part2) + c.flush()        # the bytes lmcodec.compress(part1 + part2) gives

    d = LmzDecompressor()
    while not d.eof:
        out = d.decompress(f.read(65536), max_length=1 << 20)     # verified content only

The decompressor runs lmz's streaming reader, which pulls its input, on a thread of its own that decompress()
feeds: one parser for every way lmcodec reads a stream, and nothing is returned before its frame is verified.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import lmz

from .lmzfile import _CompressWriter, _LmDecoder, codec_for
from .settings import ModelSource, Settings, settings_for


class LmzCompressor:
    """Compresses data given in pieces into one .lmz stream. compress() returns the bytes ready so far (frames
    are written a batch of chunks at a time), flush() the rest, once; the output is byte for byte that of
    lmcodec.compress() of all the data, however it was split."""

    def __init__(self, settings: Settings | None = None, *, model: ModelSource = None, level: int | None = None,
                 chunk_size: int | None = None, window: int | None = None, zstd_level: int | None = None,
                 batch_size: int | None = None, device: str | None = None, threads: int | None = None) -> None:
        self.settings = settings_for(settings, "w", model=model, level=level, chunk_size=chunk_size, window=window,
                                     zstd_level=zstd_level, batch_size=batch_size, device=device, threads=threads)
        self._sink = io.BytesIO()
        self._writer = _CompressWriter(self._sink, codec_for(self.settings), self.settings.zstd)
        self._flushed = False

    def _take(self) -> bytes:
        out = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        return out

    def compress(self, data: bytes) -> bytes:
        if self._flushed:
            raise ValueError("Compressor has been flushed")
        self._writer.write(bytes(data))
        return self._take()

    def flush(self) -> bytes:
        """The end of the stream: what is left of the data, the trailer. The compressor cannot be used after."""
        if self._flushed:
            raise ValueError("Repeated call to flush()")
        self._flushed = True
        self._writer.close()
        return self._take()


class _Feed(io.RawIOBase):
    """The input decompress() is given, read by the parser's thread: read() waits while there is none."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._ended = False  # no more input will come (the decompressor is dropped)
        self.cond = threading.Condition()
        self.starved = False  # the parser waits for input

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        with self.cond:
            while not self._buf and not self._ended:
                self.starved = True
                self.cond.notify_all()
                self.cond.wait()
            n = min(len(b), len(self._buf))
            b[:n] = self._buf[:n]
            del self._buf[:n]
            return n

    def give(self, data: bytes) -> None:
        with self.cond:
            self._buf += data
            self.starved = False
            self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self._ended = True
            self.cond.notify_all()

    def rest(self) -> bytes:
        with self.cond:
            return bytes(self._buf)


def _first_stream(items: Iterator) -> Iterator:
    """The items of the first stream, up to and with its StreamEnd; nothing of what follows is read."""
    for item in items:
        yield item
        if isinstance(item, lmz.StreamEnd):
            return


class LmzDecompressor:
    """Decompresses one .lmz stream given in pieces, as lzma.LZMADecompressor does.

    decompress(data, max_length=-1) returns the content that the data given so far decode to, at most
    max_length bytes of it (-1: all); needs_input is False while decoded bytes wait because of max_length (call
    decompress(b"") for them). eof is True once the stream's end was read; unused_data holds what followed it.
    Only verified frames are returned: if the stream is damaged, the verified content before the damage is
    returned first and the error (an lmcodec.LmzError) is raised by the next call."""

    def __init__(self, settings: Settings | None = None, *, model: ModelSource = None, memory: int | None = None,
                 batch_size: int | None = None, device: str | None = None, threads: int | None = None) -> None:
        self.settings = settings_for(settings, "r", model=model, memory=memory, batch_size=batch_size,
                                     device=device, threads=threads)
        self._lm = _LmDecoder(self.settings)
        self._feed = _Feed()
        self._out = bytearray()
        self._error: BaseException | None = None
        self._done = False
        self._thread: threading.Thread | None = None
        self.eof = False
        self.unused_data = b""

    @property
    def needs_input(self) -> bool:
        with self._feed.cond:
            return not self.eof and not self._out and self._error is None

    def _parse(self) -> None:
        try:
            items = _first_stream(lmz.Reader(self._feed).items())
            for raw in lmz.decode_items(items, self._lm, self._lm.batch_for):
                with self._feed.cond:
                    self._out += raw
            with self._feed.cond:
                self.unused_data = self._feed.rest()
                self.eof = True
        except BaseException as e:  # handed to the caller's thread
            with self._feed.cond:
                self._error = e
        finally:
            with self._feed.cond:
                self._done = True
                self._feed.cond.notify_all()

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        with self._feed.cond:
            if self.eof and not self._out:
                raise EOFError("Already at end of stream")
            if self._error is not None and not self._out:
                raise self._error
        if self.eof:
            self.unused_data += bytes(data)
        elif data:
            self._feed.give(bytes(data))
            if self._thread is None:
                self._thread = threading.Thread(target=self._parse, name="lmcodec-decompressor", daemon=True)
                self._thread.start()
            with self._feed.cond:
                self._feed.cond.wait_for(lambda: self._feed.starved or self._done)
        with self._feed.cond:
            n = len(self._out) if max_length < 0 else min(max_length, len(self._out))
            out = bytes(self._out[:n])
            del self._out[:n]
            if not out and self._error is not None:
                raise self._error
            return out

    def __del__(self) -> None:
        feed = getattr(self, "_feed", None)
        if feed is not None:
            feed.end()  # a parser still waiting for input ends (with a truncation it keeps to itself)
