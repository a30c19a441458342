"""Explicit SIMD blocks for attention on int16 caches: LLVM vector IR emitted through numba intrinsics.
qk_rows and av_rows serve the full pass (12 query rows a call) on its copies of the caches in the woven layout
(fused.weave: a block of 16 keys as pairs of dimensions, one key a lane; the values as pairs of keys, 16
dimensions a vector); qk_step and av_block a decoding step (the 3 queries of one KV head), on a decoder's keys,
which it keeps woven, and its values as they come (a key is written once and read every step after);
qk_step8 the same on a decoder's 8-bit key codes (coder 1 version 3), widened to int16 as they load, and
fold32 with av_codes / av_codes2 the weighted values of its 8-bit value codes, each block's weights folded over
the values' exponents.

Attention reads every key and value row in view for a handful of queries. Written as numba loops
(fused._attend_rows) it ran at 5.6 GMAC/s, bound by one float64 horizontal sum per key and query; these blocks
use pairwise int16 multiply-add (x86 pmaddwd, or AVX-512 VNNI's vpdpwssd with the sum it adds to) on whole
blocks of keys, each operand vector loaded once for all the rows of a call: the scores with one key a lane, the
weighted values two keys a lane pair. tools/profile_decode.py splits a decoding step by kernel.

Exactness: operands are int16 and each function states the bounds that keep every int32 partial sum below
2**31, so the results are the exact integers whatever the instruction set. The instruction set is numba's
target: the host's unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say otherwise (numba keys its cache by them), and
portable IR for any target that is not x86 with AVX2 or AVX-512BW.
"""
from __future__ import annotations

import llvmlite.binding
from llvmlite import ir
from numba import types
from numba.core import config, errors
from numba.extending import intrinsic

llvmlite.binding.initialize_native_asmparser()  # _pmadd_add's inline vpdpwssd

QUERIES = 3  # queries per call: the query heads of one KV head are taken three at a time (SmolLM2 has 3)
QK_KEYS = 16  # keys scored per qk_rows / qk_step call (the int32 lanes of one result vector)
AV_KEYS = 32  # keys summed per av_block call: 16 pairs of products < 2**26 stay below 2**31
HEAD_DIMS = (16, 32, 64, 128)  # head sizes the blocks take (powers of two; 128: |qh . k| < 2**30)
# independent sums a block keeps in flight over all its rows (each row's split in turns, added at the end): a
# fused multiply-add's latency is several cycles, a plain add's one
SUM_CHAINS = 8
Q_LOW_BITS = 8  # a query q (|q| < 2**16) goes in as q >> 8 and q & 255: int16 x int16 products, exact int32 sums
W_LOW_BITS = 10  # a weight w <= W_MAX goes in as w >> 10 and w & 1023, both <= 1024
W_MAX = 1 << 20
STEP_AHEAD = 8  # key blocks qk_step prefetches ahead: a decoder's caches are read once a step, mostly from memory
SPAN_QUERIES = 12  # query rows per full-pass block call: up to 24 int32 sums (high and low parts) + 1 operand vector
SPAN_PAIRS = 32  # key pairs per av_rows call: a lane sums 64 products |w part| * |v| <= 1024 * 32767, below 2**31
SPAN_KEYS = 2 * SPAN_PAIRS  # keys per av_rows call: the full pass's copies of the caches hold whole blocks of them
SPAN_DIMS = 16  # value dimensions per av_rows call: one vector of 16 dimensions of two keys

_i8, _i16, _i32, _i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)


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


def vnni() -> bool:
    """Whether numba's target has AVX-512 VNNI (with AVX-512BW): the int8 and int16 dot products that add into
    their sums in one instruction (vpdpbusd, vpdpwssd)."""
    return {"avx512vnni", "avx512bw"} <= target_features()


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


