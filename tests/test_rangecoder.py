"""Tests for the range coder (coder id 1, version 1; spec/coder.md)."""
from __future__ import annotations


import numpy as np
import pytest

from lmcodec.coding.rangecoder import (
    TOTAL,
    TOTAL_BITS,
    BatchDecoder,
    BatchEncoder,
    Decoder,
    Encoder,
)

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


def scalar_encode(cum, freq, total=TOTAL) -> bytes:
    e = Encoder()
    for c, f in zip(cum, freq):
        e.encode(int(c), int(f), total)
    return e.finish()


def scalar_decode_check(payload: bytes, cum, freq, total=TOTAL) -> None:
    d = Decoder(payload)
    for c, f in zip(cum, freq):
        t = d.target(total)
        assert c <= t < c + f
        d.consume(int(c), int(f), total)


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
        trace.append((e.low, e.range, bytes(e._out)))
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
    got = [d.decode(np.cumsum(freq), 10) for _ in msg]
    assert got == msg


def test_spec_example_total_2_28():
    f = [1, TOTAL - 3, 2]
    c = [0, 1, TOTAL - 2]
    msg = [1, 0, 2, 1, 1, 0]
    p = scalar_encode([c[s] for s in msg], [f[s] for s in msg])
    assert p.hex() == "0000001fffffee00000240"
    scalar_decode_check(p, [c[s] for s in msg], [f[s] for s in msg])
    be = BatchEncoder(1)
    for s in msg:
        be.encode(np.array([c[s]]), np.array([f[s]]))
    assert be.finish() == [p]
    bd = BatchDecoder([p])
    tab = np.array([f])
    assert [int(bd.decode_step(tab)[0]) for _ in msg] == msg


# ------------------------------------------------------------------------------------------- basics
def test_empty_stream():
    assert Encoder().finish() == b""
    assert BatchEncoder(3).finish() == [b"", b"", b""]
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
            p = scalar_encode(cum, fr, total)
            assert not p.endswith(b"\x00")
            d = Decoder(p)
            assert [d.decode(inc, total) for _ in range(T)] == list(syms)


def test_invalid_arguments():
    e = Encoder()
    with pytest.raises(ValueError):
        e.encode(0, 0)
    with pytest.raises(ValueError):
        e.encode(TOTAL - 1, 2)
    with pytest.raises(ValueError):
        e.encode(0, 1, TOTAL + 1)
    d = Decoder(b"\x80")
    t = d.target()
    with pytest.raises(ValueError):
        d.consume(t + 1, 1)  # does not contain the target
    be = BatchEncoder(2)
    with pytest.raises(ValueError):
        be.encode(np.array([0, 0]), np.array([1, 0]))
    bd = BatchDecoder([b"", b""])
    with pytest.raises(ValueError):
        bd.decode_step(np.ones((2, 10), dtype=np.int64))  # rows do not sum to 2**28


# ------------------------------------------------------------------------------------ batch == scalar
def test_batch_matches_scalar_random():
    rng = np.random.default_rng(11)
    n, T = 13, 400
    lengths = rng.integers(0, T + 1, n)
    lengths[0], lengths[1] = 0, T
    # mix of table shapes: skewed LM-like, flat, near-deterministic
    cum2d = np.zeros((n, T), np.int64)
    freq2d = np.ones((n, T), np.int64)
    syms2d = np.zeros((n, T), np.int64)
    tabs = []
    for i in range(n):
        f = lm_like_tables(rng, T, 64, sharp=float(rng.uniform(0.2, 3.0)))
        s, c, fr = sample(rng, f)
        syms2d[i], cum2d[i], freq2d[i] = s, c, fr
        tabs.append(f)
    ref = [scalar_encode(cum2d[i, : lengths[i]], freq2d[i, : lengths[i]]) for i in range(n)]

    for method in ("auto", "rows", "lockstep"):
        be = BatchEncoder(n, capacity=16)  # small capacity exercises buffer growth
        be.encode_block(cum2d, freq2d, lengths, method=method)
        assert be.finish() == ref

    be = BatchEncoder(n)  # step-wise with active masks
    for t in range(T):
        be.encode(cum2d[:, t], freq2d[:, t], active=lengths > t)
    assert be.finish() == ref

    for method in ("rows", "lockstep"):
        be = BatchEncoder(n)  # mixed: block, steps, block
        be.encode_block(cum2d[:, :100], freq2d[:, :100], np.minimum(lengths, 100), method=method)
        for t in range(100, 250):
            be.encode(cum2d[:, t], freq2d[:, t], active=lengths > t)
        be.encode_block(cum2d[:, 250:], freq2d[:, 250:], np.clip(lengths - 250, 0, None), method=method)
        assert be.finish() == ref

    # batch decode, tables (n, V) per step
    bd = BatchDecoder(ref)
    for t in range(T):
        active = lengths > t
        table = np.stack([tabs[i][t] for i in range(n)])
        out = bd.decode_step(table, active)
        assert (out[~active] == -1).all()
        assert (out[active] == syms2d[active, t]).all()
    for i in range(n):
        scalar_decode_check(ref[i], cum2d[i, : lengths[i]], freq2d[i, : lengths[i]])


