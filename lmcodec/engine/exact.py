"""Exact integer kernels: int8 matmul with a proven fast path, rounding shifts, integer square root.

Every function here returns the same integers on any device, thread count or kernel path. Where a float64
kernel is used it only ever holds integers whose exact value, and every partial sum, stays below 2**53 in
magnitude, so any summation order gives the exact result (see spec/engine.md, "Exact arithmetic").
"""
from __future__ import annotations

import threading

import numpy as np

from .fused import KV_CODE_BITS, KV_CODE_MAX
from .lazytorch import torch

# Largest integer magnitude a float64 holds exactly, with every smaller integer also representable.
F64_EXACT = 2**53

_verified: dict[tuple[str, int], bool] = {}
_lock = threading.Lock()


def _self_test(device: torch.device) -> bool:
    """True when torch._int_mm gives exact int32 sums for full-range int8 x 7-bit weights on this device.

    Old oneDNN kernels (no VNNI/AMX) saturate int16 pair sums for full-range operands; the 7-bit weight
    bound avoids that. We prove it here, per process, against an int64 reference, on shapes that mimic
    the engine's (odd M, large K) and extreme values (all ±127 × ±63) where saturation would show.
    """
    g = torch.Generator().manual_seed(1234)
    shapes = [(17, 576, 64), (64, 1536, 192), (33, 64, 40), (32, 2048, 64)]
    try:
        for m, k, n in shapes:
            a = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
            b = torch.randint(-63, 64, (k, n), generator=g, dtype=torch.int8)
            a[0].fill_(127); a[1].fill_(-127); b[:, 0].fill_(63); b[:, 1].fill_(-63)
            ref = a.long() @ b.long()
            got = torch._int_mm(a.to(device), b.to(device)).cpu().long()
            if not torch.equal(got, ref):
                return False
    except (RuntimeError, NotImplementedError):
        return False
    return True


def int_mm_is_exact(device: torch.device) -> bool:
    key = (device.type, device.index or 0)
    with _lock:
        if key not in _verified:
            _verified[key] = _self_test(device)
        return _verified[key]


def matmul_i8(a: torch.Tensor, b: torch.Tensor, fast: bool = True) -> torch.Tensor:
    """Exact a @ b for int8 a (M, K) and int8 b (K, N) with |b| <= 63; returns int32 (M, N).

    Fast path: torch._int_mm (int32 accumulators; |sum| <= 127*63*K < 2**31 for K < 268,000).
    Fallback: float64 GEMM, exact because |sum| < 2**53.
    """
    m = a.shape[0]
    if fast and int_mm_is_exact(a.device):
        if a.device.type == "cuda" and m <= 16:
            # cuBLASLt int8 GEMM needs M > 16; padded rows are zeros and are dropped again.
            pad = torch.zeros((17 - m, a.shape[1]), dtype=a.dtype, device=a.device)
            return torch._int_mm(torch.cat([a, pad]), b)[:m]
        return torch._int_mm(a.contiguous(), b)
    return (a.double() @ b.double()).int()


def rshift_round(x: torch.Tensor | np.ndarray, s: int | torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Round-half-up arithmetic right shift of int64 x by s >= 1 bits: floor((x + 2**(s-1)) / 2**s); torch
    tensors or numpy arrays."""
    if isinstance(s, int):
        return (x + (1 << (s - 1))) >> s
    if isinstance(s, np.ndarray):
        return (x + (np.int64(1) << (s - 1))) >> s
    return (x + (torch.ones_like(s) << (s - 1))) >> s


def div_round(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Round-half-up integer division for int64 tensors, b > 0: floor((2a + b) / 2b)."""
    return torch.div(2 * a + b, 2 * b, rounding_mode="floor")


def isqrt(v: torch.Tensor) -> torch.Tensor:
    """Exact floor(sqrt(v)) for int64 0 <= v < 2**62 (float estimate, then integer correction)."""
    r = torch.sqrt(v.double()).long()
    r = torch.where(r * r > v, r - 1, r)
    r = torch.where(r * r > v, r - 1, r)
    r = torch.where((r + 1) * (r + 1) <= v, r + 1, r)
    return torch.where((r + 1) * (r + 1) <= v, r + 1, r)


def bitlength(v: torch.Tensor) -> torch.Tensor:
    """Bit lengths of int64 values 0 <= v < 2**53 (exact through binary64's exponent)."""
    return torch.frexp(v.double())[1].long()


def kv_round(z: torch.Tensor) -> torch.Tensor:
    """Spec §5 step 2's rounding (coder 1 version 3) of key or value vectors z (..., d) int64, each to codes c
    (|c| <= KV_CODE_MAX) times 2**s, s = max(0, bitlength(max |z|) - KV_CODE_BITS); as fused.kv_round."""
    s = (bitlength(z.abs().amax(-1, keepdim=True)) - KV_CODE_BITS).clamp(min=0)
    return ((z + ((torch.ones_like(s) << s) >> 1)) >> s).clamp(-KV_CODE_MAX, KV_CODE_MAX) << s


def rms(x: torch.Tensor, amax: torch.Tensor, eps: int) -> torch.Tensor:
    """r of spec §3 step 2 per row of x (..., K) int64 whose largest magnitudes are amax (..., 1): the root mean
    square in x's units, with eps (in squared units) added, squares kept below 2**48 by a shift."""
    k = x.shape[-1]
    sh = (bitlength(amax) - 24).clamp(min=0)
    xs = x >> sh
    ss = (xs * xs).sum(-1, keepdim=True)
    return isqrt(ss // k + (eps >> (2 * sh))).clamp(min=1) << sh

