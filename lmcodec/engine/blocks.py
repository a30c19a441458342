"""Engine 2's linear layer (spec/engine.md §12): weights in 32-input blocks as the GGUF stores them, activations
as 8-bit codes with one factor per block, every step an exact integer.

For one token x (K integers) and one output n:
    P_bn = sum_j q_j c_jn over the block's 32 inputs   (int8 activation codes x weight codes, exact int32)
    T_bn = D_bn P_bn + M_bn S_b,  S_b = sum_j q_j       (the block's 16-bit scales D, M)
    A_n  = sum_b alpha_b T_bn                           (alpha_b: the block's activation scale, 14 bits)
    y_n  = rshr(rshr(A_n, S_A) mult_n, shift_n - e_t) + bias_n
The block products are what int8 dot-product instructions compute (u8 x s8 -> i32); the rest is int64.

`apply` is the reference (torch: int64, the block products in binary64, which holds them exactly; any device);
`BlockLinear.run` the CPU kernel (numba and blockdot's LLVM IR), the same integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..jit import available, jit
from . import threads
from .exact import bitlength, div_round, rms, rshift_round
from .fused import F_BITS, RESID_LIMIT, RMS_NORM
from .lazytorch import torch

BLOCK = 32  # inputs per block
ACT_QMAX = 127  # activation codes lie in [-127, 127]
ALPHA_BITS = 14  # the per-token factor f' lies in [2**13, 2**14), so alpha_b < 2**14
GAMMA_BITS = 16  # RMSNorm weights are integers in units of 2**-16
EMBED_BITS = 24  # the embedding's block scales are integers in units of 2**-24 (exact for fp16)
SCALE_LIMIT = (1 << 15) - 1  # |D|, |M| (int16)
MIN_SHIFT = 20  # shift_n: above the largest per-token e_t (19, with f < 2**33), so shift_n - e_t >= 1
GROUP = 16  # outputs a kernel call computes together (one int32 vector of 16 lanes)
QUAD = 4  # inputs per dot-product lane (u8 x s8 -> i32 sums four products)
CHUNK = 16  # output groups whose sums A are held at once before rounding (a few hundred KB at most)


def block_shift(nb: int) -> int:
    """S_A: the right shift of A, so that |rshr(A, S_A) mult| < 2**63 for nb blocks (spec §12.3)."""
    return nb.bit_length() + 1


def host(x):
    """x as a numpy array: itself, or a torch tensor's copy in host memory (a view for a CPU tensor)."""
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