def test_batch_lowlevel_target_consume():
    rng = np.random.default_rng(3)
    n, T = 5, 300
    f = lm_like_tables(rng, n * T, 32).reshape(n, T, 32)
    syms = np.zeros((n, T), np.int64)
    cum = np.zeros((n, T), np.int64)
    fr = np.zeros((n, T), np.int64)
    for i in range(n):
        syms[i], cum[i], fr[i] = sample(rng, f[i])
    be = BatchEncoder(n)
    be.encode_block(cum, fr)
    pay = be.finish()
    bd = BatchDecoder(pay)
    for t in range(T):
        tg = bd.target()
        assert ((cum[:, t] <= tg) & (tg < cum[:, t] + fr[:, t])).all()
        bd.consume(cum[:, t], fr[:, t])


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
    p = scalar_encode(cum, fr)
    ideal = float(np.sum(TOTAL_BITS - np.log2(fr.astype(float))))
    assert len(p) * 8 <= ideal + 1.4e-6 * T + 8
    scalar_decode_check(p, cum, fr)
    for method in ("rows", "lockstep"):
        be = BatchEncoder(2)
        be.encode_block(np.stack([cum, cum[::-1]]), np.stack([fr, fr[::-1]]), method=method)
        pays = be.finish()
        assert pays[0] == p
        assert pays[1] == scalar_encode(cum[::-1], fr[::-1])
    bd = BatchDecoder(pays)
    tab = np.broadcast_to(f, (2, V))
    for t in range(0, T):
        out = bd.decode_step(tab)
        assert out[0] == syms[t] and out[1] == syms[T - 1 - t]
    # long run of the near-certain symbol: tiny output, exercises 0xFF/0x00 runs
    q = scalar_encode([0] * 5000, [TOTAL - 1] * 5000)
    d = Decoder(q)
    for _ in range(5000):
        assert d.target() < TOTAL - 1
        d.consume(0, TOTAL - 1)
    assert len(q) <= 2
    q = scalar_encode([1] * 5000, [TOTAL - 1] * 5000)  # top of the table: carries everywhere
    for method in ("rows", "lockstep"):
        be = BatchEncoder(1)
        be.encode_block(np.ones((1, 5000), np.int64), np.full((1, 5000), TOTAL - 1), method=method)
        assert be.finish() == [q]
    scalar_decode_check(q, [1] * 5000, [TOTAL - 1] * 5000)


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
    ref = [scalar_encode(cum[i], freq[i]) for i in range(n)]
    assert sum(p.count(b"\x00\x00\x00\x00") for p in ref) > 0  # 0xFF runs turned into 0x00 by carries
    for method in ("rows", "lockstep"):
        be = BatchEncoder(n)
        be.encode_block(cum, freq, method=method)
        assert be.finish() == ref
    for i in range(n):
        scalar_decode_check(ref[i], cum[i], freq[i])
    bd = BatchDecoder(ref)
    for t in range(T):
        tg = bd.target()
        assert ((cum[:, t] <= tg) & (tg < cum[:, t] + freq[:, t])).all()
        bd.consume(cum[:, t], freq[:, t])


