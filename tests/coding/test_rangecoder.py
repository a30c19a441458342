"""The range coder (coder id 1; spec/coder.md): the one lmcodec codes every lm frame with, through its Python
Encoder/Decoder and through the compiled kernels the mixer calls (the same functions)."""
from __future__ import annotations


import numpy as np
import pytest

from lmcodec.coding import rangecoder
from lmcodec.coding.rangecoder import Decoder, Encoder
from lmcodec.tables import TOTAL, TOTAL_BITS

assert TOTAL == 2**28 and TOTAL_BITS == 28


# ------------------------------------------------------------------------------------------ helpers
def lm_like_tables(rng: np.random.Generator, T: int, V: int, sharp: float = 1.0) -> np.ndarray:
    """(T, V) int64 frequency tables summing to 2**28, every freq >= 1, skewed like LM softmaxes."""
    logits = rng.standard_normal((T, V)) * sharp * 3.0
    logits[np.arange(T), rng.integers(0, V, T)] += rng.uniform(0, 6, T) * sharp
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    f = np.floor(p * (TOTAL - V)).astype(np.int64) + 1
    f[np.arange(T), p.argmax(1)] += TOTAL - f.sum(1)
    assert (f >= 1).all() and (f.sum(1) == TOTAL).all()
    return f


def sample(rng: np.random.Generator, f: np.ndarray):
    """Sample one symbol per row of f with probability freq/total; return (syms, cum, freq)."""
    inc = np.cumsum(f, axis=1)
    u = rng.integers(0, TOTAL, f.shape[0])
    syms = np.array([np.searchsorted(inc[i], u[i], side="right") for i in range(f.shape[0])])
    fr = f[np.arange(f.shape[0]), syms]
    return syms, inc[np.arange(f.shape[0]), syms] - fr, fr


def encode_all(cum, freq, total=TOTAL) -> bytes:
    e = Encoder()
    for c, f in zip(cum, freq):
        e.encode(int(c), int(f), total)
    return e.finish()


def decode_check(payload: bytes, cum, freq, total=TOTAL) -> None:
    d = Decoder(payload)
    for c, f in zip(cum, freq):
        t = d.target(total)
        assert c <= t < c + f
        d.consume(int(c), int(f))


# ------------------------------------------------------------------------------ spec worked examples
TEN = ([5, 3, 2], [0, 5, 8])  # (freq, cum), total 10


def _encode_ten(msg):
    freq, cum = TEN
    e = Encoder()
    for s in msg:
        e.encode(cum[s], freq[s], 10)
    return e, e.finish()


def test_spec_example_1_trace():
    freq, cum = TEN
    e = Encoder()
    trace = []
    for s in [0, 1, 2, 2, 1, 0, 2]:
        e.encode(cum[s], freq[s], 10)
        trace.append((e.low, e.range, e.written()))
    assert trace[0] == (0x0, 0x7FFFFFFFFFFFFD, b"")
    assert trace[3] == (0x64DD2F1A9FBE64, 0x189374BC6A7EE, b"")
    assert trace[4] == (0xA1CAC083125800, 0x75F6FD21FF2C00, b"")
    assert trace[6] == (0xD0FA58F7120330, 0xBCBE61CFFEACC, b"")
    assert e.finish() == bytes.fromhex("65d8")


SPEC_EXAMPLES = [
    # (symbols, total-10 alphabet) -> payload hex; see spec/coder.md section 6
    ([0, 1, 2, 2, 1, 0, 2], "65d8"),
    ([2, 0, 1, 2, 1, 1, 1, 0, 2, 2, 1, 1, 2, 1, 1, 0, 0, 2, 0, 1, 2, 2, 0, 1], "e0d50045e280"),
    ([], ""),
]


@pytest.mark.parametrize("msg,hexout", SPEC_EXAMPLES)
def test_spec_examples_total10(msg, hexout):
    _, p = _encode_ten(msg)
    assert p.hex() == hexout
    freq, cum = TEN
    d = Decoder(p)
    got = [d.decode(freq, 10) for _ in msg]
    assert got == msg


def test_spec_example_total_2_28():
    f = [1, TOTAL - 3, 2]
    c = [0, 1, TOTAL - 2]
    msg = [1, 0, 2, 1, 1, 0]
    p = encode_all([c[s] for s in msg], [f[s] for s in msg])
    assert p.hex() == "0000001fffffee00000240"
    decode_check(p, [c[s] for s in msg], [f[s] for s in msg])
    d = Decoder(p)
    assert [d.decode(f) for _ in msg] == msg


