#!/usr/bin/env python3
"""Rate against speed of the levels -1 ... -9: what the default level is chosen from (issues 14 and 24), in one
run, as a table and a plot.

    python -m tools.level_curve [--file F] [--bytes 65536] [--levels 1,2,...,9] [--out FILE.md] [--svg FILE.svg]

Each level compresses the same bytes through the API as `lmcodec -L` does (lmcodec.compress(data, level=L)) and
decompresses them with the API's defaults, as `lmcodec -d` does (frames side by side as the memory budget
allows), timed in this process after a warm-up of each codec, so model loading is left out. Bigger chunks give
each token more context (up to the attention window of 2,048 tokens) and leave fewer frames to decode side by
side.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools import _common as C

ROOT = Path(__file__).resolve().parent.parent


def svg(rows: list[tuple[int, int, int, float, float]], n: int, title: str) -> str:
    """A plot of bits/byte against bytes/s (log scale), compressing and decompressing, each point its level."""
    import math

    w, h, left, right, top, bottom = 640, 400, 70, 20, 40, 50
    speeds = [n / r[3] for r in rows] + [n / r[4] for r in rows]
    rates = [8 * r[2] / n for r in rows]
    x0, x1 = math.log10(min(speeds)) - 0.05, math.log10(max(speeds)) + 0.05
    y0, y1 = min(rates) - 0.01, max(rates) + 0.01

    def px(speed: float) -> float:
        return left + (math.log10(speed) - x0) / (x1 - x0) * (w - left - right)

    def py(rate: float) -> float:
        return top + (y1 - rate) / (y1 - y0) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">bytes of input per second (log scale)</text>',
           f'<text x="16" y="{h / 2}" text-anchor="middle" transform="rotate(-90 16 {h / 2})">bits per byte</text>']
    for e in range(math.floor(x0), math.ceil(x1) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if x0 <= math.log10(v) <= x1:
                out.append(f'<line x1="{px(v):.1f}" y1="{h - bottom}" x2="{px(v):.1f}" y2="{h - bottom + 5}" '
                           f'stroke="black"/><text x="{px(v):.1f}" y="{h - bottom + 18}" text-anchor="middle">'
                           f'{v:,}</text>')
    steps = 5
    for i in range(steps + 1):
        r = y0 + (y1 - y0) * i / steps
        out.append(f'<line x1="{left - 5}" y1="{py(r):.1f}" x2="{left}" y2="{py(r):.1f}" stroke="black"/>'
                   f'<text x="{left - 8}" y="{py(r) + 4:.1f}" text-anchor="end">{r:.3f}</text>')
    for col, name, k in (("#1f77b4", "compress", 3), ("#d62728", "decompress", 4)):
        pts = [(px(n / r[k]), py(8 * r[2] / n), r[0]) for r in rows]
        out.append(f'<polyline fill="none" stroke="{col}" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts) + '"/>')
        for x, y, level in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{col}"/>'
                       f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" fill="{col}">-{level}</text>')
        ly = top + 10 + 18 * (k - 3)
        out.append(f'<circle cx="{w - 130}" cy="{ly}" r="4" fill="{col}"/>'
                   f'<text x="{w - 120}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="lcet10.txt")
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--levels", default="1,2,3,4,5,6,7,8,9")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--svg", type=Path)
    args = ap.parse_args(argv)
    import lmcodec
    from lmcodec.defaults import DEFAULT_LEVEL, PRESETS

    path = C.find_corpus_file(args.file)
    data = path.read_bytes()[: args.bytes]
    rows = []
    for level in [int(x) for x in args.levels.split(",")]:
        lmcodec.decompress(lmcodec.compress(b"warm up, once per codec", level=level))
        t = time.perf_counter()
        blob = lmcodec.compress(data, level=level)
        enc = time.perf_counter() - t
        t = time.perf_counter()
        back = lmcodec.decompress(blob)
        dec = time.perf_counter() - t
        assert back == data, f"level {level}: ROUND TRIP FAILED"
        rows.append((level, PRESETS[level][0], len(blob), enc, dec))
        print(f"-{level}: {len(blob):,} B, compress {enc:.0f} s, decompress {dec:.0f} s", flush=True)
    base = next((r for r in rows if r[0] == DEFAULT_LEVEL), rows[0])
    best = min(rows, key=lambda r: r[2])
    n = len(data)
    lines = ["# Levels: rate against speed", "", C.machine_info(), "",
             f"The first {n:,} bytes of {path.name}, each level as `lmcodec -L` and `lmcodec -d` run it (model "
             f"loading left out). ![the curve](level_curve.svg)", "",
             f"| level | chunk | bytes | bits/byte | vs -{DEFAULT_LEVEL} | vs -{best[0]} | compress B/s | "
             f"decompress B/s | decompress / compress |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for level, chunk, size, enc, dec in rows:
        lines.append(f"| -{level} | {chunk // 1024} KiB | {size:,} | {8 * size / n:.3f} | {size / base[2]:.3f} | "
                     f"{size / best[2]:.3f} | {n / enc:,.0f} | {n / dec:,.0f} | {enc / dec:.2f} |")
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    if args.svg:
        args.svg.write_text(svg(rows, n, f"lmcodec levels: {n // 1024} KiB of {path.name}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
