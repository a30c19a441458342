"""The Python API, shaped like the stdlib's gzip/lzma: open(), compress(), decompress(), LmzFile.

Decoding lives in one raw reader (_DecompressReader) wrapped by io.BufferedReader, as in the stdlib.
Nothing here imports torch until a model is needed, so listing and stored/zstd-only work stay light.
"""
from __future__ import annotations

import builtins
import gc
import importlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import lmz

from ..atomic import TempFile
from ..coding.versions import DEFAULT_WINDOW
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE
from ..errors import DamageWarning
from ..interrupts import held_signals
from .settings import ModelSource, Settings, settings_for


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Around importing numba and the engine and loading a model, the cycle collector paused: what they create lives
    until the process ends, so its full passes over the growing heap find nothing (they cost ~0.3 s a start)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_models: dict[str, Any] = {}  # the loaded model, by the name it was asked for and by its sha256
_codecs: dict[tuple, Any] = {}


def load_model(spec: Any = None, sha256: str | None = None, model_id: str = "") -> Any:
    """One loaded model at a time (a few hundred MB), reused across calls."""
    with _collector_paused():
        return _load_model(spec, sha256, model_id)


def _load_model(spec: Any, sha256: str | None, model_id: str) -> Any:
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec  # an IntModel
    if sha256:  # a whole hash, or its leading part (version-2 streams)
        for m in _models.values():
            if m.sha256.startswith(sha256):
                return m
    key = sha256 or str(spec or "default")
    if key not in _models:
        with held_signals():  # numpy imports here, and must not be interrupted half way
            from .. import models

        # the model's files hash on a thread while the engine's modules import (its kernels are needed next)
        models.hash_ahead(spec, sha256)
        with held_signals():
            importlib.import_module("..pipeline.codec", __package__)
        m = models.find(model_id, sha256) if sha256 else models.resolve(spec)
        _models.clear()
        _models[key] = _models[m.sha256] = m
    return _models[key]


def get_codec(model: Any = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
              device: str = "cpu", threads: int | None = None, window: int | None = None):
    """A Codec for these options, reused across calls (loading a model costs a few hundred ms). window: the
    attention window new streams are coded with (None: the default)."""
    with _collector_paused():
        m = load_model(model)  # first: it imports the engine while the model's files hash
        with held_signals():  # numba and the engine's kernels import here (torch only where a path needs it)
            from ..pipeline.codec import Codec

        window = window or DEFAULT_WINDOW
        key = (m.sha256, chunk_size, batch_size, device, threads, window)
        if key not in _codecs:
            _codecs.clear()
            _codecs[key] = Codec(m, chunk_size=chunk_size, batch_size=batch_size, device=device, threads=threads,
                                 window=window)
        return _codecs[key]


def codec_for(settings: Settings):
    """The Codec that writes new streams with these settings."""
    return get_codec(settings.model, chunk_size=settings.chunk, batch_size=settings.write_batch,
                     device=settings.device, threads=settings.threads, window=settings.window)


