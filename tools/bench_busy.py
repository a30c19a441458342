#!/usr/bin/env python3
"""lmcodec on a busy machine (issue 12): whole `lmcodec -c` runs with CPU-bound competitors, one run.

    python tools/bench_busy.py [--file F] [--bytes 6144] [--reps 2] [--out FILE]

Rows: quiet; with 1 and with 3 `yes > /dev/null` competitors; beside a second lmcodec on the same input. Each
figure is the best of --reps wall times of a fresh process (model load included). A scheduler shares the
cores among the runnable threads, so lmcodec's fair slowdown is (its threads + competitors) / its threads
when that exceeds the cores, (capped below by 1); a collapse (threads spinning for one another) shows as a
slowdown far above it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

ROOT = Path(__file__).resolve().parent.parent


def run_once(path: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lmcodec", "-c", path], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def best(path: str, reps: int) -> float:
    return min(run_once(path) for _ in range(reps))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT.parent / "shared/corpus/text/calgary/book2"))
    ap.add_argument("--bytes", type=int, default=6144)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    threads = min(2, cores)  # lmcodec's default: the cores it finds, at most 2 busy ones here
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(Path(args.file).read_bytes()[: args.bytes])
        f.flush()
        run_once(f.name)  # the model converted and the kernels compiled before any timing
        rows = [("quiet", 0, best(f.name, args.reps))]
        for n in (1, 3):
            hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
            try:
                rows.append((f"{n} x yes", n, best(f.name, args.reps)))
            finally:
                for h in hogs:
                    h.kill()
        other = subprocess.Popen([sys.executable, "-m", "lmcodec", "-c", f.name], stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        try:
            rows.append(("beside a second lmcodec", threads, run_once(f.name)))
        finally:
            other.wait()
    quiet = rows[0][2]
    lines = ["# lmcodec with competing processes", "", C.machine_info(), "",
             f"`lmcodec -c` of the first {args.bytes:,} bytes of {Path(args.file).name}, whole process, best of "
             f"{args.reps}; {cores} cores.", "", "| competitors | seconds | slowdown | fair slowdown |",
             "|---|---:|---:|---:|"]
    for name, n, s in rows:
        fair = max(1.0, (threads + n) / cores) if n else 1.0
        lines.append(f"| {name} | {s:.1f} | {s / quiet:.2f} | {fair:.2f} |")
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
