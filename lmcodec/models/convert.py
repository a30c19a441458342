"""Float Llama-family checkpoint -> integer model file (spec/engine.md, "Conversion").

Deterministic: only IEEE-754 binary64 element-wise operations and exact max reductions (numpy), no sums or
matmuls whose order could vary, and tables computed once here so that the engine never evaluates exp, cos
or sigmoid itself. The same float weights give a byte-identical file on any machine.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.intmodel import FORMAT, FORMAT_VERSION, write_safetensors
from ..engine.lazytorch import torch
from .catalog import CONVERTER_VERSIONS

# Fixed-point fractional bits of the engine's integer quantities (recorded in the file's config).
RESID_BITS = 12
Q_BITS = 12
K_BITS = 9
V_BITS = 8
MLP_BITS = 12
EXP_FRAC_BITS = 10  # logits and attention scores in units of 2**-10 nat
EXP_ONE_BITS = 20  # exp table value at 0
ROPE_BITS = 14
SILU_RANGE = 16  # silu table covers |g| <= 16
# Activation grid per site: 15 bits, as two int8 matmuls. Measured on SmolLM2-135M (6 KiB of English): 8 bits
# everywhere cost +2.4% against float32, 15 bits on qkv and down +1.7%, 15 bits everywhere +0.9%.
ACT_BITS = {"qkv": 15, "o": 15, "gate_up": 15, "down": 15, "head": 15}


def _quant_rows(w: np.ndarray, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric quantization to [-qmax, qmax]: returns int8 values and the float64 row scales."""
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -qmax, qmax).astype(np.int8)
    return q, scale


def _mult_shift(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Represent positive factors c as M * 2**-S with M in [2**14, 2**15] and S >= 1."""
    m, e = np.frexp(c)
    mult = np.rint(m * 2.0**15).astype(np.int64)
    shift = (15 - e).astype(np.int64)
    if (shift < 1).any():
        raise ValueError("a weight scale is too large for the integer engine")
    return mult, shift


def _linear(name: str, w: np.ndarray, out_bits: np.ndarray, act_bits: int, bias: np.ndarray | None,
            out: dict[str, torch.Tensor]) -> None:
    q, scale = _quant_rows(w, 63)
    qmax = 127 * 128 if act_bits == 15 else 127
    mult, shift = _mult_shift(scale * np.exp2(out_bits) / qmax)
    out[name + ".w"] = torch.from_numpy(np.ascontiguousarray(q.T))
    out[name + ".mult"] = torch.from_numpy(mult)
    out[name + ".shift"] = torch.from_numpy(shift)
    if bias is not None:
        out[name + ".bias"] = torch.from_numpy(np.rint(bias * np.exp2(out_bits)).astype(np.int64))


def _tables(head_dim: int, theta: float, context: int, out: dict[str, torch.Tensor]) -> None:
    half = head_dim // 2
    inv = theta ** (-(np.arange(half, dtype=np.float64) * 2) / head_dim)
    ang = np.arange(context, dtype=np.float64)[:, None] * inv[None, :]
    out["rope.cos"] = torch.from_numpy(np.rint(np.cos(ang) * 2**ROPE_BITS).astype(np.int32))
    out["rope.sin"] = torch.from_numpy(np.rint(np.sin(ang) * 2**ROPE_BITS).astype(np.int32))
    n = int(math.ceil((EXP_ONE_BITS + 1) * math.log(2) * 2**EXP_FRAC_BITS)) + 2
    e = np.rint(np.exp(-np.arange(n, dtype=np.float64) / 2**EXP_FRAC_BITS) * 2**EXP_ONE_BITS).astype(np.int64)
    assert e[-1] == 0 and e[-2] == 0
    out["exp"] = torch.from_numpy(e[: int(np.argmax(e == 0)) + 1])
    g = np.arange(-SILU_RANGE << MLP_BITS, (SILU_RANGE << MLP_BITS) + 1, dtype=np.float64) / 2**MLP_BITS
    out["silu"] = torch.from_numpy(np.rint(g / (1.0 + np.exp(-g)) * 2**MLP_BITS).astype(np.int64))


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2 byte-level alphabet: printable stand-in character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes_table(tokenizer_json: str, vocab_size: int) -> list[bytes]:
    """The bytes each token id stands for; the decoder needs nothing else from the tokenizer."""
    tj = json.loads(tokenizer_json)
    vocab: dict[str, int] = dict(tj["model"]["vocab"])
    table = [b""] * vocab_size
    dec = json.dumps(tj.get("decoder"))
    special = {t["id"]: t["content"] for t in tj.get("added_tokens", [])}
    if "ByteLevel" in dec:
        b2u = _bytes_to_unicode()
        for tok, i in vocab.items():
            if i < vocab_size and i not in special:
                table[i] = bytes(b2u[ch] for ch in tok)
    elif "ByteFallback" in dec:  # SentencePiece-style (Llama 2, Mistral): ▁ is a space, <0xNN> a raw byte
        for tok, i in vocab.items():
            if i >= vocab_size or i in special:
                continue
            if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
                table[i] = bytes([int(tok[3:5], 16)])
            else:
                table[i] = tok.replace("▁", " ").encode("utf-8")
    else:
        raise ValueError("unsupported tokenizer: need a byte-level BPE or a SentencePiece byte-fallback tokenizer")
    for i, content in special.items():
        if i < vocab_size:
            table[i] = content.encode("utf-8")
    return table


@dataclass(frozen=True)
class Shape:
    """What a converter reads from a Hugging Face Llama-family config."""
    hidden: int
    nh: int
    nkv: int
    hd: int
    n_layers: int
    intermediate: int
    context: int
    theta: float
    eps: float
    bos_id: int

    @classmethod
    def of(cls, config: dict) -> "Shape":
        nh = config["num_attention_heads"]
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise ValueError(f"unsupported RoPE scaling {rope!r}")
        bos = config.get("bos_token_id")
        return cls(hidden=config["hidden_size"], nh=nh, nkv=config.get("num_key_value_heads") or nh,
                   hd=config.get("head_dim") or config["hidden_size"] // nh, n_layers=config["num_hidden_layers"],
                   intermediate=config["intermediate_size"],
                   context=int(config.get("max_position_embeddings", 2048)),
                   theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                   eps=float(config.get("rms_norm_eps", 1e-6)), bos_id=int(bos if bos is not None else 0))


def finish(out: dict[str, torch.Tensor], shape: Shape, vocab: int, tokenizer_json: str, fields: dict,
           meta: dict[str, str], out_path: str | Path) -> None:
    """Add the tables and the token bytes to a converter's tensors and write the file: the config is the shape,
    the fixed-point widths and the engine's own fields; meta names the format version, converter and source."""
    _tables(shape.hd, shape.theta, shape.context, out)
    tb = token_bytes_table(tokenizer_json, vocab)
    offs = np.zeros(vocab + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(b) for b in tb])
    out["tokens.bytes"] = torch.frombuffer(bytearray(b"".join(tb) or b"\0"), dtype=torch.uint8).clone()
    out["tokens.offsets"] = torch.from_numpy(offs)
    cfg = {
        "arch": "llama", "n_layers": shape.n_layers, "hidden": shape.hidden, "n_heads": shape.nh,
        "n_kv_heads": shape.nkv, "head_dim": shape.hd, "intermediate": shape.intermediate, "vocab_size": vocab,
        "context": shape.context, "bos_id": shape.bos_id, "eps_int": int(round(shape.eps * 2.0 ** (2 * RESID_BITS))),
        "resid_bits": RESID_BITS, "q_bits": Q_BITS, "k_bits": K_BITS, "v_bits": V_BITS, "mlp_bits": MLP_BITS,
        "exp_frac_bits": EXP_FRAC_BITS, **fields,
    }
    write_safetensors(out, {"format": FORMAT, **meta, "config": json.dumps(cfg, sort_keys=True),
                           "tokenizer": tokenizer_json}, Path(out_path))


