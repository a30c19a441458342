"""Engine 2's decoding step on one thread: each layer in one call to compiled code.

A decoding step calls about fifteen kernels a layer (quantize, block products, RoPE, attention, residual
steps); from Python each call costs a few microseconds of dispatch and allocation, about 2 ms of a 9 ms step at
batch 1 over 30 layers. Where a step runs on one kernel thread (a frame decoding alone, or each group of frames
decoding side by side: Codec._decode_side_by_side) and the caches are int16 for the SIMD attention blocks,
DecodeState._feed calls `layer` instead: the same kernels (blocks.py, fused.py) in the same order inside one
compiled function, so the integers are the same
(tests/engine/test_engine.py, test_one_call_layers_give_the_same_tables, compares them).
"""
from __future__ import annotations

import numpy as np

from ..jit import available, jit
from . import blocks, fused
from .fused import RMS_NORM

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
    def layer(x, eps, lins, epilogues, v_bits, down_bits, crow, pos, slot, end, cos, sin, q, kc, vc, kn, klim, kv8, shift,
              exp_table, win, sink, spos, silu, o, h):
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
        fused._attend_rows_simd(q, kc, vc, kn, crow, end, shift, exp_table, o, pos, win, sink, cos, sin, klim, spos)
        y = _linear(o, v_bits, eps, lins[1])
        fused._add_residual(y, y[:0], f, epilogues[1], x)
        y = _linear(x, RMS_NORM, eps, lins[2])
        fused._gate_up(y, y[:0], f, epilogues[2], silu, h)
        y = _linear(h, down_bits, eps, lins[3])
        fused._add_residual(y, y[:0], f, epilogues[3], x)
