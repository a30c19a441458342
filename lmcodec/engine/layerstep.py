"""Engine 2's decoding step on one thread: each layer in one call to compiled code.

A decoding step calls about fifteen kernels a layer (quantize, block products, RoPE, attention, residual
steps); from Python each call costs a few microseconds of dispatch and allocation, about 2 ms of a 9 ms step at
batch 1 over 30 layers. Where a step runs on one kernel thread (a frame decoding alone, or each group of frames
decoding side by side: Codec._decode_side_by_side) and the caches are int16 for the SIMD attention blocks,
DecodeState._feed calls `layer` instead: the same kernels (blocks.py, fused.py) in the same order inside one
compiled function, so the integers are the same
(tests/engine/test_engine.py, test_one_call_layers_give_the_same_tables, compares them).

Where a step runs wide (a frame, or a few, decoding alone on a quiet machine: threads.Pacer), each of n threads
calls `layer_part` for every layer and then `tables_part`: the same kernels, each stage's work shared out (a
matmul's output groups, the entries' KV heads of attention, the rows' tables), the threads meeting
(barrier.meet) where a stage needs all of the one before. A thread's part of a matmul's outputs is also its
part of the residual and the SiLU gate that read them, so those need no meeting. Handing work to threads from
Python, kernel by kernel, cost more than it saved (one frame, one thread against two: 12.5 against 21.7 ms a
step).
"""
from __future__ import annotations

import numpy as np

from ..jit import available, jit
from . import barrier, blocks, fused
from .fused import RMS_NORM

STAGES = 7  # of a layer side by side (layer_part), each ending in a meeting