@dataclass
class BlockLinear:
    """One linear layer's blocks: numpy arrays for the CPU kernel, or torch tensors (on any device) for the
    reference, which packs them too where they are in host memory."""
    codes: np.ndarray | torch.Tensor  # (N, K) uint8 or int8 codes c
    d: np.ndarray | torch.Tensor  # (N, nb) int16
    m: np.ndarray | torch.Tensor  # (N, nb) int16
    mult: np.ndarray | torch.Tensor  # (N,) int64
    shift: np.ndarray | torch.Tensor  # (N,) int64 >= MIN_SHIFT
    bias: np.ndarray | torch.Tensor | None  # (N,) int64 in output units, or None
    gamma: np.ndarray | torch.Tensor | None  # (K,) int64 RMSNorm weights of an RMS-normalized input, or None

    def __post_init__(self) -> None:
        n, k = self.codes.shape
        self.n, self.k, self.nb = n, k, k // BLOCK
        self.sa = block_shift(self.nb)
        if (isinstance(self.codes, np.ndarray) or self.codes.device.type == "cpu") and available:
            self._pack()

    def _pack(self) -> None:
        """The kernel's layout: codes as u8 u = c - c0 (c0 = -128 for signed codes, M' = M + c0 D absorbs the
        offset), in groups of 16 outputs: (N/16, nb, 8 quads, 16 outputs, 4 inputs), or 4 quads of two 4-bit codes
        a byte; D and M' as (N/16, nb, 2, 16). Rows past N (to a whole group) are zero."""
        n, nb = self.n, self.nb
        groups = -(-n // GROUP)
        codes = host(self.codes)
        c0 = -128 if codes.dtype == np.int8 else 0
        # 4-bit codes go two to a byte (quads 2k and 2k + 1 in one vector's low and high nibbles), and int16 scales
        # tell blockdot so (its T then fits int32); else bytes, and int32 scales (|M'| <= 2**15 + 2**22)
        narrow = c0 == 0 and int(codes.max(initial=0)) <= 15
        quads = BLOCK // QUAD // (2 if narrow else 1)
        self.packed = np.zeros((groups, nb, quads, GROUP, QUAD), np.uint8)
        _pack_codes(codes, c0, narrow, self.packed)
        dm = np.zeros((groups * GROUP, nb, 2), np.int16 if narrow else np.int32)
        d, m = host(self.d), host(self.m)
        dm[:n, :, 0] = d
        dm[:n, :, 1] = m.astype(np.int32) + c0 * d.astype(np.int32)
        self.scales = np.ascontiguousarray(dm.reshape(groups, GROUP, nb, 2).transpose(0, 2, 3, 1))
        mult = host(self.mult)
        bias = host(self.bias) if self.bias is not None else np.zeros_like(mult)
        self.rows = (mult, host(self.shift), bias)
        # the fused epilogues' parameters (fused._requant): ready = 1, the outputs come from run()
        self.fused_args = (*self.rows, np.zeros(n, np.float64), 0, 1)
        self.gamma_np = host(self.gamma) if self.gamma is not None else np.zeros(0, np.int64)
        self.kernel = (self.gamma_np, self.packed, self.scales, self.sa, *self.rows)  # layerstep's arguments

    def run(self, x: np.ndarray, in_bits: int, eps: int) -> np.ndarray:
        """The CPU kernel: y (M, N) int64 for rows x (M, K) int64, output groups split over the kernel threads."""
        q, alpha, sums, et = _quantize(x, self.gamma_np, in_bits, eps)
        y = np.empty((x.shape[0], self.n), np.int64)
        groups = self.packed.shape[0]
        threads.split(groups, lambda a, b: _products(q, alpha, sums, et, self.packed, self.scales, self.sa,
                                                     *self.rows, a, b, y))
        return y


def quantize(lin: BlockLinear, x: torch.Tensor, in_bits: int, eps: int):
    """Spec §12.3 steps 1-3 for rows x (M, K) int64: codes q (M, K), alpha (M, nb), e_t (M,)."""
    amax0 = x.abs().amax(-1, keepdim=True).clamp(min=1)
    if in_bits == RMS_NORM:
        r = rms(x, amax0, eps)
        x = rshift_round(x * lin.gamma.to(x.device), GAMMA_BITS).clamp(-RESID_LIMIT, RESID_LIMIT)
        amax = x.abs().amax(-1, keepdim=True).clamp(min=1)
        f = torch.div(amax << F_BITS, r, rounding_mode="floor").clamp(min=1)
    else:
        amax = amax0
        f = rshift_round(amax, in_bits - F_BITS) if in_bits > F_BITS else amax << (F_BITS - in_bits)
    et = bitlength(f) - ALPHA_BITS
    fp = torch.where(et >= 0, f >> et.clamp(min=0), f << (-et).clamp(min=0))
    xb = x.view(x.shape[0], -1, BLOCK)
    a = xb.abs().amax(-1).clamp(min=1)
    q = div_round(ACT_QMAX * xb, a[..., None]).reshape(x.shape)
    alpha = div_round(a * fp, amax)
    return q, alpha, et.view(-1)


def apply(lin: BlockLinear, x: torch.Tensor, in_bits: int, eps: int, rows: int = 8) -> torch.Tensor:
    """The reference (spec §12): y (M, N) int64 for rows x (M, K) int64, in int64 torch arithmetic."""
    q, alpha, et = quantize(lin, x, in_bits, eps)
    n, nb = lin.n, lin.nb
    c = lin.codes.to(x.device).double().view(n, nb, BLOCK)
    dd, mm = lin.d.to(x.device).long().t(), lin.m.to(x.device).long().t()  # (nb, N)
    out = []
    for a in range(0, x.shape[0], rows):
        qb = q[a: a + rows].view(-1, nb, BLOCK)
        # block products in binary64, exact (|P| < 2**20) and available on every device, then int64
        p = torch.einsum("rbj,nbj->rbn", qb.double(), c).long()
        t = dd[None] * p + mm[None] * qb.sum(-1)[..., None]
        acc = (alpha[a: a + rows, :, None] * t).sum(1)
        y = rshift_round(rshift_round(acc, lin.sa) * lin.mult.to(x.device),
                         lin.shift.to(x.device)[None] - et[a: a + rows, None])
        out.append(y if lin.bias is None else y + lin.bias.to(x.device))
    return torch.cat(out)


if available:
    from . import blockdot, fused

    @jit
    def _pack_codes(codes, c0, narrow, out):
        """BlockLinear._pack's code layout: out[g, b, quad, o, j] = codes[16 g + o, 32 b + 4 quad + j] - c0, or
        with narrow, the codes of quads 2k and 2k + 1 in the low and high nibbles of quad k. out is zero."""
        n = codes.shape[0]
        groups, nb, quads = out.shape[0], out.shape[1], out.shape[2]
        for g in range(groups):
            for o in range(min(GROUP, n - g * GROUP)):
                r = g * GROUP + o
                for b in range(nb):
                    for qd in range(quads):
                        for j in range(QUAD):
                            if narrow:
                                at = b * BLOCK + 2 * QUAD * qd + j
                                out[g, b, qd, o, j] = codes[r, at] | (codes[r, at + QUAD] << 4)
                            else:
                                out[g, b, qd, o, j] = np.int16(codes[r, b * BLOCK + QUAD * qd + j]) - c0

    @jit
    def _quantize(x, gamma, in_bits, eps):
        """quantize() for rows of x, plus S_b = sum of each block's codes: (q, alpha, sums, e_t)."""
        m, k = x.shape
        nb = k // BLOCK
        q = np.empty((m, k), np.int8)
        alpha = np.empty((m, nb), np.int64)
        sums = np.empty((m, nb), np.int64)
        et = np.empty(m, np.int64)
        xg = np.empty(k, np.int64)
        for i in range(m):
            amax = np.int64(1)
            for j in range(k):
                amax = max(amax, abs(x[i, j]))
            if in_bits == RMS_NORM:
                r = fused.rms(x, i, amax, eps)
                half = np.int64(1) << (GAMMA_BITS - 1)
                amax = np.int64(1)
                for j in range(k):
                    v = min(max((x[i, j] * gamma[j] + half) >> GAMMA_BITS, -RESID_LIMIT), RESID_LIMIT)
                    xg[j] = v
                    amax = max(amax, abs(v))
                f = max(np.int64(1), (amax << F_BITS) // r)
            else:
                for j in range(k):
                    xg[j] = x[i, j]
                if in_bits > F_BITS:
                    f = (amax + (np.int64(1) << (in_bits - F_BITS - 1))) >> (in_bits - F_BITS)
                else:
                    f = amax << (F_BITS - in_bits)
            e = fused.bitlength(f) - ALPHA_BITS
            fp = f >> e if e >= 0 else f << -e
            et[i] = e
            for b in range(nb):
                a = np.int64(1)
                for j in range(b * BLOCK, (b + 1) * BLOCK):
                    a = max(a, abs(xg[j]))
                alpha[i, b] = (2 * a * fp + amax) // (2 * amax)
                # q = rdiv(127 x, a): a binary64 estimate (off by at most one: |x| < 2**41), then one exact
                # integer correction, instead of a 64-bit division per element; branch-free, so it vectorizes
                ratio = np.float64(ACT_QMAX) / np.float64(a)
                total = np.int64(0)
                for j in range(b * BLOCK, (b + 1) * BLOCK):
                    est = np.int64(np.floor(np.float64(xg[j]) * ratio + 0.5))
                    r = 2 * ACT_QMAX * xg[j] + a - est * 2 * a
                    c = est + np.int64(r >= 2 * a) - np.int64(r < 0)
                    q[i, j] = c
                    total += c
                sums[i, b] = total
        return q, alpha, sums, et

    @jit
    def _products(q, alpha, sums, et, packed, scales, sa, mult, shift, bias, g0, g1, y):
        """y[:, 16 g0 .. 16 g1] (spec §12.3): the block sums A by blockdot's kernels, ROWS rows at a time so that
        each block's weights are read once for them, then the rounding shifts, CHUNK groups at a time."""
        m = q.shape[0]
        n = y.shape[1]
        acc = np.empty((m, CHUNK * GROUP), np.int64)
        half = np.int64(1) << (sa - 1)
        for c0 in range(g0, g1, CHUNK):
            c1 = min(g1, c0 + CHUNK)
            for g in range(c0, c1):
                a = acc[:, (g - c0) * GROUP: (g - c0 + 1) * GROUP]
                # the first rows stream the group's weights in, the others find them in L1; 8 rows a tile, the
                # last few 4 or one at a time
                i = 0
                if m >= blockdot.WIDE:
                    blockdot.dot_wide_stream(q, alpha, sums, packed, scales, g, 0, a)
                    i = blockdot.WIDE
                elif m >= blockdot.ROWS:
                    blockdot.dot_tile_stream(q, alpha, sums, packed, scales, g, 0, a)
                    i = blockdot.ROWS
                while i + blockdot.WIDE <= m:
                    blockdot.dot_wide(q, alpha, sums, packed, scales, g, i, a[i:])
                    i += blockdot.WIDE
                if i + blockdot.ROWS <= m:
                    blockdot.dot_tile(q, alpha, sums, packed, scales, g, i, a[i:])
                    i += blockdot.ROWS
                while i < m:
                    blockdot.dot_row(q, alpha, sums, packed, scales, g, i, a[i:])
                    i += 1
            j0, j1 = c0 * GROUP, min(n, c1 * GROUP)
            # one-dimensional slices: LLVM vectorizes the loop over them (2-D indexing kept it scalar, 3x slower)
            mu, sh, bi = mult[j0:j1], shift[j0:j1], bias[j0:j1]
            for i in range(m):
                e = et[i]
                a, yr = acc[i], y[i, j0:j1]
                for j in range(j1 - j0):
                    s = sh[j] - e
                    yr[j] = ((((a[j] + half) >> sa) * mu[j] + (np.int64(1) << (s - 1))) >> s) + bi[j]
