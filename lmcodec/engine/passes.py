"""The integer inference engine: token ids -> integer frequency tables, identical on every machine.

All arithmetic is on integers (int64 tensors, or float64 tensors holding integers below 2**53 where a BLAS
kernel is the fast way to sum them). There are no float32 matmuls, so a caller's TF32/bf16 matmul settings
(which apply to float32 only) cannot change a result. spec/engine.md defines every step; this module is its reference.
The engine knows nothing of coding or files: it takes token ids and returns tables.
"""
from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..tables import TOTAL
from . import barrier, blocks
from . import fused as fz
from . import layerstep
from . import threads as th
from .exact import F64_EXACT, div_round, kv_round, matmul_i8, rms, rshift_round
from .fused import F_BITS, GU_LIMIT, QKV_LIMIT, RESID_LIMIT, RMS_NORM, ROPE_BITS
from .intmodel import IntModel
from .lazytorch import torch

Q8 = 127  # 8-bit activation grid
Q15 = 127 * 128  # 15-bit activation grid, coded as two int8 halves
QUERY_BLOCK = 64  # attention queries per block in the full-sequence pass
ROW_BLOCK = 256  # positions per block in the projections and the MLP
K_UNCLAMPED = 1 << 20  # above any rotated k (|k'| <= 2**15.5): no clamp
SPEC_SLOTS = 8  # with a window, ring slots beyond it: positions a decoder may feed ahead and take back
# a decoder cache's slots come in whole blocks of the SIMD attention (simd.SPAN_KEYS; the woven keys need 16)
SLOT_BLOCK = 64
CACHE_STEP = 512  # KV cache positions to start with and at least to add when it is full (it grows by 1.5x)
HEAD_ELEMENTS = 1 << 20  # table entries computed at once by the full-sequence pass
_TIME_DIM = (3, 2, 2)  # time axis of q (B, kv, g, T, d), k and v (B, kv, T, d)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks instead of unmapping them.

    The engine allocates many same-sized temporaries of a few MB; by default each one is a fresh mmap whose
    page faults cost more than the arithmetic (measured: 2x faster full-sequence pass with batch 4).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
            libc.mallopt(-3, 1 << 25)  # M_MMAP_THRESHOLD (32 MiB, the largest glibc accepts)
        except (OSError, AttributeError):
            pass


@dataclass
class Linear:
    wt: torch.Tensor  # int8 (K, N), |w| <= 63
    mult: torch.Tensor  # int64 (N,) in [2**14, 2**15]
    shift: torch.Tensor  # int64 (N,) >= 1
    bias: torch.Tensor | None  # int64 (N,) in output units, or None
    qmax: int  # Q8 or Q15

    def __post_init__(self) -> None:
        # Float64 copies for the exact float path, and the largest |acc| the matmul can produce.
        self.mult_f = self.mult.double()
        self.unshift_f = torch.pow(2.0, -self.shift.double())
        self.bias_f = None if self.bias is None else self.bias.double()
        self.acc_bound = self.qmax * 63 * self.wt.shape[0]
        if self.wt.device.type == "cpu":  # the parameters of fused._requant
            bias = self.bias if self.bias is not None else torch.zeros_like(self.mult)
            self.fused_args = (self.mult.numpy(), self.shift.numpy(), bias.numpy(),
                               (self.mult_f * self.unshift_f).numpy(), self.acc_bound, 0)


