"""Explicit SIMD blocks for decoding attention: LLVM vector IR emitted through numba intrinsics.

Decoding attention reads every key and value row of a frame's cache for a handful of queries. Written as numba
loops (fused._attend_rows) it ran at 5.6 GMAC/s, bound by one float64 horizontal sum per key and query; these
blocks use pairwise int16 multiply-add (x86 pmaddwd, fused into AVX-512 VNNI vpdpwssd by LLVM) on whole blocks
of keys. tools/profile_decode.py times both in one run: at batch 16 and 1,024 positions, attention 113 -> 59 ms
a step on the 2-core EPYC (tools/results/profile_decode.md).

Exactness: operands are int16 and each function states the bounds that keep every int32 partial sum below
2**31, so the results are the exact integers whatever the instruction set. The instruction set is numba's
target: the host's unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say otherwise (numba keys its cache by them), and
portable IR for any target that is not x86 with AVX2 or AVX-512BW.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import config
from numba.extending import intrinsic

QUERIES = 3  # queries per call: the query heads of one KV head are taken three at a time (SmolLM2 has 3)
QK_KEYS = 16  # keys scored per qk_block call (the int32 lanes of one result vector)
AV_KEYS = 32  # keys summed per av_block call: 16 pairs of products < 2**26 stay below 2**31
HEAD_DIMS = (16, 32, 64, 128)  # head sizes the blocks take (powers of two; 128: |qh . k| < 2**30)
Q_LOW_BITS = 8  # a query q (|q| < 2**16) goes in as q >> 8 and q & 255: int16 x int16 products, exact int32 sums
W_LOW_BITS = 10  # a weight w <= W_MAX goes in as w >> 10 and w & 1023, both <= 1024
W_MAX = 1 << 20

_i16, _i32, _i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)


def target_features() -> set[str]:
    """The instruction-set features of numba's target: the host's unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say
    otherwise (a named CPU without a feature list counts as having none)."""
    if config.CPU_FEATURES is not None:
        return {f[1:] for f in config.CPU_FEATURES.split(",") if f.startswith("+")}
    if config.CPU_NAME not in (None, "host"):
        return set()
    import llvmlite.binding as llvm
    return {k for k, v in llvm.get_host_cpu_features().items() if v}


def isa() -> str:
    """'avx512' (AVX-512BW), 'avx2' or 'generic': what the blocks may use on numba's target."""
    feats = target_features()
    return "avx512" if "avx512bw" in feats else "avx2" if "avx2" in feats else "generic"


def _vec(t: ir.Type, n: int) -> ir.VectorType:
    return ir.VectorType(t, n)


def _lanes(builder: ir.IRBuilder, x: ir.Value, a: int, n: int) -> ir.Value:
    """Lanes a .. a+n-1 of vector x."""
    return builder.shuffle_vector(x, x, ir.Constant(_vec(_i32, n), list(range(a, a + n))))


def _concat(builder: ir.IRBuilder, parts: list[ir.Value]) -> ir.Value:
    """One vector of the parts' lanes in order (all parts the same width, a power of two many)."""
    while len(parts) > 1:
        n = parts[0].type.count
        idx = ir.Constant(_vec(_i32, 2 * n), list(range(2 * n)))
        parts = [builder.shuffle_vector(parts[i], parts[i + 1], idx) for i in range(0, len(parts), 2)]
    return parts[0]


