#!/usr/bin/env python
"""A compressor as a generative model (the paper's §3.4), byte by byte: a demonstration, not a product.

    python -m tools.generate --compressor gzip|xz|zstd|lmz --prompt-file F [--prompt-bytes N] [--bytes 64]
                             [--seed 0] [--window 512] [--model default] [--threads N] [--out FILE]

Each next byte b is drawn with probability p(b) ∝ 2^-L(context + b), where L is the compressor's code length
of the last --window bytes of prompt + output followed by b: 8 bits per output byte for gzip -9, xz -9e and
zstd -19 (so many candidates tie), and for lmz the code length in bits of the tokens lmcodec would code
(Σ -log2 p under the integer model; the range coder's output is within 0.1% of it; bytes the model's
vocabulary cannot spell get probability 0). The part of the code
shared by all 256 candidates cancels out, so for lmz only the tokens after the longest common token prefix
are scored: one model pass per distinct context, usually two or three per byte. xz runs with its dictionary
cut to 64 KiB: larger than any window, so its code lengths are those of xz -9e.

The continuation goes to stdout (or --out); the same seed gives the same bytes. With the default model one
byte costs a few seconds on a 2-core CPU, so --bytes stays small; the tiny test model and gzip are quick.
"""
from __future__ import annotations

import argparse
import lzma
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tools import _common as C
from tools import compressors

CANDIDATES = [bytes([b]) for b in range(256)]
MAX_WINDOW = 1 << 16


def classical_bits(name: str) -> Callable[[bytes], np.ndarray]:
    """Code lengths in bits of context + b for every byte b, by one of the classical compressors."""
    if name == "xz":
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": MAX_WINDOW}]
        compress = lambda d: lzma.compress(d, filters=filters)  # noqa: E731
    else:
        compress = {c.name.split()[0]: c.compress for c in compressors.general()}[name]
    return lambda ctx: np.array([8.0 * len(compress(ctx + b)) for b in CANDIDATES])


class ModelBits:
    """Code lengths in bits of context + b under lmcodec's model, for every byte b."""

    def __init__(self, model: str, threads: int | None) -> None:
        from lmcodec.io.lmzfile import get_codec

        from tools.lm_measure import unspellable

        self.codec = get_codec(model, threads=threads)
        self.bad = set(unspellable(self.codec))  # bytes the model cannot code: probability 0

    def _last_tables(self, rows: list[list[int]]) -> np.ndarray:
        """The frequency table that follows each token row (BOS-prefixed), as the codec would see it."""
        import torch

        eng = self.codec.engine
        seq = torch.full((len(rows), 1 + max(map(len, rows))), eng.bos_id, dtype=torch.long)
        for i, r in enumerate(rows):
            seq[i, 1: 1 + len(r)] = torch.tensor(r, dtype=torch.long)
        out = np.zeros((len(rows), eng.vocab_size), dtype=np.int64)
        for t0, tables in eng.full_tables(seq):
            for i, r in enumerate(rows):
                if t0 <= len(r) < t0 + tables.shape[1]:  # position len(r) holds r's last token
                    out[i] = tables[i, len(r) - t0]
        return out

    def __call__(self, ctx: bytes) -> np.ndarray:
        from lmcodec.engine import TOTAL

        if self.bad & set(ctx):
            raise SystemExit(f"the context holds byte(s) {sorted(self.bad & set(ctx))} that the model cannot code")
        ok = [b for b in range(256) if b not in self.bad]
        seqs = [self.codec.tokenizer.encode(ctx + CANDIDATES[b]) for b in ok]
        common = len(os.path.commonprefix(seqs))  # no candidate's tokens are a prefix of another's
        tails = [s[common:] for s in seqs]
        contexts = sorted({tuple(t[:j]) for t in tails for j in range(len(t))})
        tables = self._last_tables([seqs[0][:common] + list(c) for c in contexts])
        at = {c: i for i, c in enumerate(contexts)}
        out = np.full(256, np.inf)
        out[ok] = [sum(-np.log2(tables[at[tuple(t[:j])], t[j]] / TOTAL) for j in range(len(t))) for t in tails]
        return out


def generate(bits: Callable[[bytes], np.ndarray], prompt: bytes, n: int, seed: int, window: int,
             bar=None) -> bytes:
    rng = np.random.default_rng(seed)
    out = bytearray()
    for _ in range(n):
        ctx = (prompt + out)[-window:]
        while ctx and ctx[0] & 0xC0 == 0x80:  # start on a character, not inside one
            ctx = ctx[1:]
        L = bits(bytes(ctx))
        p = np.exp2(L.min() - L)
        out.append(int(rng.choice(256, p=p / p.sum())))
        if bar is not None:
            bar.update()
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compressor", choices=["gzip", "xz", "zstd", "lmz"], required=True)
    ap.add_argument("--prompt-file", type=Path, required=True)
    ap.add_argument("--prompt-bytes", type=int, help="take only the first N bytes of the prompt file")
    ap.add_argument("--bytes", type=int, default=64, help="bytes to generate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=512, help="bytes of prompt + output the compressor sees")
    ap.add_argument("--model", default="default", help="lmz: the model")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path, help="write the continuation here instead of stdout")
    a = ap.parse_args()
    if not 1 <= a.window <= MAX_WINDOW:
        ap.error(f"--window must be in 1..{MAX_WINDOW}")

    bits = ModelBits(a.model, a.threads) if a.compressor == "lmz" else classical_bits(a.compressor)
    t = time.perf_counter()
    with C.progress(a.bytes, f"generate ({a.compressor})") as bar:
        prompt = a.prompt_file.read_bytes()[: a.prompt_bytes]
        text = generate(bits, prompt, a.bytes, a.seed, a.window, bar)
    print(f"{a.compressor}: {len(text)} bytes in {time.perf_counter() - t:.1f} s, seed {a.seed}, "
          f"window {a.window}", file=sys.stderr)
    if a.out:
        a.out.write_bytes(text)
    else:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
