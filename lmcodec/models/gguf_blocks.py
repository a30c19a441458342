"""A GGUF file's weights as the blocks it stores, for the engine that computes on them (spec/engine.md §12).

Q4_0, Q4_1 and Q8_0 tensors are read as they are stored: per block of 32 inputs of one output row, integer codes
c and two scales, the weight being w = d * c + m exactly (fp16 d and m held in binary64, which is exact). Other
tensor types are dequantized by the gguf package and come back as floats, which the converter quantizes to
8-bit blocks. Only the tensors a Llama-family model needs are read; llama.cpp's row permutation of q and k
(its RoPE layout) is undone, as transformers does when it loads a GGUF.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.blocks import BLOCK


@dataclass
class Blocks:
    """Weights (N outputs, K inputs) as w[n, j] = d[n, j // 32] * codes[n, j] + m[n, j // 32]."""
    codes: np.ndarray  # (N, K) uint8 (0..15) or int8 (-127..127)
    d: np.ndarray  # (N, K/32) float64
    m: np.ndarray  # (N, K/32) float64

    def rows(self, scale: float = 1.0) -> "Blocks":
        """The same blocks with every weight multiplied by scale (exact for powers of two)."""
        return Blocks(self.codes, self.d * scale, self.m * scale)

    def dequantize(self) -> np.ndarray:
        k = self.codes.shape[1]
        return (np.repeat(self.d, BLOCK, 1)[:, :k] * self.codes + np.repeat(self.m, BLOCK, 1)[:, :k])


def quantize_q8(w: np.ndarray) -> Blocks:
    """Float weights (N, K) to 8-bit blocks: per block d = max|w| / 127, codes = rint(w / d), m = 0 (binary64,
    element-wise, so every machine gives the same blocks)."""
    n, k = w.shape
    if k % BLOCK:
        raise ValueError(f"an input dimension of {k} is not a whole number of {BLOCK}-blocks")
    wb = w.reshape(n, k // BLOCK, BLOCK)
    d = np.abs(wb).max(axis=2) / 127.0
    safe = np.where(d > 0, d, 1.0)
    codes = np.clip(np.rint(wb / safe[:, :, None]), -127, 127).astype(np.int8).reshape(n, k)
    return Blocks(codes, d, np.zeros_like(d))


def concat(parts: list[Blocks]) -> Blocks:
    """Rows of several tensors stacked (q, k, v; gate, up): all codes become int8 when any part is signed."""
    signed = any(p.codes.dtype == np.int8 for p in parts)
    if signed and any(p.codes.dtype == np.uint8 and p.codes.max(initial=0) > 127 for p in parts):
        raise ValueError("cannot stack unsigned codes above 127 with signed ones")
    codes = np.concatenate([p.codes.astype(np.int8 if signed else np.uint8) for p in parts])
    return Blocks(codes, np.concatenate([p.d for p in parts]), np.concatenate([p.m for p in parts]))


def _fp16(raw: np.ndarray) -> np.ndarray:
    return raw.copy().view(np.float16).astype(np.float64)


def _read(t) -> Blocks | np.ndarray:
    """One GGUF tensor: Blocks for the types the engine computes on, else float64 (rows, cols)."""
    from gguf import GGMLQuantizationType as Q, dequantize

    data = np.asarray(t.data)
    n = int(t.shape[1]) if len(t.shape) > 1 else 1
    k = int(t.shape[0])
    kind = t.tensor_type
    if kind in (Q.Q4_0, Q.Q4_1, Q.Q8_0):
        raw = data.reshape(n, k // BLOCK, -1)
        d = _fp16(raw[:, :, 0:2]).reshape(n, -1)
        if kind == Q.Q8_0:
            codes = raw[:, :, 2:].copy().view(np.int8).reshape(n, k)
            return Blocks(codes, d, np.zeros_like(d))
        off = 4 if kind == Q.Q4_1 else 2
        qs = raw[:, :, off:]
        codes = np.concatenate([qs & 15, qs >> 4], axis=2).astype(np.uint8).reshape(n, k)
        m = _fp16(raw[:, :, 2:4]).reshape(n, -1) if kind == Q.Q4_1 else -8.0 * d
        return Blocks(codes, d, m)
    return dequantize(data, kind).astype(np.float64).reshape(n, k) if n > 1 else \
        dequantize(data, kind).astype(np.float64).reshape(-1)


def _unpermute(a: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row order (the two RoPE halves of each head interleaved) on rows of a."""
    dim = a.shape[0] // heads // 2
    return a.reshape(heads, dim, 2, *a.shape[1:]).swapaxes(2, 1).reshape(a.shape)


def read_weights(path: Path, config: dict) -> dict[str, Blocks | np.ndarray]:
    """Weights under Hugging Face Llama names: Blocks for projections and the embedding, float64 for norms."""
    from gguf import GGUFReader

    nh = config["num_attention_heads"]
    nkv = config.get("num_key_value_heads") or nh
    names = {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
             "output_norm.weight": "model.norm.weight"}
    per_layer = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                 "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                 "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
                 "ffn_norm": "post_attention_layernorm"}
    out: dict[str, Blocks | np.ndarray] = {}
    for t in GGUFReader(str(path)).tensors:
        name = t.name
        if name.startswith("blk."):
            _, i, part, kind = name.split(".", 3)
            if part not in per_layer or kind not in ("weight", "bias"):
                continue
            hf = f"model.layers.{i}.{per_layer[part]}.{kind}"
        elif name in names:
            hf = names[name]
        else:
            continue
        w = _read(t)
        if ".attn_q." in name or ".attn_k." in name:
            heads = nh if ".attn_q." in name else nkv
            w = Blocks(*(_unpermute(a, heads) for a in (w.codes, w.d, w.m))) if isinstance(w, Blocks) \
                else _unpermute(w, heads)
        if isinstance(w, np.ndarray) and w.ndim == 2:
            w = quantize_q8(w)
        out[hf] = w
    return out