if available:

    @jit
    def _linear(x, in_bits, eps, lin):
        """blocks.BlockLinear.run on one thread: y (M, N) int64 for rows x (M, K); lin is its `kernel` tuple."""
        gamma, packed, scales, sa, mult, shift, bias = lin
        q, alpha, sums, et = blocks._quantize(x, gamma, in_bits, eps)
        y = np.empty((x.shape[0], mult.shape[0]), np.int64)
        blocks._products(q, alpha, sums, et, packed, scales, sa, mult, shift, bias, 0, packed.shape[0], y)
        return y

    @jit
    def layer(x, eps, lins, epilogues, v_bits, down_bits, crow, pos, slot, end, cos, sin, q, kc, vc, kn, klim, kv8,
              shift, exp_table, win, sink, spos, silu_deltas, o, h):
        """Engine._layer_fused's decoding counterpart for rows x (M, H) in place: lins and epilogues are the
        (qkv, o, gate_up, down) layers' `kernel` and `fused_args` tuples; the rest as fused.qkv_rope_rows,
        fused.attend_rows (caches the SIMD blocks read: int16, or 8-bit codes) and fused.gate_up take them; o (M, H)
        and h (M, I) are scratch."""
        f = np.zeros(x.shape[0], np.int64)  # engine 2's epilogues take the kernel's outputs as they are
        y = _linear(x, RMS_NORM, eps, lins[0])
        norms = np.empty(q.shape[:2])
        fused._qkv_rope_rows(y, y[:0], f, epilogues[0], crow, pos, slot, cos, sin, q, kc, vc, kn, norms, klim,
                             kv8)
        fused._keep_norms(kn, crow, slot, norms)
        fused._attend_rows_simd(q, kc, vc, kn, crow, end, shift, exp_table, o, pos, win, sink, cos, sin, klim, spos,
                                0, x.shape[0] * q.shape[1])
        y = _linear(o, v_bits, eps, lins[1])
        fused._add_residual(y, y[:0], f, epilogues[1], x, 0, x.shape[1])
        y = _linear(x, RMS_NORM, eps, lins[2])
        fused._gate_up(y, y[:0], f, epilogues[2], silu_deltas, h, 0, h.shape[1])
        y = _linear(h, down_bits, eps, lins[3])
        fused._add_residual(y, y[:0], f, epilogues[3], x, 0, x.shape[1])

    @jit
    def _share(n, t, parts):
        """Thread t's share a .. b - 1 of n items split into `parts` (the first ones one fewer where uneven)."""
        return n * t // parts, n * (t + 1) // parts

    @jit
    def _products_part(x, in_bits, eps, lin, t, parts, halves, y):
        """Thread t's output groups of a linear layer into y (M, N) int64, for rows x: its share of the groups, or
        with halves, its share of each half's (the SiLU gate's g and u, spec §6). Returns its first and last
        output column in a half (a multiple of blocks.GROUP). Every thread quantizes x itself (the same codes):
        cheaper than a meeting."""
        gamma, packed, scales, sa, mult, shift, bias = lin
        q, alpha, sums, et = blocks._quantize(x, gamma, in_bits, eps)
        half = packed.shape[0] // halves
        a, b = _share(half, t, parts)
        for k in range(halves):
            blocks._products(q, alpha, sums, et, packed, scales, sa, mult, shift, bias, k * half + a, k * half + b, y)
        return a * blocks.GROUP, min(b * blocks.GROUP, y.shape[1] // halves)

    @jit
    def layer_part(t, parts, sync, met, x, eps, lins, epilogues, v_bits, down_bits, crow, pos, slot, end, cos, sin,
                   q, kc, vc, kn, klim, kv8, shift, exp_table, win, sink, spos, silu_deltas, o, h, norms, y_qkv, y_o,
                   y_gu, y_down):
        """layer() as thread t of `parts` threads, which call it for the same layer side by side with the same
        arguments but t; sync is theirs (barrier.new), met the meetings each has had over it. Returns the
        meetings after this layer's, or -1 where another thread failed. norms (M, nkv) float64, the new keys'
        |k|**2, and y_qkv, y_o, y_gu and y_down, the four matmuls' outputs (M, N) int64: shared scratch."""
        m = x.shape[0]
        f = np.zeros(m, np.int64)
        for stage in range(STAGES):  # each followed by a meeting: the next reads what every part wrote
            if stage == 0:
                _products_part(x, RMS_NORM, eps, lins[0], t, parts, 1, y_qkv)
            elif stage == 1:  # the entries' q, k and v: each part its own entries' rows of the caches
                a, b = _share(m, t, parts)
                fused._qkv_rope_rows(y_qkv[a:b], y_qkv[:0], f[a:b], epilogues[0], crow[a:b], pos[a:b], slot[a:b],
                                     cos, sin, q[a:b], kc, vc, kn, norms[a:b], klim, kv8)
            elif stage == 2:
                if t == 0:  # one thread: entries of one frame may share a block of slots
                    fused._keep_norms(kn, crow, slot, norms)
            elif stage == 3:
                a, b = _share(m * q.shape[1], t, parts)
                fused._attend_rows_simd(q, kc, vc, kn, crow, end, shift, exp_table, o, pos, win, sink, cos, sin,
                                        klim, spos, a, b)
            elif stage == 4:
                a, b = _products_part(o, v_bits, eps, lins[1], t, parts, 1, y_o)
                fused._add_residual(y_o, y_o[:0], f, epilogues[1], x, a, b)
            elif stage == 5:
                a, b = _products_part(x, RMS_NORM, eps, lins[2], t, parts, 2, y_gu)
                fused._gate_up(y_gu, y_gu[:0], f, epilogues[2], silu_deltas, h, a, b)
            else:
                a, b = _products_part(h, down_bits, eps, lins[3], t, parts, 1, y_down)
                fused._add_residual(y_down, y_down[:0], f, epilogues[3], x, a, b)
            met += 1
            if not barrier.meet(sync, t, parts, met):
                return -1
        return met

    @jit
    def tables_part(t, parts, sync, met, x, eps, head, epilogue, exp_table, total, y, out):
        """The step's tables (fused.tables) as thread t of `parts`, after the last layer_part: its share of the
        head's output groups into y (M, V) int64, a meeting, then its share of the rows' tables into out (M, V).
        On one thread the head is a fifth of a step's products, so the others would idle through it. Returns the
        meetings after this one's, or -1 where another thread failed."""
        _products_part(x, RMS_NORM, eps, head, t, parts, 1, y)
        met += 1
        if not barrier.meet(sync, t, parts, met):
            return -1
        a, b = _share(x.shape[0], t, parts)
        fused._tables(y[a:b], y[:0], np.zeros(b - a, np.int64), epilogue, exp_table, total, out[a:b])
        return met
