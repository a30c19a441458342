"""The mixer's time per symbol, encoding and decoding, with synthetic model tables (no engine, no model).

    python -m tools.bench_mixer [--symbols 20000] [--vocab 49152] [--repeats 5]

A frame of symbols with repeats (so the match and n-gram models take part) and a few raw bytes is coded with
lmcodec.coding.mixer's compiled loops (encode_run / decode_run, the range coder inside), each symbol against
one of a few fixed model tables; decoding must give the symbols back. Prints the best of --repeats runs in
microseconds per symbol. To compare two versions, run this file in each checkout, side by side.
"""
from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

from lmcodec.coding import mixer as mx
from lmcodec.coding import rangecoder as rc
from lmcodec.tables import TOTAL

TABLES = 8


def tables(nv: int, seed: int) -> np.ndarray:
    """TABLES model tables over nv tokens, each summing to TOTAL with every entry >= 1 (Zipf-like)."""
    rng = np.random.default_rng(seed)
    out = np.empty((TABLES, nv), dtype=np.int64)
    for i in range(TABLES):
        w = 1.0 / (1.0 + rng.permutation(nv)) ** 1.1
        f = 1 + np.floor(w / w.sum() * (TOTAL - 2 * nv)).astype(np.int64)
        f[int(np.argmax(f))] += TOTAL - int(f.sum())
        out[i] = f
    return out


def symbols(n: int, nv: int, seed: int) -> np.ndarray:
    """Phrases of a small vocabulary, often repeated, with a raw byte now and then."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, nv, size=400)
    phrases = [words[rng.integers(0, 400, size=rng.integers(3, 12))] for _ in range(60)]
    out: list[int] = []
    while len(out) < n:
        out += phrases[int(rng.integers(0, 60))].tolist() if rng.random() < 0.7 else \
            words[rng.integers(0, 400, size=4)].tolist()
        if rng.random() < 0.05:
            out.append(nv + int(rng.integers(0, 256)))
    return np.array(out[:n], dtype=np.int64)


def encode(P: np.ndarray, nv: int, syms: np.ndarray) -> tuple[bytes, float]:
    st = mx.new_frame(len(syms))
    enc, out, bits = rc.encoder_state(), rc.output_buffer(len(syms)), np.zeros(1, dtype=np.int64)
    t = time.perf_counter()
    while st.sc[mx.S_T] < len(syms):
        mx.encode_run(P[st.sc[mx.S_FED] % TABLES], nv, syms, len(syms), enc, out, st, bits)
    n = rc.finish(enc, out)
    return bytes(out[:n]), time.perf_counter() - t


def decode(P: np.ndarray, nv: int, payload: bytes, count: int) -> tuple[np.ndarray, float]:
    st = mx.new_frame(count)
    dec, buf = rc.decoder_state(), np.frombuffer(payload, dtype=np.uint8)
    lens = np.ones(nv + mx.RAW_SYMBOLS, dtype=np.int64)  # one byte per symbol: `count` bytes are `count` symbols
    t = time.perf_counter()
    rc.start(dec, buf)
    while mx.decode_run(P[st.sc[mx.S_FED] % TABLES], nv, buf, dec, lens, count, st):
        pass
    return st.hist[: st.sc[mx.S_T]].copy(), time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=20000)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    P, syms = tables(a.vocab, 1), symbols(a.symbols, a.vocab, 2)
    payload, _ = encode(P, a.vocab, syms[:200])  # compiles
    decode(P, a.vocab, payload, 200)
    enc_t, dec_t = [], []
    for _ in range(a.repeats):
        payload, t = encode(P, a.vocab, syms)
        enc_t.append(t)
        back, t = decode(P, a.vocab, payload, len(syms))
        dec_t.append(t)
        if not np.array_equal(back, syms):
            print("FAIL: decoding did not give the symbols back")
            return 1
    per = 1e6 / len(syms)
    print(f"symbols {len(syms)}, vocabulary {a.vocab}, payload {len(payload)} bytes "
          f"(sha256 {hashlib.sha256(payload).hexdigest()[:16]})")
    print(f"encode {min(enc_t) * per:.2f} us/symbol   decode {min(dec_t) * per:.2f} us/symbol")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