def test_carry_and_ff_runs_batch_vs_scalar():
    # Symbols near the top / bottom of the table force long 0xFF runs and carries through them.
    rng = np.random.default_rng(99)
    n, T = 16, 500
    # log-uniform freqs at random positions, plus runs of near-certain symbols at the very top of the
    # table (cum = total - freq) which keep the interval at its top end and emit 0xFF bytes.
    freq = np.exp2(rng.uniform(0, TOTAL_BITS, (n, T))).astype(np.int64).clip(1, TOTAL)
    cum = (rng.random((n, T)) * (TOTAL - freq + 1)).astype(np.int64)
    top = rng.random((n, T)) < 0.6
    freq = np.where(top, TOTAL - rng.integers(1, 3, (n, T)), freq)
    cum = np.where(top, TOTAL - freq, cum)
    got = {}
    for method in ("rows", "lockstep"):
        be = BatchEncoder(n)
        be.encode_block(cum, freq, method=method)
        assert be._carry.any()  # carries really happened
        got[method] = be.finish()
    for i in range(n):
        ref = scalar_encode(cum[i], freq[i])
        assert got["rows"][i] == ref and got["lockstep"][i] == ref
        scalar_decode_check(ref, cum[i], freq[i])


# ------------------------------------------------------------------------------------------ efficiency
def test_efficiency_within_0_1_percent():
    rng = np.random.default_rng(2024)
    for sharp in (1.05, 1.25, 1.6):
        T, V = 3000, 512
        f = lm_like_tables(rng, T, V, sharp=sharp)
        _, cum, fr = sample(rng, f)
        ideal = float(np.sum(TOTAL_BITS - np.log2(fr.astype(float))))
        assert 2.0 <= ideal / T <= 4.5, ideal / T
        p = scalar_encode(cum, fr)
        # documented bound (spec/coder.md section 7): <= ideal + 1.4e-6 * N + 8 bits
        assert len(p) * 8 <= ideal + 1.4e-6 * T + 8
        assert len(p) * 8 <= ideal * 1.001
        scalar_decode_check(p, cum, fr)


# ------------------------------------------------------------------------------------------ corruption
def test_corrupted_payload_terminates_deterministically():
    rng = np.random.default_rng(8)
    T, V = 500, 128
    f = lm_like_tables(rng, T, V)
    syms, cum, fr = sample(rng, f)
    p = scalar_encode(cum, fr)
    inc = np.cumsum(f, axis=1)
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
            out = [d.decode(inc[t]) for t in range(T)]
            runs.append(out)
        assert runs[0] == runs[1]
        assert all(0 <= s < V for s in runs[0])
        bd = BatchDecoder([bad, p])
        for t in range(T):
            o = bd.decode_step(np.stack([f[t], f[t]]))
            assert o[0] == runs[0][t] and o[1] == syms[t]
    # the clamp (code // r >= total) and the mod-2**56 code register: scalar with a small total
    d = Decoder(b"\xff" * 20)
    assert [d.decode([1, 2, 3], 3) for _ in range(50)][:3] == [2, 2, 2]
    assert d.code < 2**56
    # ... and batch == scalar from a forced invalid state (code in the slack [r*2**28, range))
    bd = BatchDecoder([p, p])
    ds = [Decoder(p), Decoder(p)]
    for t in range(3):
        s = bd.decode_step(np.stack([f[t], f[t]]))
        assert all(ds[j].decode(inc[t]) == s[j] for j in range(2))
    for j, extra in enumerate([0, 12345]):
        rg = int(bd.range[j]) | 0xFFFFFFF  # a range with slack; code just below it
        for obj in (ds[j],):
            obj.range, obj.code = rg, rg - 1 - extra
        bd.range[j], bd.code[j] = rg, rg - 1 - extra
    for t in range(3, T):
        s = bd.decode_step(np.stack([f[t], f[t]]))
        assert all(ds[j].decode(inc[t]) == s[j] for j in range(2))
        assert (bd.code < 2**56).all()
    # decoding far more symbols than were coded also terminates (reads zeros)
    d = Decoder(p)
    for _ in range(3 * T):
        d.decode(inc[0])


# ------------------------------------------------------------------------------------------ speed smoke
def test_block_encode_speed_smoke():
    import time

    rng = np.random.default_rng(0)
    n, T = 8, 2000
    f = lm_like_tables(rng, n * T, 256).reshape(n, T, 256)
    cum = np.zeros((n, T), np.int64)
    fr = np.zeros((n, T), np.int64)
    for i in range(n):
        _, cum[i], fr[i] = sample(rng, f[i])
    t0 = time.perf_counter()
    be = BatchEncoder(n)
    be.encode_block(cum, fr)
    pays = be.finish()
    dt = time.perf_counter() - t0
    assert dt < 1.0  # generous in CI; typical is far below 0.1 s
    assert pays[3] == scalar_encode(cum[3], fr[3])
