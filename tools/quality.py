#!/usr/bin/env python
"""Compression quality of the integer engine against the float32 model it was converted from.

    python -m tools.quality FILE... [--chunk-size 8192] [--max-bytes 16384] [--model default] [--batch 4]
                            [--out RESULT.md]

For each file, the first --max-bytes bytes are cut into independent chunks of --chunk-size bytes exactly as the
codec cuts them (UTF-8 boundaries, at most context - 1 tokens), each prefixed with BOS. Both models see the same
token ids (the integer model's tokenizer). Ideal code lengths:
  float32:  sum of -log2 softmax(logits)[target]   (transformers, the default GGUF loaded as float32)
  integer:  sum of -log2 (freq / 2**28)            (lmcodec.engine, the tables the range coder codes with)
Prints a Markdown table of bits per byte and the relative difference (integer / float - 1); exits 1 when the
total difference exceeds --target percent (default 2).
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
    ap.add_argument("--chunk-size", type=int, default=8192)
    ap.add_argument("--max-bytes", type=int, default=16384, help="bytes taken from the start of each file")
    ap.add_argument("--model", default="default", help="integer model (the float reference is the default GGUF)")
    ap.add_argument("--batch", type=int, default=4, help="engine rows at a time")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--target", type=float, default=2.0, help="maximum total difference, percent")
    ap.add_argument("--out", help="also write the report here")
    a = ap.parse_args()

    import torch

    from lmcodec import models
    from lmcodec.engine import Engine

    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    m = models.resolve(a.model)
    eng = Engine(m, device="cpu", threads=a.threads)
    fm = C.load_float_model()

    rows = []
    tot = {"bytes": 0, "tokens": 0, "f": 0.0, "i": 0.0, "tf": 0.0, "ti": 0.0}
    for name in a.files:
        path = C.find_corpus_file(name)
        data = path.read_bytes()[: a.max_bytes]
        ids, covered = C.tokenize_chunks(m, data, a.chunk_size)
        ntok = sum(len(t) for t in ids)
        # Alternate which system goes first so slow phases of concurrent load hit both alike.
        first_float = len(rows) % 2 == 1
        for which in (("f", "i") if first_float else ("i", "f")):
            t0 = time.perf_counter()
            if which == "f":
                fb = sum(C.float_bits(fm, ids, m.config["bos_id"]))
                tf = time.perf_counter() - t0
            else:
                ib = sum(C.engine_bits(eng, ids, a.batch))
                ti = time.perf_counter() - t0
        rows.append((path.name, covered, len(ids), ntok, fb, ib, tf, ti))
        for k, v in zip(("bytes", "tokens", "f", "i", "tf", "ti"), (covered, ntok, fb, ib, tf, ti)):
            tot[k] += v
        print(f"  {path.name}: {covered} B, {len(ids)} chunks, {ntok} tokens; float {fb / covered:.4f} b/B "
              f"({tf:.1f} s), integer {ib / covered:.4f} b/B ({ti:.1f} s)", file=sys.stderr, flush=True)

    def line(name, nbytes, nchunks, ntok, fb, ib, tf, ti):
        return (f"| {name} | {nbytes} | {nchunks} | {ntok} | {fb / nbytes:.4f} | {ib / nbytes:.4f} | "
                f"{100 * (ib / fb - 1):+.2f} | {ntok / tf:.0f} | {ntok / ti:.0f} |")

    diff = 100 * (tot["i"] / tot["f"] - 1)
    ok = diff <= a.target
    out = [f"## Integer engine vs float32: ideal code length ({a.chunk_size}-byte chunks, first {a.max_bytes} "
           f"bytes of each file)", "", C.machine_info(),
           f"- integer model: {m.model_id} sha256 {m.sha256[:16]}..., {m.path.stat().st_size / 1e6:.1f} MB; "
           f"float: {models.default_gguf().name} loaded as float32 by transformers",
           f"- engine batch {a.batch}; float one chunk at a time; tokens/s are informational (the two ran "
           f"alternately on a shared 2-core machine; see bench_engine.py for speed)", "",
           "| file | bytes | chunks | tokens | float32 bits/byte | integer bits/byte | difference % | "
           "float tok/s | engine tok/s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    out += [line(*r) for r in rows]
    out.append(line("**total**", tot["bytes"], sum(r[2] for r in rows), tot["tokens"], tot["f"], tot["i"],
                    tot["tf"], tot["ti"]).replace(f"{diff:+.2f}", f"**{diff:+.2f}**"))
    out += ["", f"Total difference {diff:+.2f}% against the {a.target:g}% target: {'met' if ok else 'NOT MET'}. "
            f"Wall time {time.perf_counter() - t_start:.0f} s."]
    C.emit(out, a.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
