"""The codec: chunks of bytes <-> lm frame payloads, batched through the engine and the range coder.

Chunk boundaries depend only on the input and the chunk size, and every chunk codes alone, so the output
does not depend on batch size, threads or device.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

import lmz

from . import models, rangecoder
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE
from .engine import Engine
from .errors import ModelError
from .intmodel import IntModel
from .tokens import ByteTokenizer, TokenizerError, utf8_cut

_CONTROL = bytes(range(32)).translate(None, b"\t\n\r\f\v\x1b")


def looks_like_text(raw: bytes) -> bool:
    """Cheap pre-check: valid UTF-8 (but for a character cut at the end) with few control bytes."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 3 or e.reason != "unexpected end of data":
            return False
    controls = len(raw) - len(raw.translate(None, _CONTROL))
    return controls * 100 <= len(raw)


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
    """One model on one device, with the options that shape its output (chunk size) and its speed (batch)."""

    def __init__(self, model: str | IntModel | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: str = "cpu", threads: int | None = None,
                 fast: bool = True) -> None:
        if not 1 <= chunk_size <= lmz.MAX_CHUNK:
            raise ValueError(f"chunk size must be in 1..{lmz.MAX_CHUNK}")
        if batch_size < 1:
            raise ValueError("batch size must be >= 1")
        self.model = models.resolve(model)
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.engine = Engine(self.model, device=device, threads=threads, fast=fast)
        self.tokenizer = ByteTokenizer(self.model)
        self.max_tokens = self.engine.max_tokens - 1  # one position goes to BOS
        self.ideal_bits = 0.0  # sum of -log2 p over coded tokens, for measurements
        self.seconds = {"engine": 0.0, "coding": 0.0}  # where the lm time goes, for the benchmarks

    @property
    def header(self) -> lmz.StreamHeader:
        return lmz.StreamHeader("", bytes.fromhex(self.model.sha256)[: lmz.MODEL_HASH_SIZE], self.chunk_size,
                                lmz.CODER_LMCODEC, rangecoder.CODER_VERSION)

    @property
    def frame_limit(self) -> int:
        return self.header.frame_limit

    def cut(self, buf: bytes, final: bool) -> tuple[Chunk | None, int]:
        """The next chunk from the start of buf and the bytes it takes; (None, 0) if more input is needed."""
        # Unless final, wait for a byte past the chunk size: utf8_cut looks at it to avoid splitting a character,
        # so without it where the chunk ends would depend on how the input was split into writes.
        if not buf or (len(buf) <= self.chunk_size and not final):
            return None, 0
        end = utf8_cut(buf, self.chunk_size)
        if end == 0:
            end = min(len(buf), self.chunk_size)
        raw = buf[:end]
        if not looks_like_text(raw):
            return self._bulk(buf, end, final)
        try:
            tokens = self.tokenizer.encode(raw)
        except TokenizerError:  # a byte the vocabulary cannot spell (SmolLM2 lacks 0x04, 0x06, ...): no model
            return Chunk(raw, None), end
        if len(tokens) > self.max_tokens:
            tokens = tokens[: self.max_tokens]
            end = len(self.tokenizer.decode(tokens))
            raw = raw[:end]
        return Chunk(raw, tokens), end

    def _bulk(self, buf: bytes, end: int, final: bool) -> tuple[Chunk | None, int]:
        """A non-text chunk extended over the following non-text pieces of chunk size, up to frame_limit.

        Where it stops depends only on the data: if the input runs out before that is decided, wait for more.
        """
        while end < self.frame_limit:
            piece = buf[end: min(end + self.chunk_size, self.frame_limit)]
            if len(piece) < min(self.chunk_size, self.frame_limit - end) and not final:
                return None, 0
            # a piece cut short (by the frame limit or the end of the input) joins the run unchecked
            if not piece or (len(piece) == self.chunk_size and looks_like_text(piece)):
                break
            end += len(piece)
        return Chunk(buf[:end], None), end

    def encode(self, chunks: list[Chunk], progress: Callable[[int], None] | None = None) -> list[bytes | None]:
        """lm payloads for the chunks (None where the pre-check skipped the model), batch_size at a time.

        progress, if given, is called now and then with an estimate of the bytes of these chunks coded so far."""
        out: list[bytes | None] = [None] * len(chunks)
        todo = [i for i, c in enumerate(chunks) if c.tokens]
        done = sum(len(c.raw) for c in chunks if not c.tokens)
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s: s + self.batch_size]
            size = sum(len(chunks[i].raw) for i in idx)
            report = None if progress is None else lambda f, base=done, size=size: progress(base + int(f * size))
            for i, payload in zip(idx, self._encode_batch([chunks[i].tokens for i in idx], report)):
                out[i] = payload
            done += size
        return out

    def _encode_batch(self, token_lists: list[list[int]], progress: Callable[[float], None] | None = None) -> list[bytes]:
        lengths = np.array([len(t) for t in token_lists])
        seq = torch.full((len(token_lists), int(lengths.max()) + 1), self.engine.bos_id, dtype=torch.long)
        for i, t in enumerate(token_lists):
            seq[i, 1: 1 + len(t)] = torch.tensor(t)
        enc = rangecoder.BatchEncoder(len(token_lists))
        last = seq.shape[1] - 1
        passes = self.engine.full_tables(seq, progress=progress)
        while True:
            t = time.perf_counter()
            t0, tables = next(passes, (None, None))
            self.seconds["engine"] += time.perf_counter() - t
            if t0 is None:
                break
            t = time.perf_counter()
            n = min(tables.shape[1], last - t0)
            if n <= 0:
                break
            tables = tables[:, :n].cpu()
            target = seq[:, t0 + 1: t0 + 1 + n, None]
            freq = tables.gather(-1, target)[..., 0]
            cum = (tables.cumsum(-1) - tables).gather(-1, target)[..., 0]
            valid = np.clip(lengths - t0, 0, n)
            f = freq.numpy()
            self.ideal_bits += float(sum(-np.log2(f[i, :valid[i]] / rangecoder.TOTAL).sum() for i in range(len(f))))
            enc.encode_block(cum.numpy(), f, valid)
            self.seconds["coding"] += time.perf_counter() - t
        return enc.finish()

    def decode(self, header: lmz.StreamHeader, frames: list[lmz.Frame],
               progress: Callable[[int], None] | None = None) -> list[bytes]:
        """The lmz lm_decoder callback: decode lm frames of one stream, batch_size at a time.

        progress, if given, is called after every decoding step with the bytes of these frames decoded so far."""
        self.check_header(header)
        out: list[bytes] = []
        for s in range(0, len(frames), self.batch_size):
            base = sum(len(r) for r in out)
            report = None if progress is None else lambda n, base=base: progress(base + n)
            out += self._decode_batch(frames[s: s + self.batch_size], report)
        return out

    def check_header(self, header: lmz.StreamHeader) -> None:
        if not header.names_model(self.model.sha256):
            need = header.model_sha256.hex()
            raise ModelError(
                f"this stream needs model {header.model_id or models.model_name(need) or '(unknown id)'} "
                f"(sha256 {need}), but {self.model.model_id} (sha256 {self.model.sha256}) is loaded")
        if header.coder_id != lmz.CODER_LMCODEC or header.coder_version != rangecoder.CODER_VERSION:
            raise lmz.UnsupportedError(f"coder {header.coder_id} version {header.coder_version} is not supported")

    def _decode_batch(self, frames: list[lmz.Frame], progress: Callable[[int], None] | None = None) -> list[bytes]:
        n = len(frames)
        need = [f.raw_length for f in frames]
        got = [bytearray() for _ in frames]
        dec = rangecoder.BatchDecoder([f.payload for f in frames])
        rows = np.arange(n)  # stream index of each engine row still decoding
        state = self.engine.start(n)
        prev = torch.full((n,), self.engine.bos_id, dtype=torch.long)
        tb = self.tokenizer.token_bytes
        full = None
        for _ in range(self.max_tokens):
            t = time.perf_counter()
            tables = state.step(prev).cpu().numpy()
            t1 = time.perf_counter()
            self.seconds["engine"] += t1 - t
            if full is None:  # one (n, V) buffer for the whole batch; finished rows stay inactive
                full = np.zeros((n, tables.shape[1]), dtype=np.int64)
            full[rows] = tables
            active = np.zeros(n, dtype=bool)
            active[rows] = True
            sym = dec.decode_step(full, active)
            keep = []
            for j, i in enumerate(rows):
                got[i] += tb[sym[i]]
                if len(got[i]) < need[i]:
                    keep.append(j)
            if progress is not None:
                progress(sum(len(g) for g in got))
            if not keep:
                break
            if len(keep) < len(rows):
                state.keep(keep)
                rows = rows[keep]
            prev = torch.from_numpy(sym[rows])
            self.seconds["coding"] += time.perf_counter() - t1
        for f, g in zip(frames, got):
            if len(g) != f.raw_length:
                raise lmz.ChecksumError(f"{f.where}: lm payload does not decode to {f.raw_length} bytes")
        return [bytes(g) for g in got]