def _pmadd_add(builder: ir.IRBuilder, acc: ir.Value | None, a: ir.Value, b: ir.Value, level: str) -> ir.Value:
    """acc + _pmadd(a, b) (just the latter where acc is None), modulo 2**32 a lane: one AVX-512 VNNI vpdpwssd a
    vector where numba's target has it (the same sum, without the separate add). As inline assembly, which no
    pass rewrites: LLVM's machine combiner splits the intrinsic back into vpmaddwd + vpaddd on long sum chains
    where the scheduling model of the host's CPU name prefers a short add on the critical path (a VM that
    reports a Rocket Lake), twice the vector instructions."""
    n2 = a.type.count
    if acc is None or not (vnni() and n2 % 32 == 0):
        p = _pmadd(builder, a, b, level)
        return p if acc is None else builder.add(acc, p)
    v32 = _vec(_i32, 16)
    ty = ir.FunctionType(v32, [v32] * 3)
    return _concat(builder, [builder.asm(ty, "vpdpwssd $3, $2, $0", "=v,0,v,v",
                                         [_lanes(builder, acc, c // 2, 16),
                                          builder.bitcast(_lanes(builder, a, c, 32), v32),
                                          builder.bitcast(_lanes(builder, b, c, 32), v32)], False)
                             for c in range(0, n2, 32)])


def sum_pairwise(builder: ir.IRBuilder, parts: list[ir.Value]) -> ir.Value:
    """The sum of vectors (one or more), as a tree of adds: independent sums kept apart for latency meet here."""
    while len(parts) > 1:
        parts = [builder.add(parts[j], parts[j + 1]) if j + 1 < len(parts) else parts[j]
                 for j in range(0, len(parts), 2)]
    return parts[0]


def _splat(builder: ir.IRBuilder, x: ir.Value, n: int) -> ir.Value:
    """x in all n lanes of a vector."""
    v = _vec(x.type, n)
    return builder.shuffle_vector(builder.insert_element(ir.Constant(v, None), x, ir.Constant(_i32, 0)),
                                  ir.Constant(v, None), ir.Constant(_vec(_i32, n), [0] * n))


def _arrays(context, builder: ir.IRBuilder, signature, args, which: tuple[int, ...]) -> list:
    """The numba array structures of the intrinsic's arguments at positions `which`."""
    return [context.make_array(signature.args[i])(context, builder, args[i]) for i in which]


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
        x, cache, out = _arrays(context, builder, signature, args, (0, 1, 3))
        _per_head_dim(builder, builder.extract_value(cache.shape, 1),
                      lambda hd: emit(builder, x, cache, out, args[2], hd, level))
        return context.get_dummy_value()

    return codegen


def prefetch(builder: ir.IRBuilder, addr: ir.Value, nbytes: int) -> None:
    """Ask for the cache lines of nbytes from address addr (an i64) into L2: a hint, which never faults. The
    blocks load a block's data at once and then compute; the hardware's own prefetching left a step over data
    not in cache waiting on memory (measured with L1 hints, and nearer: slower)."""
    name = "llvm.prefetch.p0i8"
    ptr_t = ir.IntType(8).as_pointer()
    fn = builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(ir.VoidType(), [ptr_t, _i32, _i32, _i32]), name)
    for off in range(0, nbytes, 64):
        builder.call(fn, [builder.inttoptr(builder.add(addr, ir.Constant(_i64, off)), ptr_t),
                          ir.Constant(_i32, 0), ir.Constant(_i32, 2), ir.Constant(_i32, 1)])


@intrinsic
def av_block(typingctx, wv, vc, u0, acc):
    """acc[c, j] += sum_r (1024 wv[c, u] + wv[c + 3, u]) vc[u, j] over u = u0 + r, r < 32, for the 3 queries c.

    d = vc.shape[1], one of HEAD_DIMS (code for each is built; the caller checks). wv (6, keys) int16: each
    query's weights split into w >> 10 and w & 1023 (w <= 2**20, so both <= 1024); vc (keys, d) int16
    (|v| <= 32767), rows contiguous; acc (3, d) int64 contiguous. Keys go in pairs (the multiply-add's two
    lanes): a pair's sum is below 2 * 1024 * 32767 < 2**26, 16 pairs below 2**30.
    """
    return types.void(wv, vc, u0, acc), _codegen(_weights)


