"""The mixer of coder 1 version 2 (spec/mixer.md): valid tables, exact round trips, compiled == interpreted,
and its scalar range coder byte-identical to the reference coder."""
from __future__ import annotations

import numpy as np
import pytest

from lmcodec.coding import mixer as mx
from lmcodec.coding import rangecoder
from lmcodec.scan import SCAN, first_max
from lmcodec.tables import TOTAL

NV = 300


def tables(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Skewed frequency tables like a model's: NV entries >= 1 summing to 2**28."""
    out = []
    for _ in range(n):
        logits = rng.normal(0, 3, NV)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        f = np.floor(p * (TOTAL - NV)).astype(np.int64) + 1
        f[np.argmax(f)] += TOTAL - f.sum()
        out.append(f)
    return out


def symbols(rng: np.random.Generator, tabs: list[np.ndarray], n: int) -> np.ndarray:
    """Drawn from the tables, with repeats (for the match and n-gram models), runs and raw bytes."""
    out: list[int] = []
    while len(out) < n:
        r = rng.random()
        if len(out) > 60 and r < 0.25:
            out.extend(out[-50: -50 + int(rng.integers(3, 20))])
        elif r < 0.28:
            out.extend([int(rng.integers(0, NV))] * int(rng.integers(2, 30)))
        elif r < 0.31:
            out.append(NV + int(rng.integers(0, 256)))
        else:
            p = tabs[len(out) % len(tabs)]
            out.append(int(rng.choice(NV, p=p / p.sum())))
    return np.array(out[:n], dtype=np.int64)


def encode(syms: np.ndarray, tabs: list[np.ndarray], run=mx.encode_run) -> tuple[bytes, int]:
    st = mx.new_frame(len(syms))
    enc = rangecoder.encoder_state()
    out = rangecoder.output_buffer(len(syms))
    bits = np.zeros(1, dtype=np.int64)
    while st.sc[mx.S_T] < len(syms):
        run(tabs[st.sc[mx.S_FED] % len(tabs)], NV, syms, len(syms), enc, out, st, bits)
    return bytes(out[: rangecoder.finish(enc, out)]), int(st.sc[mx.S_FED])


def decode(payload: bytes, n_bytes: int, tabs: list[np.ndarray]) -> np.ndarray:
    lens = np.ones(NV + 256, dtype=np.int64)
    st = mx.new_frame(n_bytes)
    dec = rangecoder.decoder_state()
    pay = np.frombuffer(payload, dtype=np.uint8)
    rangecoder.start(dec, pay)
    while mx.decode_run(tabs[st.sc[mx.S_FED] % len(tabs)], NV, pay, dec, lens, n_bytes, st):
        pass
    return st.hist[: st.sc[mx.S_T]].copy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_and_feeding(seed):
    rng = np.random.default_rng(seed)
    tabs = tables(rng, 40)
    syms = symbols(rng, tabs, 2500)
    payload, fed = encode(syms, tabs)
    assert np.array_equal(decode(payload, len(syms), tabs), syms)  # every symbol spells one byte here
    assert fed == int(mx.fed_mask(syms, NV).sum())  # the feeding rule, as the encoder's full pass applies it


def test_repeats_cost_little():
    """A repeated stretch codes far below its first occurrence: the match and n-gram models learn it."""
    rng = np.random.default_rng(5)
    tabs = tables(rng, 40)
    part = symbols(rng, tabs, 400)
    once, _ = encode(part, tabs)
    twice, _ = encode(np.concatenate([part, part, part]), tabs)
    assert len(twice) < 1.2 * len(once)


def test_tables_are_valid_and_search_agrees():
    rng = np.random.default_rng(3)
    tabs = tables(rng, 10)
    syms = symbols(rng, tabs, 300)
    st = mx.new_frame(len(syms))
    for t, s in enumerate(syms.tolist()):
        P = tabs[t % 10]
        n, ratio, esc = mx.predict(P, NV, st)
        cf = [mx.cum_freq(P, NV, q, n, ratio, esc, st) for q in range(NV + 256)]
        F = np.array([f for _, f in cf], dtype=np.int64)
        cum = np.concatenate([[0], np.cumsum(F)])
        assert cum[-1] == TOTAL and F.min() >= 1  # a whole table: every symbol codable, summing to 2**28
        assert [c for c, _ in cf] == cum[:-1].tolist()  # each symbol's cum is the sum of those before it
        for v in [0, TOTAL - 1, *rng.integers(0, TOTAL, 4).tolist()]:
            q, c, f = mx.find(P, NV, v, n, ratio, esc, st)
            assert cum[q] <= v < cum[q + 1] and (c, f) == (cum[q], F[q])
        mx.update(s, P, NV, n, st)


def test_first_max_is_the_first_largest():
    """The table scans' block search (the engine's top entry, the mixer's top candidate) against numpy's argmax
    (the first index of the largest), over ties, block edges and a length short of the array."""
    rng = np.random.default_rng(5)
    cases = [np.zeros(1, np.int64), np.arange(3 * SCAN, dtype=np.int64), np.arange(3 * SCAN, dtype=np.int64)[::-1]]
    for n in (SCAN - 1, SCAN, SCAN + 1, 5 * SCAN + 7):
        x = rng.integers(0, 4, n).astype(np.int64)  # many ties
        cases.append(x)
        y = x.copy()
        y[-1] = 9  # the largest in the last, short block
        cases.append(y)
    for x in cases:
        assert first_max(x, len(x)) == int(np.argmax(x))
        if len(x) > 2:
            assert first_max(x, len(x) - 1) == int(np.argmax(x[:-1]))


def test_compiled_equals_interpreted():
    """The numba kernels and the same Python run interpreted (NUMBA_DISABLE_JIT, what runs without numba) give
    the same bytes: the compiler takes no liberty with the integers."""
    import os
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, test_mixer as t\n"
            "rng = np.random.default_rng(7); tabs = t.tables(rng, 8); syms = t.symbols(rng, tabs, 150)\n"
            "print(t.encode(syms, tabs)[0].hex())")
    here = os.path.dirname(__file__)
    runs = [subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, check=True,
                           env=dict(os.environ, NUMBA_DISABLE_JIT=flag)).stdout for flag in ("0", "1")]
    assert runs[0] == runs[1] and len(runs[0]) > 100


def test_corrupt_payload_decodes_boundedly():
    """Any payload decodes to at most the frame's length in symbols, without error or hang."""
    rng = np.random.default_rng(13)
    tabs = tables(rng, 5)
    for _ in range(20):
        junk = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        assert len(decode(junk, 200, tabs)) <= 200
