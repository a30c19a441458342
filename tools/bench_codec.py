"""The whole compressor on real files: size against xz -9e and zstd -19, speeds, and where the time goes.

    python tools/bench_codec.py FILE... [--model default] [--max-bytes 16384] [--chunk-size 8192]
                                [--batch-size 4] [--out results.md]

For each file, the first --max-bytes bytes are compressed with lmcodec, decompressed and compared, and the
same bytes are compressed with `xz -9e` and `zstd -19` (the Debian command-line tools) for comparison.
Speeds are absolute and vary between machines; the ratios are what to compare. The "coding" share is the
time after the engine (cumulative tables, symbol lookup, range coder), measured inside the codec.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import time
from pathlib import Path

import lmcodec
from lmcodec.api import get_codec


def cli_size(cmd: list[str], data: bytes) -> int:
    return len(subprocess.run(cmd, input=data, capture_output=True, check=True).stdout)


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    import os

    import torch
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, {datetime.date.today()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--max-bytes", type=int, default=16384)
    ap.add_argument("--chunk-size", type=int, default=8192)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is steadier on a shared machine)")
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = ap.parse_args()

    opts = dict(model=args.model, chunk_size=args.chunk_size, batch_size=args.batch_size, threads=args.threads)
    codec = get_codec(**opts)  # load (and convert, the first time) outside the timings
    rows = ["| file | bytes | lmcodec | bits/byte | ideal bits/byte | xz -9e | zstd -19 | lmcodec/xz | "
            "compress B/s | decompress B/s | coding share (enc / dec) |", "|" + "---|" * 11]
    tot = {"raw": 0, "lmz": 0, "xz": 0, "zstd": 0}
    for path in args.files:
        data = path.read_bytes()[: args.max_bytes]
        codec.ideal_bits = 0.0
        codec.seconds = {"engine": 0.0, "coding": 0.0}
        t = time.perf_counter()
        blob = lmcodec.compress(data, **opts)
        t_enc = time.perf_counter() - t
        enc_share = codec.seconds["coding"] / max(1e-9, sum(codec.seconds.values()))
        ideal = codec.ideal_bits
        codec.seconds = {"engine": 0.0, "coding": 0.0}
        t = time.perf_counter()
        back = lmcodec.decompress(blob, batch_size=args.batch_size, threads=args.threads)
        codec = get_codec(**opts)  # the same cached codec decoded (same model, chunk size and batch)
        t_dec = time.perf_counter() - t
        dec_share = codec.seconds["coding"] / max(1e-9, sum(codec.seconds.values()))
        if back != data:
            sys.exit(f"{path}: ROUND TRIP FAILED")
        xz = cli_size(["xz", "-9e", "-c"], data)
        zs = cli_size(["zstd", "-19", "-c", "-q"], data)
        n = len(data)
        for k, v in (("raw", n), ("lmz", len(blob)), ("xz", xz), ("zstd", zs)):
            tot[k] += v
        rows.append(f"| {path.name} | {n} | {len(blob)} | {8 * len(blob) / n:.3f} | {ideal / n:.3f} | {xz} | {zs} | "
                    f"{len(blob) / xz:.2f} | {n / t_enc:.0f} | {n / t_dec:.0f} | {enc_share:.1%} / {dec_share:.1%} |")
        print(rows[-1], flush=True)
    rows.append(f"| **total** | {tot['raw']} | {tot['lmz']} | {8 * tot['lmz'] / tot['raw']:.3f} | | {tot['xz']} | "
                f"{tot['zstd']} | {tot['lmz'] / tot['xz']:.2f} | | | |")
    text = "\n".join([f"Machine: {machine()}; model {codec.model.model_id} ({codec.model.sha256[:12]}), chunk "
                      f"{args.chunk_size} B, batch {args.batch_size}, threads {args.threads or 'default'}, first {args.max_bytes} B of each file.", "",
                      *rows])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