def convert(state: dict[str, torch.Tensor], config: dict, tokenizer_json: str, model_id: str,
            source_sha256: str, out_path: str | Path) -> None:
    """Write the integer model file for a float Llama-family state dict (HF names) and its config to out_path
    (the registry gives a temporary file that it renames once the file is whole)."""
    def w(name: str) -> np.ndarray:
        return state[name].detach().to(torch.float64).numpy()

    sh = Shape.of(config)
    hidden, nh, nkv, hd, n_layers = sh.hidden, sh.nh, sh.nkv, sh.hd, sh.n_layers
    vocab = state["model.embed_tokens.weight"].shape[0]
    out: dict[str, torch.Tensor] = {}

    emb = w("model.embed_tokens.weight")
    q, scale = _quant_rows(emb, 127)
    mult, shift = _mult_shift(scale * 2.0**RESID_BITS)
    out["embed.w"], out["embed.mult"], out["embed.shift"] = (torch.from_numpy(q), torch.from_numpy(mult),
                                                            torch.from_numpy(shift))
    qscale = 1.0 / math.sqrt(hd)
    for i in range(n_layers):
        p = f"model.layers.{i}."
        g_in = w(p + "input_layernorm.weight")
        g_post = w(p + "post_attention_layernorm.weight")
        wq = w(p + "self_attn.q_proj.weight") * qscale
        wqkv = np.concatenate([wq, w(p + "self_attn.k_proj.weight"), w(p + "self_attn.v_proj.weight")]) * g_in
        bits = np.concatenate([np.full(nh * hd, Q_BITS), np.full(nkv * hd, K_BITS), np.full(nkv * hd, V_BITS)])
        bias = None
        if p + "self_attn.q_proj.bias" in state:  # Qwen2
            bias = np.concatenate([w(p + "self_attn.q_proj.bias") * qscale, w(p + "self_attn.k_proj.bias"),
                                   w(p + "self_attn.v_proj.bias")])
        _linear(f"layers.{i}.qkv", wqkv, bits, ACT_BITS["qkv"], bias, out)
        _linear(f"layers.{i}.o", w(p + "self_attn.o_proj.weight"), np.full(hidden, RESID_BITS), ACT_BITS["o"], None, out)
        wgu = np.concatenate([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")]) * g_post
        _linear(f"layers.{i}.gate_up", wgu, np.full(wgu.shape[0], MLP_BITS), ACT_BITS["gate_up"], None, out)
        _linear(f"layers.{i}.down", w(p + "mlp.down_proj.weight"), np.full(hidden, RESID_BITS), ACT_BITS["down"],
                None, out)
    head = w("lm_head.weight") if "lm_head.weight" in state else emb
    _linear("head", head * w("model.norm.weight"), np.full(vocab, EXP_FRAC_BITS), ACT_BITS["head"], None, out)
    finish(out, sh, vocab, tokenizer_json, {"act": ACT_BITS},
           {"format_version": FORMAT_VERSION, "converter_version": CONVERTER_VERSIONS[int(FORMAT_VERSION)],
            "model_id": model_id, "source_sha256": source_sha256}, out_path)