class Engine:
    """Exact integer forward passes of one converted model on one device."""

    def __init__(self, model: IntModel, device: str = "cpu", threads: int | None = None,
                 fast: bool = True, fused: bool | None = None, window: int | None = None, sink: int = 0,
                 kv8: bool = False) -> None:
        """threads: CPU threads for this engine's work (None or 0: every available CPU; see threads.py: the
        process's torch settings are not changed). fast: use torch._int_mm where proven exact (else float64
        GEMM). fused: on CPU, do the element-wise steps in the numba kernels of fused.py (default: when available
        and fast); same integers either way.
        window, sink: each position attends to `window` positions: the first `sink` ones of the sequence (which
        the model uses as attention sinks) and the latest window - sink up to itself (spec §5); window None:
        to every earlier position. kv8: keys and values rounded to 8-bit codes (coder 1 version 3, spec §5 step 2),
        which needs a window."""
        if window is not None and not 0 <= sink < window:
            raise ValueError("an attention window needs more positions than its sink")
        if kv8 and window is None:
            raise ValueError("8-bit keys and values need an attention window")
        self.kv8 = kv8
        self.window = window
        self.sink = sink if window is not None else 0
        # With a window (coder version 2) rotated k is clamped to int16 (spec §5), so the decoder's cache holds
        # 2 bytes per k instead of 4: a third less memory read per step. Without (version 1), no clamp.
        self.k_limit = QKV_LIMIT if window is not None else K_UNCLAMPED
        self.model = model
        self.cfg = c = model.config
        self.device = str(device)
        on_cpu = self.device.split(":")[0] == "cpu"
        self.fast = fast
        self.fused = (fast and fz.available and on_cpu) if fused is None else fused
        if self.fused and not on_cpu:
            raise ValueError("the fused path computes on the CPU")
        _keep_freed_memory()
        self.threads = th.resolve(threads)
        self.pacer = th.Pacer(self.threads)  # decoding steps: OpenMP over every thread or one, by measured time
        # the fused path computes on the model file's arrays (numpy); the reference path on torch tensors
        t = dict(model.tensors) if self.fused else {k: torch.from_numpy(v).to(self.device)
                                                    for k, v in model.tensors.items()}
        self.vocab_size: int = c["vocab_size"]
        self.bos_id: int = c["bos_id"]
        self.max_tokens: int = c["context"]
        self.n_layers: int = c["n_layers"]
        self.hd: int = c["head_dim"]
        self.nh: int = c["n_heads"]
        self.nkv: int = c["n_kv_heads"]
        self.R = c["resid_bits"]
        self.eps = c["eps_int"]
        self.version = model.engine
        mt = model.tensors  # the embedding and RoPE's tables: numpy on every path (_embed, _grow_rope)
        if self.version == 1:
            self.embed_w, self.embed_m, self.embed_s = mt["embed.w"], mt["embed.mult"], mt["embed.shift"]
        else:
            self.embed_c, self.embed_d = mt["embed.codes"], mt["embed.d"]
        self.layers = []
        for i in range(self.n_layers):
            p = f"layers.{i}."
            self.layers.append({n: self._linear(t, p + n, c.get("act", {}).get(n))
                                for n in ("qkv", "o", "gate_up", "down")})
        self.head = self._linear(t, "head", c.get("act", {}).get("head"))
        self.cos_np, self.sin_np = mt["rope.cos"], mt["rope.sin"]
        self._rope_lock = threading.Lock()
        # attention scores (q_bits + k_bits fractional bits) -> logits in 2**-exp_frac_bits nat, a power of two
        self.score_scale = 2.0 ** (c["exp_frac_bits"] - c["q_bits"] - c["k_bits"])
        self.score_shift = c["q_bits"] + c["k_bits"] - c["exp_frac_bits"]
        self.exp32 = None
        if self.fused:
            self.exp_np, self.silu_deltas = mt["exp"], fz.silu_deltas(mt["silu"])
            # the SIMD attention of both passes looks the weights up in 32 bits (simd.weights16, weights16_seen),
            # where they fit: one gather of 16 on AVX-512
            span = self.exp_np.min() >= 0 and self.exp_np.max() <= fz.simd.W_MAX and self.hd in fz.simd.HEAD_DIMS
            self.exp32 = self.exp_np.astype(np.int32) if span else None
        else:
            self.cos, self.sin = t["rope.cos"], t["rope.sin"]
            self.exp_table = t["exp"].double()
            self.exp_last = self.exp_table.numel() - 1
            self.silu_table = t["silu"]
            self.silu_half = (self.silu_table.numel() - 1) // 2
        # a decoder keeps 8-bit codes (a byte an element) where the SIMD blocks read the caches, else the rounded
        # values in int16
        self.code_cache = self.fused and kv8 and self.exp32 is not None
        # per layer, layerstep.layer's (kernels, epilogues) of (qkv, o, gate_up, down): engine 2 on CPU
        names = ("qkv", "o", "gate_up", "down")
        self.layer_kernels = [(tuple(lay[k].kernel for k in names), tuple(lay[k].fused_args for k in names))
                              for lay in self.layers] if self.fused and hasattr(self.head, "kernel") else None

    def _rope_rows(self, n: int) -> None:
        """Make the RoPE tables cover positions 0 .. n-1. Rows past the model file's (its context C) are made
        exactly from earlier ones: row p = row(p - C/2) rotated by row(C/2), rounded as RoPE rounds (spec §5)."""
        if n <= self.cos_np.shape[0]:
            return
        with self._rope_lock:  # decoders on several threads may grow the tables at once
            self._grow_rope(n)

    def _grow_rope(self, n: int) -> None:
        have = self.cos_np.shape[0]
        if n <= have:
            return
        half = self.cfg["context"] // 2
        cos, sin = self.cos_np.astype(np.int64), self.sin_np.astype(np.int64)
        c2, s2 = cos[half], sin[half]
        while have < n:
            a = have - half  # rows have - half .. have - 1 exist; each new row needs the one half before it
            k = min(half, n - have)
            c1, s1 = cos[a: a + k], sin[a: a + k]
            cos = np.concatenate([cos, rshift_round(c1 * c2 - s1 * s2, ROPE_BITS)])
            sin = np.concatenate([sin, rshift_round(s1 * c2 + c1 * s2, ROPE_BITS)])
            have += k
        if not self.fused:
            self.sin = torch.from_numpy(sin.astype(np.int32)).to(self.device)
            self.cos = torch.from_numpy(cos.astype(np.int32)).to(self.device)
        self.sin_np = sin.astype(np.int32)
        self.cos_np = cos.astype(np.int32)  # last: _rope_rows reads its length without the lock, then the others

    def _visible(self, qpos: torch.Tensor, kpos: torch.Tensor) -> torch.Tensor:
        """Mask (queries, keys): True where a query at qpos may NOT attend to a key at kpos (spec §5)."""
        hidden = kpos[None, :] > qpos[:, None]
        if self.window is not None:
            hidden |= (kpos[None, :] >= self.sink) & (kpos[None, :] <= qpos[:, None] - self.window + self.sink)
        return hidden

    @staticmethod
    def _linear(t: dict, name: str, bits: int | None) -> Linear | blocks.BlockLinear:
        """A layer of the model file: engine 1's 7-bit rows (bits: its activation grid; torch tensors, for
        torch._int_mm) or engine 2's blocks (as they are in t: numpy arrays or torch tensors)."""
        if name + ".codes" in t:
            return blocks.BlockLinear(t[name + ".codes"], t[name + ".d"], t[name + ".m"], t[name + ".mult"],
                                      t[name + ".shift"], t.get(name + ".bias"), t.get(name + ".gamma"))
        w = {k: torch.as_tensor(t[name + k]) for k in (".w", ".mult", ".shift", ".bias") if name + k in t}
        return Linear(w[".w"], w[".mult"], w[".shift"], w.get(".bias"), Q15 if bits == 15 else Q8)

    # ---- building blocks -------------------------------------------------------------------------
    def _norm_factor(self, x: torch.Tensor, amax: torch.Tensor) -> torch.Tensor:
        """f = floor(amax * 2**16 / rms(x)) per token, rms in the residual's units (RMSNorm without gamma)."""
        return torch.div(amax << F_BITS, rms(x, amax, self.eps), rounding_mode="floor")

    def _linear_apply(self, lin: Linear, x: torch.Tensor, in_bits: int = RMS_NORM,
                      as_float: bool = False) -> torch.Tensor:
        """y = W x for integer x (..., K), quantized per token to lin.qmax; returns int64 in output units.

        With in_bits=RMS_NORM the input is RMS-normalized first (gamma is folded into W); otherwise x is a fixed-point
        value with in_bits fractional bits. Either way the real input is q * f * 2**-16 / qmax per token.
        """
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if isinstance(lin, blocks.BlockLinear):
            y = blocks.apply(lin, x, in_bits, self.eps)
            return (y.double() if as_float else y).reshape(*shape[:-1], -1)
        amax = x.abs().amax(-1, keepdim=True).clamp(min=1)
        if in_bits == RMS_NORM:
            f = self._norm_factor(x, amax)
        elif in_bits > F_BITS:
            f = rshift_round(amax, in_bits - F_BITS)
        else:
            f = amax << (F_BITS - in_bits)
        q = div_round(lin.qmax * x, amax)
        if lin.qmax == Q8:
            acc = matmul_i8(q.to(torch.int8), lin.wt, self.fast)
        else:
            hi = (q + 64) >> 7
            both = matmul_i8(torch.cat([hi, q - (hi << 7)]).to(torch.int8), lin.wt, self.fast)
        # y = round(round(acc * f / 2**16) * mult / 2**shift) + bias. Where every intermediate is provably
        # below 2**53, float64 computes exactly the same integers, faster (see spec: "Requantization").
        rows = x.shape[0]
        if lin.acc_bound * int(f.max()) < F64_EXACT:
            if lin.qmax == Q8:
                a = acc.double()
            else:
                both = both.double()
                a = both[:rows] * 128.0 + both[rows:]
            t1 = torch.floor(a * f.double() * 2.0**-F_BITS + 0.5)
            y = torch.floor(t1 * lin.mult_f * lin.unshift_f + 0.5)
            if lin.bias is not None:
                y = y + lin.bias_f
            if not as_float:
                y = y.long()
        else:
            if lin.qmax != Q8:
                both = both.long()
                acc = (both[:rows] << 7) + both[rows:]
            y = rshift_round(rshift_round(acc.long() * f, F_BITS) * lin.mult, lin.shift)
            if lin.bias is not None:
                y = y + lin.bias
            if as_float:
                y = y.double()
        return y.reshape(*shape[:-1], -1)

    def _rope(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Rotate pairs (i, i + d/2) by the position's angle; cos/sin tables hold 2**ROPE_BITS-scaled integers."""
        h = self.hd // 2
        c, s = self.cos[pos][:, None, :], self.sin[pos][:, None, :]  # (T, 1, d/2) against (B, T, heads, d/2)
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([rshift_round(x1 * c - x2 * s, ROPE_BITS), rshift_round(x2 * c + x1 * s, ROPE_BITS)], -1)

    def _softmax_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Exact integer attention weights from float64-held integer scores (last dim = keys)."""
        logit = torch.floor(scores * self.score_scale)
        if mask is not None:
            logit = logit.masked_fill(mask, float("-inf"))
        d = logit.amax(-1, keepdim=True) - logit
        idx = d.clamp(max=self.exp_last).long()
        return self.exp_table[idx]

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                qpos: torch.Tensor) -> torch.Tensor:
        """q (B, kv, g*Tq, d), k/v (B, kv, Tk, d) as float64 integers -> int64 (B, kv, g*Tq, d) in v's units.
        qpos (Tq,): the queries' positions; with a window the first `sink` keys are the sink positions."""
        scores = q @ k.transpose(-1, -2)
        if self.window is not None and self.sink and int(qpos.max()) >= self.window:
            self._far_sink_scores(q, k[:, :, : self.sink], qpos, scores)
        p = self._softmax_weights(scores, mask)
        z = p.sum(-1, keepdim=True).long()
        return div_round((p @ v).long(), z)

    def _far_sink_scores(self, q: torch.Tensor, ks: torch.Tensor, qpos: torch.Tensor, scores: torch.Tensor) -> None:
        """Redo the sink columns of scores (B, kv, g*Tq, Tk) for queries at p >= W: they see sink key k'_u rotated
        again by the rows of position p - W + 1 and clamped (spec §5), so the sinks stay W positions away."""
        h = self.hd // 2
        far = qpos >= self.window
        delta = (qpos - self.window + 1).clamp(min=0)
        c, s = self.cos[delta].long()[:, None, None, None, :], self.sin[delta].long()[:, None, None, None, :]
        a, b = ks[..., :h].long()[None], ks[..., h:].long()[None]  # (1, B, kv, S, d/2) against (Tq, 1, 1, 1, d/2)
        kk = torch.cat([rshift_round(a * c - b * s, ROPE_BITS), rshift_round(b * c + a * s, ROPE_BITS)], -1)
        kk = kk.clamp_(-self.k_limit, self.k_limit).double()  # (Tq, B, kv, S, d)
        bq, nkv, rows, d = q.shape
        tq = qpos.shape[0]
        qv = q.view(bq, nkv, rows // tq, tq, d)
        sink = torch.einsum("bkgtd,tbksd->bkgts", qv, kk).reshape(bq, nkv, rows, -1)
        rowfar = far.repeat(rows // tq)[None, None, :, None]
        scores[..., : self.sink] = torch.where(rowfar, sink, scores[..., : self.sink])

    def _mlp(self, lay: dict[str, Linear], x: torch.Tensor) -> torch.Tensor:
        gu = self._linear_apply(lay["gate_up"], x)
        n = gu.shape[-1] // 2
        g, u = gu[..., :n].clamp(-GU_LIMIT, GU_LIMIT), gu[..., n:].clamp(-GU_LIMIT, GU_LIMIT)
        half = self.silu_half
        inside = self.silu_table[(g.clamp(-half, half) + half)]
        s = torch.where(g > half, g, torch.where(g < -half, torch.zeros_like(g), inside))
        h = s * u  # 2 * mlp_bits fractional bits
        return self._linear_apply(lay["down"], h, in_bits=2 * self.cfg["mlp_bits"])

    def _qkv(self, lay: dict[str, Linear], x: torch.Tensor, pos: torch.Tensor):
        b, t, _ = x.shape
        d, nh, nkv = self.hd, self.nh, self.nkv
        qkv = self._linear_apply(lay["qkv"], x)
        lim = QKV_LIMIT
        q = qkv[..., : nh * d].clamp(-lim, lim).view(b, t, nh, d)
        k = qkv[..., nh * d: (nh + nkv) * d].clamp(-lim, lim).view(b, t, nkv, d)
        v = qkv[..., (nh + nkv) * d:].clamp(-lim, lim).view(b, t, nkv, d)
        q = self._rope(q, pos)
        k = self._rope(k, pos).clamp_(-self.k_limit, self.k_limit)
        if self.kv8:
            k, v = kv_round(k), kv_round(v)
        # (B, kv, g, T, d): the g query heads sharing one kv head sit together.
        q = q.view(b, t, nkv, nh // nkv, d).permute(0, 2, 3, 1, 4)
        return q, k.transpose(1, 2), v.transpose(1, 2)

    def _attn_out(self, lay: dict[str, Linear], o: torch.Tensor) -> torch.Tensor:
        # o: (B, T, kv, g, d) int64 in v's units -> (B, T, H) residual update
        b, t = o.shape[:2]
        o = o.reshape(b, t, -1)
        return self._linear_apply(lay["o"], o, in_bits=self.cfg["v_bits"])

    def _embed(self, tokens: np.ndarray) -> np.ndarray:
        """The embedding rows (..., H) int64 of token ids (...) (spec §2, §12.1), on every path."""
        if self.version == 1:
            w = self.embed_w[tokens].astype(np.int64) * self.embed_m[tokens, None].astype(np.int64)
            return rshift_round(w, self.embed_s[tokens, None].astype(np.int64))
        scale = np.repeat(self.embed_d[tokens].astype(np.int64), blocks.BLOCK, -1)  # spec §12.1
        return rshift_round(self.embed_c[tokens].astype(np.int64) * scale, blocks.EMBED_BITS - self.R)

    def _tables(self, x: torch.Tensor) -> torch.Tensor:
        """Final hidden states (..., H) -> frequency tables (..., V) int64, each summing to 2**28."""
        logit = self._linear_apply(self.head, x, as_float=True)  # integers, in 2**-exp_frac_bits nats
        top = logit.argmax(-1, keepdim=True)  # the first most probable symbol; it takes the remainder
        d = logit.gather(-1, top) - logit
        p = self.exp_table[d.clamp_(max=self.exp_last).long()]
        z = p.sum(-1, keepdim=True)
        v = p.shape[-1]
        # floor(p * (TOTAL - V) / z) is exact in float64: p*(TOTAL-V) + z < 2**53 (see spec).
        freq = torch.floor_(p.mul_(float(TOTAL - v)).div_(z)).add_(1.0)
        rest = TOTAL - freq.sum(-1, keepdim=True)
        return freq.scatter_add_(-1, top, rest).long()

    # ---- the two passes -------------------------------------------------------------------------
    def full_tables(self, tokens, block: int = 64, progress: Callable[[float], None] | None = None,
                    lengths: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Full-sequence pass. tokens (B, T) token ids (a numpy array, or a torch tensor) including the leading BOS
        (pad rows at the end with any id).

        Yields (t0, tables) with tables (B, t1 - t0, V) int64 numpy arrays: the distributions of tokens[:, t0+1 : t1+1],
        i.e. tables[:, j] predicts position t0 + j + 1 from positions <= t0 + j. lengths, if given, are the
        positions of each row that count (row i's first lengths[i]); the rest is padding, which the fused path
        does not compute, and its tables are zeros on every path. progress, if given, is called with the
        fraction of the layers done after each layer (the tables come after the last).
        Work is split into blocks of rows and queries so that temporaries stay a few MB (large fresh
        allocations cost more in page faults than the arithmetic on them).
        """
        tokens = blocks.host(tokens).astype(np.int64, copy=False)
        b, t = tokens.shape
        block = max(1, min(block, HEAD_ELEMENTS // (b * self.vocab_size)))
        lengths = [t] * b if lengths is None else [max(1, min(t, int(n))) for n in lengths]
        self._rope_rows(t)
        if self.fused:  # independent row blocks on the kernel threads (engine 1's matmuls on one thread each)
            yield from th.scoped(self._full_fused(tokens, block, progress, lengths), self.threads, 1)
            return
        with torch.inference_mode():
            for a, tables in th.scoped(self._full_torch(tokens, block, progress), self.threads, self.threads):
                for i, n in enumerate(lengths):
                    tables[i, max(0, n - a):] = 0
                yield a, tables.cpu().numpy()

    def _full_torch(self, tokens: np.ndarray, block: int,
                    progress: Callable[[float], None] | None) -> Iterator[tuple[int, torch.Tensor]]:
        """The full pass of the torch path (the reference), as full_tables yields it (tables as torch tensors)."""
        b, t = tokens.shape
        x = torch.from_numpy(self._embed(tokens)).to(self.device)
        pos = torch.arange(t, device=self.device)
        g = self.nh // self.nkv
        for n, lay in enumerate(self.layers, 1):
            q, k, v = self._rows(lambda r, p: self._qkv(lay, r, p), x, pos)
            o = torch.empty((b, self.nkv, g, t, self.hd), dtype=torch.long, device=self.device)
            for i in range(b):
                kf, vf = k[i: i + 1].double(), v[i: i + 1].double()
                for a in range(0, t, QUERY_BLOCK):
                    e = min(t, a + QUERY_BLOCK)
                    qq = q[i: i + 1, :, :, a:e].double().reshape(1, self.nkv, -1, self.hd)
                    mask = self._visible(pos[a:e], pos[:e]).repeat(g, 1)
                    o[i: i + 1, :, :, a:e] = self._attend(qq, kf[:, :, :e], vf[:, :, :e], mask, pos[a:e]).view(
                        1, self.nkv, g, e - a, self.hd)
            x = (x + self._rows(lambda r, p: self._attn_out(lay, r), o.permute(0, 3, 1, 2, 4), pos)).clamp_(
                -RESID_LIMIT, RESID_LIMIT)
            x = (x + self._rows(lambda r, p: self._mlp(lay, r), x, pos)).clamp_(-RESID_LIMIT, RESID_LIMIT)
            if progress is not None:
                progress(n / self.n_layers)
        for a in range(0, t, block):
            yield a, self._tables(x[:, a: a + block])

    @staticmethod
    def _rows(fn, x: torch.Tensor, pos: torch.Tensor):
        """Apply fn(rows, positions) to blocks of ROW_BLOCK positions of x (B, T, ...) and join the results."""
        t = x.shape[1]
        if t <= ROW_BLOCK:
            return fn(x, pos)
        parts = [fn(x[:, a: a + ROW_BLOCK], pos[a: a + ROW_BLOCK]) for a in range(0, t, ROW_BLOCK)]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat([p[j] for p in parts], dim=_TIME_DIM[j]) for j in range(len(parts[0])))
        return torch.cat(parts, 1)

    # ---- the fused CPU path: the same integers, element-wise steps in fused.py -------------------
    def _mm(self, lin: Linear | blocks.BlockLinear, x: np.ndarray, in_bits: int = RMS_NORM):
        """Linear steps 1-4 for rows x (M, K) int64: ((acc_hi, acc_lo), f, lin's parameters) for an epilogue;
        engine 2's block kernel gives the outputs, which the epilogue takes as they are."""
        m = x.shape[0]
        if isinstance(lin, blocks.BlockLinear):
            y = lin.run(x, in_bits, self.eps)
            return (y, y[:0]), np.zeros(m, np.int64), lin.fused_args
        q = torch.empty((m if lin.qmax == Q8 else 2 * m, x.shape[1]), dtype=torch.int8)
        f = np.empty(m, np.int64)
        qn = q.numpy()
        fz.quantize(x, lin.qmax, in_bits, self.eps, qn[:m], qn[m:], f)  # Q8: qn[m:] is empty
        acc = matmul_i8(q, lin.wt, self.fast).numpy()
        return (acc[:m], acc[m:]), f, lin.fused_args

    def _layer_fused(self, lay: dict[str, Linear], x: np.ndarray, b: int, t: int, lengths: list[int],
                     k_cache: np.ndarray, v_cache: np.ndarray) -> None:
        """One layer of the full pass on the residual x (b*t, H) in place, row i's first lengths[i] positions;
        k, v go to the caches (b, nkv, t, d): float64 for the BLAS products, or int16 for the SIMD row blocks
        (fused.attend_span). A padding position is never computed: no query before it sees its key.

        Blocks of rows (and of attention queries) are independent tasks run on the kernel threads.
        """
        g, d, nkv = self.nh // self.nkv, self.hd, self.nkv
        q = np.empty((b, nkv, g, t, d), np.float64)
        spans = [(i * t + a, i * t + min(n, a + ROW_BLOCK)) for i, n in enumerate(lengths)
                 for a in range(0, n, ROW_BLOCK)]

        def qkv(a: int, e: int) -> None:
            fz.qkv_rope(*self._mm(lay["qkv"], x[a:e]), a, t, 0, self.cos_np, self.sin_np, q, k_cache, v_cache, 0,
                        self.k_limit, self.kv8)

        th.parallel([lambda a=a, e=e: qkv(a, e) for a, e in spans])
        o = np.empty((b * t, self.nh * d), np.int64)
        win = self.window or 0
        sink = self.sink
        simd = k_cache.dtype == np.int16
        if simd:  # the caches rearranged once for the SIMD row blocks
            slots = -(-t // fz.simd.SPAN_KEYS) * fz.simd.SPAN_KEYS
            ks, vs = fz.woven_shapes(slots, d)
            kt, vt = np.empty((b, nkv) + ks, np.int16), np.empty((b, nkv) + vs, np.int16)
            norms = np.empty((b, nkv, slots // fz.simd.QK_KEYS))
            th.parallel([lambda i=i: fz.weave(k_cache[i], v_cache[i], kt[i], vt[i], norms[i]) for i in range(b)])

        def attend(i: int, a: int) -> None:
            e = min(lengths[i], a + QUERY_BLOCK)
            if simd:
                fz.attend_span(q[i], k_cache[i], kt[i], vt[i], norms[i], a, e, self.score_shift, self.exp32, o,
                               i * t, win, sink, self.cos_np, self.sin_np, self.k_limit)
                return
            k0 = a - win + sink + 1 if win else 0  # the first non-sink key the block's first query sees
            if k0 > sink:  # the sink and a band of keys: the cost is bounded by the window
                k = np.concatenate([k_cache[i, :, :sink], k_cache[i, :, k0:e]], 1)
                v = np.concatenate([v_cache[i, :, :sink], v_cache[i, :, k0:e]], 1)
                band = 1
            else:
                k, v = k_cache[i, :, :e], v_cache[i, :, :e]
                k0, band = 0, 0
            qb = q[i, :, :, a:e].reshape(nkv, -1, d)
            s = qb @ k.swapaxes(-1, -2)
            if sink and win and e > win:  # queries past the window see the sink keys rotated on (spec §5)
                fz.sink_scores(qb, k_cache[i, :, :sink], a, e - a, win, self.cos_np, self.sin_np, self.k_limit, s)
            z = np.empty(s.size // s.shape[-1], np.int64)
            fz.softmax(s.reshape(-1, s.shape[-1]), a, e - a, self.score_shift, self.exp_np, z, k0, band, win, sink)
            fz.attn_gather(s @ v, z, e - a, o, i * t + a)

        # the longest query blocks first, so that the threads' shares even out
        th.parallel([lambda i=i, a=a: attend(i, a) for a in reversed(range(0, t, QUERY_BLOCK)) for i in range(b)
                     if a < lengths[i]])

        th.parallel([lambda a=a, e=e: self._rest_fused(lay, x[a:e], o[a:e]) for a, e in spans])

    def _rest_fused(self, lay: dict[str, Linear], x: np.ndarray, o: np.ndarray) -> None:
        """The attention output projection and the MLP on rows x (M, H), in place."""
        fz.add_residual(*self._mm(lay["o"], o, self.cfg["v_bits"]), x)
        h = np.empty((x.shape[0], self.cfg["intermediate"]), np.int64)
        fz.gate_up(*self._mm(lay["gate_up"], x), self.silu_deltas, h)
        fz.add_residual(*self._mm(lay["down"], h, 2 * self.cfg["mlp_bits"]), x)

    def _tables_fused(self, x: np.ndarray, tasks: int = 1) -> np.ndarray:
        """Tables for rows x (M, H), as `tasks` parallel tasks (each with its own head matmul)."""
        out = np.empty((x.shape[0], self.vocab_size), np.int64)

        def part(a: int, e: int) -> None:
            fz.tables(*self._mm(self.head, x[a:e]), self.exp_np, TOTAL, out[a:e])

        m = x.shape[0]
        step = -(-m // tasks)
        th.parallel([lambda a=a: part(a, min(m, a + step)) for a in range(0, m, step)])
        return out

    def _full_fused(self, tokens: np.ndarray, block: int, progress: Callable[[float], None] | None,
                    lengths: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """The full pass of the fused path, as full_tables yields it: independent row blocks on the kernel threads,
        over the positions that count."""
        b, t = tokens.shape
        x = np.ascontiguousarray(self._embed(tokens).reshape(b * t, -1))
        # int16 caches for the SIMD row blocks where k fits int16 (under a window), else float64 for BLAS
        dtype = np.int16 if self.k_limit == QKV_LIMIT and self.exp32 is not None else np.float64
        shape = (b, self.nkv, t, self.hd)
        for n, lay in enumerate(self.layers, 1):
            self._layer_fused(lay, x, b, t, lengths, np.zeros(shape, dtype), np.zeros(shape, dtype))
            if progress is not None:
                progress(n / self.n_layers)
        for a in range(0, t, block):
            e = min(t, a + block)
            rows = [(i, min(e, n) - a) for i, n in enumerate(lengths) if n > a]  # (row, positions that count)
            tables = self._tables_fused(np.concatenate([x[i * t + a: i * t + a + m] for i, m in rows]), th.width())
            if len(rows) == b and all(m == e - a for _, m in rows):
                yield a, tables.reshape(b, e - a, -1)
                continue
            out = np.zeros((b, e - a, self.vocab_size), np.int64)
            c = 0
            for i, m in rows:
                out[i, :m] = tables[c: c + m]
                c += m
            yield a, out

    def start(self, batch: int) -> "DecodeState":
        return DecodeState(self, batch)


def _whole_blocks(slots: int) -> int:
    """slots rounded up to a multiple of SLOT_BLOCK."""
    return -(-slots // SLOT_BLOCK) * SLOT_BLOCK


def ring_slots(window: int) -> int:
    """Slots of a decoder's cache under an attention window: the window, SPEC_SLOTS, rounded up to SLOT_BLOCK."""
    return _whole_blocks(window + SPEC_SLOTS)


class DecodeState:
    """Incremental pass: rows advance at their own pace over KV caches, one or more positions a step.

    Row i has fed self.pos[i] positions. Its cache holds the keys its next positions attend to: without a window
    slot u is position u (the cache grows as needed); with a window W and a sink S it has N = ring_slots(W)
    slots, the sink positions 0 .. S-1 in slots 0 .. S-1 and a ring of the latest positions in the others
    (position u >= S at slot S + (u - S) mod (N - S)), so its size and each step's cost are bounded by W, not
    by the frame. A step may feed a row several positions (guesses, for speculative decoding) and rewind() may
    take some back: the ring keeps SPEC_SLOTS positions more than the window, so positions fed and taken back
    never overwrite one still in view. self.slot_pos records the position each slot holds (-1: none); a position
    sees exactly the slots whose position is in its view (spec §5), whatever else the cache holds.
    """

    def __init__(self, engine: Engine, batch: int) -> None:
        self.e = engine
        self.pos = np.zeros(batch, dtype=np.int64)
        # the caches: numpy arrays on the fused path, torch tensors (on the engine's device) on the reference path
        self.k: list = []  # per layer: views of k_all / v_all
        self.v: list = []
        self.k_all = self.v_all = None
        self.kn_all = None  # engine 2 on the CPU: a bound on each key block's |k|**2 (int16 caches), or the
        # exponents of 8-bit codes (coder 1 version 3)
        self.kn: list[np.ndarray] = []
        self.slot_pos = np.full((batch, 0), -1, dtype=np.int64)
        self.cap = 0
        self._grow(batch, ring_slots(engine.window) if engine.window else _whole_blocks(CACHE_STEP))

    def _grow(self, batch: int, cap: int) -> None:
        """Give the caches room for cap slots.

        Each cache is one tensor over all layers: large enough to be its own mapping, so a grown cache's old
        block goes back to the system instead of fragmenting the heap (measured: 1.4 GB peak RSS decoding 4 x
        8 KiB chunks with per-layer blocks). v fits int16 (clamped to +-32767), rotated k too with a window (clamped
        again after RoPE), else int32 (|k'| <= 2**15.5); the fused path keeps them so, the torch path float64 for
        its BLAS products. Rounded to 8-bit codes (coder 1 version 3) they are kept as the codes and exponents
        where the SIMD blocks read them (Engine.code_cache): a byte an element.
        """
        e = self.e
        kt = "int16" if e.k_limit == QKV_LIMIT else "int32"
        if e.code_cache:  # 8-bit codes (coder 1 version 3), and each block's 16 key and 16 value exponents
            woven = fz.woven_shapes(cap, e.hd)[0]
            caches = (("k_all", "int8", woven), ("v_all", "int8", (cap, e.hd)),
                      ("kn_all", "int8", (woven[0], 2, fz.simd.QK_KEYS)))
        elif e.fused:  # keys in the woven layout of the SIMD attention blocks, a squared norm for each block of them
            woven = fz.woven_shapes(cap, e.hd)[0]
            caches = (("k_all", kt, woven), ("v_all", "int16", (cap, e.hd)), ("kn_all", "float64", woven[:1]))
        else:
            caches = (("k_all", "float64", (cap, e.hd)), ("v_all", "float64", (cap, e.hd)))
        self.k, self.v, self.kn = [], [], []  # drop the views, so that each old block is freed as soon as it is
        # copied
        for name, dtype, tail in caches:
            shape = (e.n_layers, batch, e.nkv) + tail
            new = (np.zeros(shape, dtype) if e.fused else
                   torch.zeros(shape, dtype=getattr(torch, dtype), device=e.device))
            old = getattr(self, name)
            if old is not None:  # slots (or blocks of them) along axis 3
                new[:, :, :, : old.shape[3]] = old
            setattr(self, name, new)
            del old
        slot_pos = np.full((batch, cap), -1, dtype=np.int64)
        slot_pos[:, : self.cap] = self.slot_pos
        self.slot_pos = slot_pos
        self.cap = cap
        self._simd: bool | None = None  # whether the caches suit the SIMD attention blocks (known once used)
        self._views()

    def _views(self) -> None:
        self.k, self.v = list(self.k_all), list(self.v_all)
        self.kn = [] if self.kn_all is None else list(self.kn_all)

    def keep(self, rows: list[int]) -> None:
        """Drop finished rows from the batch (their caches go; the others are unchanged and renumbered)."""
        self.k, self.v, self.kn = [], [], []  # as in _grow: one old block alive at a time
        self._rows_into(self, rows)

    def take(self, rows: list[int]) -> "DecodeState":
        """A new state of these rows (renumbered in this order), their caches copied; this one is unchanged."""
        other = DecodeState.__new__(DecodeState)
        other.e, other.cap, other._simd, other.kn = self.e, self.cap, self._simd, []
        self._rows_into(other, rows)
        return other

    def absorb(self, other: "DecodeState") -> None:
        """Take in the rows of another state of the same engine, after this one's (their caches copied; other is
        not to be used after)."""
        if other.cap != self.cap:  # without a window the caches grow as needed: both as large as the larger
            for state in (self, other):
                if state.cap < max(self.cap, other.cap):
                    state._grow(len(state.pos), max(self.cap, other.cap))
        self.k, self.v, self.kn = [], [], []
        join = np.concatenate if self.e.fused else torch.cat
        for name in ("k_all", "v_all", "kn_all"):
            mine = getattr(self, name)
            if mine is not None:
                setattr(self, name, join([mine, getattr(other, name)], 1))
        self.pos = np.concatenate([self.pos, other.pos])
        self.slot_pos = np.concatenate([self.slot_pos, other.slot_pos])
        self._views()

    def _rows_into(self, state: "DecodeState", rows: list[int]) -> None:
        """state's caches, positions and views: these rows of this state's, in this order."""
        for name in ("k_all", "v_all", "kn_all"):
            cache = getattr(self, name)
            if cache is not None:  # C-contiguous, as fresh caches are (numpy's cache[:, rows] is not)
                cache = np.take(cache, rows, axis=1) if self.e.fused else cache[:, rows]
            setattr(state, name, cache)
        state.pos = self.pos[rows]
        state.slot_pos = self.slot_pos[rows]
        state._views()

    def rewind(self, rows: np.ndarray, pos: np.ndarray) -> None:
        """Take back positions: row rows[i] has fed pos[i] positions again (at most SPEC_SLOTS fewer than now);
        its later positions are fed anew by the next steps."""
        if (self.pos[rows] - pos > SPEC_SLOTS).any() or (pos > self.pos[rows]).any():
            raise ValueError("rewind by at most SPEC_SLOTS positions")
        self.pos[rows] = pos

    def _slots(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slot the new position goes to, slots to look at for it) for positions pos."""
        w, s = self.e.window, self.e.sink
        if w is None:
            return pos, pos + 1
        return np.where(pos < s, pos, s + (pos - s) % (self.cap - s)), np.minimum(pos + 1, self.cap)

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        """Each entry's position: a row's entries take its next positions in order."""
        out = self.pos[rows].copy()
        seen: dict[int, int] = {}
        for j, r in enumerate(rows.tolist()):
            out[j] += seen.get(r, 0)
            seen[r] = seen.get(r, 0) + 1
        return out

    def step(self, tokens, rows: np.ndarray | None = None) -> np.ndarray:
        """Feed token ids (n,) (a numpy array or a torch tensor) to rows (indices into the batch; default all, in
        order), each at its next position; a row may appear several times, its entries fed in order at consecutive
        positions. Returns tables (n, V) int64, entry j's for the position after its own."""
        e = self.e
        tokens = blocks.host(tokens).astype(np.int64, copy=False)
        rows = np.arange(len(self.pos)) if rows is None else np.asarray(rows, dtype=np.int64)
        pos = self._positions(rows)
        if e.window is None and int(pos.max()) >= self.cap:
            self._grow(len(self.pos), _whole_blocks(max(int(pos.max()) + 1, self.cap + max(CACHE_STEP, self.cap // 2))))
        e._rope_rows(int(pos.max()) + 1)
        slot, end = self._slots(pos)
        self.slot_pos[rows, slot] = pos
        with e.pacer.step():
            if e.fused:
                tables = self._feed(tokens, rows, pos, slot, end)
            else:
                with torch.inference_mode():
                    tables = self._feed_reference(tokens, rows, pos, slot, end)
        np.add.at(self.pos, rows, 1)
        return tables

    def _simd_caches(self) -> bool:
        """Whether the caches suit the SIMD attention blocks (int16 or 8-bit codes, fz.simd_fits)."""
        if self._simd is None:
            self._simd = fz.simd_fits(self.k[0], self.v[0], self.e.exp_np)
        return self._simd

    def _one_call(self) -> bool:
        """Whether a step's layers run as single compiled calls (layerstep.py): engine 2's CPU kernels, one
        kernel thread, caches that the SIMD attention blocks take."""
        return self.e.layer_kernels is not None and th.width() == 1 and self._simd_caches()

    def _feed(self, tokens: np.ndarray, rows: np.ndarray, pos: np.ndarray, slot: np.ndarray,
              end: np.ndarray) -> np.ndarray:
        """step() once the positions and slots are known, on the fused path."""
        e = self.e
        n = tokens.shape[0]
        x = np.ascontiguousarray(e._embed(tokens))
        g, d, nkv = e.nh // e.nkv, e.hd, e.nkv
        q = np.empty((n, nkv, g, d), np.float64)
        o = np.empty((n, e.nh * d), np.int64)
        exp = e.exp_np if e.exp32 is None else e.exp32  # int32 entries: one gather of 16 (simd.py)
        if self._one_call():
            h = np.empty((n, e.cfg["intermediate"]), np.int64)
            for (lins, epilogues), kc, vc, kn in zip(e.layer_kernels, self.k, self.v, self.kn):
                layerstep.layer(x, e.eps, lins, epilogues, e.cfg["v_bits"], 2 * e.cfg["mlp_bits"], rows, pos, slot,
                                end, e.cos_np, e.sin_np, q, kc, vc, kn, e.k_limit, e.kv8, e.score_shift, exp,
                                e.window or 0, e.sink, self.slot_pos, e.silu_deltas, o, h)
            return e._tables_fused(x)
        tables = self._side_by_side(x, rows, pos, slot, end, q, o, exp)
        if tables is not None:
            return tables
        for i, lay in enumerate(e.layers):
            fz.qkv_rope_rows(*e._mm(lay["qkv"], x), rows, pos, slot, e.cos_np, e.sin_np, q, self.k[i], self.v[i],
                             self.kn[i], e.k_limit, e.kv8)
            fz.attend_rows(q, self.k[i], self.v[i], self.kn[i], rows, end, e.score_shift, exp, o, pos,
                           e.window or 0, e.sink, e.cos_np, e.sin_np, e.k_limit, self.slot_pos)
            e._rest_fused(lay, x, o)
        return e._tables_fused(x)

    def _side_by_side(self, x: np.ndarray, rows: np.ndarray, pos: np.ndarray, slot: np.ndarray, end: np.ndarray,
                      q: np.ndarray, o: np.ndarray, exp: np.ndarray) -> np.ndarray | None:
        """The layers and the tables of a step on th.width() threads side by side, each running its part of every
        layer and of the tables in compiled code (layerstep.layer_part, tables_part), where the one-call layers'
        conditions hold but for the width: the tables; None (nothing done) where they do not, or the partner
        threads are busy."""
        e, parts = self.e, th.width()
        if e.layer_kernels is None or parts == 1 or e.cfg["intermediate"] % blocks.GROUP or not self._simd_caches():
            return None
        n = x.shape[0]
        h = np.empty((n, e.cfg["intermediate"]), np.int64)
        norms = np.empty(q.shape[:2])
        outs = [np.empty((n, lin[4].shape[0]), np.int64) for lin in e.layer_kernels[0][0]]  # lin[4]: mult (N,)
        logits, tables = np.empty((n, e.vocab_size), np.int64), np.empty((n, e.vocab_size), np.int64)
        sync = barrier.new(parts)

        def part(t: int) -> Callable[[], None]:
            def run() -> None:
                met = 0
                for (lins, epilogues), kc, vc, kn in zip(e.layer_kernels, self.k, self.v, self.kn):
                    met = layerstep.layer_part(t, parts, sync, met, x, e.eps, lins, epilogues, e.cfg["v_bits"],
                                               2 * e.cfg["mlp_bits"], rows, pos, slot, end, e.cos_np, e.sin_np, q,
                                               kc, vc, kn, e.k_limit, e.kv8, e.score_shift, exp, e.window or 0,
                                               e.sink, self.slot_pos, e.silu_deltas, o, h, norms, *outs)
                    if met < 0:  # another part failed: its error is raised
                        return
                layerstep.tables_part(t, parts, sync, met, x, e.eps, e.head.kernel, e.head.fused_args, e.exp_np,
                                      TOTAL, logits, tables)
            return run

        return tables if th.side_by_side([part(t) for t in range(parts)], lambda: barrier.fail(sync)) else None

    def _feed_reference(self, tokens: np.ndarray, rows: np.ndarray, pos: np.ndarray, slot: np.ndarray,
                        end: np.ndarray) -> np.ndarray:
        """step() once the positions and slots are known, on the torch path: one entry at a time."""
        e = self.e
        x = torch.from_numpy(e._embed(tokens[:, None])).to(e.device)
        out = []
        for j, r in enumerate(rows.tolist()):
            xr = x[j: j + 1]
            p, u, m = int(pos[j]), int(slot[j]), int(end[j])
            held = torch.from_numpy(self.slot_pos[r, :m]).to(e.device)
            hidden = e._visible(torch.tensor([p], device=e.device), held) | (held < 0)
            hidden = hidden.repeat(e.nh // e.nkv, 1)
            for i, lay in enumerate(e.layers):
                qr, kr, vr = e._qkv(lay, xr, torch.tensor([p], device=e.device))
                self.k[i][r, :, u] = kr[0, :, 0].double()
                self.v[i][r, :, u] = vr[0, :, 0].double()
                qq = qr.double().reshape(1, e.nkv, -1, e.hd)
                o = e._attend(qq, self.k[i][r: r + 1, :, :m], self.v[i][r: r + 1, :, :m], hidden,
                              torch.tensor([p], device=e.device))
                xr = (xr + e._attn_out(lay, o.view(1, e.nkv, e.nh // e.nkv, 1, e.hd).permute(0, 3, 1, 2, 4))
                      ).clamp_(-RESID_LIMIT, RESID_LIMIT)
                xr = (xr + e._mlp(lay, xr)).clamp_(-RESID_LIMIT, RESID_LIMIT)
            out.append(e._tables(xr[:, 0]))
        return torch.cat(out).cpu().numpy()