# ------------------------------------------------------------------------------------------- basics
def test_empty_stream():
    assert Encoder().finish() == b""
    d = Decoder(b"")
    assert d.target() == 0  # decoding from an empty payload is defined (reads zeros)


def test_scalar_round_trip_small_totals():
    rng = np.random.default_rng(5)
    for total in [1, 2, 3, 7, 1000, 2**16 + 1, 2**27 - 1, TOTAL]:
        V = min(total, 17)
        for _ in range(5):
            T = int(rng.integers(0, 200))
            # random partition of total into V parts >= 1
            cut_set: set[int] = set()
            while len(cut_set) < V - 1:
                cut_set.add(int(rng.integers(1, total)))
            cuts = np.array(sorted(cut_set), dtype=np.int64)
            inc = np.concatenate([cuts, [total]])
            f = np.diff(np.concatenate([[0], inc]))
            syms = rng.integers(0, V, T)
            cum, fr = inc[syms] - f[syms], f[syms]
            p = encode_all(cum, fr, total)
            assert not p.endswith(b"\x00")
            d = Decoder(p)
            assert [d.decode(f, total) for _ in range(T)] == list(syms)


def test_invalid_arguments():
    e = Encoder()
    with pytest.raises(ValueError):
        e.encode(0, 0)
    with pytest.raises(ValueError):
        e.encode(TOTAL - 1, 2)
    with pytest.raises(ValueError):
        e.encode(0, 1, TOTAL + 1)
    d = Decoder(b"\x80")
    with pytest.raises(RuntimeError):
        d.consume(0, 1)  # no target asked for
    t = d.target()
    with pytest.raises(ValueError):
        d.consume(t + 1, 1)  # does not contain the target
    e.finish()
    with pytest.raises(RuntimeError):
        e.encode(0, 1)


def test_kernels_code_in_a_fixed_buffer():
    """The compiled loops code into output_buffer(n): n symbols of the smallest frequency fit, and the bytes are
    the Encoder's."""
    n = 1000
    st, out = rangecoder.encoder_state(), rangecoder.output_buffer(n)
    e = Encoder()
    for i in range(n):
        rangecoder.encode(st, out, i % 2 * (TOTAL - 1), 1, TOTAL)
        e.encode(i % 2 * (TOTAL - 1), 1)
    size = rangecoder.finish(st, out)
    assert size >= (TOTAL_BITS * n) // 8 and bytes(out[:size]) == e.finish()


# ------------------------------------------------------------------------------------ extreme tables
def test_extreme_tables():
    rng = np.random.default_rng(7)
    V = 262144
    # one symbol with nearly all mass, every other freq = 1, V = 2**18, total = 2**28
    f = np.ones(V, np.int64)
    f[12345] = TOTAL - (V - 1)
    inc = np.cumsum(f)
    assert inc[-1] == TOTAL
    T = 600
    syms = np.where(rng.random(T) < 0.5, 12345, rng.integers(0, V, T))
    syms[:50] = V - 1  # freq-1 symbols at the very top of the table
    syms[50:100] = 0  # and at the bottom
    cum = inc[syms] - f[syms]
    fr = f[syms]
    p = encode_all(cum, fr)
    ideal = float(np.sum(TOTAL_BITS - np.log2(fr.astype(float))))
    assert len(p) * 8 <= ideal + 1.4e-6 * T + 8
    decode_check(p, cum, fr)
    d = Decoder(p)
    assert [d.decode(f) for _ in range(T)] == list(syms)
    # long run of the near-certain symbol: tiny output, exercises 0xFF/0x00 runs
    q = encode_all([0] * 5000, [TOTAL - 1] * 5000)
    d = Decoder(q)
    for _ in range(5000):
        assert d.target() < TOTAL - 1
        d.consume(0, TOTAL - 1)
    assert len(q) <= 2
    q = encode_all([1] * 5000, [TOTAL - 1] * 5000)  # top of the table: carries everywhere
    decode_check(q, [1] * 5000, [TOTAL - 1] * 5000)


