#!/usr/bin/env python3
"""Where one decoding step's time goes, at a few batch sizes: the engine's incremental step split into its
kernels, and the mixer's work per symbol (predict + find over the vocabulary), with the default model.

    python -m tools.profile_decode [--context 1024] [--steps 24] [--batches 1,4,8] [--threads N] [--out FILE]

Each row: a DecodeState at --context positions (filled by steps, not timed), then --steps timed steps as a
decoder runs them (engine 2 on CPU: each layer one compiled call, layerstep.py), then --steps more kernel by
kernel (DecodeState's other path: the same kernels and integers, each call from Python), where every call is
wrapped by a timer (~1 us a call). "other" is that path's wall time not inside any timed call: Python, dispatch
and allocation, most of which the one-call layers do not pay.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from tools import _common as C


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    from lmcodec.coding import mixer as mx
    from lmcodec.engine import blocks
    from lmcodec.engine import fused as fz
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

    timed(blocks.BlockLinear, "run", "block products")
    for name, label in (("qkv_rope_rows", "qkv + rope"), ("attend_rows", "attention"),
                        ("add_residual", "residual"), ("gate_up", "SiLU gate"), ("tables", "tables (softmax over V)")):
        timed(fz, name, label)
    timed(e, "_embed", "embedding")
    ids = codec.tokenizer.encode((C.ROOT.parent / "shared/corpus/text/canterbury/alice29.txt").read_bytes()[:20000])
    lines = ["# One decoding step, by kernel", "", C.machine_info(), "",
             f"Default model, context {args.context} positions, {args.steps} steps timed each way; ms per step. "
             "\"step\": as a decoder runs it (a layer a compiled call); the rest: the same step kernel by kernel.", ""]
    labels = ["block products", "qkv + rope", "attention", "residual", "SiLU gate", "tables (softmax over V)",
              "embedding"]
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        st = e.start(b)

        def tok(j: int) -> np.ndarray:
            return np.array([ids[(j + 300 * r) % len(ids)] for r in range(b)], dtype=np.int64)

        for j in range(args.context):
            st.step(tok(j))
        t = time.perf_counter()
        for j in range(args.steps):
            st.step(tok(args.context + j))
        one = (time.perf_counter() - t) / args.steps * 1e3
        st._one_call = lambda: False  # the kernel-by-kernel path, for this state only
        st.step(tok(args.context + args.steps))  # its kernels compiled or loaded before the timing
        spent.clear()
        t = time.perf_counter()
        for j in range(args.steps):
            st.step(tok(args.context + args.steps + 1 + j))
        split = (time.perf_counter() - t) / args.steps * 1e3
        per = {k: spent[k] / args.steps * 1e3 for k in labels}
        rows.append((b, one, split, per))
        print(f"batch {b}: {one:.1f} ms a step ({split:.1f} kernel by kernel)", flush=True)
    lines += ["| batch | step | kernel by kernel | " + " | ".join(labels) + " | other | tokens/s |",
              "|---:|---:|---:|" + "---:|" * (len(labels) + 2)]
    for b, one, split, per in rows:
        other = split - sum(per.values())
        lines.append(f"| {b} | {one:.1f} | {split:.1f} | " + " | ".join(f"{per[k]:.2f}" for k in labels)
                     + f" | {other:.2f} | {1000 * b / one:.1f} |")
    # the mixer per symbol, on a real table
    tab = st.step(tok(0))[0]
    fs = mx.new_frame(4096)
    n = 200
    for i in range(n + 1):
        if i == 1:  # after a first call, which may compile
            t = time.perf_counter()
        k, ratio, esc = mx.predict(tab, e.vocab_size, fs)
        mx.find(tab, e.vocab_size, 1 << 27, k, ratio, esc, fs)
    mix_ms = (time.perf_counter() - t) / n * 1e3
    lines += ["", f"Mixer per symbol (predict + find over {e.vocab_size:,} tokens): {mix_ms:.3f} ms.", ""]
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
