"""The SIMD attention blocks give the exact integers: alone at the bounds they are built for, inside the decoding
kernel and the full pass's row blocks against the loop version, and at every instruction-set level numba may
target."""
from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")
from lmcodec.engine import fused, simd

ROOT = Path(__file__).resolve().parents[2]


def _over_key_blocks(block):
    """A compiled loop of one of simd's score blocks (qk_rows and its kin) over every key block of kt."""
    @numba.njit
    def scores(qv, kt, shift, s):
        for kb in range(kt.shape[0]):
            block(qv, kt, kb, shift, s)
    return scores


_step_scores, _step_scores_fit = _over_key_blocks(simd.qk_step), _over_key_blocks(simd.qk_step_fit)
_row_scores, _row_scores_fit = _over_key_blocks(simd.qk_rows), _over_key_blocks(simd.qk_rows_fit)


def test_score_blocks_take_c_contiguous_query_rows_only():
    """The score blocks read each query row at a constant offset from the first: rows strided otherwise are
    refused when compiling, not read wrong."""
    kt, s = np.zeros((1, 32, 32), np.int16), np.zeros((3, 16), np.int64)
    with pytest.raises(numba.core.errors.TypingError, match="C-contiguous"):
        _step_scores_fit(np.zeros((3, 128), np.int16)[:, :64], kt, 0, s)
    _step_scores_fit(np.zeros((3, 64), np.int16), kt, 0, s)
    assert not s.any()


@numba.njit
def _weighted(wv, vc, acc):
    for u0 in range(0, vc.shape[0], simd.AV_KEYS):
        simd.av_block(wv, vc, u0, acc)


@numba.njit
def _row_weighted(wv, vt, acc):
    for part in range(vt.shape[0]):
        for kp0 in range(0, vt.shape[1], simd.SPAN_PAIRS):
            simd.av_rows(wv, vt[part], kp0, part, acc)


@numba.njit
def _row_weights(s, sinks, k0, k1, m, table, hi, lo):
    z = 0
    for u0 in range(0, s.shape[0], simd.QK_KEYS):
        z += simd.weights16(s, u0, sinks, k0, k1, m, table, hi, lo)
    return z


@numba.njit
def _code_values(s, seen, m, table, vc, side, wv, z, acc, lows):
    fused._weighted_values(s, seen, m, table, vc, side, vc.shape[0], wv, z, acc, lows)