class _LmDecoder:
    """The lm_decoder callback for lmz: finds the model each stream names, by hash.

    progress(n), if set, is called while frames decode with n = base + the bytes of this call's frames decoded
    so far; the reader sets base to the content bytes it had before the call."""

    def __init__(self, settings: Settings, progress: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress
        self.base = 0

    def _codec(self, header: lmz.StreamHeader):
        sha = header.model_sha256.hex()
        s = self.settings
        model = None
        if s.model is not None:  # a model the caller named: use it if it is the one the stream needs
            model = load_model(s.model)
            if not header.names_model(model.sha256):
                model = None
        if model is None:
            model = load_model(sha256=sha, model_id=header.model_id)
        # the stream's chunk size: the codec that wrote it, if still loaded, is reused
        return get_codec(model, chunk_size=header.chunk_size, batch_size=s.batch_size or DEFAULT_BATCH_SIZE,
                         device=s.device, threads=s.threads)

    def batch_for(self, header: lmz.StreamHeader) -> int:
        """lm frames of this stream to decode side by side: batch_size if set, else what the memory budget allows."""
        return self.settings.batch_size or self._codec(header).frames_within(self.settings.memory, header)

    def __call__(self, header: lmz.StreamHeader, frames: list[lmz.Frame]) -> list[bytes]:
        report = None if self.progress is None else lambda n: self.progress(self.base + n)
        return self._codec(header).decode(header, frames, report, batch=len(frames))


class _DecompressReader(io.RawIOBase):
    """Raw reader of decoded bytes: sequential through lmz.decode_stream, or by the trailer index after a seek;
    with salvage, sequential only, through lmz.salvage (each lost range goes to `damage` and is warned of)."""

    def __init__(self, fp: IO[bytes], lm: _LmDecoder, salvage: bool = False) -> None:
        self._fp = fp
        self._lm = lm
        self._pos = 0
        self.salvage = salvage
        self.damage: list[lmz.Damage] = []
        self._chunks: Iterator[bytes] | None = \
            self._salvaged(fp) if salvage else lmz.decode_stream(fp, lm, lm.batch_for)
        self._buf = b""  # decoded bytes starting at self._buf_start
        self._buf_start = 0
        self._index: lmz.Index | None = None
        self._eof = False  # sequential decoding reached the end

    def _salvaged(self, fp: IO[bytes]) -> Iterator[bytes]:
        for item in lmz.salvage(fp, self._lm, self._lm.batch_for):
            if isinstance(item, lmz.Damage):
                self.damage.append(item)
                warnings.warn(str(item), DamageWarning, stacklevel=2)
            elif item:
                yield item

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._fp.seekable() and not self.salvage

    def readinto(self, b) -> int:
        data = self._read(len(b))
        b[: len(data)] = data
        return len(data)

    def _read(self, n: int) -> bytes:
        while self._pos >= self._buf_start + len(self._buf):
            if not self._fill():
                return b""
        off = self._pos - self._buf_start
        data = self._buf[off: off + n]
        self._pos += len(data)
        return data

    def _fill(self) -> bool:
        """Decode the chunk(s) after the current buffer; False at the end of the content."""
        if self._eof:
            return False
        self._lm.base = self._buf_start + len(self._buf)
        if self._chunks is not None:
            nxt = next(self._chunks, None)
            if nxt is None:
                self._eof = True
                return False
            self._buf_start += len(self._buf)
            self._buf = nxt
            self._report()
            return True
        index = self._get_index()
        if self._pos >= index.raw_size:
            return False
        i = index.find(self._pos)
        first = index.entries[i]
        n = self._lm.batch_for(first.header) if first.method == lmz.METHOD_LM else 1
        group = [e for e in index.entries[i: i + n] if e.stream_index == first.stream_index]
        frames = [lmz.read_frame_at(self._fp, e) for e in group]
        self._lm.base = first.raw_offset
        self._buf_start, self._buf = first.raw_offset, b"".join(lmz.decode_frames(frames, self._lm))
        self._report()
        return True

    def _report(self) -> None:
        if self._lm.progress is not None:
            self._lm.progress(self._buf_start + len(self._buf))

    def _get_index(self) -> lmz.Index:
        if self._index is None:
            self._index = lmz.read_index(self._fp)
        return self._index

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._get_index().raw_size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if offset < 0:
            raise ValueError("negative seek position")
        if not self._buf_start <= offset <= self._buf_start + len(self._buf):
            if not self.seekable():
                raise io.UnsupportedOperation("seeking outside the current chunk needs a seekable file")
            self._get_index()
            self._chunks = None  # from now on, decode by index
            self._eof = False
            self._buf, self._buf_start = b"", 0
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos


class _CompressWriter:
    """Cuts written bytes into chunks and writes frames, batch_size chunks at a time.

    progress(n), if given, is called now and then with the bytes of content coded so far."""

    def __init__(self, fp: IO[bytes], codec, zstd_level: int, progress: Callable[[int], None] | None = None) -> None:
        from ..pipeline.codec import Cutter

        self._codec = codec
        self._zstd_level = zstd_level
        self._w = lmz.Writer(fp, codec.header)
        self._cutter = Cutter(codec)
        self._progress = progress

    def write(self, data: bytes) -> None:
        self._cutter.add(data)
        if self._cutter.pending >= self._codec.chunk_size * self._codec.batch_size:
            self._drain(final=False)

    def _drain(self, final: bool) -> None:
        # Chunks are coded and written batch_size at a time, so memory stays bounded by the batch, not by the write.
        batch = []
        for chunk in self._cutter.chunks(final):
            batch.append(chunk)
            if len(batch) == self._codec.batch_size:
                self._write(batch)
                batch = []
        self._write(batch)

    def _write(self, chunks: list) -> None:
        report = None
        if self._progress is not None:
            report = lambda n, base=self._w.raw_written: self._progress(base + n)
        for chunk, payload in zip(chunks, self._codec.encode(chunks, report)):
            self._w.write_chunk(chunk.raw, payload, self._zstd_level)
        if self._progress is not None:
            self._progress(self._w.raw_written)

    def close(self) -> None:
        self._drain(final=True)
        self._w.close()


class LmzFile(io.BufferedIOBase):
    """A file object for .lmz data; modes 'rb', 'wb', 'ab', 'xb'. Use open() for text modes.

    settings (lmcodec.Settings) and the keyword arguments over them say how to code: see Settings. Writing
    options (level, chunk_size, window, zstd_level) are refused when reading, memory when writing. Reading
    decodes as many lm frames side by side as `memory` (bytes, default 2 GiB) allows, or batch_size frames if
    given; writing codes the level's batch of chunks at a time (default 4). errors="salvage" (reading only;
    default "strict": the first damage raises its LmzError) reads a damaged file front to back as far as it
    goes, leaving out each range of content lost to damage: `damage` lists them (lmz.Damage: offset and length
    in the content) and each is warned of as a DamageWarning; such a file cannot seek. progress, if given, is
    called now and then (from the thread doing the work) with the number of content bytes coded or decoded so
    far, including the part of a batch still in flight: for progress meters."""

    def __init__(self, filename: str | bytes | os.PathLike | IO[bytes], mode: str = "rb",
                 settings: Settings | None = None, *, model: ModelSource = None, level: int | None = None,
                 chunk_size: int | None = None, window: int | None = None, zstd_level: int | None = None,
                 batch_size: int | None = None, memory: int | None = None, device: str | None = None,
                 threads: int | None = None, progress: Callable[[int], None] | None = None,
                 errors: str = "strict") -> None:
        mode = mode.replace("b", "")
        if mode not in ("r", "w", "a", "x"):
            raise ValueError(f"invalid mode {mode!r}")
        if errors not in ("strict", "salvage") or (errors == "salvage" and mode != "r"):
            raise ValueError(f"errors must be 'strict', or 'salvage' when reading; got {errors!r}")
        self.settings = settings_for(settings, mode, model=model, level=level, chunk_size=chunk_size,
                                     window=window, zstd_level=zstd_level, batch_size=batch_size, memory=memory,
                                     device=device, threads=threads)
        self._mode = mode
        self._fp: IO[bytes] | None = None
        self._owned = isinstance(filename, (str, bytes, os.PathLike))
        self._temp: TempFile | None = None  # an owned file being written: it appears only when complete
        self.name = os.fspath(filename) if self._owned else getattr(filename, "name", "")
        if mode == "r":
            self._fp = builtins.open(filename, "rb") if self._owned else filename
            lm = _LmDecoder(self.settings, progress)
            self._raw = _DecompressReader(self._fp, lm, errors == "salvage")
            self._reader = io.BufferedReader(self._raw, buffer_size=1 << 16)
            return
        codec = codec_for(self.settings)  # a model that cannot be loaded fails before an output file is created
        if self._owned:
            final = os.fsdecode(filename)
            if mode == "x" and os.path.exists(final):
                raise FileExistsError(f"{final} exists")
            self._temp = TempFile(final)
            self._fp = self._temp.file
        else:
            self._fp = filename
        self._writer = _CompressWriter(self._fp, codec, self.settings.zstd, progress)

    # --- reading ---
    @property
    def damage(self) -> list[lmz.Damage]:
        """With errors="salvage": the ranges of content lost so far."""
        self._check_mode("r")
        return list(self._raw.damage)

    def readable(self) -> bool:
        self._check()
        return self._mode == "r"

    def read(self, size: int | None = -1) -> bytes:
        self._check_mode("r")
        return self._reader.read(size)

    def read1(self, size: int = -1) -> bytes:
        self._check_mode("r")
        return self._reader.read1(size)

    def readinto(self, b) -> int:
        self._check_mode("r")
        return self._reader.readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        self._check_mode("r")
        return self._reader.readline(size)

    def peek(self, n: int = 0) -> bytes:
        self._check_mode("r")
        return self._reader.peek(n)

    def seekable(self) -> bool:
        self._check()
        return self._mode == "r" and self._reader.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_mode("r")
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        self._check()
        return self._reader.tell() if self._mode == "r" else self._written

    # --- writing ---
    _written = 0

    def writable(self) -> bool:
        self._check()
        return self._mode != "r"

    def write(self, data) -> int:
        self._check_mode("w")
        data = bytes(data)
        self._writer.write(data)
        self._written += len(data)
        return len(data)

    def flush(self) -> None:
        self._check()
        if self._mode != "r" and not self._fp.closed:  # close() closes an owned file before IOBase.close flushes
            self._fp.flush()

    # --- life cycle ---
    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_mode(self, want: str) -> None:
        self._check()
        if (want == "r") != (self._mode == "r"):
            raise io.UnsupportedOperation(f"not open for {'reading' if want == 'r' else 'writing'}")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._mode == "r":
                self._reader.close()
            else:
                self._writer.close()
                if self._temp is not None:
                    self._commit()
        except BaseException:
            self._abort()
            raise
        finally:
            if self._owned and self._fp is not None:
                self._fp.close()
            super().close()

    def _commit(self) -> None:
        if self._mode == "a" and os.path.exists(self._temp.dest):  # the new stream goes after the old ones
            self._temp.file.close()
            with builtins.open(self._temp.path, "rb") as src, builtins.open(self._temp.dest, "ab") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            self._temp.discard()
        else:
            self._temp.commit()

    def _abort(self) -> None:
        if self._temp is not None:
            self._temp.discard()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._mode != "r":
            self._abort()
            if self._fp is not None and self._owned:
                self._fp.close()
            io.BufferedIOBase.close(self)
            return
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_temp", None) is not None:
            self._abort()


def open(filename: str | bytes | os.PathLike | IO[bytes], mode: str = "rb", settings: Settings | None = None, *,
         model: ModelSource = None, level: int | None = None, chunk_size: int | None = None,
         window: int | None = None, zstd_level: int | None = None, batch_size: int | None = None,
         memory: int | None = None, device: str | None = None, threads: int | None = None,
         progress: Callable[[int], None] | None = None, encoding: str | None = None, errors: str | None = None,
         newline: str | None = None) -> IO:
    """Open an .lmz file in binary ('rb', 'wb', 'ab', 'xb') or text ('rt', 'wt', 'at', 'xt') mode.

    settings and the keyword arguments over them: see lmcodec.Settings and LmzFile."""
    if "t" in mode:
        if "b" in mode:
            raise ValueError(f"invalid mode {mode!r}")
    elif encoding is not None or errors is not None or newline is not None:
        raise ValueError("encoding, errors and newline are for text mode only")
    f = LmzFile(filename, mode.replace("t", "b"), settings, model=model, level=level, chunk_size=chunk_size,
                window=window, zstd_level=zstd_level, batch_size=batch_size, memory=memory, device=device,
                threads=threads, progress=progress)
    return io.TextIOWrapper(f, encoding, errors, newline) if "t" in mode else f


def compress(data: bytes, settings: Settings | None = None, *, model: ModelSource = None, level: int | None = None,
             chunk_size: int | None = None, window: int | None = None, zstd_level: int | None = None,
             batch_size: int | None = None, device: str | None = None, threads: int | None = None) -> bytes:
    """Compress bytes into one .lmz stream (see lmcodec.Settings for the settings and keywords)."""
    out = io.BytesIO()
    with LmzFile(out, "wb", settings, model=model, level=level, chunk_size=chunk_size, window=window,
                 zstd_level=zstd_level, batch_size=batch_size, device=device, threads=threads) as f:
        f.write(data)
    return out.getvalue()


def decompress(data: bytes, settings: Settings | None = None, *, model: ModelSource = None,
               memory: int | None = None, batch_size: int | None = None, device: str | None = None,
               threads: int | None = None, errors: str = "strict") -> bytes:
    """Decompress one or more concatenated .lmz streams. memory: bytes (frames decode side by side as it allows,
    default 2 GiB); batch_size: a fixed number of frames instead; model: one to use if a stream names it.
    errors="salvage": every intact frame of a damaged input, each lost range warned of (DamageWarning)."""
    with LmzFile(io.BytesIO(data), "rb", settings, model=model, memory=memory, batch_size=batch_size,
                 device=device, threads=threads, errors=errors) as f:
        return f.read()
