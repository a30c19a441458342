#!/usr/bin/env python3
"""Where one decoding step's time goes, at batch 1, 2 and 4 (issue 12): the engine's incremental step split into
its kernels, and the mixer's work per symbol (predict + find over the vocabulary), with the default model. Each
batch is timed twice in the same run: with the SIMD attention blocks (lmcodec/engine/simd.py) and with the loop kernel.

    python -m tools.profile_decode [--context 1024] [--steps 24] [--batches 1,2,4] [--threads N] [--out FILE]

Each row: a DecodeState at --context positions (filled by steps, not timed), then --steps timed steps; every
kernel call is wrapped by a timer (the wrapping costs ~1 us a call, small against the kernels). "other" is the
step's wall time not inside any timed call: Python, dispatch and allocation.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from tools import _common as C


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    from lmcodec.coding import mixer as mx
    from lmcodec.engine import fused as fz
    from lmcodec.engine import passes
    from lmcodec.io.lmzfile import get_codec

    codec = get_codec("default", threads=args.threads)
    e = codec.engine
    spent: dict[str, float] = defaultdict(float)

    def timed(owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[label] += time.perf_counter() - t

        setattr(owner, name, wrapper)

    timed(passes, "matmul_i8", "int8 matmuls")
    for name, label in (("quantize", "quantize"), ("qkv_rope_rows", "qkv + rope"), ("attend_rows", "attention"),
                        ("add_residual", "requant + residual"), ("gate_up", "SiLU gate"),
                        ("tables", "tables (softmax over V)")):
        timed(fz, name, label)
    timed(e, "_embed", "embedding")
    loop_attention = [False]
    attend = fz.attend_rows
    fz.attend_rows = lambda *a: attend(*a, use_simd=not loop_attention[0])  # inside the timer's wrapper
    ids = codec.tokenizer.encode((C.ROOT.parent / "shared/corpus/text/canterbury/alice29.txt").read_bytes()[:20000])
    lines = ["# One decoding step, by kernel", "", C.machine_info(), "",
             f"Default model, context {args.context} positions, {args.steps} steps timed; ms per step.", ""]
    labels = ["int8 matmuls", "quantize", "qkv + rope", "attention", "requant + residual", "SiLU gate",
              "tables (softmax over V)", "embedding"]
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        st = e.start(b)
        tok = lambda j: torch.tensor([ids[(j + 300 * r) % len(ids)] for r in range(b)], dtype=torch.long)
        for j in range(args.context):
            loop_attention[0] = j == 0  # both kernels compiled before anything is timed
            st.step(tok(j))
        for loop in (False, True):
            loop_attention[0] = loop
            spent.clear()
            t = time.perf_counter()
            for j in range(args.steps):
                st.step(tok(args.context + j))
            wall = (time.perf_counter() - t) / args.steps * 1e3
            per = {k: spent[k] / args.steps * 1e3 for k in labels}
            name = f"{b} (loop attention)" if loop else str(b)
            rows.append((name, b, wall, per))
            print(f"batch {name}: {wall:.1f} ms/step", flush=True)
    lines += ["| batch | step | " + " | ".join(labels) + " | other | tokens/s |",
              "|---:|---:|" + "---:|" * (len(labels) + 2)]
    for name, b, wall, per in rows:
        other = wall - sum(per.values())
        lines.append(f"| {name} | {wall:.1f} | " + " | ".join(f"{per[k]:.2f}" for k in labels)
                     + f" | {other:.2f} | {1000 * b / wall:.1f} |")
    # the mixer per symbol, on a real table
    tab = st.step(tok(0))[0]
    fs = mx.new_frame(4096)
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        k, ratio, esc = mx.predict(tab, e.vocab_size, fs)
        mx.find(tab, e.vocab_size, 1 << 27, k, ratio, esc, fs)
    mix_ms = (time.perf_counter() - t) / n * 1e3
    lines += ["", f"Mixer per symbol (predict + find over {e.vocab_size:,} tokens): {mix_ms:.3f} ms.", ""]
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
