#!/usr/bin/env python3
"""Coder 1 version 2 against lmcodec 0.1 and the classical compressors, with an ablation (issues 11 and 14).

    python -m tools.bench_mix --out tools/results/mix [--bytes 65536] [--before DIR] [--rows ...]

Inputs, the first --bytes of each: English prose (Canterbury alice29.txt, lcet10.txt; Calgary book2, paper1) and
structured text: the corpus's C sources (lua_lparser.c, zlib_deflate.c), this machine's package-manager log
(/var/log/dpkg.log), `pip inspect` (JSON of the installed packages) and `dpkg-query` as CSV, each made by the real
program when the benchmark runs (and saved beside the report). Rows, all on the same inputs in one run:

  before   lmcodec 0.1 at -6 (8 KiB chunks, the bare model), run from a checkout of it (--before DIR)
  bare8    the bare model (no online model) in 8 KiB frames, full attention       } ablation: .lmz sizes of
  bare64   + long frames: 64 KiB, attention window 2,048                          } coder 1 version 2 with
  mixer    + the mixer (recalibrating the model's probabilities)                  } online models left out
  match    + the match model                                                      } (these files are not
  ngram    + the n-gram models                                                    } decodable: measurement
  all      + the bias (the whole of coder 1 version 2) = lmcodec -9 today          } only), except `all`
  default  lmcodec today at its default level
Sizes are whole .lmz files. Rows with the same frames and window (bare64 .. all) come from one engine pass, so
their speed is that pass's (2 cores, quiet machine wanted). For `all` and `default`, the first ROUND_TRIP bytes
of one prose and one structured input are coded and decoded back.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tools import _common as C
from tools import compressors

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
ROUND_TRIP = 12288  # bytes of two inputs per configuration coded and decoded back
PROSE = ["text/canterbury/alice29.txt", "text/canterbury/lcet10.txt", "text/calgary/book2", "text/calgary/paper1"]
CODE = ["code/lua_lparser.c", "code/zlib_deflate.c"]


def structured_inputs(outdir: Path, n: int) -> dict[str, bytes]:
    """Logs, JSON and CSV made by real programs on this machine, and the corpus's C sources."""
    out: dict[str, bytes] = {}
    for rel in CODE:
        out[Path(rel).name] = (CORPUS / rel).read_bytes()[:n]
    log = Path("/var/log/dpkg.log")
    if log.is_file():
        out["dpkg.log"] = log.read_bytes()[:n]
    runs = {"pip-inspect.json": [sys.executable, "-m", "pip", "inspect"],
            "dpkg-query.csv": ["dpkg-query", "-W", "-f", "${Package},${Version},${Architecture},${Installed-Size},"
                                                          "${Status}\n"]}
    for name, cmd in runs.items():
        try:
            data = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if len(data) >= n // 2:
            out[name] = data[:n]
    (outdir / "inputs").mkdir(parents=True, exist_ok=True)
    for name, data in out.items():
        (outdir / "inputs" / name).write_bytes(data)
    return out


def lmz_sizes(codec, data: bytes, variants: tuple[int, ...]) -> list[int]:
    """Bytes of the .lmz stream of data coded with each variant of the online models (mixer.ALL: the real file),
    from one engine pass: the model sees the same tokens whatever the online models do, so the frame coder codes
    every variant from the same tables (payloads of any variant but mixer.ALL do not decode)."""
    import lmz
    from lmcodec.pipeline import mixed
    from lmcodec.pipeline.codec import Cutter

    cut = Cutter(codec)
    cut.add(data)
    chunks = list(cut.chunks(final=True))
    payloads: list[list[bytes | None]] = [[None] * len(chunks) for _ in variants]
    todo = [i for i, c in enumerate(chunks) if c.tokens]
    for s in range(0, len(todo), codec.batch_size):
        idx = todo[s: s + codec.batch_size]
        rows, _ = mixed.encode_batch(codec.engine, [chunks[i].tokens for i in idx], {"engine": 0.0, "coding": 0.0},
                                     variants=variants)
        for out, row in zip(payloads, rows):
            for i, payload in zip(idx, row):
                out[i] = payload
    sizes = []
    for row in payloads:
        out = io.BytesIO()
        w = lmz.Writer(out, codec.header)
        for c, payload in zip(chunks, row):
            w.write_chunk(c.raw, payload)
        w.close()
        sizes.append(len(out.getvalue()))
    return sizes


