"""lmcodec measured for the benchmarks: the .lmz file the API writes, and a stream forced through the model.

The codec's pre-check sends chunks that are clearly not text (images, audio) to zstd or stored frames, so
on such data the .lmz file says nothing about the model. `forced=True` writes a stream in which every chunk,
cut at exactly the chunk size (the paper's 2048-byte samples stay whole), is an lm frame: the model's own
rate, in a real .lmz stream that lmcodec.decompress reads back like any other. The data must hold only bytes
the model's vocabulary can spell (see unspellable()).
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import lmz

import lmcodec
from tools._common import measured
from lmcodec.io.lmzfile import get_codec
from lmcodec.pipeline.codec import Chunk, Codec
from lmcodec.pipeline.measures import Measures


@dataclass
class LmRun:
    seconds: float
    peak: int  # bytes of resident memory above the process's before the call
    engine_seconds: float  # inside the engine (the rest is tokenizing, coding and framing)
    ideal_bits: float = 0.0  # sum of -log2 p over the coded tokens


@dataclass(frozen=True)
class Lm:
    """lmcodec with one model and chunk size; every call goes through the API's cached codec for these options."""
    model: str
    chunk_size: int
    batch_size: int
    threads: int | None = None

    @property
    def opts(self) -> dict:
        return {"batch_size": self.batch_size, "threads": self.threads}

    def codec(self, chunk_size: int | None = None) -> Codec:
        """Loading (and the first time converting) the model happens here, outside the timings."""
        return get_codec(self.model, chunk_size=chunk_size or self.chunk_size, **self.opts)

    def compress(self, data: bytes, forced: bool = False) -> tuple[bytes, LmRun]:
        """The .lmz stream of data (the API's, or every chunk through the model) and what making it cost."""
        codec = self.codec()
        codec.measures = m = Measures()
        if forced:
            blob, s, peak = measured(_forced, codec, data)
        else:
            blob, s, peak = measured(lambda: lmcodec.compress(data, model=self.model, chunk_size=self.chunk_size,
                                                              **self.opts))
        codec.measures = None
        return blob, LmRun(s, peak, m.seconds["engine"], m.ideal_bits)

    def decompress(self, blob: bytes, data: bytes) -> LmRun:
        """Decompress blob, which must give back data, through lmcodec.decompress."""
        dec = self.codec()  # the codec the reader will ask for (its header's chunk size)
        dec.measures = m = Measures()
        back, s, peak = measured(lambda: lmcodec.decompress(blob, model=self.model, **self.opts))
        if back != data:
            raise SystemExit(f"lmcodec ({self.model}, chunk {self.chunk_size}): ROUND TRIP FAILED")
        dec.measures = None
        return LmRun(s, peak, m.seconds["engine"])

    def warm(self) -> None:
        """Load the model and run both passes once: the first decode in a process costs seconds of set-up
        (kernel selection for the incremental pass) that would otherwise land in the first timing."""
        text = b"Warm-up: one short sentence, coded and decoded once."
        self.decompress(self.compress(text)[0], text)

    @property
    def model_bytes(self) -> int:
        return self.codec().model.path.stat().st_size


def unspellable(codec: Codec) -> list[int]:
    """Byte values the model's vocabulary has no single-byte token for: no chunk holding one can be coded by it."""
    return [b for b, t in enumerate(codec.tokenizer.byte_tokens) if t < 0]


def _forced(codec: Codec, data: bytes) -> bytes:
    chunks, pos = [], 0
    while pos < len(data):
        raw = data[pos: pos + codec.chunk_size]
        chunks.append(Chunk(raw, codec.tokenizer.encode(raw, raw=True)))
        pos += len(raw)
    out = io.BytesIO()
    with lmz.Writer(out, codec.header) as w:
        for c, payload in zip(chunks, codec.encode(chunks)):
            w.write_frame(lmz.METHOD_LM, c.raw, payload)
    return out.getvalue()


def frames(blob: bytes) -> tuple[Counter, int]:
    """Frames by method name, and bytes of lm payloads (the range coder's output)."""
    by, payload = Counter(), 0
    for f in lmz.Reader(io.BytesIO(blob)).frames():
        by[lmz.METHOD_NAMES[f.method]] += 1
        if f.method == lmz.METHOD_LM:
            payload += len(f.payload)
    return by, payload