def straddle_sequence(rng: np.random.Generator, T: int):
    """Symbols that keep the interval straddling the carry boundary 2**56 (long pending 0xFF runs), then
    jump above it (a carry through the whole run); uses the scalar encoder's state to pick them."""
    e = Encoder()
    cums, freqs = [], []
    while len(cums) < T:
        mode = rng.integers(0, 3)
        for _ in range(int(rng.integers(1, 40))):
            r = e.range // TOTAL
            f = int(2 ** rng.integers(0, 20))
            if mode == 0 and e.low < 2**56 < e.low + e.range:  # keep straddling
                c = int(np.clip((2**56 - e.low) // r - f // 2, 0, TOTAL - f))
            elif mode == 1:  # jump to the top: carries when straddling
                c = TOTAL - f
            else:
                c = int(rng.integers(0, TOTAL - f + 1))
            e.encode(c, f)
            cums.append(c)
            freqs.append(f)
    return np.array(cums[:T]), np.array(freqs[:T])


def test_carry_through_ff_runs():
    rng = np.random.default_rng(5)
    n, T = 6, 700
    cum = np.zeros((n, T), np.int64)
    freq = np.zeros((n, T), np.int64)
    for i in range(n):
        cum[i], freq[i] = straddle_sequence(rng, T)
    ref = [encode_all(cum[i], freq[i]) for i in range(n)]
    assert sum(p.count(b"\x00\x00\x00\x00") for p in ref) > 0  # 0xFF runs turned into 0x00 by carries
    for i in range(n):
        decode_check(ref[i], cum[i], freq[i])


# ------------------------------------------------------------------------------------------ efficiency
def test_efficiency_within_0_1_percent():
    rng = np.random.default_rng(2024)
    for sharp in (1.05, 1.25, 1.6):
        T, V = 3000, 512
        f = lm_like_tables(rng, T, V, sharp=sharp)
        _, cum, fr = sample(rng, f)
        ideal = float(np.sum(TOTAL_BITS - np.log2(fr.astype(float))))
        assert 2.0 <= ideal / T <= 4.5, ideal / T
        p = encode_all(cum, fr)
        # documented bound (spec/coder.md section 7): <= ideal + 1.4e-6 * N + 8 bits
        assert len(p) * 8 <= ideal + 1.4e-6 * T + 8
        assert len(p) * 8 <= ideal * 1.001
        decode_check(p, cum, fr)


# ------------------------------------------------------------------------------------------ corruption
def test_corrupted_payload_terminates_deterministically():
    rng = np.random.default_rng(8)
    T, V = 500, 128
    f = lm_like_tables(rng, T, V)
    syms, cum, fr = sample(rng, f)
    p = encode_all(cum, fr)
    variants = [
        b"",
        b"\xff" * 40,
        b"\xff" * (len(p) + 50),
        bytes(rng.integers(0, 256, len(p), dtype=np.uint8)),
        p[: len(p) // 2],
        bytes([p[0] ^ 0x40]) + p[1:],
        p[:-1] + bytes([p[-1] ^ 1]),
        p + b"\x01\x02",
    ]
    for bad in variants:
        runs = []
        for _ in range(2):
            d = Decoder(bad)
            out = [d.decode(f[t]) for t in range(T)]
            runs.append(out)
        assert runs[0] == runs[1]
        assert all(0 <= s < V for s in runs[0])
    # the clamp (code // r >= total) and the mod-2**56 code register: scalar with a small total
    d = Decoder(b"\xff" * 20)
    assert [d.decode([1, 1, 1], 3) for _ in range(50)][:3] == [2, 2, 2]
    assert d.code < 2**56
    # a forced invalid state (code in the slack [r * 2**28, range)) decodes deterministically and stays in range
    for extra in (0, 12345):
        runs = []
        for _ in range(2):
            d = Decoder(p)
            d.decode(f[0])
            rg = int(d.state[rangecoder.DEC_RANGE]) | 0xFFFFFFF
            d.state[rangecoder.DEC_RANGE], d.state[rangecoder.DEC_CODE] = rg, rg - 1 - extra
            runs.append([d.decode(f[t]) for t in range(1, T)])
            assert d.code < 2**56
        assert runs[0] == runs[1]
    # decoding far more symbols than were coded also terminates (reads zeros)
    d = Decoder(p)
    for _ in range(3 * T):
        d.decode(f[0])
