"""Engine 2's block products in LLVM vector IR: 16 outputs of a few rows, over every block of their inputs.

For output group g (16 outputs) and rows i .. i+R-1 it computes, in registers,
    A[r, o] = sum_b alpha[i+r, b] * (D[g, b, o] * P + M'[g, b, o] * S[i+r, b]),  P = sum over the block's 32
    inputs of u[g, b, ., o] * q[i+r, .]
where u are the layer's codes as u8 and q the rows' int8 activation codes (blocks.BlockLinear._pack has the
layouts). The weights of a block are loaded once for the R rows. Products of four u8 x s8 pairs go into int32
lanes: AVX-512 VNNI's vpdpbusd where numba's target has it, else plain vector IR that LLVM lowers for the
target. Both are exact: |P| <= 32 * 255 * 127 < 2**20, and the rest is int64 (spec §12.3 bounds |A| < 2**63).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import simd

ROWS = 4  # rows per tile: 8 weight vectors and 4 rows x (2 product sums + 2 accumulator halves) fit in 32 registers
WIDE = 8  # rows per wide tile: a weight vector at a time, 8 rows x (a product sum + 2 accumulator halves)
LANES = 16  # outputs per group: one <16 x i32> of products
QUADS = 8  # 32 inputs per block, 4 per dot-product lane
CHAINS = 8  # independent product sums in flight (over all rows of a tile): hides the dot product's latency
# The first rows of a group read its weights from memory (a decoding step streams ~100 MB of them); the stream
# variant asks for them this many blocks ahead (measured, 8 rows: every layer 11.6 -> 9.3 ms, the head 4.7 ->
# 2.6; 8 blocks ahead gave half the gain, 48 no more), the next group's where they run past this one's
PREFETCH_BLOCKS = 24

_i8, _i16, _i32, _i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _vec(t: ir.Type, n: int) -> ir.VectorType:
    return ir.VectorType(t, n)


def _ptr(builder: ir.IRBuilder, base: ir.Value, offset: ir.Value, t: ir.Type) -> ir.Value:
    return builder.inttoptr(builder.add(base, offset), t.as_pointer())


def _dot4(builder: ir.IRBuilder, acc: ir.Value, w: ir.Value, x: ir.Value, fast: bool) -> ir.Value:
    """acc (<16 x i32>) + per lane the sum of 4 products u8 w x s8 x; w and x as <16 x i32> of 4 bytes each."""
    if fast:
        name = "llvm.x86.avx512.vpdpbusd.512"
        v = _vec(_i32, LANES)
        fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(v, [v, v, v]), name)
        return builder.call(fn, [acc, w, x])
    v8, v32 = _vec(_i8, 4 * LANES), _vec(_i32, 4 * LANES)
    prod = builder.mul(builder.zext(builder.bitcast(w, v8), v32), builder.sext(builder.bitcast(x, v8), v32))
    for t in range(4):
        lanes = builder.shuffle_vector(prod, prod, ir.Constant(_vec(_i32, LANES), [4 * o + t for o in range(LANES)]))
        acc = builder.add(acc, lanes)
    return acc


def _codegen(rows: int, stream: bool):
    fast = simd.vnni()  # vpdpbusd
    v32, v64 = _vec(_i32, LANES), _vec(_i64, LANES)

    def codegen(context, builder, signature, args):
        q, alpha, sums, packed, scales = (context.make_array(signature.args[j])(context, builder, args[j])
                                          for j in range(5))
        g, i0 = args[5], args[6]
        out = context.make_array(signature.args[7])(context, builder, args[7])
        base = {n: builder.ptrtoint(a.data, _i64) for n, a in
                (("q", q), ("alpha", alpha), ("sums", sums), ("packed", packed), ("scales", scales), ("out", out))}
        stride = {n: builder.extract_value(a.strides, 0) for n, a in
                  (("q", q), ("alpha", alpha), ("sums", sums), ("out", out))}
        nb = builder.extract_value(packed.shape, 1)
        pg = builder.add(base["packed"], builder.mul(g, builder.extract_value(packed.strides, 0)))
        sg = builder.add(base["scales"], builder.mul(g, builder.extract_value(scales.strides, 0)))
        pstride, sstride = builder.extract_value(packed.strides, 1), builder.extract_value(scales.strides, 1)
        row_off = [builder.add(i0, ir.Constant(_i64, r)) for r in range(rows)]

        entry = builder.block
        loop = builder.append_basic_block("blocks")
        done = builder.append_basic_block("done")
        zero64 = ir.Constant(v64, None)
        builder.branch(loop)
        builder.position_at_end(loop)
        b = builder.phi(_i64)
        b.add_incoming(ir.Constant(_i64, 0), entry)
        accs = []
        for r in range(rows):
            phi = builder.phi(v64)
            phi.add_incoming(zero64, entry)
            accs.append(phi)
        wp = builder.add(pg, builder.mul(b, pstride))
        sp = builder.add(sg, builder.mul(b, sstride))
        # int16 scales come with 4-bit codes, two to a byte (half the memory a decoding step streams): then
        # |T| <= 32767 * 32 * 127 * 16 < 2**31 and T is computed in int32 lanes; with int32 scales the codes are
        # bytes (any values) and T is int64.
        narrow = signature.args[4].dtype.bitwidth == 16
        st = _i16 if narrow else _i32
        tt = _vec(_i32 if narrow else _i64, LANES)
        d = builder.sext(builder.load(_ptr(builder, sp, ir.Constant(_i64, 0), _vec(st, LANES)), align=2), tt)
        m = builder.sext(builder.load(_ptr(builder, sp, ir.Constant(_i64, LANES * st.width // 8), _vec(st, LANES)),
                                      align=2), tt)
        if stream:
            ahead = ir.Constant(_i64, PREFETCH_BLOCKS)
            block_bytes = QUADS // (2 if narrow else 1) * 4 * LANES
            simd.prefetch(builder, builder.add(wp, builder.mul(pstride, ahead)), block_bytes)
            simd.prefetch(builder, builder.add(sp, builder.mul(sstride, ahead)), 2 * LANES * st.width // 8)
        chains = max(1, CHAINS // rows)
        p = [[ir.Constant(v32, None)] * chains for _ in range(rows)]
        nibble = ir.Constant(_vec(_i8, 4 * LANES), [15] * (4 * LANES))
        for quad in range(QUADS):
            if narrow:  # two quads' 4-bit codes in one vector: quad 2k in the low nibbles, 2k + 1 in the high ones
                v = builder.load(_ptr(builder, wp, ir.Constant(_i64, quad // 2 * 4 * LANES), _vec(_i8, 4 * LANES)),
                                 align=1)
                if quad % 2:
                    v = builder.lshr(v, ir.Constant(_vec(_i8, 4 * LANES), [4] * (4 * LANES)))
                w = builder.bitcast(builder.and_(v, nibble), v32)
            else:
                w = builder.load(_ptr(builder, wp, ir.Constant(_i64, quad * 4 * LANES), v32), align=1)
            for r in range(rows):
                at = builder.add(builder.mul(row_off[r], stride["q"]),
                                 builder.add(builder.mul(b, ir.Constant(_i64, 32)), ir.Constant(_i64, 4 * quad)))
                x = builder.load(_ptr(builder, base["q"], at, _i32), align=1)
                xs = builder.shuffle_vector(builder.insert_element(ir.Constant(v32, None), x, ir.Constant(_i32, 0)),
                                            ir.Constant(v32, None), ir.Constant(v32, [0] * LANES))
                p[r][quad % chains] = _dot4(builder, p[r][quad % chains], w, xs, fast)
        p = [simd.sum_pairwise(builder, ps) for ps in p]
        new = []
        for r in range(rows):
            at = builder.add(builder.mul(row_off[r], stride["alpha"]), builder.mul(b, ir.Constant(_i64, 8)))
            a = builder.load(_ptr(builder, base["alpha"], at, _i64), align=8)
            at = builder.add(builder.mul(row_off[r], stride["sums"]), builder.mul(b, ir.Constant(_i64, 8)))
            s = builder.load(_ptr(builder, base["sums"], at, _i64), align=8)
            # alpha < 2**14 and |S| < 2**12: through i32 so that LLVM multiplies 32 x 32 -> 64 bits
            a = builder.sext(builder.trunc(a, _i32), _i64)
            s = builder.trunc(s, _i32)
            s = s if narrow else builder.sext(s, _i64)
            prod = p[r] if narrow else builder.sext(p[r], tt)
            t = builder.add(builder.mul(d, prod), builder.mul(m, simd._splat(builder, s, LANES)))
            new.append(builder.add(accs[r], builder.mul(simd._splat(builder, a, LANES), builder.sext(t, v64) if narrow else t)))
        nxt = builder.add(b, ir.Constant(_i64, 1))
        tail = builder.block
        b.add_incoming(nxt, tail)
        for r in range(rows):
            accs[r].add_incoming(new[r], tail)
        builder.cbranch(builder.icmp_signed("<", nxt, nb), loop, done)
        builder.position_at_end(done)
        for r in range(rows):
            at = builder.mul(ir.Constant(_i64, r), stride["out"])
            builder.store(new[r], _ptr(builder, base["out"], at, v64), align=8)
        return context.get_dummy_value()

    return codegen


def _make(rows: int, stream: bool):
    @intrinsic
    def dot(typingctx, q, alpha, sums, packed, scales, g, i0, out):
        """out[r, o] = A of spec §12.3 for rows i0 + r (r < rows) and outputs 16 g + o. q (M, K) int8, alpha and
        sums (M, nb) int64, packed (groups, nb, 8, 16, 4) uint8 codes and scales (groups, nb, 2, 16) int32, or
        4-bit codes two to a byte (groups, nb, 4, 16, 4) with int16 scales, all C-contiguous; out: rows of 16
        contiguous int64 (any row stride). nb >= 1."""
        return types.void(q, alpha, sums, packed, scales, g, i0, out), _codegen(rows, stream)
    return dot


# tiles of ROWS and WIDE rows for the first rows of a group (the weights come from memory, while the rows'
# products keep the core busy: 8 rows of a decoding step of 8 frames 17.9 -> 16.3 ms over every layer, against 4
# streamed and 4 from L1) and for the others (the weights are in L1); rows one at a time without prefetching: a
# lone row streams at the memory's speed without it (measured with it, one row: every layer 3.5 -> 3.8 ms, the
# head 1.3 -> 1.8)
dot_tile_stream, dot_wide_stream = _make(ROWS, True), _make(WIDE, True)
dot_tile, dot_wide, dot_row = _make(ROWS, False), _make(WIDE, False), _make(1, False)
