#!/usr/bin/env python3
"""Rate and speed against the attention window W (issue 14): what a longer view buys in 64 KiB frames.

    python -m tools.window_curve [--windows 1024,2048,4096,8192] [--bytes 65536] [--files alice29.txt book2]
                                 [--steps 16] [--threads N] [--out FILE]

Each file's first --bytes is compressed in one frame (chunk size = --bytes) with the default model at each
window, as `lmcodec -9 --window W` writes it: whole .lmz bytes and compression seconds. A decoding step's cost
is what a window changes on the decoder's side: one row's step with its ring full (W positions held), --steps
timed. The windows run one after another in one process, so their times compare; absolute speeds depend on the
machine and its load (recorded).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools import _common as C


def step_ms(codec, window: int, ids: list[int], steps: int) -> float:
    """Milliseconds per decoding step of one row whose ring is full."""
    import numpy as np
    import torch

    from lmcodec.coding import versions

    e = codec.engine_for(window, versions.kv8_of(versions.CODER_VERSION))
    st = e.start(1)
    fill = 256  # positions fed per step while filling: timing only, so slot reuse within a step does not matter
    pos = 0
    while pos < window:
        n = min(fill, window - pos)
        st.step(torch.tensor([ids[(pos + j) % len(ids)] for j in range(n)]), np.zeros(n, dtype=np.int64))
        pos += n
    t = time.perf_counter()
    for j in range(steps):
        st.step(torch.tensor([ids[(pos + j) % len(ids)]]))
    return (time.perf_counter() - t) / steps * 1e3


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", default="1024,2048,4096,8192")
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--files", nargs="*", default=["alice29.txt", "book2"])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import lmcodec
    from lmcodec.io.lmzfile import get_codec

    windows = [int(w) for w in args.windows.split(",")]
    inputs = {name: C.find_corpus_file(name).read_bytes()[: args.bytes] for name in args.files}
    codec = get_codec("default", threads=args.threads)
    ids = codec.tokenizer.encode(next(iter(inputs.values())))
    rows = []
    for w in windows:
        sizes, secs = [], 0.0
        for data in inputs.values():
            t = time.perf_counter()
            out = lmcodec.compress(data, chunk_size=args.bytes, window=w, threads=args.threads)
            secs += time.perf_counter() - t
            sizes.append(len(out))
        ms = step_ms(codec, w, ids, args.steps)
        rows.append((w, sizes, secs, ms))
        print(f"W {w}: {sizes} bytes, {secs:.0f} s, step {ms:.1f} ms", flush=True)
    total_in = sum(len(d) for d in inputs.values())
    base = next((r for r in rows if r[0] == 2048), rows[0])
    lines = ["# Rate and speed against the attention window", "", C.machine_info(), "",
             (f"First {args.bytes:,} bytes of each file in one frame, default model, whole .lmz bytes; compression "
              f"seconds for all files; one decoding step of one row with its ring full ({args.steps} timed)."), "",
             ("| window | " + " | ".join(args.files) + f" | total | vs {base[0]:,} | compress kB/s "
              f"| time vs {base[0]:,} | decode step ms | step vs {base[0]:,} |"),
             "|---:|" + "---:|" * (len(args.files) + 6)]
    for w, sizes, secs, ms in rows:
        lines.append(f"| {w:,} | " + " | ".join(f"{s:,}" for s in sizes)
                     + f" | {sum(sizes):,} | {sum(sizes) / sum(base[1]):.3f} | {total_in / secs / 1e3:.2f}"
                     + f" | {secs / base[2]:.2f} | {ms:.1f} | {ms / base[3]:.2f} |")
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
