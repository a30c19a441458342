"""The codec: chunks of bytes <-> lm frame payloads, batched through the engine, the mixer and the range coder.

Chunk boundaries depend only on the input and the chunk size, and every chunk codes alone, so the output
does not depend on batch size, threads or device. Frames are written with coder 1 version 2 (lmcodec.pipeline.mixed);
version-1 frames (lmcodec 0.1.0) still decode (lmcodec.pipeline.plain).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lmz

from .. import models
from ..coding import versions
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE
from ..engine import Engine, ring_slots
from ..engine import threads as th
from ..engine.intmodel import IntModel
from ..errors import ModelError
from . import budget, chunker, mixed, plain
from .measures import Measures
from .tokens import ByteTokenizer


@dataclass
class Chunk:
    raw: bytes
    tokens: list[int] | None  # None: not text, skip the model


class Cutter:
    """Cuts bytes, added in pieces of any size, into the chunks Codec.cut defines.

    The compressing writer and the distributed client both cut through this, so a stream's chunks (and so
    its frames) are the same whichever of them made it.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes added and not yet cut."""
        return len(self._buf)

    def chunks(self, final: bool) -> Iterator[Chunk]:
        """The chunks that the bytes added so far decide (all of them if final); consume before add()ing more.

        cut() looks at no more than frame_limit bytes (a run of non-text data), so it is passed only those:
        slicing the whole rest of a large write for every chunk made one big write quadratic. Cut bytes are
        dropped once the caller is done, so memory stays bounded by what the caller keeps.
        """
        view = memoryview(self._buf)
        span = self.codec.frame_limit + 1
        pos = 0
        try:
            while True:
                chunk, used = self.codec.cut(bytes(view[pos: pos + span]), final)
                if chunk is None:
                    return
                pos += used
                yield chunk
        finally:
            view.release()
            del self._buf[:pos]


class Codec:
    """One model on one device, with the options that shape its output (chunk size, attention window) and its
    speed (batch)."""

    def __init__(self, model: str | IntModel | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: str = "cpu", threads: int | None = None,
                 fast: bool = True, window: int = versions.DEFAULT_WINDOW) -> None:
        if not 1 <= chunk_size <= lmz.MAX_CHUNK:
            raise ValueError(f"chunk size must be in 1..{lmz.MAX_CHUNK}")
        if batch_size < 1:
            raise ValueError("batch size must be >= 1")
        if not versions.SINK < window <= versions.MAX_WINDOW:
            raise ValueError(f"attention window must be in {versions.SINK + 1}..{versions.MAX_WINDOW}")
        self.model = models.resolve(model)
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.window = window
        self.speculate = True  # decoding feeds guesses from repeats (mixed.decode_batch); the output is the same
        self._device, self._threads, self._fast = device, threads, fast
        self._engines: dict[tuple[int | None, bool], Engine] = {}
        self.engine = self.engine_for(window, versions.kv8_of(versions.CODER_VERSION))
        self.tokenizer = ByteTokenizer(self.model)
        self.measures: Measures | None = None  # set by the measurement tools

    def engine_for(self, window: int | None, kv8: bool) -> Engine:
        """The engine for an attention window (None: full attention, coder version 1) and cache rounding (kv8:
        version 3), made once."""
        if (window, kv8) not in self._engines:
            self._engines[window, kv8] = Engine(self.model, device=self._device, threads=self._threads,
                                                fast=self._fast, window=window, sink=versions.SINK if window else 0,
                                                kv8=kv8)
        return self._engines[window, kv8]

    @property
    def header(self) -> lmz.StreamHeader:
        return lmz.StreamHeader("", bytes.fromhex(self.model.sha256)[: lmz.MODEL_HASH_SIZE], self.chunk_size,
                                lmz.CODER_LMCODEC, versions.CODER_VERSION, 0, lmz.FORMAT_VERSION,
                                versions.encode_params(self.window))

    @property
    def frame_limit(self) -> int:
        return self.header.frame_limit

    def cut(self, buf: bytes, final: bool) -> tuple[Chunk | None, int]:
        """The next chunk from the start of buf and the bytes it takes; (None, 0) if more input is needed.
        Text runs become lm chunks, the rest bulk chunks (lmcodec.pipeline.chunker)."""
        end, text = chunker.cut(buf, final, self.chunk_size, self.frame_limit)
        if not end:
            return None, 0
        raw = buf[:end]
        return Chunk(raw, self.tokenizer.encode(raw, raw=True) if text else None), end

    def encode(self, chunks: list[Chunk], progress: Callable[[int], None] | None = None) -> list[bytes | None]:
        """lm payloads for the chunks (None where the pre-check skipped the model), batch_size at a time.

        progress, if given, is called now and then with an estimate of the bytes of these chunks coded so far."""
        m = self.measures or Measures()
        out: list[bytes | None] = [None] * len(chunks)
        todo = [i for i, c in enumerate(chunks) if c.tokens]
        done = sum(len(c.raw) for c in chunks if not c.tokens)
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s: s + self.batch_size]
            size = sum(len(chunks[i].raw) for i in idx)
            report = None if progress is None else lambda f, base=done, size=size: progress(base + int(f * size))
            (payloads,), (bits,) = mixed.encode_batch(self.engine, [chunks[i].tokens for i in idx], m.seconds, report)
            m.ideal_bits += bits
            for i, payload in zip(idx, payloads):
                out[i] = payload
            done += size
        return out

    def decode(self, header: lmz.StreamHeader, frames: list[lmz.Frame],
               progress: Callable[[int], None] | None = None, batch: int | None = None) -> list[bytes | lmz.LmzError]:
        """The lmz lm_decoder callback: decode lm frames of one stream, `batch` (default batch_size) at a time;
        an error in place of a frame that does not decode.

        progress, if given, is called after every decoding step with the bytes of these frames decoded so far."""
        engine = self.engine_of(header)
        m = self.measures or Measures()
        step = batch or self.batch_size
        out: list[bytes | lmz.LmzError] = []
        for s in range(0, len(frames), step):
            base = sum(f.raw_length for f in frames[:s])
            report = None if progress is None else lambda n, base=base: progress(base + n)
            out += self._decode_side_by_side(header, engine, frames[s: s + step], m, report)
        return out

    def _decode_side_by_side(self, header: lmz.StreamHeader, engine: Engine, frames: list[lmz.Frame], m: Measures,
                             progress: Callable[[int], None] | None) -> list[bytes | lmz.LmzError]:
        """Frames decoded side by side; with several kernel threads, in one group a thread (as many as there are
        frames), each group's steps on its own thread, a layer a compiled call (engine/layerstep.py). A step's
        matmuls are too small to split well over threads (measured on 2 cores: 16 frames decoded at 197 tokens/s
        on one thread, 245 splitting each matmul, up to 2 x 184 in two groups of 8; 2 frames in 29.6 s as one
        batch, 22.6 s as one frame a thread); frames are independent, so groups give the same bytes, and hold the
        same caches as one batch. Coder 2's groups hand frames to a thread whose own are done, and merge into one
        whose steps use every thread once few frames are left (mixed._Board); coder 1's keep theirs."""
        groups = max(1, min(engine.threads, len(frames)))
        with th.scope(groups, 1):
            if header.coder_version != versions.VERSION_PLAIN:
                return mixed.decode_batch(engine, self.tokenizer, frames, m.seconds, progress, self.speculate,
                                          m.counts, groups)
            cuts = [len(frames) * g // groups for g in range(groups + 1)]
            parts = [frames[cuts[g]: cuts[g + 1]] for g in range(groups)]
            done = [0] * groups
            lock = threading.Lock()
            results: list[list[bytes | lmz.LmzError]] = [[] for _ in parts]
            measures = [Measures() for _ in parts]

            def decode(g: int) -> None:
                def report(n: int) -> None:  # n: bytes of this group decoded so far
                    with lock:  # so that the total only grows
                        done[g] = n
                        if progress is not None:
                            progress(sum(done))

                results[g] = plain.decode_batch(engine, self.tokenizer, parts[g], measures[g].seconds, report)

            th.parallel([lambda g=g: decode(g) for g in range(groups)])
        for part in measures:
            for k, v in part.seconds.items():
                m.seconds[k] = m.seconds.get(k, 0.0) + v
        return [r for part in results for r in part]

    def frames_within(self, memory: int, header: lmz.StreamHeader) -> int:
        """lm frames of this stream that decode side by side within `memory` bytes (lmcodec.pipeline.budget)."""
        e = self.engine_of(header)
        slots = ring_slots(e.window) if e.window else header.chunk_size + 1
        return budget.frames_within(memory, self.model.path.stat().st_size,
                                    budget.kv_bytes_per_slot(e.n_layers, e.nkv, e.hd, e.fused,
                                                              1 if e.code_cache else 2 if e.window else 4,
                                                              1 if e.code_cache else 2), slots)

    def engine_of(self, header: lmz.StreamHeader) -> Engine:
        """The engine that decodes the stream's lm frames, if this codec's model and coder can (else ModelError,
        UnsupportedError or FormatError)."""
        if not header.names_model(self.model.sha256):
            need = header.model_sha256.hex()
            raise ModelError(
                f"this stream needs model {header.model_id or models.model_name(need) or '(unknown id)'} "
                f"(sha256 {need}), but {self.model.model_id} (sha256 {self.model.sha256}) is loaded")
        if header.coder_id != lmz.CODER_LMCODEC or header.coder_version not in versions.VERSIONS:
            raise lmz.UnsupportedError(f"coder {header.coder_id} version {header.coder_version} is not supported")
        try:
            window = versions.window_of(header.coder_version, header.params)
        except ValueError as e:
            raise lmz.FormatError(f"stream header: {e}") from None
        return self.engine_for(window, versions.kv8_of(header.coder_version))
