#!/usr/bin/env python3
"""Rate against speed of the presets: what the default level is chosen from (issue 14), in one run.

    python -m tools.level_curve [--file F] [--bytes 32768] [--levels 6,7,9] [--out FILE]

Each level compresses the same bytes through the API with its preset (chunk size, batch) and decompresses them
as the CLI does (frames side by side in batches of the default level's batch size), timed in this process
after a warm-up. Bigger chunks give each token more context (up to the attention window of 2,048 tokens) but
fewer frames to decode side by side.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools import _common as C

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT.parent / "shared/corpus/text/canterbury/lcet10.txt"))
    ap.add_argument("--bytes", type=int, default=32768)
    ap.add_argument("--levels", default="6,7,9")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import lmcodec
    from lmcodec.defaults import DEFAULT_LEVEL, PRESETS

    data = Path(args.file).read_bytes()[: args.bytes]
    dec_batch = PRESETS[DEFAULT_LEVEL][1]
    rows = []
    for level in [int(x) for x in args.levels.split(",")]:
        chunk, batch = PRESETS[level]
        warm = lmcodec.compress(b"warm up, once per codec", chunk_size=chunk, batch_size=batch)
        lmcodec.decompress(warm, batch_size=dec_batch)
        t = time.perf_counter()
        blob = lmcodec.compress(data, chunk_size=chunk, batch_size=batch)
        enc = time.perf_counter() - t
        t = time.perf_counter()
        back = lmcodec.decompress(blob, batch_size=dec_batch)
        dec = time.perf_counter() - t
        assert back == data, f"level {level}: ROUND TRIP FAILED"
        rows.append((level, chunk, len(blob), enc, dec))
        print(f"-{level}: {len(blob):,} B, compress {enc:.0f} s, decompress {dec:.0f} s", flush=True)
    base = next((r for r in rows if r[0] == DEFAULT_LEVEL), rows[0])
    lines = ["# Presets: rate against speed", "", C.machine_info(), "",
             f"The first {len(data):,} bytes of {Path(args.file).name}; decoding {dec_batch} frames side by side.",
             "", "| level | chunk | bytes | bits/byte | vs -6 | compress B/s | decompress B/s | decompress / compress |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for level, chunk, size, enc, dec in rows:
        lines.append(f"| -{level} | {chunk // 1024} KiB | {size:,} | {8 * size / len(data):.3f} | "
                     f"{size / base[2]:.3f} | {len(data) / enc:,.0f} | {len(data) / dec:,.0f} | {enc / dec:.2f} |")
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
