#!/usr/bin/env python
"""Rate against chunk size for gzip, xz and lmcodec (the paper's Fig. 4): what a longer context buys.

    python -m tools.context_curve FILE... --out DIR [--model default] [--sizes 256,512,...] [--max-bytes N]
                                  [--raw] [--batch-size 4] [--threads N]

Files are prepared by modality as in bench.py (modalities.py) and concatenated per modality, so every chunk
size codes the same bytes (for images and audio, only the 2048-byte samples that hold no byte the model's
vocabulary lacks, since the model cannot code the others). gzip -9 and xz -9e compress each chunk independently (framing counted once);
lmcodec codes each chunk with the model (at most context - 1 tokens per chunk): on text the .lmz file
lmcodec.compress writes, on images and audio a stream forced through the model (bench.py explains why). Both
the file and the model's code alone (lm payloads, the paper's measure) are shown; the whole input compressed
by gzip and xz in one piece is the dotted reference line. Sizes default to powers of two from 256 bytes to the
model's context (in tokens, so for images and audio, one byte per token, the largest chunk fills it).

Writes DIR/context_curve.md, DIR/context_curve.csv and DIR/context_curve.png.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tools import _common as C
from tools import compressors
from tools.lm_measure import Lm, frames, unspellable
from tools.modalities import SAMPLE, prepare

RIVALS = ("gzip -9", "xz -9e")
SERIES = RIVALS + ("lmcodec file", "lmcodec model's code")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--sizes", help="comma-separated chunk sizes (default: 256 doubling up to the context)")
    ap.add_argument("--max-bytes", type=int, help="bytes taken from each file (as in bench.py)")
    ap.add_argument("--raw", action="store_true", help="no modality preparation")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()

    samples = [prepare(p, a.max_bytes, a.raw) for p in a.paths]
    probe = Lm(a.model, 256, a.batch_size, a.threads)
    context = probe.codec().model.config["context"]
    bad = set(unspellable(probe.codec()))
    data, kept = {}, {}
    for m in ("text", "image", "audio"):
        d = b"".join(s.data for s in samples if s.modality == m)
        if m != "text":  # the model codes only bytes its vocabulary spells: keep the samples without others
            pieces = compressors.pieces(d, SAMPLE)
            good = [p for p in pieces if not bad & set(p)]
            d, kept[m] = b"".join(good), f"{len(good)} of {len(pieces)} samples have only bytes the model spells"
        if d:
            data[m] = d
    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else \
        [256 << k for k in range(16) if 256 << k <= context]
    comps = {c.name: c for c in compressors.general() if c.name in RIVALS}

    rates: dict[tuple[str, str, int | None], float] = {}  # (modality, series, chunk size or None) -> %
    with C.progress(len(data) * len(sizes), "context curve") as bar:
        for m, d in data.items():
            for name, comp in comps.items():
                rates[(m, name, None)] = 100.0 * len(comp.compress(d)) / len(d)
            for size in sizes:
                bar.set_postfix_str(f"{m} {size} B")
                for name, comp in comps.items():
                    blobs = [comp.compress(p) for p in compressors.pieces(d, size)]
                    rates[(m, name, size)] = 100.0 * compressors.chunked_size(comp, blobs) / len(d)
                blob, _ = Lm(a.model, size, a.batch_size, a.threads).compress(d, forced=m != "text")
                rates[(m, "lmcodec file", size)] = 100.0 * len(blob) / len(d)
                rates[(m, "lmcodec model's code", size)] = 100.0 * frames(blob)[1] / len(d)
                bar.update()

    a.out.mkdir(parents=True, exist_ok=True)
    model_id = probe.codec().model.model_id
    lines = ["# Rate against chunk size (the paper's Fig. 4)", "", C.machine_info(),
             f"- lmcodec model: {model_id} (context {context} tokens); lmcodec on images and audio: every chunk "
             "forced through the model", "- data: " + "; ".join(f"{s.name} ({s.modality}, {s.how})" for s in samples),
             *(f"- {m}: {k}; all series code only those" for m, k in kept.items()), ""]
    for m, d in data.items():
        lines += [f"## {m.capitalize()} ({len(d)} bytes)", "",
                  "| chunk size | " + " | ".join(SERIES) + " |", "|---:|" + "---:|" * len(SERIES)]
        lines += [f"| {size} | " + " | ".join(f"{rates[(m, s, size)]:.1f}%" for s in SERIES) + " |" for size in sizes]
        lines += ["| whole input | " + " | ".join(f"{rates[(m, s, None)]:.1f}%" for s in RIVALS) + " | | |", ""]
    lines.append("Plot: context_curve.png; every value in context_curve.csv.")
    C.emit(lines, a.out / "context_curve.md")

    with (a.out / "context_curve.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["modality", "bytes", "series", "chunk_size", "rate_pct"])
        for (m, s, size), r in rates.items():
            w.writerow([m, len(data[m]), s, size if size else "whole", f"{r:.3f}"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 4), squeeze=False)
    for ax, m in zip(axes[0], data):
        for s, style, color in zip(SERIES, ("o-", "s-", "^-", "^--"), ("tab:blue", "tab:green", "tab:red", "tab:red")):
            ax.plot(sizes, [rates[(m, s, z)] for z in sizes], style, color=color, label=s)
            if (m, s, None) in rates:
                ax.axhline(rates[(m, s, None)], color=color, linestyle=":", alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("chunk size (bytes)")
        ax.set_ylabel("compressed / raw (%)")
        ax.set_title(f"{m}: {len(data[m])} bytes ({model_id})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out / "context_curve.png", dpi=100)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