def _pairs(hd: int) -> ir.Constant:
    """The shuffle of two keys' rows of hd elements into one of their pairs, a0 b0 a1 b1 ...: each dimension's
    two keys side by side, the two lanes of a pairwise multiply-add."""
    return ir.Constant(_vec(_i32, 2 * hd), [j // 2 + (hd if j % 2 else 0) for j in range(2 * hd)])


def _weights(builder: ir.IRBuilder, wa, va, aa, u0: ir.Value, hd: int, level: str) -> None:
    """av_block's code for head size hd."""
    weave = _pairs(hd)
    repeat = ir.Constant(_vec(_i32, 2 * hd), [j % 2 for j in range(2 * hd)])
    two = _vec(_i16, 2)
    wbase = builder.ptrtoint(wa.data, _i64)
    wrow = builder.extract_value(wa.strides, 0)
    sums: list[ir.Value | None] = [None] * (2 * QUERIES)
    for pr in range(AV_KEYS // 2):
        u = builder.add(u0, ir.Constant(_i64, 2 * pr))
        u1 = builder.add(u, ir.Constant(_i64, 1))
        a, b = _row(builder, va, u, hd), _row(builder, va, u1, hd)
        ab = builder.shuffle_vector(a, b, weave)
        for c in range(2 * QUERIES):
            addr = builder.add(builder.add(wbase, builder.mul(wrow, ir.Constant(_i64, c))),
                               builder.mul(u, ir.Constant(_i64, 2)))
            w2 = builder.load(builder.inttoptr(addr, two.as_pointer()), align=2)  # w[u], w[u + 1]
            w = builder.shuffle_vector(w2, w2, repeat)
            sums[c] = _pmadd_add(builder, sums[c], ab, w, level)
    v64 = _vec(_i64, hd)
    for c in range(QUERIES):
        hi, lo = builder.sext(sums[c], v64), builder.sext(sums[c + QUERIES], v64)
        ptr = builder.inttoptr(builder.add(builder.ptrtoint(aa.data, _i64), ir.Constant(_i64, c * hd * 8)),
                               v64.as_pointer())
        total = builder.add(builder.shl(hi, ir.Constant(v64, [10] * hd)), lo)
        builder.store(builder.add(builder.load(ptr, align=8), total), ptr, align=8)


def _splat32(builder: ir.IRBuilder, addr: ir.Value) -> ir.Value:
    """The i32 at address addr (an i64) in all 16 lanes, as <32 x i16> (a pair of int16 repeated)."""
    x = builder.load(builder.inttoptr(addr, _i32.as_pointer()), align=2)
    return builder.bitcast(_splat(builder, x, QK_KEYS), _vec(_i16, 2 * QK_KEYS))


def _block_sums(builder: ir.IRBuilder, operand, weights, level: str, rows: int) -> list[ir.Value]:
    """sums[c] = sum over i of pmadd(operand(i), splat of the i32 at weights(c, i)), for c < rows, with i over
    the operand vectors: each operand vector is loaded once for all the rows. The sums wrap modulo 2**32."""
    chains = -(-SUM_CHAINS // rows)
    sums: list[list[ir.Value | None]] = [[None] * chains for _ in range(rows)]
    i = 0
    while (vec := operand(i)) is not None:
        for c in range(rows):
            sums[c][i % chains] = _pmadd_add(builder, sums[c][i % chains], vec, _splat32(builder, weights(c, i)),
                                             level)
        i += 1
    return [sum_pairwise(builder, [x for x in parts if x is not None]) for parts in sums]


def _query_rows(qv) -> None:
    """The score blocks address each query row at a constant offset from the first (a register per row spilled
    them), so they take C-contiguous rows only: refused when compiling, anything else would read other rows."""
    if not (isinstance(qv, types.Array) and qv.layout == "C"):
        raise errors.TypingError(f"the query rows must be a C-contiguous array, not {qv}")


def _qk_codegen(parts: int, rows: int, ahead: int = 0, codes: bool = False):
    """The code of qk_rows and its kin: `rows` query rows, each as its high and low parts (parts = 2) or as it
    is (parts = 1); with ahead > 0, the key block that many blocks on is prefetched; with codes, the keys are
    8-bit codes (int8) and each lane's sum is shifted left by its key's exponent (qk_step8) before the shift."""
    level = isa()
    elem = 1 if codes else 2  # bytes a key element

    def codegen(context, builder, signature, args):
        if codes:
            qa, ka, xa, sa = _arrays(context, builder, signature, args, (0, 1, 2, 5))
            kb, sh = args[3], args[4]
        else:
            qa, ka, sa = _arrays(context, builder, signature, args, (0, 1, 4))
            kb, sh = args[2], args[3]
        kbase = builder.add(builder.ptrtoint(ka.data, _i64), builder.mul(kb, builder.extract_value(ka.strides, 0)))
        qbase = builder.ptrtoint(qa.data, _i64)
        vt = _vec(_i8 if codes else _i16, 2 * QK_KEYS)

        def emit(hd: int) -> None:
            if ahead:
                block = builder.extract_value(ka.strides, 0)
                prefetch(builder, builder.add(kbase, builder.mul(ir.Constant(_i64, ahead), block)),
                         elem * hd * QK_KEYS)

            def operand(p: int):
                if p == hd // 2:
                    return None
                addr = builder.add(kbase, ir.Constant(_i64, p * 2 * elem * QK_KEYS))
                x = builder.load(builder.inttoptr(addr, vt.as_pointer()), align=elem)
                return builder.sext(x, _vec(_i16, 2 * QK_KEYS)) if codes else x

            def weights(c: int, p: int) -> ir.Value:  # qv C-contiguous: one base register, constant offsets (a
                # register per row, taken from qv's strides, spilled the rows' pointers: 0.69 multiply-adds a cycle
                # against 0.94, measured with the operands in L1)
                return builder.add(qbase, ir.Constant(_i64, 2 * hd * c + 4 * p))

            sums = _block_sums(builder, operand, weights, level, parts * rows)
            v64 = _vec(_i64, QK_KEYS)
            shv = _splat(builder, sh, QK_KEYS)
            base = builder.add(builder.ptrtoint(sa.data, _i64), builder.mul(kb, ir.Constant(_i64, 8 * QK_KEYS)))
            if codes:  # the block's 16 key exponents: side[kb, 0, :]
                at = builder.add(builder.ptrtoint(xa.data, _i64), builder.mul(kb, builder.extract_value(xa.strides, 0)))
                ev = builder.sext(builder.load(builder.inttoptr(at, _vec(_i8, QK_KEYS).as_pointer()), align=1), v64)
            for r in range(rows):
                total = builder.sext(sums[r], v64)
                if parts == 2:
                    lo = builder.sext(sums[r + rows], v64)
                    total = builder.add(builder.shl(total, ir.Constant(v64, [Q_LOW_BITS] * QK_KEYS)), lo)
                if codes:
                    total = builder.shl(total, ev)
                addr = builder.add(base, builder.mul(builder.extract_value(sa.strides, 0), ir.Constant(_i64, r)))
                builder.store(builder.ashr(total, shv), builder.inttoptr(addr, v64.as_pointer()), align=8)

        _per_head_dim(builder, builder.mul(builder.extract_value(ka.shape, 1), ir.Constant(_i64, 2)), emit)
        return context.get_dummy_value()

    return codegen


@intrinsic
def qk_rows(typingctx, qv, kt, kb, shift, s):
    """s[r, 16 kb + l] = (sum_j (256 qv[r, j] + qv[r + 12, j]) k[16 kb + l, j]) >> shift for l < 16 and the 12
    query rows r (the woven layout, fused.weave: kt[b, p, 2 l + e] = k[16 b + l, 2 p + e]).

    kt (blocks, d/2, 32) int16 C-contiguous, d one of HEAD_DIMS (code for each is built; the caller checks);
    qv (24, d) int16 C-contiguous: the rows' high parts q >> 8 (|.| <= 256), then their low parts
    q & 255; s (12, keys) int64, rows contiguous. Every int32 partial sum is below d * 256 * 32767 <= 2**30."""
    _query_rows(qv)
    return types.void(qv, kt, kb, shift, s), _qk_codegen(2, SPAN_QUERIES)


@intrinsic
def qk_rows_fit(typingctx, qv, kt, kb, shift, s):
    """qk_rows for query rows that fit int16 as they are: s[r, 16 kb + l] = (sum_j qv[r, j] k[16 kb + l, j])
    >> shift, half the multiply-adds. qv (12, d) int16 C-contiguous (|q| <= 32767). The int32 sums wrap modulo
    2**32, so they are the exact scores only where every |q_r . k_u| < 2**31: the caller makes sure, by
    Cauchy-Schwarz (|q . k| <= |q| |k|, fused.FIT_NORMS)."""
    _query_rows(qv)
    return types.void(qv, kt, kb, shift, s), _qk_codegen(1, SPAN_QUERIES)


@intrinsic
def qk_step(typingctx, qv, kt, kb, shift, s):
    """qk_rows for the 3 queries of one KV head at a decoding step: qv (6, d), the high parts then the low
    parts (C-contiguous); s (3, keys)."""
    _query_rows(qv)
    return types.void(qv, kt, kb, shift, s), _qk_codegen(2, QUERIES, STEP_AHEAD)


@intrinsic
def qk_step_fit(typingctx, qv, kt, kb, shift, s):
    """qk_rows_fit for the 3 queries of one KV head at a decoding step: qv (3, d) C-contiguous, s (3, keys)."""
    _query_rows(qv)
    return types.void(qv, kt, kb, shift, s), _qk_codegen(1, QUERIES, STEP_AHEAD)


@intrinsic
def qk_step8(typingctx, qv, kt, side, kb, shift, s):
    """qk_step on a decoder's cache of 8-bit codes (coder 1 version 3, spec §5 step 2): key u is its codes c (kt
    int8, the woven layout) times 2**e_u, e_u = side[u // 16, 0, u % 16] (side (blocks, 2, 16) int8
    C-contiguous, e_u <= 8): s[r, 16 kb + l] = ((sum_j (256 qv[r, j] + qv[r + 3, j]) c[16 kb + l, j]) << e) >>
    shift. Every int32 partial sum is below d * 256 * 127 <= 2**22."""
    _query_rows(qv)
    return types.void(qv, kt, side, kb, shift, s), _qk_codegen(2, QUERIES, STEP_AHEAD, True)


@intrinsic
def qk_step8_fit(typingctx, qv, kt, side, kb, shift, s):
    """qk_step8 for queries that fit int16 as they are, qv (3, d): every int32 sum is below d * 32767 * 127 <
    2**31 (d <= 128), so no bound on the keys' norms is needed."""
    _query_rows(qv)
    return types.void(qv, kt, side, kb, shift, s), _qk_codegen(1, QUERIES, STEP_AHEAD, True)


@intrinsic
def av_rows(typingctx, wv, vt, kp0, part, acc):
    """acc[r, 16 part + j] += sum over keys u = 2 kp0 .. 2 kp0 + 63 of (1024 wv[r, u] + wv[r + 12, u]) v[u, 16 part
    + j] for j < 16 and the 12 rows r (fused.weave's layout: vt[kp, j, e] = v[2 kp + e, 16 part + j]).

    vt (pairs, 16, 2) int16 C-contiguous, dimensions 16 part .. 16 part + 15; wv (24, keys) int16, rows
    contiguous: the rows' weights w >> 10, then w & 1023 (w <= 2**20, so both <= 1024); acc (12, d) int64, rows
    contiguous. A lane sums 64 products of at most 1024 * 32767: below 2**31."""
    level = isa()

    def codegen(context, builder, signature, args):
        wa, va, aa = _arrays(context, builder, signature, args, (0, 1, 4))
        kp0, part = args[2], args[3]
        vbase = builder.add(builder.ptrtoint(va.data, _i64), builder.mul(kp0, builder.extract_value(va.strides, 0)))
        vstride = builder.extract_value(va.strides, 0)
        wbase = builder.add(builder.ptrtoint(wa.data, _i64), builder.mul(kp0, ir.Constant(_i64, 4)))
        wrow = builder.extract_value(wa.strides, 0)
        vt = _vec(_i16, 2 * SPAN_DIMS)

        def operand(pr: int):
            if pr == SPAN_PAIRS:
                return None
            addr = builder.add(vbase, builder.mul(vstride, ir.Constant(_i64, pr)))
            return builder.load(builder.inttoptr(addr, vt.as_pointer()), align=2)

        def weights(c: int, pr: int) -> ir.Value:
            return builder.add(builder.add(wbase, builder.mul(wrow, ir.Constant(_i64, c))), ir.Constant(_i64, 4 * pr))

        sums = _block_sums(builder, operand, weights, level, 2 * SPAN_QUERIES)
        v64 = _vec(_i64, SPAN_DIMS)
        base = builder.add(builder.ptrtoint(aa.data, _i64), builder.mul(part, ir.Constant(_i64, 8 * SPAN_DIMS)))
        for r in range(SPAN_QUERIES):
            hi, lo = builder.sext(sums[r], v64), builder.sext(sums[r + SPAN_QUERIES], v64)
            addr = builder.add(base, builder.mul(builder.extract_value(aa.strides, 0), ir.Constant(_i64, r)))
            ptr = builder.inttoptr(addr, v64.as_pointer())
            total = builder.add(builder.shl(hi, ir.Constant(v64, [W_LOW_BITS] * SPAN_DIMS)), lo)
            builder.store(builder.add(builder.load(ptr, align=8), total), ptr, align=8)
        return context.get_dummy_value()

    return types.void(wv, vt, kp0, part, acc), codegen


def _gather16(builder: ir.IRBuilder, saddr: ir.Value, ta, m: ir.Value, seen: ir.Value, table_bits: int,
              level: str) -> ir.Value:
    """The softmax weights (<16 x i32>) of the 16 int64 scores s at address saddr (an i64) for one query whose
    keys in view are the lanes of `seen` (<16 x i1>): w = table[min(m - s, last)], one vector gather (the lanes
    not seen are not read, and are 0). table: int32 or int64 entries, all <= W_MAX."""
    n = QK_KEYS
    v64, v32 = _vec(_i64, n), _vec(_i32, n)
    tt = ir.IntType(table_bits)
    vt = _vec(tt, n)
    sv = builder.load(builder.inttoptr(saddr, v64.as_pointer()), align=8)
    last = builder.sub(builder.extract_value(ta.shape, 0), ir.Constant(_i64, 1))
    diff = builder.sub(_splat(builder, m, n), sv)
    lastv = _splat(builder, last, n)
    idx = builder.select(builder.icmp_signed("<", diff, lastv), diff, lastv)
    mask_t = ir.VectorType(ir.IntType(1), n)
    if level == "avx512" and table_bits == 32:  # 32-bit indices: 16 lanes one instruction (LLVM's generic
        # gather of 64-bit addresses takes two: the full pass's attention took 1.85 s against 1.79 over 8 KiB)
        name = "llvm.x86.avx512.mask.gather.dpi.512"
        i8p = ir.IntType(8).as_pointer()
        fn = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(v32, [v32, i8p, v32, mask_t, _i32]), name)
        return builder.call(fn, [ir.Constant(v32, None), builder.bitcast(ta.data, i8p), builder.trunc(idx, v32),
                                 seen, ir.Constant(_i32, 4)])
    pv = ir.VectorType(tt.as_pointer(), n)
    log2_bytes = {32: 2, 64: 3}[table_bits]  # an entry's byte offset is idx << log2_bytes
    ptrs = builder.inttoptr(builder.add(_splat(builder, builder.ptrtoint(ta.data, _i64), n),
                                        builder.shl(idx, ir.Constant(v64, [log2_bytes] * n))), pv)
    name = f"llvm.masked.gather.v16i{table_bits}.v16p0i{table_bits}"
    fn = builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(vt, [pv, _i32, mask_t, vt]), name)
    w = builder.call(fn, [ptrs, ir.Constant(_i32, table_bits // 8), seen, ir.Constant(vt, None)])
    return w if table_bits == 32 else builder.trunc(w, v32)  # entries <= W_MAX


def _reduce(builder: ir.IRBuilder, op: str, x: ir.Value) -> ir.Value:
    """llvm.vector.reduce.<op> of an integer vector x: its lanes' sum, or, or signed minimum."""
    name = f"llvm.vector.reduce.{op}.v{x.type.count}i{x.type.element.width}"
    fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(x.type.element, [x.type]),
                                                         name)
    return builder.call(fn, [x])


def _softmax_weights(builder: ir.IRBuilder, sa, ta, ha, la, u0: ir.Value, m: ir.Value, seen: ir.Value,
                     table_bits: int, level: str) -> ir.Value:
    """The softmax weights of keys u0 .. u0 + 15 for one query (_gather16) stored as hi = w >> 10 and lo = w &
    1023; returns their sum (i64)."""
    n = QK_KEYS
    v32, v16 = _vec(_i32, n), _vec(_i16, n)

    def at(arr, width: int) -> ir.Value:
        return builder.add(builder.ptrtoint(arr.data, _i64), builder.mul(u0, ir.Constant(_i64, width)))

    w = _gather16(builder, at(sa, 8), ta, m, seen, table_bits, level)
    builder.store(builder.trunc(builder.lshr(w, ir.Constant(v32, [W_LOW_BITS] * n)), v16),
                  builder.inttoptr(at(ha, 2), v16.as_pointer()), align=2)
    builder.store(builder.trunc(builder.and_(w, ir.Constant(v32, [(1 << W_LOW_BITS) - 1] * n)), v16),
                  builder.inttoptr(at(la, 2), v16.as_pointer()), align=2)
    return builder.zext(_reduce(builder, "add", w), _i64)


@intrinsic
def weights16(typingctx, s, u0, sinks, k0, k1, m, table, hi, lo):
    """The softmax weights of keys u0 .. u0 + 15 (spec §5 step 4) for one query: w_u = table[min(m - s[u],
    last)] for the keys it sees, u < sinks or k0 <= u < k1, and 0 for the other lanes, stored as hi[u] = w >> 10
    and lo[u] = w & 1023 (the parts av_rows and av_block take); returns the sum of the 16 weights. s (keys,)
    int64 scores, m >= every s[u] seen; table (E,) int32 or int64 with values <= W_MAX; hi, lo (keys,) int16
    with room for the 16. The lookups are one vector gather (lanes not seen are not read)."""
    def codegen(context, builder, signature, args):
        sa, ta, ha, la = _arrays(context, builder, signature, args, (0, 6, 7, 8))
        u0, sinks, k0, k1, m = args[1:6]
        v64 = _vec(_i64, QK_KEYS)
        u = builder.add(_splat(builder, u0, QK_KEYS), ir.Constant(v64, list(range(QK_KEYS))))
        seen = builder.or_(builder.icmp_signed("<", u, _splat(builder, sinks, QK_KEYS)),
                           builder.and_(builder.icmp_signed(">=", u, _splat(builder, k0, QK_KEYS)),
                                        builder.icmp_signed("<", u, _splat(builder, k1, QK_KEYS))))
        return _softmax_weights(builder, sa, ta, ha, la, u0, m, seen, signature.args[6].dtype.bitwidth, isa())

    return types.int64(s, u0, sinks, k0, k1, m, table, hi, lo), codegen


@intrinsic
def weights16_seen(typingctx, s, u0, seen, m, table, hi, lo):
    """weights16 with the keys in view given as a bool array seen (keys,): the decoder's, whose ring of cache
    slots puts them in no fixed ranges."""
    def codegen(context, builder, signature, args):
        sa, va, ta, ha, la = _arrays(context, builder, signature, args, (0, 2, 4, 5, 6))
        u0, m = args[1], args[3]
        v8 = _vec(ir.IntType(8), QK_KEYS)
        addr = builder.add(builder.ptrtoint(va.data, _i64), u0)
        flags = builder.load(builder.inttoptr(addr, v8.as_pointer()), align=1)
        mask = builder.icmp_unsigned("!=", flags, ir.Constant(v8, None))
        return _softmax_weights(builder, sa, ta, ha, la, u0, m, mask, signature.args[4].dtype.bitwidth, isa())

    return types.int64(s, u0, seen, m, table, hi, lo), codegen


# A decoder's values as 8-bit codes (coder 1 version 3): value u is c_u << e_u. A block of AV_KEYS keys folds
# each key's exponent into its weights over the block's smallest, w'_u = w_u << (e_u - e_min), and sums
# w'_u c_u in int16 multiply-adds, << e_min after: the same integers as sum w_u v_u, without widening each value
# to int16 by its own shift; and where every w' of the block's 3 queries is below FOLD_ONE (54% of blocks,
# book2, every layer and head), in one part instead of two.
FOLD_ONE = 1 << 15
FOLD_LOW_BITS = 14  # else w' >> 14 and w' & (2**14 - 1): w' <= W_MAX << 8 (e <= 8) leaves both <= 2**14
TWO_PARTS = 256  # added to fold32's e_min where the block takes two parts
NOT_SEEN = 127  # the exponent of a lane not in view: above every key's (<= 8), so it never is the minimum


@intrinsic
def fold32(typingctx, s, u0, seen, m, table, side, wv, z):
    """The softmax weights of keys u0 .. u0 + 31 (u0 a multiple of AV_KEYS) for the 3 queries of one KV head,
    folded over the block's value exponents for av_codes / av_codes2.

    s (3, keys) int64 scores, rows contiguous; seen (keys,) bool: the keys in view; m (3,) int64, m[c] >= every
    s[c, u] seen; table (E,) int32 or int64, values <= W_MAX; side (blocks, 2, 16) int8 C-contiguous, the
    values' exponents e_u = side[u // 16, 1, u % 16] (<= 8 where seen). w_c,u = table[min(m[c] - s[c, u], last)]
    for the keys seen, else 0; z[c] += sum_u w_c,u. With e_min the smallest e_u seen and w' = w << (e_u - e_min),
    for u = u0 + r, r < 32: where every w' < FOLD_ONE, wv[c, u] = w'_c,u (one part) and the result is e_min; else
    wv[c, u] = w' >> 14 and wv[c + 3, u] = w' & (2**14 - 1) and the result is e_min + TWO_PARTS; -1 where no
    key of the block is seen (its weights are all 0: nothing to add). wv (6, keys) int16, rows contiguous."""
    def codegen(context, builder, signature, args):
        sa, va, ma, ta, xa, wa, za = _arrays(context, builder, signature, args, (0, 2, 3, 4, 5, 6, 7))
        u0 = args[1]
        n = QK_KEYS
        v32, v16 = _vec(_i32, n), _vec(_i16, n)
        table_bits = signature.args[4].dtype.bitwidth
        level = isa()
        halves = AV_KEYS // n
        masks, exps = [], []
        for h in range(halves):
            u = builder.add(u0, ir.Constant(_i64, h * n))
            flags = builder.load(builder.inttoptr(builder.add(builder.ptrtoint(va.data, _i64), u),
                                                  _vec(_i8, n).as_pointer()), align=1)
            mask = builder.icmp_unsigned("!=", flags, ir.Constant(_vec(_i8, n), None))
            at = builder.add(builder.ptrtoint(xa.data, _i64),
                             builder.add(builder.mul(builder.udiv(u, ir.Constant(_i64, n)),
                                                     builder.extract_value(xa.strides, 0)), ir.Constant(_i64, n)))
            e = builder.sext(builder.load(builder.inttoptr(at, _vec(_i8, n).as_pointer()), align=1), v32)
            masks.append(mask)
            exps.append(builder.select(mask, e, ir.Constant(v32, [NOT_SEEN] * n)))
        low = exps[0]
        for e in exps[1:]:
            low = builder.select(builder.icmp_signed("<", e, low), e, low)
        emin = _reduce(builder, "smin", low)
        shifts = [builder.select(mk, builder.sub(e, _splat(builder, emin, n)), ir.Constant(v32, None))
                  for mk, e in zip(masks, exps)]
        folded, bits = [], None
        srow = builder.extract_value(sa.strides, 0)
        for c in range(QUERIES):
            mc = builder.load(builder.inttoptr(builder.add(builder.ptrtoint(ma.data, _i64), ir.Constant(_i64, 8 * c)),
                                               _i64.as_pointer()), align=8)
            total = None
            for h in range(halves):
                at = builder.add(builder.add(builder.ptrtoint(sa.data, _i64), builder.mul(srow, ir.Constant(_i64, c))),
                                 builder.mul(builder.add(u0, ir.Constant(_i64, h * n)), ir.Constant(_i64, 8)))
                w = _gather16(builder, at, ta, mc, masks[h], table_bits, level)
                total = w if total is None else builder.add(total, w)
                wf = builder.shl(w, shifts[h])  # <= W_MAX << 8: int32
                folded.append(wf)
                bits = wf if bits is None else builder.or_(bits, wf)
            zp = builder.inttoptr(builder.add(builder.ptrtoint(za.data, _i64), ir.Constant(_i64, 8 * c)),
                                  _i64.as_pointer())
            builder.store(builder.add(builder.load(zp, align=8), builder.zext(_reduce(builder, "add", total), _i64)),
                          zp, align=8)
        two = builder.icmp_unsigned(">=", _reduce(builder, "or", bits), ir.Constant(_i32, FOLD_ONE))
        wrow = builder.extract_value(wa.strides, 0)
        for i, wf in enumerate(folded):
            c, h = divmod(i, halves)
            main = builder.select(two, builder.lshr(wf, ir.Constant(v32, [FOLD_LOW_BITS] * n)), wf)
            lo = builder.and_(wf, ir.Constant(v32, [(1 << FOLD_LOW_BITS) - 1] * n))
            for row, part in ((c, main), (c + QUERIES, lo)):
                at = builder.add(builder.add(builder.ptrtoint(wa.data, _i64), builder.mul(wrow, ir.Constant(_i64, row))),
                                 builder.mul(builder.add(u0, ir.Constant(_i64, h * n)), ir.Constant(_i64, 2)))
                builder.store(builder.trunc(part, v16), builder.inttoptr(at, v16.as_pointer()), align=2)
        code = builder.add(builder.sext(emin, _i64), builder.select(two, ir.Constant(_i64, TWO_PARTS),
                                                                    ir.Constant(_i64, 0)))
        return builder.select(builder.icmp_signed("==", emin, ir.Constant(_i32, NOT_SEEN)), ir.Constant(_i64, -1),
                              code)

    return types.int64(s, u0, seen, m, table, side, wv, z), codegen


def _code_values(parts: int):
    """The code of av_codes (parts = 1) and av_codes2 (parts = 2)."""
    level = isa()

    def codegen(context, builder, signature, args):
        wa, va, aa = _arrays(context, builder, signature, args, (0, 1, 4))
        u0, emin = args[2], args[3]

        def emit(hd: int) -> None:
            weave = _pairs(hd)  # on the codes, widened to int16 after: one byte shuffle a pair of keys
            wbase = builder.add(builder.ptrtoint(wa.data, _i64), builder.mul(u0, ir.Constant(_i64, 2)))
            wrow = builder.extract_value(wa.strides, 0)
            vbase, vrow = builder.ptrtoint(va.data, _i64), builder.extract_value(va.strides, 0)
            rows = parts * QUERIES
            sums: list[ir.Value | None] = [None] * rows
            for pr in range(AV_KEYS // 2):
                u = builder.add(u0, ir.Constant(_i64, 2 * pr))
                a, b = (builder.load(builder.inttoptr(builder.add(vbase, builder.mul(builder.add(u, ir.Constant(
                    _i64, e)), vrow)), _vec(_i8, hd).as_pointer()), align=1) for e in (0, 1))
                ab = builder.sext(builder.shuffle_vector(a, b, weave), _vec(_i16, 2 * hd))
                for c in range(rows):
                    at = builder.add(builder.add(wbase, builder.mul(wrow, ir.Constant(_i64, c))),
                                     ir.Constant(_i64, 4 * pr))
                    x = builder.load(builder.inttoptr(at, _i32.as_pointer()), align=2)  # w'[2 pr], w'[2 pr + 1]
                    w = builder.bitcast(_splat(builder, x, hd), _vec(_i16, 2 * hd))
                    sums[c] = _pmadd_add(builder, sums[c], ab, w, level)
            v64 = _vec(_i64, hd)
            shift = _splat(builder, emin, hd)
            for c in range(QUERIES):
                total = builder.sext(sums[c], v64)
                if parts == 2:
                    total = builder.add(builder.shl(total, ir.Constant(v64, [FOLD_LOW_BITS] * hd)),
                                        builder.sext(sums[c + QUERIES], v64))
                ptr = builder.inttoptr(builder.add(builder.ptrtoint(aa.data, _i64), ir.Constant(_i64, c * hd * 8)),
                                       v64.as_pointer())
                builder.store(builder.add(builder.load(ptr, align=8), builder.shl(total, shift)), ptr, align=8)

        _per_head_dim(builder, builder.extract_value(va.shape, 1), emit)
        return context.get_dummy_value()

    return codegen


@intrinsic
def av_codes(typingctx, wv, vc, u0, emin, acc):
    """acc[c, j] += (sum_u wv[c, u] vc[u, j]) << emin over u = u0 .. u0 + 31, for the 3 queries c: the weighted
    values of a block of 8-bit codes that fold32 folded into one part (wv[c, u] < 2**15).

    vc (keys, d) int8 (|c| <= 127), rows contiguous, d one of HEAD_DIMS (code for each is built; the caller
    checks); wv (>= 3, keys) int16, rows contiguous; acc (3, d) int64 C-contiguous; 0 <= emin <= 8. A lane sums
    16 pairs of products below 2 * 2**15 * 127 < 2**23: below 2**31."""
    return types.void(wv, vc, u0, emin, acc), _code_values(1)


@intrinsic
def av_codes2(typingctx, wv, vc, u0, emin, acc):
    """av_codes for a block that fold32 split into two parts: acc[c, j] += ((sum_u wv[c, u] vc[u, j]) << 14 +
    sum_u wv[c + 3, u] vc[u, j]) << emin; wv (6, keys), both parts <= 2**14."""
    return types.void(wv, vc, u0, emin, acc), _code_values(2)


@intrinsic
def prefetch_rows(typingctx, arr, u0, n):
    """Ask for rows u0 .. u0 + n - 1 of a 2-D array with contiguous rows into L2 (prefetch): a hint."""
    def codegen(context, builder, signature, args):
        (aa,) = _arrays(context, builder, signature, args, (0,))
        row = builder.extract_value(aa.strides, 0)
        start = builder.add(builder.ptrtoint(aa.data, _i64), builder.mul(args[1], row))
        nbytes = builder.mul(args[2], row)
        loop = builder.append_basic_block("pf")
        done = builder.append_basic_block("pf.done")
        entry = builder.block
        builder.cbranch(builder.icmp_signed(">", nbytes, ir.Constant(_i64, 0)), loop, done)
        builder.position_at_end(loop)
        off = builder.phi(_i64)
        off.add_incoming(ir.Constant(_i64, 0), entry)
        prefetch(builder, builder.add(start, off), 64)
        nxt = builder.add(off, ir.Constant(_i64, 64))
        off.add_incoming(nxt, builder.block)
        builder.cbranch(builder.icmp_signed("<", nxt, nbytes), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.void(arr, u0, n), codegen
