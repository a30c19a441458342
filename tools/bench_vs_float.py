#!/usr/bin/env python3
"""Whole `lmcodec` processes against the float32 transformers model doing the same passes (issue 12's third target).

    python -m tools.bench_vs_float [--file F] [--bytes 65536] [--batch 4] [--out FILE]

The first --bytes of F (default: book2, English) at the default level: 8 KiB chunks, --batch rows at a time.
  lmcodec -c                       against float32 forward: one pass over each chunk's tokens (BOS first) and
                                   log_softmax over the vocabulary, --batch chunks per call (right-padded, masked);
  lmcodec -dc --batch-size N       against float32 incremental decoding: one token per row and step with a KV
                                   cache and log_softmax, --batch rows side by side;
  lmcodec -dc (memory budget)      the default decoder, for reference.
Every figure is one fresh process, model load included (the float side loads the GGUF through transformers), so
the ratio is what a user sees per command; tokens/s count the chunks' real tokens. Target: lmcodec >= 2x float32
for both. Float32 runs with the same torch thread count; its work is not exact and codes nothing.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import _common as C
from tools.bench_decode import timed

ROOT = Path(__file__).resolve().parent.parent


def float_child(path: str, nbytes: int, batch: int, mode: str) -> None:
    """Runs in a fresh process: the float32 pass of `mode` (full or decode); prints its token count."""
    import torch

    from lmcodec.io.lmzfile import get_codec
    from lmcodec.defaults import DEFAULT_CHUNK_SIZE

    t = time.perf_counter()
    model = C.load_float_model()
    codec = get_codec("default")  # its tokenizer and chunking: the same token ids the engine sees
    rows, _ = C.tokenize_chunks(codec.model, Path(path).read_bytes()[:nbytes], DEFAULT_CHUNK_SIZE)
    bos = codec.model.config["bos_id"]
    tokens = 0
    loaded = time.perf_counter()
    with torch.inference_mode():
        for g in range(0, len(rows), batch):
            group = [[bos] + r for r in rows[g: g + batch]]
            n = max(len(r) for r in group)
            ids = torch.tensor([r + [0] * (n - len(r)) for r in group])
            tokens += sum(len(r) - 1 for r in group)
            if mode == "full":
                mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in group])
                torch.log_softmax(model(ids, attention_mask=mask).logits.float(), -1)
                continue
            out = model(ids[:, :1], use_cache=True)
            for j in range(1, n):  # rows that have ended feed padding, as a batched decoder would
                torch.log_softmax(out.logits[:, -1].float(), -1)
                out = model(ids[:, j: j + 1], past_key_values=out.past_key_values, use_cache=True)
    print(json.dumps({"tokens": tokens, "load": loaded - t, "pass": time.perf_counter() - loaded}))


def float_timed(path: str, nbytes: int, batch: int, mode: str) -> tuple[float, int, dict]:
    """(seconds, peak RSS bytes, {tokens, load, pass: seconds}) of one fresh float32 process."""
    code = (f"from tools import bench_vs_float as b; "
            f"b.float_child({path!r}, {nbytes}, {batch}, {mode!r}); import resource; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    secs = time.perf_counter() - t
    out = r.stdout.split("\n")
    return secs, int(out[-2]) * 1024, json.loads(out[-3])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT.parent / "shared/corpus/text/calgary/book2"))
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    data = Path(args.file).read_bytes()[: args.bytes]
    with tempfile.TemporaryDirectory() as d:
        src, lmz, back = f"{d}/in.txt", f"{d}/in.txt.lmz", f"{d}/back"
        Path(src).write_bytes(data)
        timed(f"{d}/warm.lmz", "-c", src, "--chunk-size", "256")  # model converted, kernels compiled
        enc = timed(lmz, "-c", "--batch-size", str(args.batch), src)
        ff = float_timed(src, args.bytes, args.batch, "full")
        tokens = ff[2]["tokens"]
        dec = timed(back, "-dc", "--batch-size", str(args.batch), lmz)
        assert Path(back).read_bytes() == data, "ROUND TRIP FAILED"
        fd = float_timed(src, args.bytes, args.batch, "decode")
        budget = timed(back, "-dc", lmz)
        assert Path(back).read_bytes() == data, "ROUND TRIP FAILED"
    rows = [(f"lmcodec -c --batch-size {args.batch}", *enc, ""),
            (f"float32 forward, batch {args.batch}", *ff[:2], f"{ff[2]['pass']:.1f}"),
            (f"lmcodec -dc --batch-size {args.batch}", *dec, ""),
            (f"float32 incremental decoding, batch {args.batch}", *fd[:2], f"{fd[2]['pass']:.1f}"),
            ("lmcodec -dc (memory budget, default 2 GiB)", *budget, "")]
    lines = ["# lmcodec against float32 transformers, whole processes", "", C.machine_info(), "",
             (f"The first {len(data):,} bytes of {Path(args.file).name} at the default level (8 KiB chunks), "
             f"{tokens:,} tokens; each row one fresh process, model load included (transformers spends "
             f"{ff[2]['load']:.0f} s loading the GGUF; its pass alone is shown too)."), "",
             "| process | seconds | tokens/s | peak RSS MiB | float pass alone, s |", "|---|---:|---:|---:|---:|"]
    for label, secs, rss, alone in rows:
        lines.append(f"| {label} | {secs:.1f} | {tokens / secs:.1f} | {rss / 2**20:,.0f} | {alone} |")
    ratios = {"c": (ff[2]["pass"] / enc[0], ff[0] / enc[0]), "dc": (fd[2]["pass"] / dec[0], fd[0] / dec[0])}
    lines += ["", ("Whole lmcodec process against the float32 pass alone (its load not counted), and against the "
              "whole float32 process:"), "",
              (f"- `lmcodec -c` / float32 forward: **{ratios['c'][0]:.2f}x** ({ratios['c'][1]:.2f}x whole process; "
              "target >= 2)"),
              (f"- `lmcodec -dc` / float32 incremental decoding at batch {args.batch}: **{ratios['dc'][0]:.2f}x** "
              f"({ratios['dc'][1]:.2f}x whole process; target >= 2); by the memory budget "
              f"{fd[2]['pass'] / budget[0]:.2f}x")]
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
