"""Decoding lm frames of coder 1 version 1 (files made by lmcodec 0.1.0): the bare model's tables, full
attention, tokens only (spec/coder.md). Nothing writes this version any more."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import lmz

from ..coding import rangecoder
from ..engine import Engine
from .tokens import ByteTokenizer


def decode_batch(engine: Engine, tokenizer: ByteTokenizer, frames: list[lmz.Frame], seconds: dict[str, float],
                 progress: Callable[[int], None] | None = None) -> list[bytes | lmz.LmzError]:
    """The content of version-1 lm frames decoded side by side (not yet verified against their checks); in place
    of a frame whose payload does not decode to its length, the error that says so."""
    import time

    n = len(frames)
    need = [f.raw_length for f in frames]
    got = [bytearray() for _ in frames]
    decoders = [rangecoder.Decoder(f.payload) for f in frames]
    rows = np.arange(n)  # the frame of each engine row still decoding
    state = engine.start(n)
    prev = np.full(n, engine.bos_id, np.int64)
    for _ in range(engine.max_tokens - 1):
        t = time.perf_counter()
        tables = state.step(prev)
        t1 = time.perf_counter()
        seconds["engine"] += t1 - t
        sym = np.array([decoders[i].decode(tables[j]) for j, i in enumerate(rows)], dtype=np.int64)
        keep = []
        for j, i in enumerate(rows):
            got[i] += tokenizer.token_bytes[sym[j]]
            if len(got[i]) < need[i]:
                keep.append(j)
        if progress is not None:
            progress(sum(len(g) for g in got))
        if not keep:
            break
        if len(keep) < len(rows):
            state.keep(keep)
            rows = rows[keep]
        prev = sym[keep]
        seconds["coding"] += time.perf_counter() - t1
    return [bytes(g) if len(g) == f.raw_length else
            lmz.ChecksumError(f"{f.where}: lm payload does not decode to {f.raw_length} bytes")
            for f, g in zip(frames, got)]