def before_sizes(checkout: Path, inputs: dict[str, bytes], threads: int | None) -> dict[str, tuple[int, float]]:
    """{name: (.lmz size, seconds)} from an lmcodec 0.1 checkout, run in a subprocess with its own code."""
    code = ("import json, sys, time, lmcodec\n"
            "out = {}\n"
            "for name, path in json.loads(sys.argv[1]).items():\n"
            "    data = open(path, 'rb').read()\n"
            f"    lmcodec.compress(b'warm up', threads={threads!r})\n"
            "    t = time.perf_counter(); n = len(lmcodec.compress(data, threads=%r)); s = time.perf_counter() - t\n"
            "    out[name] = (n, s)\n"
            "print(json.dumps(out))\n" % (threads,))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, data in inputs.items():
            paths[name] = os.path.join(d, name)
            Path(paths[name]).write_bytes(data)
        env = dict(os.environ, PYTHONPATH=f"{checkout}:{checkout / 'container'}")
        r = subprocess.run([sys.executable, "-c", code, json.dumps(paths)], capture_output=True, text=True,
                           env=env, check=True, cwd=d)
    return {k: tuple(v) for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tools/results/mix")
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--before", type=Path, help="a checkout of lmcodec 0.1 (git worktree add DIR ea08328)")
    ap.add_argument("--rows", default="bare8,bare64,mixer,match,ngram,all,default")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--prose", nargs="*", default=PROSE)
    args = ap.parse_args()
    import lmcodec
    from lmcodec.coding import mixer as mx
    from lmcodec.io.lmzfile import get_codec
    from lmcodec.defaults import DEFAULT_LEVEL, PRESETS

    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    groups = {"prose": {Path(p).name: (CORPUS / p).read_bytes()[: args.bytes] for p in args.prose},
              "structured": structured_inputs(outdir, args.bytes)}
    inputs = {k: v for g in groups.values() for k, v in g.items()}
    rows: dict[str, dict[str, tuple[int, float]]] = {}
    if args.before:
        rows["before"] = before_sizes(args.before, inputs, args.threads)
    # row -> (chunk, attention window (None: full), mixer flags); rows with the same chunk and window share
    # one engine pass, so each row's speed is that pass's time (the mixer's own cost is small)
    configs = {"bare8": (8192, None, 0), "bare64": (65536, 2048, 0), "mixer": (65536, 2048, mx.USE_LEARN),
               "match": (65536, 2048, mx.USE_LEARN | mx.USE_MATCH),
               "ngram": (65536, 2048, mx.USE_LEARN | mx.USE_MATCH | mx.USE_NGRAM), "all": (65536, 2048, mx.ALL),
               "default": (PRESETS[DEFAULT_LEVEL][0], 2048, mx.ALL)}
    wanted = args.rows.split(",")
    passes: dict[tuple, list[str]] = {}
    for name in wanted:
        passes.setdefault(configs[name][:2], []).append(name)
    for (chunk, window), names in passes.items():
        # full attention: a window as long as the longest frame can be
        codec = get_codec("default", chunk_size=chunk, threads=args.threads, window=window or chunk + 1)
        variants = tuple(configs[n][2] for n in names)
        lmz_sizes(codec, b"warm up the kernels", variants)
        for name in names:
            rows[name] = {}
        for fname, data in inputs.items():
            t = time.perf_counter()
            sizes = lmz_sizes(codec, data, variants)
            secs = time.perf_counter() - t
            for name, n in zip(names, sizes):
                rows[name][fname] = (n, secs)
                print(f"{name:8s} {fname:20s} {len(data):7d} -> {n:6d}  {secs:.1f} s", flush=True)
            if mx.ALL in variants and fname in list(groups["structured"])[:1] + list(groups["prose"])[:1]:
                # the real files decode: a round trip of a part (a 64 KiB frame decodes at ~100 B/s here)
                part = data[:ROUND_TRIP]
                blob = lmcodec.compress(part, model="default", chunk_size=chunk, threads=args.threads, window=window)
                assert lmcodec.decompress(blob) == part, f"{fname} at chunk {chunk}: round trip failed"
    comps = {c.name: c for c in compressors.general()}
    ref = {name: {f: (len(comps[name].compress(d)), 0.0) for f, d in inputs.items()} for name in ("xz -9e", "zstd -19")}
    lines = ["# Coder 1 version 2: the ablation, lmcodec 0.1 and the classical compressors", "",
             f"`python -m tools.bench_mix --out {args.out} --bytes {args.bytes}"
             + (f" --before {args.before}" if args.before else "") + "`", "", C.machine_info(), "",
             f"Inputs: the first {args.bytes:,} bytes of each file. Sizes in bytes (whole .lmz files).", ""]
    names = list(rows)
    for gname, files in groups.items():
        lines += [f"## {gname} ({', '.join(files)})", "",
                  "| row | bytes | bits/byte | vs before | vs xz -9e | compress kB/s |", "|---|---:|---:|---:|---:|---:|"]
        raw = sum(len(d) for d in files.values())
        base = sum(rows["before"][f][0] for f in files) if "before" in rows else None
        xz = sum(ref["xz -9e"][f][0] for f in files)
        for name in names + ["xz -9e", "zstd -19"]:
            r = rows.get(name) or ref[name]
            size = sum(r[f][0] for f in files)
            secs = sum(r[f][1] for f in files)
            lines.append(f"| {name} | {size:,} | {8 * size / raw:.3f} | "
                         f"{f'{size / base:.3f}' if base else '-'} | {size / xz:.3f} | "
                         f"{f'{raw / secs / 1000:.2f}' if secs else '-'} |")
        lines += ["", "| file | " + " | ".join(names + ["xz -9e"]) + " |", "|---|" + "---:|" * (len(names) + 1)]
        for f in files:
            lines.append(f"| {f} | " + " | ".join(f"{rows[n][f][0]:,}" for n in names) + f" | {ref['xz -9e'][f][0]:,} |")
        lines.append("")
    (outdir / "bench_mix.json").write_text(json.dumps({"rows": rows, "ref": ref}, indent=1))
    C.emit(lines, outdir / "bench_mix.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
