#!/usr/bin/env python3
"""Decoding against encoding, whole `lmcodec` commands on a real file, side by side in one run (issue 12).

    python -m tools.bench_decode [--file F] [--chunks 16] [--before DIR] [--out FILE]

1. A file of --chunks chunks at the default level (8 KiB each): `lmcodec -c`, then `lmcodec -dc` with frames
   side by side by the memory budget (the default, 2 GiB) and with a fixed `--batch-size 4` (lmcodec 0.1's
   way). Target: decoding >= 0.8 x the encoding speed; peak RSS <= the budget.
2. One 8 KiB chunk: `lmcodec -dc` at --threads 2 and 1, and the same with lmcodec 0.1 run from a checkout of it
   (--before DIR, made by `git worktree add DIR ea08328`); target 4x.
3. Speculative decoding: one 8 KiB chunk of English, a log and C source decoded with and without guesses.
Every figure is a fresh process (model load included), its peak RSS read from the kernel (ru_maxrss).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import _common as C

ROOT = Path(__file__).resolve().parent.parent
WRAP = ("import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'wb'))\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def timed(out: str, *args: str, before: Path | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one `lmcodec ARGS > out` process (lmcodec 0.1 from `before` if given)."""
    env = None if before is None else dict(os.environ, PYTHONPATH=f"{before}:{before / 'container'}")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAP, out, sys.executable, "-m", "lmcodec", *args],
                       capture_output=True, text=True, check=True, env=env, cwd=before)
    secs = time.perf_counter() - t
    code, rss = r.stdout.split()
    if code != "0":
        raise SystemExit(f"lmcodec {' '.join(args)} failed: {r.stderr}")
    return secs, int(rss) * 1024


