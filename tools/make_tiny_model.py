"""Make the tiny Llama the tests use: a 512-token byte-level BPE and a 2-layer, hidden-64 model, briefly trained.

    python -m tools.make_tiny_model TEXT_FILE... --out tests/data/tiny-llama

The output is a Hugging Face model directory (config.json, model.safetensors, tokenizer.json), converted by
the same code as any checkpoint. It is committed, so tests do not depend on this script's determinism.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    text = "".join(p.read_bytes()[:400_000].decode("utf-8", "replace") for p in args.texts)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer)

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      rope_theta=10000.0, rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    ids = torch.tensor(tok.encode(text).ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seq = 256
    for step in range(args.steps):
        starts = torch.randint(0, len(ids) - seq - 1, (16,))
        batch = torch.stack([ids[s: s + seq] for s in starts])
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(args.out / "model.safetensors"))
    (args.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True))
    tok.save(str(args.out / "tokenizer.json"))


if __name__ == "__main__":
    main()