def code_values_digest(rng, h, d: int) -> None:
    """A decoder's weighted values over 8-bit codes (simd.fold32, av_codes, av_codes2) at head size d: weights up
    to W_MAX on keys of exponent 0 beside keys of exponent 8 (two parts), a block of small weights (one part), a
    block no query sees (nothing added), and keys out of view with any scores and exponents."""
    n = 4 * simd.AV_KEYS
    table = np.rint(2.0**20 * np.exp(-np.arange(700) / 40.0)).astype(np.int32)
    assert table[0] == simd.W_MAX
    codes = rng.integers(-127, 128, (n, d)).astype(np.int8)
    codes[:5], codes[5:9] = 127, -127
    e = rng.integers(0, 9, n)
    e[:3], e[3:6] = 0, 8
    s = rng.integers(-600, 1, (3, n))
    s[:, 32:64] -= 300  # block 1: weights below 2**10 (table[300] = 580) and exponents 3 and 4: one part
    e[32:64] = rng.integers(3, 5, 32)
    s[0, 0], s[1, 3], s[2, 5] = 0, 0, 0  # W_MAX beside exponents 0 and 8
    seen = rng.random(n) < 0.8
    seen[64:96] = False  # block 2: nothing in view
    seen[:6] = True
    e[~seen] = rng.choice([-128, -1, 100, 127], (~seen).sum())  # slots out of view hold anything
    s[:, ~seen] = rng.integers(-2**40, 2**40, (3, (~seen).sum()))
    side = np.zeros((n // 16, 2, 16), np.int8)
    side[:, 1] = e.reshape(-1, 16)
    m = np.array([s[c, seen].max() for c in range(3)])
    w = np.where(seen, table[np.minimum(m[:, None] - s, len(table) - 1).clip(0)], 0)
    v = codes.astype(np.int64) << np.where(seen, e, 0)[:, None]
    wv, z, acc = np.zeros((6, n), np.int16), np.zeros(3, np.int64), np.zeros((3, d), np.int64)
    lows = np.zeros(n // simd.AV_KEYS, np.int64)
    _code_values(s, seen, m, table, codes, side, wv, z, acc, lows)
    assert (z == w.sum(1)).all() and (acc == w @ v).all(), d
    assert lows[0] >= simd.TWO_PARTS and 0 <= lows[1] < simd.TWO_PARTS and lows[2] == -1, lows
    h.update(z.tobytes() + acc.tobytes())


def row_blocks_digest(rng, h, d: int) -> None:
    """The full pass's blocks (qk_rows, av_rows, weights16) at head size d, operands at their limits."""
    n, nq = 128, simd.SPAN_QUERIES
    q = rng.integers(-65535, 65536, (nq, d))
    q[0], q[1] = 65535, -65535
    k = rng.integers(-32767, 32768, (n, d))
    k[:16], k[16:32] = 32767, -32767
    kt, vt = np.zeros((1, n // 16, d // 2, 32), np.int16), np.zeros((1, d // 16, n // 2, 16, 2), np.int16)
    kn = np.zeros((1, n // 16))
    fused.weave(k[None].astype(np.int16), k[None].astype(np.int16), kt, vt, kn)
    assert (kn[0] == (k.astype(np.float64) ** 2).sum(1).reshape(-1, 16).max(1)).all()
    s = np.zeros((nq, n), np.int64)
    _row_scores(np.concatenate([q >> 8, q & 255]).astype(np.int16), kt[0], 7, s)
    assert (s == (q @ k.T) >> 7).all(), d
    # rows that fit int16, with scores below 2**31 whose int32 partial sums do not: key u is +-32767 in the
    # first half of its dimensions and the opposite in the second, so row 0 (all 32767) sums 2**34 and back to 0
    signs = rng.choice([-1, 1], (n, 1))
    kf = np.concatenate([signs, -signs], 1).repeat(d // 2, 1) * 32767
    qf = rng.integers(-100, 101, (nq, d))
    qf[0] = 32767
    ktf = np.zeros_like(kt)
    fused.weave(kf[None].astype(np.int16), kf[None].astype(np.int16), ktf, np.zeros_like(vt), kn)
    sf = np.zeros((nq, n), np.int64)
    _row_scores_fit(qf.astype(np.int16), ktf[0], 7, sf)
    assert (sf == (qf @ kf.T) >> 7).all(), d
    w = rng.integers(0, 2**20 + 1, (nq, n))
    w[0] = 2**20
    acc = np.full((nq, d), 7, np.int64)  # the blocks add to what is there
    _row_weighted(np.concatenate([w >> 10, w & 1023]).astype(np.int16), vt[0], acc)
    assert (acc == 7 + w @ k).all(), d
    table = np.rint(2.0**20 * np.exp(-np.arange(600) / 40.0)).astype(np.int32)
    sc = rng.integers(-900, 100, n)
    hi, lo = np.full(n, 5, np.int16), np.full(n, 5, np.int16)
    seen = (np.arange(n) < 3) | ((np.arange(n) >= 37) & (np.arange(n) < 101))
    m = int(sc[seen].max())
    z = _row_weights(sc, 3, 37, 101, m, table, hi, lo)
    want = np.where(seen, table[np.minimum(m - sc, len(table) - 1)], 0)
    assert z == want.sum() and (hi == want >> 10).all() and (lo == want & 1023).all(), d
    h.update(s.tobytes() + sf.tobytes() + acc.tobytes() + hi.tobytes() + lo.tobytes())


def woven_keys(kc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A decoder's keys (rows, nkv, slots, d) as it keeps them: woven (fused.woven_shapes), and each block's
    largest |k|**2."""
    rows, nkv, n, d = kc.shape
    ks, vs = fused.woven_shapes(n, d)
    kt, kn = np.zeros((rows, nkv) + ks, np.int16), np.zeros((rows, nkv, ks[0]))
    for r in range(rows):  # weave's woven values are not what a decoder keeps: left aside
        fused.weave(kc[r], kc[r], kt[r], np.zeros((nkv,) + vs, np.int16), kn[r])
    return kt, kn


def blocks_digest(seed: int = 0) -> str:
    """The blocks at every head size, operands at their limits, checked against int64 numpy; a digest of it all."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for d in simd.HEAD_DIMS:
        n = 64
        q = rng.integers(-65535, 65536, (3, d))
        q[0], q[1] = 65535, -65535
        kc = rng.integers(-32767, 32768, (n, d)).astype(np.int16)
        kc[:16], kc[16:32] = 32767, -32767
        kt = woven_keys(kc[None, None])[0][0, 0]
        s = np.zeros((3, n), np.int64)
        _step_scores(np.concatenate([q >> 8, q & 255]).astype(np.int16), kt, 5, s)
        assert (s == (q @ kc.astype(np.int64).T) >> 5).all(), d
        qf = rng.integers(-100, 101, (3, d))
        qf[0] = 32767  # with the keys at +-32767 a row of int32 partial sums wraps, and its score does not
        kf = np.concatenate([np.ones((n, 1)), -np.ones((n, 1))], 1).repeat(d // 2, 1).astype(np.int16) * 32767
        sf = np.zeros((3, n), np.int64)
        _step_scores_fit(qf.astype(np.int16), woven_keys(kf[None, None])[0][0, 0], 5, sf)
        assert (sf == (qf @ kf.astype(np.int64).T) >> 5).all(), d
        w = rng.integers(0, 2**20 + 1, (3, n))
        w[0] = 2**20
        acc = np.full((3, d), 7, np.int64)  # the blocks add to what is there
        _weighted(np.concatenate([w >> 10, w & 1023]).astype(np.int16), kc, acc)
        assert (acc == 7 + w @ kc.astype(np.int64)).all(), d
        h.update(s.tobytes() + sf.tobytes() + acc.tobytes())
        code_values_digest(rng, h, d)
        row_blocks_digest(rng, h, d)
    return h.hexdigest()


def decoding_case(d: int, g: int, seed: int, small: bool = False):
    """Arguments of fused.attend_rows for a windowed decoder: 3 cache rows in rings of 128 slots (window 40, sink
    4), positions well past the window (sinks seen from afar), a row fed two positions at once, caches and
    queries at their limits; or, small, scaled down so that most key blocks take qk_step_fit and one does not.
    Returns (args, o)."""
    rng = np.random.default_rng(seed)
    nkv, cap, win, sink = 2, 128, 40, 4
    kc = rng.integers(-32767, 32768, (3, nkv, cap, d)).astype(np.int16)
    vc = rng.integers(-32767, 32768, (3, nkv, cap, d)).astype(np.int16)
    kc[0, 0, 5:9], vc[1, 1, 9:20] = 32767, -32767
    fed = np.array([130, 70, 20])  # positions each row has fed (one of them not yet past the window)
    spos = np.full((3, cap), -1, np.int64)
    for r, n in enumerate(fed):
        for p in range(n + 2):  # + the positions of this step
            spos[r, p if p < sink else sink + (p - sink) % (cap - sink)] = p
    crow = np.array([0, 1, 1, 2])
    pos = np.array([130, 70, 71, 20])
    ends = np.minimum(pos + 1, cap)
    q = rng.integers(-46400, 46401, (4, nkv, g, d)).astype(np.float64)
    q[0, 0, 0] = 46400
    if small:
        q, kc = np.floor(q / 64), kc // 8
        kc[1, :, 48:52] = 32767  # a block whose norm leaves it to qk_step: row 1's queries
        q[1:3, :, 0] = 32767  # fit int16 but not int32 (64 * 32767**2)
    theta = np.arange(200)[:, None] * 10000.0 ** (-np.arange(d // 2) / (d // 2))
    cos, sin = np.rint(16384 * np.cos(theta)).astype(np.int32), np.rint(16384 * np.sin(theta)).astype(np.int32)
    exp_table = np.rint(2.0**20 * np.exp(-np.arange(600) / 40.0)).astype(np.int64)
    o = np.zeros((4, nkv * g * d), np.int64)
    kt, kn = woven_keys(kc)
    return (q, kt, vc, kn, crow, ends, 22, exp_table, o, pos, win, sink, cos, sin, 32767, spos), o


def code_caches(kc: np.ndarray, vc: np.ndarray) -> tuple[np.ndarray, ...]:
    """int16 caches (rows, nkv, slots, d) with each key and value rounded to 8-bit codes (spec §5 step 2, coder 1
    version 3): (the rounded int16 keys woven and their norms, the rounded values) as the int16 blocks take them,
    and (codes woven, value codes, exponents (rows, nkv, slots / 16, 2, 16)) as a decoder of 8-bit codes keeps
    them."""
    from lmcodec.engine.exact import kv_round

    def codes(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = kv_round(torch.from_numpy(z.astype(np.int64))).numpy()
        e = np.array([max(0, int(a).bit_length() - 7) for a in np.abs(r).max(-1).ravel()]).reshape(r.shape[:-1])
        return r.astype(np.int16), (r >> e[..., None]).astype(np.int8), e.astype(np.int8)

    rows, nkv, n, d = kc.shape
    k16, k8, ke = codes(kc)
    v16, v8, ve = codes(vc)
    kt, kn = woven_keys(k16)
    kt8 = k8.reshape(rows, nkv, n // 16, 16, d // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(kt.shape)
    side = np.stack([ke.reshape(rows, nkv, n // 16, 16), ve.reshape(rows, nkv, n // 16, 16)], 3)
    return (kt, kn, v16), (np.ascontiguousarray(kt8), v8, np.ascontiguousarray(side))


def attention_digest(use_simd: bool) -> str:
    """The decoding cases, with the exponential table in int64 and in int32 (which AVX-512 gathers by 32-bit
    indices); then, with the int32 table, with keys and values rounded to 8-bit codes, kept as codes by the SIMD
    blocks, and as int16 values by the loop kernel."""
    h = hashlib.sha256()
    cases = itertools.product(((16, 2, 1), (64, 3, 2), (64, 1, 3), (128, 3, 4)), (False, True), (np.int64, np.int32))
    for (d, g, seed), small, table in cases:
        args, o = decoding_case(d, g, seed, small)
        args = args[:7] + (args[7].astype(table),) + args[8:]
        fused.attend_rows(*args, use_simd=use_simd)
        h.update(o.tobytes())
        if table is np.int64:  # a decoder keeps codes only with the int32 table (Engine.code_cache)
            continue
        kc = woven_keys_back(args[1])
        (kt, kn, v16), (kt8, v8, side) = code_caches(kc, args[2])
        o[:] = 0
        caches = (kt8, v8, side) if use_simd else (kt, v16, kn)
        fused.attend_rows(args[0], *caches, *args[4:], use_simd=use_simd)
        h.update(o.tobytes())
    return h.hexdigest()


def woven_keys_back(kt: np.ndarray) -> np.ndarray:
    """The keys (rows, nkv, slots, d) of woven int16 keys (woven_keys)."""
    rows, nkv, b, p, lanes = kt.shape
    return kt.reshape(rows, nkv, b, p, 16, 2).transpose(0, 1, 2, 4, 3, 5).reshape(rows, nkv, b * 16, 2 * p)


def full_pass_digest(use_simd: bool) -> str:
    """The full pass's attention over one sequence, windowed (positions past the window: sinks seen from afar),
    by fused.attend_span's row blocks or by the decoding loop kernel on the same cache (slot = position): at the
    limits (the query rows split), and scaled down so that most key blocks take qk_rows_fit and one does not."""
    h = hashlib.sha256()
    for (d, g, seed), small in itertools.product(((16, 2, 1), (64, 3, 2), (64, 1, 3), (128, 5, 4)), (False, True)):
        args, _ = decoding_case(d, g, seed)
        _, _, vc, _, _, _, shift, exp_table, _, _, win, sink, cos, sin, klim, _ = args
        t, nkv = 150, vc.shape[1]
        rng = np.random.default_rng(seed)
        k, v = rng.integers(-32767, 32768, (nkv, t, d)).astype(np.int16), vc[0, :, :64].repeat(3, axis=1)[:, :t]
        q = rng.integers(-46400, 46401, (nkv, g, t, d)).astype(np.float64)
        if small:
            q, k = np.floor(q / 64), k // 8
            k[:, 100:104] = 32767  # a block whose norm leaves it to qk_rows: position 120's scores
            q[:, :, 120] = 32767  # fit int16 but not int32 (64 * 32767**2)
        o = np.zeros((t, nkv * g * d), np.int64)
        if use_simd:
            slots = -(-t // simd.SPAN_KEYS) * simd.SPAN_KEYS
            kt = np.empty((nkv, slots // 16, d // 2, 32), np.int16)
            vt = np.empty((nkv, d // 16, slots // 2, 16, 2), np.int16)
            kn = np.empty((nkv, slots // 16))
            fused.weave(k, v, kt, vt, kn)
            for a in range(0, t, 64):  # as the full pass calls it, a block of queries at a time
                fused.attend_span(q, k, kt, vt, kn, a, min(t, a + 64), shift, exp_table.astype(np.int32), o, 0, win,
                                  sink, cos, sin, klim)
        else:
            pos = np.arange(t)
            slots = -(-t // simd.SPAN_KEYS) * simd.SPAN_KEYS
            kp = np.zeros((1, nkv, slots, d), np.int16)
            kp[0, :, :t] = k
            kt, kn = woven_keys(kp)
            fused.attend_rows(np.ascontiguousarray(q.transpose(2, 0, 1, 3)), kt, v[None], kn, np.zeros(t, np.int64),
                              pos + 1, shift, exp_table, o, pos, win, sink, cos, sin, klim, pos[None], use_simd=False)
        h.update(o.tobytes())
    return h.hexdigest()


@pytest.mark.skipif(not simd.vnni(), reason="numba's target has no AVX-512 VNNI")
def test_multiply_adds_stay_one_instruction_where_the_target_has_vnni():
    """Every int16 multiply-add that adds to a sum is one vpdpwssd: LLVM's machine combiner, left to itself, splits
    long chains of the intrinsic into vpmaddwd + vpaddd under some CPUs' scheduling models (twice the vector
    instructions). Compiled here without the disk cache, whose code numba cannot show."""
    @numba.njit(cache=False)
    def values(wv, vc, acc):
        simd.av_codes2(wv, vc, 0, 0, acc)

    values(np.zeros((6, 32), np.int16), np.zeros((32, 64), np.int8), np.zeros((3, 64), np.int64))
    asm = next(iter(values.inspect_asm().values()))
    ops = [line.split()[0] for line in asm.splitlines() if line.startswith("\t") and not line.startswith("\t.")]
    # per head size: 16 pairs of keys x 6 rows, the first pair of each row without a sum to add to (vpmaddwd)
    dense = sum(6 * (simd.AV_KEYS // 2 - 1) * (2 * hd // 32) for hd in simd.HEAD_DIMS)
    assert ops.count("vpdpwssd") >= dense, (ops.count("vpdpwssd"), ops.count("vpmaddwd"))
    assert ops.count("vpmaddwd") <= sum(6 * (2 * hd // 32) for hd in simd.HEAD_DIMS)


def test_blocks_are_exact_at_their_bounds():
    blocks_digest()


def test_attention_quotients_round_exactly():
    """fused._round_quotients against int64 floor division at its bounds: sums of 2**46 - 1, weight sums of 1 and
    2**31 - 1, and quotients a half, or one less than that, from an integer."""
    rng = np.random.default_rng(5)
    for z in (1, 2, 3, 2**31 - 1, *rng.integers(1, 2**31, 40)):
        q = rng.integers(-2**15 + 1, 2**15, 256)
        acc = q * z + rng.choice([0, z // 2, -(z // 2), z // 2 - 1, (z - 1) // 2, 1, -1], 256)
        acc = np.concatenate([np.clip(acc, -2**46 + 1, 2**46 - 1), [2**46 - 1, -2**46 + 1, 0]])
        out = np.zeros_like(acc)
        fused._round_quotients(acc, z, out)
        assert (out == (2 * acc + z) // (2 * z)).all(), z


def test_decoding_attention_equals_the_loop_kernel():
    args, _ = decoding_case(64, 3, 2)
    assert fused.simd_fits(args[1], args[2], args[7])
    (_, _, v16), (kt8, v8, _) = code_caches(woven_keys_back(args[1]), args[2])
    assert fused.simd_fits(kt8, v8, args[7]) and (v16 != args[2]).any()  # the rounding bites on these caches
    assert attention_digest(use_simd=True) == attention_digest(use_simd=False)


def test_full_pass_row_blocks_equal_the_loop_kernel():
    assert full_pass_digest(use_simd=True) == full_pass_digest(use_simd=False)


def test_caches_the_blocks_do_not_take_go_to_the_loop_kernel():
    args, _ = decoding_case(64, 3, 2)
    kc, vc, exp_table = args[1], args[2], args[7]
    assert not fused.simd_fits(kc.astype(np.int32), vc, exp_table)  # k of a stream without a window
    assert not fused.simd_fits(kc[:, :, :5], vc[:, :, :80], exp_table)  # not whole blocks of slots
    assert not fused.simd_fits(kc, vc[..., :48], exp_table)  # a head size they are not built for
    assert not fused.simd_fits(kc, vc, exp_table * 2)  # weights past 2**20


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import test_simd
from lmcodec.engine import simd
print(simd.isa(), test_simd.blocks_digest(), test_simd.attention_digest(True), test_simd.full_pass_digest(True))
"""


LEVELS = {
    "generic": {"NUMBA_CPU_NAME": "generic"},
    "avx2": {"NUMBA_CPU_NAME": "haswell",
             "NUMBA_CPU_FEATURES": "+avx2,+avx,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,+sse4.1,+ssse3"},
    # AVX-512 without VNNI: the multiply-adds and their sums as separate instructions
    "avx512": {"NUMBA_CPU_NAME": "skylake-avx512",
               "NUMBA_CPU_FEATURES": "+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,+avx2,+avx,+fma,+f16c,+bmi,"
                                     "+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,+sse4.1,+ssse3"},
}
ORDER = list(LEVELS)  # each level's instructions include those of the levels before it


@pytest.fixture(scope="module")
def level_children(tmp_path_factory):
    """A child process per instruction-set level, all started at once (each compiles every block for its
    target, minutes for the generic one, one core each), with their numba caches apart."""
    children = {}
    for level, env in LEVELS.items():
        if ORDER.index(level) > ORDER.index(simd.isa()):  # instructions the host does not have
            continue
        child_env = {**os.environ, **env, "NUMBA_CACHE_DIR": str(tmp_path_factory.mktemp(level))}
        children[level] = subprocess.Popen([sys.executable, "-c", _CHILD.format(tests=str(ROOT / "tests" / "engine"))],
                                           env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield children
    for child in children.values():
        child.kill()
        child.communicate()


@pytest.mark.parametrize("level", list(LEVELS))
def test_every_instruction_set_level_gives_the_same_integers(level_children, level):
    if level not in level_children:
        pytest.skip(f"the host has no {level.upper()}")
    want = [level, blocks_digest(), attention_digest(use_simd=False), full_pass_digest(use_simd=False)]
    out, err = level_children[level].communicate()
    assert level_children[level].returncode == 0, err
    assert out.split() == want