def speculation(paths: list[str], threads: int | None) -> list[tuple]:
    """(name, tokens, (steps, seconds) without guesses, (steps, guessed, kept, seconds) with) per input."""
    import lmcodec
    from lmcodec.defaults import DEFAULT_CHUNK_SIZE
    from lmcodec.io.lmzfile import get_codec
    from lmcodec.pipeline.measures import Measures

    out = []
    for path in paths:
        data = Path(path).read_bytes()[:DEFAULT_CHUNK_SIZE]
        blob = lmcodec.compress(data, threads=threads)
        codec = get_codec("default", chunk_size=DEFAULT_CHUNK_SIZE, threads=threads)
        got = {}
        for speculate in (False, True, False, True):  # alternating, the second of each counts
            codec.speculate = speculate
            codec.measures = Measures()
            t = time.perf_counter()
            assert lmcodec.decompress(blob, threads=threads) == data, "ROUND TRIP FAILED"
            got[speculate] = (codec.measures.counts, time.perf_counter() - t)
        codec.speculate, codec.measures = True, None
        (c0, t0), (c1, t1) = got[False], got[True]
        toks = len(codec.tokenizer.encode(data, raw=True))
        out.append((Path(path).name, toks, (c0["steps"], t0), (c1["steps"], c1["guessed"], c1["kept"], t1)))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT.parent / "shared/corpus/text/calgary/book1"))
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--before", type=Path, help="a checkout of lmcodec 0.1 (git worktree add DIR ea08328)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int)
    corpus = ROOT.parent / "shared" / "corpus"
    ap.add_argument("--spec-inputs", nargs="*", help="files whose first chunk is decoded with and without guesses",
                    default=[str(corpus / "text/calgary/book1"), "/var/log/dpkg.log",
                             str(corpus / "code/zlib_deflate.c")])
    args = ap.parse_args(argv)
    from lmcodec.pipeline.budget import DEFAULT_MEMORY
    from lmcodec.defaults import DEFAULT_CHUNK_SIZE

    data = Path(args.file).read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        src, lmz, back = f"{d}/in.txt", f"{d}/in.txt.lmz", f"{d}/back"
        one, one_lmz = f"{d}/one.txt", f"{d}/one.txt.lmz"
        Path(src).write_bytes(data[: args.chunks * DEFAULT_CHUNK_SIZE])
        Path(one).write_bytes(data[: DEFAULT_CHUNK_SIZE])
        timed(one_lmz, "-c", one)  # convert the model and compile the kernels before any timing
        enc = timed(lmz, "-c", src)
        n = Path(src).stat().st_size
        rows.append((f"lmcodec -c, {args.chunks} chunks", n, *enc))
        for label, extra in (("lmcodec -dc, memory budget (default 2 GiB)", []),
                             ("lmcodec -dc --batch-size 4", ["--batch-size", "4"])):
            dec = timed(back, "-dc", *extra, lmz)
            assert Path(back).read_bytes() == Path(src).read_bytes(), "ROUND TRIP FAILED"
            rows.append((label, n, *dec))
        for threads in (2, 1):
            dec = timed(back, "-dc", "--threads", str(threads), one_lmz)
            assert Path(back).read_bytes() == Path(one).read_bytes(), "ROUND TRIP FAILED"
            rows.append((f"lmcodec -dc --threads {threads}, one 8 KiB chunk", DEFAULT_CHUNK_SIZE, *dec))
        if args.before:
            old_lmz = f"{d}/old.txt.lmz"
            timed(old_lmz, "-c", one, before=args.before.resolve())
            for threads in (2, 1):
                dec = timed(back, "-dc", "--threads", str(threads), old_lmz, before=args.before.resolve())
                assert Path(back).read_bytes() == Path(one).read_bytes(), "ROUND TRIP FAILED"
                rows.append((f"lmcodec 0.1 -dc --threads {threads}, one 8 KiB chunk", DEFAULT_CHUNK_SIZE, *dec))
    spec_rows = speculation(args.spec_inputs, args.threads)
    enc_speed = rows[0][1] / rows[0][2]
    lines = ["# Decoding against encoding", "", C.machine_info(), "",
             f"The first {rows[0][1]:,} bytes of {Path(args.file).name} at the default level; whole processes "
             "(model load included).", "", "| command | bytes | seconds | B/s | vs encoding | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, n, secs, rss in rows:
        lines.append(f"| {label} | {n:,} | {secs:.1f} | {n / secs:,.0f} | {n / secs / enc_speed:.2f} | "
                     f"{rss / 2**20:,.0f} |")
    lines += ["", f"- decoding by the budget / encoding = **{rows[1][1] / rows[1][2] / enc_speed:.2f}** "
                  f"(target >= 0.8); peak RSS {rows[1][3] / 2**20:,.0f} MiB against the budget "
                  f"{DEFAULT_MEMORY / 2**20:,.0f} MiB"]
    if args.before:
        for threads in (2, 1):
            new = next(r for r in rows if r[0] == f"lmcodec -dc --threads {threads}, one 8 KiB chunk")
            old = next(r for r in rows if r[0] == f"lmcodec 0.1 -dc --threads {threads}, one 8 KiB chunk")
            lines.append(f"- one 8 KiB chunk at --threads {threads}: **{old[2] / new[2]:.2f}x** lmcodec 0.1's speed "
                         "(target >= 4)")
    lines += ["", "## Speculative decoding", "",
              "One 8 KiB chunk of each input, decoded in this process (model loaded) with and without guesses from "
              "the match model (mixer.draft); the bytes are the same.", "",
              "| input | tokens | steps without | steps with | guesses fed | kept | seconds without | seconds with | "
              "speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, toks, (s0, t0), (s1, g1, k1, t1) in spec_rows:
        lines.append(f"| {name} | {toks:,} | {s0:,} | {s1:,} | {g1:,} | {k1:,} ({k1 / max(g1, 1):.0%}) | {t0:.1f} | "
                     f"{t1:.1f} | {t0 / t1:.2f}x |")
    C.emit(lines, args.out) if args.out else print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
