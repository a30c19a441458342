"""Weights in 32-input blocks -> integer model file of engine 2 (spec/engine.md §12).

The projections keep the blocks they come in: a GGUF's Q4_0/Q4_1/Q8_0 codes unchanged, each block's two fp16
scales turned into one row's 16-bit integers (D, M) and a power of two; float weights become 8-bit blocks. The
RMSNorm weights stay a separate per-input factor (folding them into the weights, as engine 1 does, would break
the blocks). Deterministic like convert.py: binary64 element-wise operations and exact reductions only.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..engine.blocks import ACT_QMAX, BLOCK, EMBED_BITS, GAMMA_BITS, MIN_SHIFT, SCALE_LIMIT, block_shift
from ..engine.fused import F_BITS
from ..engine.lazytorch import torch
from .catalog import CONVERTER_VERSIONS
from .convert import EXP_FRAC_BITS, K_BITS, MLP_BITS, Q_BITS, RESID_BITS, V_BITS, Shape, _mult_shift, finish
from .gguf_blocks import Blocks, concat, quantize_q8

ENGINE = 2  # the model file's format_version: which engine computes on it


def _linear(name: str, b: Blocks, out_bits: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray | None,
            out: dict[str, torch.Tensor]) -> None:
    n, k = b.codes.shape
    nb = k // BLOCK
    big = np.maximum(np.abs(b.d).max(axis=1), np.abs(b.m).max(axis=1))
    safe = np.where(big > 0, big, 1.0)
    e = np.floor(np.log2(SCALE_LIMIT / safe)).astype(np.int64)  # the largest e with big * 2**e <= SCALE_LIMIT
    e = np.where(safe * np.exp2(e) > SCALE_LIMIT, e - 1, e)
    d = np.rint(b.d * np.exp2(e)[:, None])
    m = np.rint(b.m * np.exp2(e)[:, None])
    assert np.abs(d).max(initial=0) <= SCALE_LIMIT and np.abs(m).max(initial=0) <= SCALE_LIMIT
    # real output = A 2**(e_t - 16 - e) / 127; in units of 2**-out_bits, after the shift S_A (spec §12.3)
    mult, shift = _mult_shift(np.exp2(block_shift(nb) + out_bits - F_BITS - e) / ACT_QMAX)
    if (shift < MIN_SHIFT).any():
        raise ValueError(f"{name}: a block scale is too large for the integer engine")
    out[name + ".codes"] = torch.from_numpy(np.ascontiguousarray(b.codes))
    out[name + ".d"] = torch.from_numpy(d.astype(np.int16))
    out[name + ".m"] = torch.from_numpy(m.astype(np.int16))
    out[name + ".mult"] = torch.from_numpy(mult)
    out[name + ".shift"] = torch.from_numpy(shift)
    if bias is not None:
        out[name + ".bias"] = torch.from_numpy(np.rint(bias * np.exp2(out_bits)).astype(np.int64))
    if gamma is not None:
        g = np.rint(gamma * 2.0**GAMMA_BITS).astype(np.int64)
        if np.abs(g).max() >= 1 << 23:
            raise ValueError(f"{name}: an RMSNorm weight is too large for the integer engine")
        out[name + ".gamma"] = torch.from_numpy(g)


def convert(weights: dict[str, Blocks | np.ndarray], config: dict, tokenizer_json: str, model_id: str,
            source_sha256: str, out_path: str | Path) -> None:
    """Write the engine-2 model file for Llama-family weights under Hugging Face names (Blocks for the
    projections and the embedding, or float arrays, which become 8-bit blocks; float64 norms)."""
    def blocks(name: str) -> Blocks:
        w = weights[name]
        return w if isinstance(w, Blocks) else quantize_q8(np.asarray(w, dtype=np.float64))

    def vec(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=np.float64)

    sh = Shape.of(config)
    hidden, nh, nkv, hd, n_layers = sh.hidden, sh.nh, sh.nkv, sh.hd, sh.n_layers
    for dim in (hidden, sh.intermediate):
        if dim % BLOCK:
            raise ValueError(f"a model dimension of {dim} is not a whole number of {BLOCK}-blocks")
    out: dict[str, torch.Tensor] = {}

    emb = blocks("model.embed_tokens.weight")
    if emb.codes.dtype != np.int8 or np.abs(emb.m).max(initial=0) > 0:
        emb = quantize_q8(emb.dequantize())
    vocab = emb.codes.shape[0]
    out["embed.codes"] = torch.from_numpy(np.ascontiguousarray(emb.codes))
    out["embed.d"] = torch.from_numpy(np.rint(emb.d * 2.0**EMBED_BITS).astype(np.int64))
    qscale = 1.0 / math.sqrt(hd)
    for i in range(n_layers):
        p = f"model.layers.{i}."
        qkv = concat([blocks(p + "self_attn.q_proj.weight").rows(qscale), blocks(p + "self_attn.k_proj.weight"),
                      blocks(p + "self_attn.v_proj.weight")])
        bits = np.concatenate([np.full(nh * hd, Q_BITS), np.full(nkv * hd, K_BITS), np.full(nkv * hd, V_BITS)])
        bias = None
        if p + "self_attn.q_proj.bias" in weights:  # Qwen2
            bias = np.concatenate([vec(p + "self_attn.q_proj.bias") * qscale, vec(p + "self_attn.k_proj.bias"),
                                   vec(p + "self_attn.v_proj.bias")])
        _linear(f"layers.{i}.qkv", qkv, bits, bias, vec(p + "input_layernorm.weight"), out)
        _linear(f"layers.{i}.o", blocks(p + "self_attn.o_proj.weight"), np.full(hidden, RESID_BITS), None, None, out)
        gu = concat([blocks(p + "mlp.gate_proj.weight"), blocks(p + "mlp.up_proj.weight")])
        _linear(f"layers.{i}.gate_up", gu, np.full(gu.codes.shape[0], MLP_BITS), None,
                vec(p + "post_attention_layernorm.weight"), out)
        _linear(f"layers.{i}.down", blocks(p + "mlp.down_proj.weight"), np.full(hidden, RESID_BITS), None, None, out)
    head = blocks("lm_head.weight") if "lm_head.weight" in weights else emb
    _linear("head", head, np.full(vocab, EXP_FRAC_BITS), None, vec("model.norm.weight"), out)
    finish(out, sh, vocab, tokenizer_json, {"block": BLOCK, "gamma_bits": GAMMA_BITS, "embed_bits": EMBED_BITS},
           {"format_version": str(ENGINE), "converter_version": CONVERTER_VERSIONS[ENGINE], "model_id": model_id,
            "source_sha256": source_sha256}, out_path)
