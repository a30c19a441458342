#!/usr/bin/env python
"""Ideal code length against chunk size: what independent chunks cost in context.

    python -m tools.chunk_curve FILE... [--sizes 1024,2048,4096,8192,16384] [--max-bytes 16384] [--float]
                                [--batch 4] [--plot out.png] [--out RESULT.md]

The first --max-bytes bytes of each file are cut into chunks of each size exactly as the codec cuts them
(UTF-8 boundaries, at most context - 1 tokens, BOS first), so every size codes the same bytes. Prints bits per
byte of the integer engine (sum of -log2(freq / 2**28)) per file and over all files (total bits / total bytes),
and with --float the float32 model's figure and the difference. --plot needs matplotlib (skipped if absent).
A FILE that does not exist is looked up by name under ../shared/corpus/text.
"""
from __future__ import annotations

import argparse
import sys
import time

from tools import _common as C


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--sizes", default="1024,2048,4096,8192,16384")
    ap.add_argument("--max-bytes", type=int, default=16384)
    ap.add_argument("--float", action="store_true", help="also the float32 model")
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=4, help="engine rows at a time")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--plot", help="write a PNG plot here (needs matplotlib)")
    ap.add_argument("--out", help="also write the report here")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]

    from lmcodec import models
    from lmcodec.engine import Engine

    t_start = time.perf_counter()
    m = models.resolve(a.model)
    eng = Engine(m, device="cpu", threads=a.threads)
    fm = C.load_float_model() if a.float else None
    files = [C.find_corpus_file(f) for f in a.files]
    datas = [p.read_bytes()[: a.max_bytes] for p in files]

    # res[size] = list over files of (bytes, tokens, int bits, float bits or None)
    res: dict[int, list] = {}
    for size in sizes:
        res[size] = []
        for p, data in zip(files, datas):
            ids, covered = C.tokenize_chunks(m, data, size)
            t = time.perf_counter()
            ib = sum(C.engine_bits(eng, ids, a.batch))
            ti = time.perf_counter() - t
            fb = sum(C.float_bits(fm, ids, m.config["bos_id"])) if fm is not None else None
            res[size].append((covered, sum(len(x) for x in ids), ib, fb))
            print(f"  {size} {p.name}: {len(ids)} chunks, {covered} B, integer {ib / covered:.4f} b/B ({ti:.1f} s)"
                  + (f", float {fb / covered:.4f} b/B" if fb is not None else ""), file=sys.stderr, flush=True)

    head = "| chunk size | " + " | ".join(f"{p.name} integer b/B" for p in files) + " | all: bytes | all: tokens | " \
           "all: integer bits/byte | vs largest size"
    sep = "|---:|" + "---:|" * len(files) + "---:|---:|---:|---:|"
    if fm is not None:
        head += " | all: float32 bits/byte | integer vs float"
        sep += "---:|---:|"
    head += " |"
    lines = []
    curve = []
    for size in sizes:
        r = res[size]
        nbytes = sum(x[0] for x in r)
        ib = sum(x[2] for x in r) / nbytes
        curve.append((size, ib, sum(x[3] for x in r) / nbytes if fm is not None else None))
    ref = curve[sizes.index(max(sizes))][1]
    for (size, ib, fbb), r in zip(curve, (res[s] for s in sizes)):
        line = (f"| {size} | " + " | ".join(f"{x[2] / x[0]:.4f}" for x in r)
                + f" | {sum(x[0] for x in r)} | {sum(x[1] for x in r)} | {ib:.4f} | {100 * (ib / ref - 1):+.2f}%")
        if fbb is not None:
            line += f" | {fbb:.4f} | {100 * (ib / fbb - 1):+.2f}%"
        lines.append(line + " |")

    out = [f"## Ideal code length vs chunk size (first {a.max_bytes} bytes of each file)", "", C.machine_info(),
           f"- integer model: {m.model_id} sha256 {m.sha256[:16]}...; each chunk BOS-prefixed and coded alone; "
           f"'all' = total bits / total bytes over the files", "", head, sep] + lines
    if a.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            out += ["", f"(--plot {a.plot} skipped: matplotlib is not installed)"]
        else:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot([c[0] for c in curve], [c[1] for c in curve], "o-", label="integer engine")
            if fm is not None:
                ax.plot([c[0] for c in curve], [c[2] for c in curve], "s--", label="float32")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("chunk size (bytes)")
            ax.set_ylabel("bits per byte")
            ax.grid(True, alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(a.plot, dpi=120)
            out += ["", f"Plot: {a.plot}"]
    out += ["", f"Wall time {time.perf_counter() - t_start:.0f} s."]
    C.emit(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