def _pmadd(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, level: str) -> ir.Value:
    """<2n x i16> a, b -> <n x i32>: a[2i]*b[2i] + a[2i+1]*b[2i+1]. Exact unless both products of a pair are
    (-32768)**2, which the callers' operands (|x| <= 32767) exclude."""
    n2 = a.type.count
    width = {"avx512": 32, "avx2": 16}.get(level, 0)
    if width and n2 % width == 0:
        name = "llvm.x86.avx512.pmaddw.d.512" if width == 32 else "llvm.x86.avx2.pmadd.wd"
        fn = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(_vec(_i32, width // 2), [_vec(_i16, width)] * 2), name)
        return _concat(builder, [builder.call(fn, [_lanes(builder, a, c, width), _lanes(builder, b, c, width)])
                                 for c in range(0, n2, width)])
    n = n2 // 2
    vt = _vec(_i32, n)

    def products(first: int) -> ir.Value:
        idx = ir.Constant(vt, list(range(first, n2, 2)))
        return builder.mul(builder.sext(builder.shuffle_vector(a, a, idx), vt),
                           builder.sext(builder.shuffle_vector(b, b, idx), vt))

    return builder.add(products(0), products(1))


def _halve(builder: ir.IRBuilder, x: ir.Value, y: ir.Value, m: int) -> ir.Value:
    """x, y: <16 x i32>, each 16/m keys of m partial sums in turn -> 32/m keys (x's, then y's) of m/2 sums."""
    lo, hi = [], []
    for base in (0, QK_KEYS):
        for key in range(QK_KEYS // m):
            first = base + key * m
            lo += range(first, first + m // 2)
            hi += range(first + m // 2, first + m)
    pick = lambda idx: builder.shuffle_vector(x, y, ir.Constant(_vec(_i32, QK_KEYS), list(idx)))
    return builder.add(pick(lo), pick(hi))


def _row(builder: ir.IRBuilder, arr, row: ir.Value, d: int) -> ir.Value:
    """Row `row` of a 2-D int16 array with contiguous rows of d, as <d x i16>."""
    addr = builder.add(builder.ptrtoint(arr.data, _i64), builder.mul(row, builder.extract_value(arr.strides, 0)))
    return builder.load(builder.inttoptr(addr, _vec(_i16, d).as_pointer()), align=2)


def _per_head_dim(builder: ir.IRBuilder, d: ir.Value, emit) -> None:
    """emit(hd) for every head size in HEAD_DIMS, each in its own branch; the one equal to d runs. The caller
    makes sure d is one of them (fused._attend_rows_simd checks it), so any other d does nothing."""
    done = builder.append_basic_block("hd.done")
    pick = builder.switch(d, done)
    for hd in HEAD_DIMS:
        branch = builder.append_basic_block(f"hd.{hd}")
        pick.add_case(ir.Constant(d.type, hd), branch)
        builder.position_at_end(branch)
        emit(hd)
        builder.branch(done)
    builder.position_at_end(done)


def _codegen(emit):
    """The code generator of a block intrinsic (x, cache, u0, out): emit(builder, x, cache, out, u0, hd, level)
    for each head size hd, on numba's instruction-set level; the cache's second dimension picks the branch."""
    level = isa()

    def codegen(context, builder, signature, args):
        x, cache, out = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 1, 3))
        _per_head_dim(builder, builder.extract_value(cache.shape, 1),
                      lambda hd: emit(builder, x, cache, out, args[2], hd, level))
        return context.get_dummy_value()

    return codegen


@intrinsic
def qk_block(typingctx, qv, kc, u0, s):
    """s[c, u0 + r] = sum_j (256 qv[c, j] + qv[c + 3, j]) kc[u0 + r, j] for r < 16 and the 3 queries c.

    d = kc.shape[1], one of HEAD_DIMS (code for each is built; the caller checks). qv (6, d) int16: each
    query's high parts q >> 8 (|.| <= 256), then its low parts q & 255; kc (keys, d)
    int16 (|k| <= 32767), rows contiguous; s (3, keys) int64. Every int32 partial sum is below
    d * 256 * 32767 <= 2**30 (d <= 128).
    """
    return types.void(qv, kc, u0, s), _codegen(_scores)


def _scores(builder: ir.IRBuilder, qa, ka, sa, u0: ir.Value, hd: int, level: str) -> None:
    """qk_block's code for head size hd."""
    qs = [_row(builder, qa, ir.Constant(_i64, c), hd) for c in range(2 * QUERIES)]
    per_key = hd // 2  # pair sums a key leaves after one multiply-add
    stacks: list[list[tuple[int, ir.Value]]] = [[] for _ in qs]  # (m, vector of 16/m keys x m sums)
    pending: list[list[ir.Value]] = [[] for _ in qs]
    for r in range(QK_KEYS):
        k = _row(builder, ka, builder.add(u0, ir.Constant(_i64, r)), hd)
        for c, qrow in enumerate(qs):
            v = _pmadd(builder, qrow, k, level)
            while v.type.count > QK_KEYS:  # fold to 16 partial sums
                half = v.type.count // 2
                v = builder.add(_lanes(builder, v, 0, half), _lanes(builder, v, half, half))
            pending[c].append(v)
            if len(pending[c]) * min(per_key, QK_KEYS) < QK_KEYS:
                continue
            v, m = _concat(builder, pending[c]), min(per_key, QK_KEYS)
            pending[c] = []
            st = stacks[c]
            while st and st[-1][0] == m:
                v, m = _halve(builder, st.pop()[1], v, m), m // 2
            st.append((m, v))
    v64 = _vec(_i64, QK_KEYS)
    base = builder.add(builder.ptrtoint(sa.data, _i64), builder.mul(u0, ir.Constant(_i64, 8)))
    for c in range(QUERIES):
        hi, lo = (builder.sext(stacks[i][0][1], v64) for i in (c, c + QUERIES))
        out = builder.add(builder.shl(hi, ir.Constant(v64, [8] * QK_KEYS)), lo)
        addr = builder.add(base, builder.mul(builder.extract_value(sa.strides, 0), ir.Constant(_i64, c)))
        builder.store(out, builder.inttoptr(addr, v64.as_pointer()), align=8)


@intrinsic
def av_block(typingctx, wv, vc, u0, acc):
    """acc[c, j] += sum_r (1024 wv[c, u] + wv[c + 3, u]) vc[u, j] over u = u0 + r, r < 32, for the 3 queries c.

    d = vc.shape[1], one of HEAD_DIMS as for qk_block. wv (6, keys) int16: each query's weights split into
    w >> 10 and w & 1023 (w <= 2**20, so both <= 1024);
    vc (keys, d) int16 (|v| <= 32767), rows contiguous; acc (3, d) int64 contiguous. Keys go in pairs (the
    multiply-add's two lanes): a pair's sum is below 2 * 1024 * 32767 < 2**26, 16 pairs below 2**30.
    """
    return types.void(wv, vc, u0, acc), _codegen(_weights)


def _weights(builder: ir.IRBuilder, wa, va, aa, u0: ir.Value, hd: int, level: str) -> None:
    """av_block's code for head size hd."""
    weave = ir.Constant(_vec(_i32, 2 * hd), [j // 2 + (hd if j % 2 else 0) for j in range(2 * hd)])
    repeat = ir.Constant(_vec(_i32, 2 * hd), [j % 2 for j in range(2 * hd)])
    two = _vec(_i16, 2)
    wbase = builder.ptrtoint(wa.data, _i64)
    wrow = builder.extract_value(wa.strides, 0)
    sums: list[ir.Value | None] = [None] * (2 * QUERIES)
    for pr in range(AV_KEYS // 2):
        u = builder.add(u0, ir.Constant(_i64, 2 * pr))
        a = _row(builder, va, u, hd)
        b = _row(builder, va, builder.add(u, ir.Constant(_i64, 1)), hd)
        ab = builder.shuffle_vector(a, b, weave)  # a0 b0 a1 b1 ...: each dim's two keys side by side
        for c in range(2 * QUERIES):
            addr = builder.add(builder.add(wbase, builder.mul(wrow, ir.Constant(_i64, c))),
                               builder.mul(u, ir.Constant(_i64, 2)))
            w2 = builder.load(builder.inttoptr(addr, two.as_pointer()), align=2)  # w[u], w[u + 1]
            w = builder.shuffle_vector(w2, w2, repeat)
            p = _pmadd(builder, ab, w, level)
            sums[c] = p if sums[c] is None else builder.add(sums[c], p)
    v64 = _vec(_i64, hd)
    for c in range(QUERIES):
        hi, lo = builder.sext(sums[c], v64), builder.sext(sums[c + QUERIES], v64)
        ptr = builder.inttoptr(builder.add(builder.ptrtoint(aa.data, _i64), ir.Constant(_i64, c * hd * 8)),
                               v64.as_pointer())
        total = builder.add(builder.shl(hi, ir.Constant(v64, [10] * hd)), lo)
        builder.store(builder.add(builder.load(ptr, align=8), total), ptr, align=8)
