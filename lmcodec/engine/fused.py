"""Fused CPU kernels (numba): the engine's element-wise integer steps, one pass over memory each.

Each kernel computes exactly the integers of spec/engine.md in int64 arithmetic (the spec's bounds keep every
intermediate inside 64 bits), so the results equal the torch reference path in passes.py bit for bit; rows are
independent, so the thread count cannot matter. They replace a dozen memory-bound eager torch passes per step
(measured 20x faster on requantization). Engine 2's matmuls run in blocks.py, engine 1's stay torch._int_mm;
attention runs in simd.py's blocks (same integers), or float64 BLAS where the caches do not fit them.

Arrays are numpy arrays. Without numba the engine uses its torch path.
Kernels are serial and release the GIL; rows are split over lmcodec's thread pool (threads.py). (Numba's own
parallel layers either share no pool with torch's OpenMP - measured: torch._int_mm 13x slower after one numba
OpenMP region on 2 cores - or abort when called from two threads at once.)
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import scan
from ..jit import available, jit
from . import threads

if available:
    from numba import types
    from numba.extending import overload

    from . import simd

# The spec's fixed-point widths and clamps (§3-6), shared with the torch path in passes.py.
F_BITS = 16  # fractional bits of the per-token input factor f
ROPE_BITS = 14  # the RoPE tables hold cos and sin scaled by 2**ROPE_BITS
ROPE_HALF = 1 << (ROPE_BITS - 1)  # rounds a rotated value half up
RMS_NORM = -1  # in_bits of a linear layer's input that is RMS-normalized first (else its fractional bits)
RESID_LIMIT = (1 << 40) - 1  # |residual| bound, in units of 2**-resid_bits
QKV_LIMIT = (1 << 15) - 1  # |q|, |k|, |v| bound before RoPE
GU_LIMIT = (1 << 20) - 1  # |gate|, |up| bound: keeps the down projection's products below 2**63
KV_CODE_BITS = 7  # coder 1 version 3 (spec §5 step 2): each key and value vector as codes |c| < 2**7 times 2**s
KV_CODE_MAX = (1 << KV_CODE_BITS) - 1

# |q|**2 |k|**2 below this (products of binary64 integers < 2**40, rounded by far less than the margin) bounds
# every |q . k| of a query row and key block by Cauchy-Schwarz below 2**30.5, so that int32 sums are exact
FIT_NORMS = 2.0**61
PARALLEL_WORK = 1 << 15  # elements below which splitting rows over threads costs more than it saves


def _split(m: int, work: int, fn: Callable[[int, int], None]) -> None:
    """fn(a, b) over row ranges covering 0..m, over the kernel threads when the work is large enough."""
    threads.split(m, fn, parts=None if m * work >= PARALLEL_WORK else 1)


def silu_deltas(silu: np.ndarray) -> np.ndarray:
    """The model's silu table (spec §2: entry g + 16·2^M for g = -16·2^M ... 16·2^M) as silu[g] - max(g, 0), in
    the narrowest integer type that holds them: the same integers from a table a quarter the size (int16 for the
    default model: 256 KB instead of 1 MB), which matters where a decoding step's weights and caches keep
    pushing it out of the cache."""
    half = (silu.shape[0] - 1) // 2
    deltas = silu - np.maximum(np.arange(-half, half + 1), 0)
    for dtype in (np.int16, np.int32):
        if np.iinfo(dtype).min <= deltas.min() and deltas.max() <= np.iinfo(dtype).max:
            return deltas.astype(dtype)
    return deltas


if available:

    def woven_shapes(slots: int, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shapes of one KV head's key and value caches of `slots` slots (a multiple of simd.QK_KEYS) in the
        woven layout that simd's blocks read: keys (slots/16, d/2, 32), key u's dimensions 2p, 2p + 1 at [u // 16,
        p, 2 (u % 16) ..]; values (ceil(d/16), slots/2, 16, 2), dimension 16c + j of keys 2kp, 2kp + 1 at [c, kp,
        j, ..] (dimensions past d are zero). The full pass weaves both (weave); a decoder keeps its keys so."""
        return (slots // simd.QK_KEYS, d // 2, 2 * simd.QK_KEYS), (-(-d // simd.SPAN_DIMS), slots // 2,
                                                                    simd.SPAN_DIMS, 2)

    @jit
    def isqrt64(v):
        r = np.int64(math.sqrt(np.float64(v)))
        while r * r > v:
            r -= 1
        while (r + 1) * (r + 1) <= v:
            r += 1
        return r

    @jit
    def bitlength(a):
        n = 0
        while a > 0:
            a >>= 1
            n += 1
        return n

    @jit
    def rms(x, i, amax, eps):
        """r of spec §3 step 2 for row i of x (K integers, amax their largest magnitude): the root mean square in
        the residual's units, squares kept below 2**48 by a shift."""
        k = x.shape[1]
        s = max(0, bitlength(amax) - 24)
        ss = np.int64(0)
        for j in range(k):
            v = x[i, j] >> s
            ss += v * v
        return max(np.int64(1), isqrt64(ss // k + (eps >> (2 * s)))) << s

    @jit
    def _quantize(x, qmax, in_bits, eps, qh, ql, f):
        """Linear steps 1-3 (spec §3) for rows of x (M, K) int64: f (M,) and q as int8.

        in_bits == RMS_NORM: RMS-normalized input; else fixed point with in_bits fractional bits. With qmax = 127
        q goes to qh; with 16256 qh gets hi = (q + 64) >> 7 and ql gets lo = q - 128 hi.
        """
        m, k = x.shape
        y = np.empty(k, np.int64)
        for i in range(m):
            amax = np.int64(1)
            for j in range(k):
                a = abs(x[i, j])
                if a > amax:
                    amax = a
            if in_bits == RMS_NORM:
                f[i] = (amax << F_BITS) // rms(x, i, amax, eps)
            elif in_bits > F_BITS:
                f[i] = (amax + (np.int64(1) << (in_bits - F_BITS - 1))) >> (in_bits - F_BITS)
            else:
                f[i] = amax << (F_BITS - in_bits)
            # q = rdiv(qmax x, amax): a float estimate (x < 2**53 is exact in binary64; error << 1), then
            # one exact integer correction, instead of a slow 64-bit division per element.
            ratio = np.float64(qmax) / np.float64(amax)
            den = 2 * amax
            two_q = 2 * qmax
            for j in range(k):
                est = np.int64(np.floor(np.float64(x[i, j]) * ratio + 0.5))
                r = two_q * x[i, j] + amax - est * den  # branch-free, so the loop vectorizes
                y[j] = est + np.int64(r >= den) - np.int64(r < 0)
            if ql.shape[0] == 0:
                for j in range(k):
                    qh[i, j] = y[j]
            else:
                for j in range(k):
                    hi = (y[j] + 64) >> 7
                    qh[i, j] = hi
                    ql[i, j] = y[j] - (hi << 7)

    @jit
    def _requant(ah, al, i, fi, lin, y):
        """Linear steps 4-5 for row i: y = rshr(rshr(acc f, 16) mult, shift) + bias, into y (N,) int64.

        lin = (mult, shift, bias, scale = mult 2**-shift as float64, acc_bound, ready). For 15-bit inputs
        acc = 128 ah + al; for 8-bit al has no rows and acc = ah. Where acc_bound f < 2**53 every value below
        is an integer under 2**53 (or one scaled by a power of two), so binary64 gives the same integers and
        vectorizes; otherwise int64. (ready: see _outputs.)
        """
        mult, shift, bias, scale, bound, _ = lin
        n = y.shape[0]
        halves = al.shape[0] > 0
        if bound * fi < 2**53:
            fr = np.float64(fi) * 2.0**-F_BITS
            if halves:
                for j in range(n):
                    a = np.float64(ah[i, j]) * 128.0 + np.float64(al[i, j])
                    y[j] = np.int64(np.floor(np.floor(a * fr + 0.5) * scale[j] + 0.5)) + bias[j]
            else:
                for j in range(n):
                    y[j] = np.int64(np.floor(np.floor(np.float64(ah[i, j]) * fr + 0.5) * scale[j] + 0.5)) + bias[j]
        else:
            for j in range(n):
                a = np.int64(ah[i, j])
                if halves:
                    a = a * 128 + np.int64(al[i, j])
                t = (a * fi + (1 << (F_BITS - 1))) >> F_BITS
                s = shift[j]
                y[j] = ((t * mult[j] + (np.int64(1) << (s - 1))) >> s) + bias[j]

    def _outputs(ah, al, i, fi, lin, y):
        """Row i of a linear layer's outputs: ah's own row where the block kernel gave the outputs (lin's ready
        flag; engine 2's int64 outputs, blocks.py), else y (N,) filled by _requant (from engine 1's int32
        accumulators). Reading the outputs in place spares a copy of each row. Typed by overload below: a
        compiled function returns one type, so the int32 case has no branch returning ah's row."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_outputs, jit_options={"nogil": True})
    def _outputs_typed(ah, al, i, fi, lin, y):
        if ah.dtype == types.int64:
            def outputs(ah, al, i, fi, lin, y):
                if lin[5]:
                    return ah[i]
                _requant(ah, al, i, fi, lin, y)
                return y
        else:
            def outputs(ah, al, i, fi, lin, y):
                _requant(ah, al, i, fi, lin, y)
                return y
        return outputs

    @jit
    def _add_residual(ah, al, f, lin, x, j0, j1):
        """x[:, j0:j1] <- clamp(x + L(.), +-(2^40 - 1)) in place (spec §4), x (M, N) int64: the whole row where
        (j0, j1) = (0, N), a thread's share of its columns in layerstep.layer_part."""
        m, n = x.shape
        buf = np.empty(n, np.int64)
        for i in range(m):
            y, xr = _outputs(ah, al, i, f[i], lin, buf), x[i]
            for j in range(j0, j1):
                xr[j] = min(max(xr[j] + y[j], -RESID_LIMIT), RESID_LIMIT)

    @jit
    def _gate_up(ah, al, f, lin, deltas, h, j0, j1):
        """MLP steps 1-3 (spec §6): h = silu(g) * u, (M, N/2) int64, in columns j0 .. j1 - 1 (all: 0, N/2); deltas:
        silu_deltas(the model's silu table)."""
        m, n = h.shape
        half = (deltas.shape[0] - 1) // 2
        buf = np.empty(2 * n, np.int64)
        for i in range(m):
            y, hr = _outputs(ah, al, i, f[i], lin, buf), h[i]
            for j in range(j0, j1):
                g = min(max(y[j], -GU_LIMIT), GU_LIMIT)
                u = min(max(y[n + j], -GU_LIMIT), GU_LIMIT)
                if g > half:
                    s = g
                elif g < -half:
                    s = np.int64(0)
                else:
                    s = max(g, 0) + np.int64(deltas[g + half])
                hr[j] = s * u

    @jit
    def kv_round(z):
        """Spec §5 step 2's rounding of one key or value vector z (d,) int64 in place, to codes c (|c| <=
        KV_CODE_MAX) times 2**s with s = max(0, bitlength(max |z|) - KV_CODE_BITS); returns s (the same s
        that z's new values give again, so rounding twice changes nothing)."""
        m = 0
        for j in range(z.shape[0]):
            m = max(m, abs(z[j]))
        s = max(0, bitlength(m) - KV_CODE_BITS)
        if s > 0:
            half = np.int64(1) << (s - 1)
            for j in range(z.shape[0]):
                z[j] = min(max((z[j] + half) >> s, -KV_CODE_MAX), KV_CODE_MAX) << s
        return s

    @jit
    def _qkv_row(ah, al, i, fi, lin, p, cos, sin, klim, kv8, nh, nkv, d, buf):
        """Attention steps 1-2 (spec §5) for row i at position p: q, k and v clamped, q and k rotated, k clamped
        again (to fit int16 where a window is kept), k and v rounded to 8-bit codes if kv8 (coder 1 version 3),
        in place of the layer's outputs (ah's row, or buf ((nh + 2 nkv) d) int64), which it returns."""
        y = _outputs(ah, al, i, fi, lin, buf)
        hd = d // 2
        for h in range(nh + 2 * nkv):
            base = h * d
            for j in range(hd):
                a = min(max(y[base + j], -QKV_LIMIT), QKV_LIMIT)
                c = min(max(y[base + hd + j], -QKV_LIMIT), QKV_LIMIT)
                if h < nh + nkv:
                    cs = np.int64(cos[p, j])
                    sn = np.int64(sin[p, j])
                    a, c = (a * cs - c * sn + ROPE_HALF) >> ROPE_BITS, (c * cs + a * sn + ROPE_HALF) >> ROPE_BITS
                    if h >= nh:
                        a, c = min(max(a, -klim), klim), min(max(c, -klim), klim)
                y[base + j], y[base + hd + j] = a, c
            if kv8 and h >= nh:
                kv_round(y[base: base + d])
        return y

    @jit
    def _qkv_rope(ah, al, f, lin, row0, t_len, pos0, cos, sin, qo, ko, vo, k_off, klim, kv8):
        """_qkv_row for flattened rows row0.. of a (B, t_len) batch (the full pass): rotated q to qo (B, nkv, g,
        t_len, d) and k, v to ko/vo (B, nkv, cap, d) at time k_off + t, as float64 (exact integers, for the BLAS
        attention products). Position = pos0 + t."""
        nkv, g, d = qo.shape[1], qo.shape[2], qo.shape[4]
        nh = nkv * g
        buf = np.empty((nh + 2 * nkv) * d, np.int64)
        for i in range(f.shape[0]):
            b, t = (row0 + i) // t_len, (row0 + i) % t_len
            y = _qkv_row(ah, al, i, f[i], lin, pos0 + t, cos, sin, klim, kv8, nh, nkv, d, buf)
            for h in range(nh):
                for j in range(d):
                    qo[b, h // g, h % g, t, j] = y[h * d + j]
            for h in range(nkv):
                for j in range(d):
                    ko[b, h, k_off + t, j] = y[(nh + h) * d + j]
                    vo[b, h, k_off + t, j] = y[(nh + nkv + h) * d + j]

    @jit
    def _qkv_rope_rows(ah, al, f, lin, crow, pos, slot, cos, sin, qo, ko, vo, side, norms, klim, kv8):
        """_qkv_row for one new position of each row i (decoding): row i of the batch is row crow[i] of the
        caches, at position pos[i]; rotated q goes to qo (B, nkv, g, d), k to ko (rows, nkv, ...: woven_shapes)
        and v to vo (rows, nkv, slots, d) at slot[i] (_store_kv: int16, or 8-bit codes with their exponents in
        side (rows, nkv, blocks, 2, 16)), and |k|**2 to norms (B, nkv) float64 (for _keep_norms)."""
        nkv, g, d = qo.shape[1], qo.shape[2], qo.shape[3]
        nh = nkv * g
        buf = np.empty((nh + 2 * nkv) * d, np.int64)
        for i in range(f.shape[0]):
            b, u = crow[i], slot[i]
            y = _qkv_row(ah, al, i, f[i], lin, pos[i], cos, sin, klim, kv8, nh, nkv, d, buf)
            for h in range(nh):
                for j in range(d):
                    qo[i, h // g, h % g, j] = y[h * d + j]
            for h in range(nkv):
                norms[i, h] = _store_kv(ko[b, h], vo[b, h], side[b, h], u, y[(nh + h) * d: (nh + h + 1) * d],
                                        y[(nh + nkv + h) * d: (nh + nkv + h + 1) * d])

    def _store_kv(kt, vt, side, u, k, v):
        """Slot u of one KV head's decoder caches gets key k and value v (d,) int64: int16 caches (kt woven,
        woven_shapes) take them as they are and the key's |k|**2 is returned (for _keep_norms); caches of 8-bit
        codes (coder 1 version 3: kt woven int8, vt (slots, d) int8, side (blocks, 2, 16) int8 the exponents of
        the slot's key and value at [u // 16, 0 or 1, u % 16]) take codes and exponents of the rounded k, v."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_store_kv, jit_options={"nogil": True})
    def _store_kv_typed(kt, vt, side, u, k, v):
        if kt.dtype == types.int8:
            def store(kt, vt, side, u, k, v):
                b, l = u // simd.QK_KEYS, u % simd.QK_KEYS
                e = kv_round(k)  # the rounded k again: its own exponent, values unchanged
                for j in range(k.shape[0]):
                    kt[b, j // 2, 2 * l + j % 2] = k[j] >> e
                side[b, 0, l] = e
                e = kv_round(v)
                for j in range(v.shape[0]):
                    vt[u, j] = v[j] >> e
                side[b, 1, l] = e
                return 0.0
        else:
            def store(kt, vt, side, u, k, v):
                for j in range(v.shape[0]):
                    vt[u, j] = v[j]
                return _weave_key(kt, u, k)
        return store

    def _keep_norms(kn, crow, slot, norms):
        """kn (rows, nkv, slots / simd.QK_KEYS) float64 keeps for each block of a decoder's int16 key slots the
        largest |k|**2 written to it, a bound on its keys' norms (as weave's kn): the new keys' norms (B, nkv), row
        i's at slot[i] of cache row crow[i], taken in. One thread: entries of one row may share a block. Caches
        of 8-bit codes need no bound (their side holds exponents): nothing to do."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_keep_norms, jit_options={"nogil": True})
    def _keep_norms_typed(kn, crow, slot, norms):
        if kn.dtype == types.int8:
            def keep(kn, crow, slot, norms):
                pass
        else:
            def keep(kn, crow, slot, norms):
                for i in range(norms.shape[0]):
                    kb = slot[i] // simd.QK_KEYS
                    for h in range(norms.shape[1]):
                        kn[crow[i], h, kb] = max(kn[crow[i], h, kb], norms[i, h])
        return keep

    @jit
    def _keep_side(kn, crow, slot, norms):
        """_keep_norms for qkv_rope_rows, which calls it from Python (an overload is typed in compiled code)."""
        _keep_norms(kn, crow, slot, norms)

    @jit
    def _softmax(scores, r0, q0, tq, shift, exp_table, z, k0, band, win, sink):
        """Attention steps 3-4 in place: scores (R, keys) float64 -> weights w_u; z (R,) int64 gets Z.

        Row r is the query at position p = q0 + (r0 + r) % tq. Column c holds key position c, or with band = 1
        position c for c < sink and k0 + c - sink after. Keys after p get weight 0 (the causal mask), and with a
        window win > 0 so do keys u >= sink before p - win + sink + 1 (spec §5). l_u = floor(S_u / 2^shift) is
        an arithmetic shift of the exact integer S_u.
        """
        r_n, keys = scores.shape
        last = exp_table.shape[0] - 1
        for r in range(r_n):
            p = q0 + (r0 + r) % tq
            lo = p - win + sink + 1 if win > 0 else 0
            mx = np.int64(-(1 << 62))
            for c in range(keys):
                u = c if (band == 0 or c < sink) else k0 + c - sink
                if u <= p and (u < sink or u >= lo):
                    v = np.int64(scores[r, c]) >> shift
                    if v > mx:
                        mx = v
            s = np.int64(0)
            for c in range(keys):
                u = c if (band == 0 or c < sink) else k0 + c - sink
                if u <= p and (u < sink or u >= lo):
                    w = exp_table[min(mx - (np.int64(scores[r, c]) >> shift), last)]
                    scores[r, c] = w
                    s += w
                else:
                    scores[r, c] = 0.0
            z[r] = s

    @jit
    def attn_gather(pv, z, tq, o, row0):
        """Attention step 5: o[row0 + t, h*d + j] = rdiv(sum_u w_u v_uj, Z), query head h = kv*g + gi.

        pv (nkv, g*tq, d) float64 holds the exact sums of one sequence's query block; z holds Z for the same
        rows in the same order.
        """
        nkv, rows, d = pv.shape
        g = rows // tq
        for t in range(tq):
            for kv in range(nkv):
                for gi in range(g):
                    r = gi * tq + t
                    zz = np.float64(z[kv * rows + r])
                    col = (kv * g + gi) * d
                    # one binary64 division is the exact floor: 2 pv + Z + 2 Z < 2**53 (spec §5 bounds)
                    for j in range(d):
                        o[row0 + t, col + j] = np.int64(np.floor((2.0 * pv[kv, r, j] + zz) / (2.0 * zz)))

    @jit
    def _tables(ah, al, f, lin, exp_table, total, out):
        """Frequency tables (spec §8) from the head's accumulators: out (M, V) int64, each row sums to total."""
        m, v = out.shape
        last = exp_table.shape[0] - 1
        scale = np.float64(total - v)
        for i in range(m):
            logits, y = _outputs(ah, al, i, f[i], lin, out[i]), out[i]  # logits: ah's row, or y itself
            top = scan.first_max(logits, v)
            best = logits[top]
            zsum = np.int64(0)
            for j in range(v):
                e = exp_table[min(best - logits[j], last)]
                y[j] = e
                zsum += e
            # floor(e (total - v) / Z) by one binary64 division: exact since e (total - v) + Z < 2**53 (spec §8)
            zf = np.float64(zsum)
            fsum = np.int64(0)
            for j in range(v):
                fr = np.int64(np.floor(np.float64(y[j]) * scale / zf)) + 1
                y[j] = fr
                fsum += fr
            y[top] += total - fsum

    @jit
    def _far_sink(k, delta, cos, sin, klim, out):
        """A sink key seen by a query past the window (spec §5): the rotated k (d,) rotated again by the rows of
        position delta and clamped, into out (d,) float64 (which may be k itself)."""
        hd = k.shape[0] // 2
        cs_all, sn_all = cos[delta], sin[delta]
        for j in range(hd):
            a, c = np.int64(k[j]), np.int64(k[hd + j])
            cs, sn = np.int64(cs_all[j]), np.int64(sn_all[j])
            out[j] = min(max((a * cs - c * sn + ROPE_HALF) >> ROPE_BITS, -klim), klim)
            out[hd + j] = min(max((c * cs + a * sn + ROPE_HALF) >> ROPE_BITS, -klim), klim)

    @jit
    def _sink_scores(qb, ks, q0, tq, win, cos, sin, klim, scores):
        """Attention step 3 for the sink keys of a block of queries in the full pass: a query at p >= win sees
        sink key u through _far_sink(k_u, p - win + 1), so columns 0 .. S-1 of its row of scores are redone.

        qb (nkv, g*tq, d) float64, row gi*tq + t the query at position q0 + t; ks (nkv, S, d) the rotated sink
        keys; scores (nkv, g*tq, keys) float64 exact integers, sink keys in columns 0 .. S-1."""
        nkv, rows, d = qb.shape
        nsink = ks.shape[1]
        kk = np.empty(d, np.float64)
        for t in range(tq):
            p = q0 + t
            if p < win:
                continue
            for kv in range(nkv):
                for u in range(nsink):
                    _far_sink(ks[kv, u], p - win + 1, cos, sin, klim, kk)
                    for r in range(t, rows, tq):
                        acc = 0.0
                        for j in range(d):
                            acc += qb[kv, r, j] * kk[j]
                        scores[kv, r, u] = acc

    # reassociation is safe here: every partial sum is an exact integer, so any order gives the same value
    @jit(fastmath={"reassoc"})
    def _attend_rows(q, kc, vc, crow, ends, shift, exp_table, o, pos, win, sink, cos, sin, klim, spos):
        """Attention steps 3-5 for new positions (decoding), reading each row's cache once per entry.

        q (B, nkv, g, d) float64; kc (rows, nkv, ...) the integer keys of cap slots in the woven layout
        (woven_shapes), vc (rows, nkv, cap, d) the values; entry i is at position pos[i] of cache row crow[i];
        it attends to those of slots 0 .. ends[i]-1 whose position spos[row, u] it sees (spec §5: u <= p, and
        with a window win > 0 a sink position or one of the latest win - sink; the sums and the maximum do not
        depend on the order); sink keys are in slots 0 .. sink-1; o (B, nh*d) int64. Dot
        products and weighted sums in binary64 are exact: every partial sum is an integer below 2**53
        (|S| < 2**37, sum w |v| < 2**35 end, spec §5).
        """
        nb, nkv, g, d = q.shape
        if d not in simd.HEAD_DIMS:
            raise ValueError("a head size the SIMD blocks are not built for")
        last = exp_table.shape[0] - 1
        cap = kc.shape[2] * simd.QK_KEYS
        s = np.empty((3, cap), np.int64)
        acc = np.empty((3, d), np.float64)
        kk = np.empty(d, np.float64)  # one key row in binary64
        seen = np.empty(cap, np.int64)
        for b in range(nb):
            row, end, p = crow[b], ends[b], pos[b]
            far = win > 0 and p >= win
            lo = p - win + sink + 1 if win > 0 else 0
            n = 0
            for u in range(end):
                at = spos[row, u]
                if 0 <= at <= p and (at < sink or at >= lo):
                    seen[n] = u
                    n += 1
            # the g queries of a KV head three at a time (SmolLM2 has g = 3): each key and value row is read once
            # for three queries; where g is not a multiple of 3 the last query is repeated (same values written)
            for kv in range(nkv):
                for g0 in range(0, g, 3):
                    g1, g2 = min(g0 + 1, g - 1), min(g0 + 2, g - 1)
                    qa, qb, qc = q[b, kv, g0], q[b, kv, g1], q[b, kv, g2]
                    for i in range(n):
                        u = seen[i]
                        _key_row(kc[row, kv], u, kk)
                        if far and u < sink:  # a sink key, seen from past the window
                            _far_sink(kk, p - win + 1, cos, sin, klim, kk)
                        t0, t1, t2 = 0.0, 0.0, 0.0
                        for j in range(d):
                            x = kk[j]
                            t0 += qa[j] * x
                            t1 += qb[j] * x
                            t2 += qc[j] * x
                        s[0, i] = np.int64(t0) >> shift
                        s[1, i] = np.int64(t1) >> shift
                        s[2, i] = np.int64(t2) >> shift
                    m0, m1, m2 = s[0, 0], s[1, 0], s[2, 0]
                    for i in range(1, n):
                        m0, m1, m2 = max(m0, s[0, i]), max(m1, s[1, i]), max(m2, s[2, i])
                    z0, z1, z2 = np.int64(0), np.int64(0), np.int64(0)
                    a0, a1, a2 = acc[0], acc[1], acc[2]
                    acc[:, :] = 0.0
                    for i in range(n):
                        vr = vc[row, kv, seen[i]]
                        w0 = exp_table[min(m0 - s[0, i], last)]
                        w1 = exp_table[min(m1 - s[1, i], last)]
                        w2 = exp_table[min(m2 - s[2, i], last)]
                        z0, z1, z2 = z0 + w0, z1 + w1, z2 + w2
                        f0, f1, f2 = np.float64(w0), np.float64(w1), np.float64(w2)
                        for j in range(d):
                            x = np.float64(vr[j])
                            a0[j] += f0 * x
                            a1[j] += f1 * x
                            a2[j] += f2 * x
                    for gi, z, a in ((g0, z0, a0), (g1, z1, a1), (g2, z2, a2)):
                        zf = np.float64(z)
                        col = (kv * g + gi) * d
                        for j in range(d):
                            o[b, col + j] = np.int64(np.floor((2.0 * a[j] + zf) / (2.0 * zf)))

    def _score_blocks(qv, qf, fits, qnorm, kr, vr, side, nk, shift, s):
        """Scores of keys 0 .. nk-1 (whole blocks of simd.QK_KEYS) of one KV head's decoder cache kr for the
        queries qv (their high and low parts) / qf (as they are, when `fits`: all below 2**15), into s. int16
        keys: by qk_step_fit where the norms (side) also bound every score of the block below 2**31, else qk_step;
        8-bit codes: qk_step8_fit whenever the queries fit (no sum can reach 2**31), else qk_step8, asking for
        the value rows (vr) of each key block on the way, which _weighted_values reads next: from L2 then, not
        memory."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_score_blocks, jit_options={"nogil": True})
    def _score_blocks_typed(qv, qf, fits, qnorm, kr, vr, side, nk, shift, s):
        if kr.dtype == types.int8:
            def scores(qv, qf, fits, qnorm, kr, vr, side, nk, shift, s):
                for kb in range(nk // simd.QK_KEYS):
                    simd.prefetch_rows(vr, kb * simd.QK_KEYS, simd.QK_KEYS)
                    if fits:
                        simd.qk_step8_fit(qf, kr, side, kb, shift, s)
                    else:
                        simd.qk_step8(qv, kr, side, kb, shift, s)
        else:
            def scores(qv, qf, fits, qnorm, kr, vr, side, nk, shift, s):
                for kb in range(nk // simd.QK_KEYS):
                    if fits and qnorm * side[kb] < FIT_NORMS:
                        simd.qk_step_fit(qf, kr, kb, shift, s)
                    else:
                        simd.qk_step(qv, kr, kb, shift, s)
        return scores

    def _weighted_values(s, seen, m, exp_table, vr, side, nk, wv, z, acc, lows):
        """The softmax weights of the 3 queries' scores s over slots 0 .. nk-1 (whole blocks of simd.AV_KEYS) of
        one KV head's decoder cache vr, the keys seen in view, m their largest scores: z = their sums, acc = the
        weighted values. int16 values: simd.weights16_seen, then simd.av_block; 8-bit codes: simd.fold32 a block,
        then av_codes or av_codes2 as it says (blocks with no key seen add nothing); lows (nk / simd.AV_KEYS,)
        int64 holds fold32's results: every block's weights first, then the weighted values."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_weighted_values, jit_options={"nogil": True})
    def _weighted_values_typed(s, seen, m, exp_table, vr, side, nk, wv, z, acc, lows):
        if vr.dtype == types.int8:
            def values(s, seen, m, exp_table, vr, side, nk, wv, z, acc, lows):
                acc[:, :] = 0
                z[:] = 0
                for u0 in range(0, nk, simd.AV_KEYS):
                    lows[u0 // simd.AV_KEYS] = simd.fold32(s, u0, seen, m, exp_table, side, wv, z)
                for u0 in range(0, nk, simd.AV_KEYS):
                    low = lows[u0 // simd.AV_KEYS]
                    if low >= simd.TWO_PARTS:
                        simd.av_codes2(wv, vr, u0, low - simd.TWO_PARTS, acc)
                    elif low >= 0:
                        simd.av_codes(wv, vr, u0, low, acc)
        else:
            def values(s, seen, m, exp_table, vr, side, nk, wv, z, acc, lows):
                for c in range(simd.QUERIES):
                    zc = np.int64(0)
                    for u0 in range(0, nk, simd.QK_KEYS):
                        zc += simd.weights16_seen(s[c], u0, seen, m[c], exp_table, wv[c], wv[c + simd.QUERIES])
                    z[c] = zc
                acc[:, :] = 0
                for u0 in range(0, nk, simd.AV_KEYS):
                    simd.av_block(wv, vr, u0, acc)
        return values

    def _cache_key(kt, side, u, out):
        """Slot u's key from one KV head's woven decoder cache kt into out (d,): int16 keys as they are, 8-bit
        codes times 2**e (e in side)."""
        raise NotImplementedError("called from compiled kernels only")

    @overload(_cache_key, jit_options={"nogil": True})
    def _cache_key_typed(kt, side, u, out):
        if kt.dtype == types.int8:
            def key(kt, side, u, out):
                _key_row(kt, u, out)
                e = side[u // simd.QK_KEYS, 0, u % simd.QK_KEYS]
                for j in range(out.shape[0]):
                    out[j] *= 1 << e
        else:
            def key(kt, side, u, out):
                _key_row(kt, u, out)
        return key

    @jit
    def _attend_rows_simd(q, kc, vc, kn, crow, ends, shift, exp_table, o, pos, win, sink, cos, sin, klim, spos,
                          h0, h1):
        """_attend_rows for caches of a head size in simd.HEAD_DIMS, by simd's step blocks: int16 caches with kn
        (rows, nkv, cap / simd.QK_KEYS) float64 a bound on the |k|**2 of each block's keys, or 8-bit codes (coder 1
        version 3) with kn (rows, nkv, cap / simd.QK_KEYS, 2, 16) int8 their exponents. Every slot below ends[i],
        rounded up to a whole block of simd.SPAN_KEYS (the caches hold a multiple of them), is scored, and the
        slots an entry does not see get weight 0. Same integers: the scores q' . k' exactly (_score_blocks: in
        int32 where no sum can wrap, else q' split into q' >> 8 and q' & 255, |q'| < 2**16), the weights' sums
        exactly (_weighted_values: w split into w >> 10 and w & 1023, w <= 2**20; over 8-bit codes each block's
        weights folded over its value exponents, simd.fold32), and o the round-half-up quotient of exact
        integers. Only the entries' KV heads numbered h0 .. h1 - 1 (entry b's KV head kv is b * nkv + kv) are
        attended to: a thread's share in layerstep.layer_part (all: 0, B * nkv)."""
        nb, nkv, g, d = q.shape
        if d not in simd.HEAD_DIMS:
            raise ValueError("a head size the SIMD blocks are not built for")
        cap = kc.shape[2] * simd.QK_KEYS
        s = np.empty((simd.QUERIES, cap), np.int64)
        wv = np.empty((2 * simd.QUERIES, cap), np.int16)
        qv = np.empty((2 * simd.QUERIES, d), np.int16)
        qf = np.empty((simd.QUERIES, d), np.int16)
        acc = np.empty((simd.QUERIES, d), np.int64)
        z = np.empty(simd.QUERIES, np.int64)
        m = np.empty(simd.QUERIES, np.int64)
        lows = np.empty(cap // simd.AV_KEYS, np.int64)
        kk = np.empty(d, np.float64)
        seen = np.empty(cap, np.bool_)
        for b in range(h0 // nkv, min(nb, (h1 + nkv - 1) // nkv)):
            row, end, p = crow[b], ends[b], pos[b]
            far = win > 0 and p >= win
            lo = p - win + sink + 1 if win > 0 else 0
            nk = (end + simd.SPAN_KEYS - 1) // simd.SPAN_KEYS * simd.SPAN_KEYS
            slots = spos[row, :nk]  # a slice and bitwise operators: the loop vectorizes
            for u in range(nk):
                at = slots[u]
                seen[u] = (u < end) & (at >= 0) & (at <= p) & ((at < sink) | (at >= lo))
            for kv in range(max(0, h0 - b * nkv), min(nkv, h1 - b * nkv)):
                kr, vr, norms = kc[row, kv], vc[row, kv], kn[row, kv]
                for g0 in range(0, g, simd.QUERIES):
                    heads = (g0, min(g0 + 1, g - 1), min(g0 + 2, g - 1))  # as in _attend_rows
                    fits, qnorm = True, 0.0  # whether every query fits int16, and their largest squared norm
                    for c in range(simd.QUERIES):
                        qr = q[b, kv, heads[c]]
                        norm, top = np.int64(0), np.int64(0)
                        for j in range(d):  # integer reductions, which the loop vectorizes
                            x = np.int64(qr[j])
                            norm += x * x
                            top = max(top, abs(x))
                        if top >= 1 << 16:  # spec §5 bounds |q'| by about 46,400
                            raise ValueError("a rotated query beyond 2**16")
                        fits = fits and top < 1 << 15
                        qnorm = max(qnorm, np.float64(norm))  # below 2**38: exact
                        for j in range(d):
                            x = np.int64(qr[j])
                            qv[c, j], qv[c + simd.QUERIES, j] = x >> simd.Q_LOW_BITS, x & ((1 << simd.Q_LOW_BITS) - 1)
                            qf[c, j] = x
                    _score_blocks(qv, qf, fits, qnorm, kr, vr, norms, nk, shift, s)
                    if far:
                        for u in range(sink):
                            if seen[u]:
                                _cache_key(kr, norms, u, kk)
                                _far_sink(kk, p - win + 1, cos, sin, klim, kk)
                                for c in range(simd.QUERIES):
                                    t = 0.0
                                    for j in range(d):
                                        t += q[b, kv, heads[c], j] * kk[j]
                                    s[c, u] = np.int64(t) >> shift
                    for c in range(simd.QUERIES):
                        mc = np.int64(-(1 << 62))
                        sc = s[c]
                        for u in range(nk):  # a select, not a branch: the loop vectorizes
                            mc = max(mc, sc[u] if seen[u] else np.int64(-(1 << 62)))
                        m[c] = mc
                    _weighted_values(s, seen, m, exp_table, vr, norms, nk, wv, z, acc, lows)
                    for c in range(simd.QUERIES):
                        _round_quotients(acc[c], z[c], o[b, (kv * g + heads[c]) * d:(kv * g + heads[c] + 1) * d])

    @jit
    def _round_quotients(acc, z, out):
        """out = floor((2 acc + z) / (2 z)), the round-half-up quotients of weighted values acc (|acc| < 2**46, as
        attention's are: z < 2**31 times |v| < 2**15) by their weights' sum z (1 <= z < 2**31), through binary64:
        it holds the numerators (< 2**48) exactly, and rounds a quotient below 2**15 by at most 2**-38, less than
        its distance (>= 1 / (2 z) > 2**-32) from any integer it is not, so the floor is exact; the remainder
        puts right any quotient past those bounds. A loop the compiler vectorizes, where an integer division each
        took tens of cycles."""
        den = 2 * z
        inv = np.float64(den)
        for j in range(acc.shape[0]):
            num = 2 * acc[j] + z
            t = np.int64(np.floor(np.float64(num) / inv))
            r = num - t * den
            out[j] = t - (r < 0) + (r >= den)

    @jit
    def _weave_key(kt, u, k):
        """Slot u's key k (d,) into one KV head's woven key cache kt (woven_shapes); returns |k|**2 (float64, exact:
        below 2**37)."""
        b, l = u // simd.QK_KEYS, u % simd.QK_KEYS
        norm = 0.0
        for j in range(k.shape[0]):
            kt[b, j // 2, 2 * l + j % 2] = k[j]
            norm += np.float64(k[j]) * np.float64(k[j])
        return norm

    @jit
    def _key_row(kt, u, out):
        """Slot u's key from one KV head's woven key cache kt into out (d,)."""
        b, l = u // simd.QK_KEYS, u % simd.QK_KEYS
        for j in range(out.shape[0]):
            out[j] = kt[b, j // 2, 2 * l + j % 2]

    @jit
    def weave(kc, vc, kt, vt, kn):
        """The full pass's copies of one row's int16 caches kc, vc (nkv, slots, d) for simd.qk_rows and av_rows:
        kt (nkv, blocks, d/2, 32) with kt[h, b, p, 2 l + e] = kc[h, 16 b + l, 2 p + e], and vt (nkv, d/16, pairs,
        16, 2) with vt[h, c, kp, j, e] = vc[h, 2 kp + e, 16 c + j] (woven_shapes); slots past the caches' are
        zero. kn (nkv, blocks) float64: each block's largest squared norm |k|**2 (an exact integer)."""
        nkv, n, d = kc.shape
        kt[:] = 0
        vt[:] = 0
        kn[:] = 0
        for h in range(nkv):
            for u in range(n):
                b, kp, e = u // simd.QK_KEYS, u // 2, u % 2
                kn[h, b] = max(kn[h, b], _weave_key(kt[h], u, kc[h, u]))
                for j in range(d):
                    vt[h, j // simd.SPAN_DIMS, kp, j % simd.SPAN_DIMS, e] = vc[h, u, j]

    @jit
    def _attend_span(q, kc, kt, vt, kn, a, e, shift, exp_table, o, orow, win, sink, cos, sin, klim):
        """Attention steps 3-5 of the full pass for positions a .. e-1 of one sequence (slot = position), by
        simd's row blocks: 12 query rows (a position and a head of one KV head) a call, so that a block of keys or
        values is read once for all of them; the scores by qk_rows_fit where the rows fit int16 and the norms
        bound every score below 2**31 (on text, measured: every block), else by qk_rows.
        q (nkv, g, T, d) float64; kc (nkv, slots, d) the int16 keys (for the sinks seen from past the window);
        kt, vt, kn weave's copies and norms; o (rows, nh*d) int64, position p in row orow + p. The same integers
        as _attend_rows_simd: scores over whole blocks of 64 keys, weight 0 for the keys a query does not see
        (u > p, or outside the sink and the window)."""
        nkv, g, _, d = q.shape
        if d not in simd.HEAD_DIMS:
            raise ValueError("a head size the SIMD blocks are not built for")
        nq, chunk = simd.SPAN_QUERIES, simd.SPAN_KEYS
        cap = kt.shape[1] * simd.QK_KEYS
        # rows padded by a cache line: at a power-of-two stride the rows a call reads would share one set of L1
        s = np.empty((nq, cap + 8), np.int64)
        wv = np.empty((2 * nq, cap + 32), np.int16)
        qv = np.empty((2 * nq, d), np.int16)
        qf = np.empty((nq, d), np.int16)
        acc = np.empty((nq, d), np.int64)
        z = np.empty(nq, np.int64)
        rp = np.empty(nq, np.int64)
        rh = np.empty(nq, np.int64)
        kk = np.empty(d, np.float64)
        rows = (e - a) * g
        for kv in range(nkv):
            for f0 in range(0, rows, nq):
                fits, qnorm = True, 0.0  # whether every row fits int16, and their largest squared norm
                for r in range(nq):
                    f = min(f0 + r, rows - 1)  # the last call repeats its last row (the same values written)
                    rp[r], rh[r] = a + f // g, f % g
                    norm = 0.0
                    for j in range(d):
                        x = np.int64(q[kv, rh[r], rp[r], j])
                        if abs(x) >= 1 << 16:  # spec §5 bounds |q'| by about 46,400
                            raise ValueError("a rotated query beyond 2**16")
                        qv[r, j], qv[r + nq, j] = x >> simd.Q_LOW_BITS, x & ((1 << simd.Q_LOW_BITS) - 1)
                        qf[r, j] = x
                        fits = fits and abs(x) < 1 << 15
                        norm += np.float64(x) * np.float64(x)
                    qnorm = max(qnorm, norm)
                # keys in chunks of 64: from the first row's lowest key in view to the last row's position, and
                # the sinks' chunk where that band starts past it
                lo = rp[0] - win + sink + 1 if win > 0 else 0
                c0 = lo // chunk * chunk if lo > sink else 0
                c1 = min(cap, (rp[nq - 1] // chunk + 1) * chunk)
                spans = ((0, chunk), (c0, c1)) if c0 > 0 and sink > 0 else ((c0, c1), (c1, c1))
                for k0, k1 in spans:
                    for kb in range(k0 // simd.QK_KEYS, k1 // simd.QK_KEYS):
                        if fits and qnorm * kn[kv, kb] < FIT_NORMS:
                            simd.qk_rows_fit(qf, kt[kv], kb, shift, s)
                        else:
                            simd.qk_rows(qv, kt[kv], kb, shift, s)
                    wv[:, k0:k1] = 0
                for r in range(nq):
                    p = rp[r]
                    lo = p - win + sink + 1 if win > 0 else 0
                    band = lo if lo > sink else 0  # keys band .. p, and below it the sinks
                    if win > 0 and p >= win:  # the sinks seen from past the window (spec §5)
                        for u in range(sink):
                            _far_sink(kc[kv, u], p - win + 1, cos, sin, klim, kk)
                            t = 0.0
                            for j in range(d):
                                t += q[kv, rh[r], p, j] * kk[j]
                            s[r, u] = np.int64(t) >> shift
                    m = np.int64(-(1 << 62))
                    for u in range(sink if band > 0 else 0):
                        m = max(m, s[r, u])
                    seen = s[r, band: p + 1]  # a slice, so that the loop runs from 0 and vectorizes
                    for u in range(seen.shape[0]):
                        m = max(m, seen[u])
                    zc = np.int64(0)
                    sinks = sink if band > 0 else 0
                    head = (sinks + simd.QK_KEYS - 1) // simd.QK_KEYS * simd.QK_KEYS  # the sinks' blocks
                    for u0 in range(0, head, simd.QK_KEYS):
                        zc += simd.weights16(s[r], u0, sinks, band, p + 1, m, exp_table, wv[r], wv[r + nq])
                    for u0 in range(max(head, band // simd.QK_KEYS * simd.QK_KEYS), p + 1, simd.QK_KEYS):
                        zc += simd.weights16(s[r], u0, sinks, band, p + 1, m, exp_table, wv[r], wv[r + nq])
                    z[r] = zc
                acc[:, :] = 0
                for k0, k1 in spans:
                    for part in range(d // simd.SPAN_DIMS):
                        for kp0 in range(k0 // 2, k1 // 2, simd.SPAN_PAIRS):
                            simd.av_rows(wv, vt[kv, part], kp0, part, acc)
                for r in range(nq):
                    col = (kv * g + rh[r]) * d
                    at = orow + rp[r]
                    for j in range(d):
                        o[at, col + j] = (2 * acc[r, j] + z[r]) // (2 * z[r])

    def simd_fits(kc, vc, exp_table) -> bool:
        """Whether _attend_rows_simd takes these caches (else _attend_rows does): int16, or 8-bit codes."""
        return (kc.dtype == vc.dtype and kc.dtype in (np.int16, np.int8) and vc.shape[-1] in simd.HEAD_DIMS
                and vc.shape[2] % simd.SPAN_KEYS == 0 and kc.flags.c_contiguous and vc.flags.c_contiguous
                and 0 <= exp_table.min() and exp_table.max() <= simd.W_MAX)

    def attend_rows(q, kc, vc, kn, crow, ends, shift, exp_table, o, pos, win, sink, cos, sin, klim, spos,
                    use_simd: bool = True) -> None:
        work = int(ends.max()) * q.shape[1] * q.shape[2] * q.shape[3]
        if kc.dtype == np.int8 and not (use_simd and simd_fits(kc, vc, exp_table)):
            raise ValueError("caches of 8-bit codes are read by the SIMD blocks only")
        if use_simd and simd_fits(kc, vc, exp_table):
            _split(q.shape[0], work, lambda a, b: _attend_rows_simd(q[a:b], kc, vc, kn, crow[a:b], ends[a:b], shift,
                                                                    exp_table, o[a:b], pos[a:b], win, sink, cos,
                                                                    sin, klim, spos, 0, (b - a) * q.shape[1]))
            return
        _split(q.shape[0], work, lambda a, b: _attend_rows(q[a:b], kc, vc, crow[a:b], ends[a:b], shift, exp_table,
                                                           o[a:b], pos[a:b], win, sink, cos, sin, klim, spos))

    def attend_span(q, kc, kt, vt, kn, a, e, shift, exp_table, o, orow, win, sink, cos, sin, klim) -> None:
        _attend_span(q, kc, kt, vt, kn, a, e, shift, exp_table, o, orow, win, sink, cos, sin, klim)

    def sink_scores(qb, ks, q0, tq, win, cos, sin, klim, scores) -> None:
        _sink_scores(qb, ks, q0, tq, win, cos, sin, klim, scores)

    def quantize(x, qmax, in_bits, eps, qh, ql, f) -> None:
        _split(x.shape[0], x.shape[1], lambda a, b: _quantize(x[a:b], qmax, in_bits, eps, qh[a:b], ql[a:b], f[a:b]))

    def add_residual(acc, f, lin, x) -> None:
        ah, al = acc
        _split(x.shape[0], x.shape[1], lambda a, b: _add_residual(ah[a:b], al[a:b], f[a:b], lin, x[a:b], 0, x.shape[1]))

    def gate_up(acc, f, lin, deltas, h) -> None:
        ah, al = acc
        n = h.shape[1]
        _split(h.shape[0], n, lambda a, b: _gate_up(ah[a:b], al[a:b], f[a:b], lin, deltas, h[a:b], 0, n))

    def qkv_rope(acc, f, lin, row0, t_len, pos0, cos, sin, qo, ko, vo, k_off, klim, kv8) -> None:
        ah, al = acc
        _split(ah.shape[0], ah.shape[1], lambda a, b: _qkv_rope(ah[a:b], al[a:b], f[a:b], lin, row0 + a, t_len,
                                                                pos0, cos, sin, qo, ko, vo, k_off, klim, kv8))

    def softmax(scores, q0, tq, shift, exp_table, z, k0=0, band=0, win=0, sink=0) -> None:
        _split(scores.shape[0], scores.shape[1],
               lambda a, b: _softmax(scores[a:b], a, q0, tq, shift, exp_table, z[a:b], k0, band, win, sink))

    def qkv_rope_rows(acc, f, lin, crow, pos, slot, cos, sin, qo, ko, vo, side, klim, kv8) -> None:
        """side: the int16 caches' key norms (_keep_norms) or the 8-bit caches' exponents (_store_kv)."""
        ah, al = acc
        norms = np.empty(qo.shape[:2])
        _split(ah.shape[0], ah.shape[1], lambda a, b: _qkv_rope_rows(ah[a:b], al[a:b], f[a:b], lin, crow[a:b],
                                                                     pos[a:b], slot[a:b], cos, sin, qo[a:b], ko, vo,
                                                                     side, norms[a:b], klim, kv8))
        _keep_side(side, crow, slot, norms)

    def tables(acc, f, lin, exp_table, total, out) -> None:
        ah, al = acc
        _split(out.shape[0], out.shape[1], lambda a, b: _tables(ah[a:b], al[a:b], f[a:b], lin, exp_table, total,
                                                                out[a:b]))
