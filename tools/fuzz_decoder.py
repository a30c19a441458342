#!/usr/bin/env python3
"""Fuzz the whole decoder, lm frames included, through every entry point a user reaches (issue 13).

Bases: real .lmz streams written with the tiny test model in small chunks (so lm frames decode fast): English
text (lm frames), text with binary inside (lm, zstd and stored frames), many frames (an index), and two
streams concatenated. Each case mutates one base 1-3 times (bit flips, overwrites, insertions, deletions,
truncations, splices of two bases, and length fields set to huge values such as 2^31, 2^40, 2^63 and
2^64 - 1 with their checks fixed up, from tools/fuzz_container.py) and decodes it through one entry point:

  decompress   lmcodec.decompress
  seek         lmcodec.LmzFile, random seeks and reads
  cli-t        lmcodec -t, in this process
  cli-dc       lmcodec -dc, in this process
  cli-l        lmcodec -l, in this process
  fsspec       fsspec.open(..., compression="lmz")

Every case must end in a documented error (lmcodec.LmzError's subclasses, lmcodec.ModelError; exit status 1 for
the CLI) or return the original bytes; bytes that were returned must be a prefix of the truth (a reader never
returns bytes it has not verified). Counted: cases, outcomes by error type and entry point, undocumented
exceptions (must be 0), wrong output (must be 0), cases over --case-seconds, the slowest case, and peak RSS.

    python -m tools.fuzz_decoder [--cases 10000] [--seed 0] [--out tools/results/fuzz_decoder.md]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from tools import _common as C

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "tests" / "data" / "tiny-llama")
HUGE = [1 << 31, (1 << 32) - 1, 1 << 40, (1 << 63) - 1, (1 << 64) - 1, 0, 1, 255]
ENTRIES = ["decompress", "seek", "cli-t", "cli-dc", "cli-l", "fsspec"]


def bases() -> dict[str, tuple[bytes, bytes]]:
    """name -> (stream, content)."""
    import lmcodec

    text = ("It was the best of times, it was the worst of times; the age of wisdom, the age of foolishness. "
            "Ångström & naïve café. ").encode() * 6
    mixed = text[:700] + bytes(range(256)) * 3 + b"\0" * 1500 + random.Random(1).randbytes(900) + text[:600]
    many = (text * 12)[:9000]
    opts = {"model": TINY, "chunk_size": 256, "batch_size": 3}
    out = {}
    for name, data in {"text": text, "mixed": mixed, "many": many}.items():
        out[name] = (lmcodec.compress(data, **opts), data)
    a, b = out["text"], out["mixed"]
    out["concat"] = (a[0] + b[0], a[1] + b[1])
    return out


def mutate(rng: random.Random, blob: bytes, other: bytes, fields: list) -> bytes:
    from tools import fuzz_container as fc

    kind = rng.choice(["flip", "flip", "overwrite", "insert", "delete", "truncate", "splice", "field", "field"])
    n = len(blob)
    if kind == "truncate":
        return blob[:rng.randrange(n)]
    if kind == "splice":
        return blob[:rng.randrange(n)] + other[rng.randrange(len(other)):]
    if kind == "insert":
        p = rng.randrange(n + 1)
        return blob[:p] + rng.randbytes(rng.randint(1, 16)) + blob[p:]
    if n == 0:
        return blob
    p = rng.randrange(n)
    if kind == "flip":
        b = bytearray(blob)
        b[p] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "delete":
        return blob[:p] + blob[p + rng.randint(1, 16):]
    if kind == "overwrite":
        return blob[:p] + rng.randbytes(rng.randint(1, 8)) + blob[p + 8:]
    if not fields:
        return blob
    f = rng.choice(fields)
    if f[0] + f[1] > n:
        return blob
    return fc.set_field(blob, f, rng.choice(HUGE))


def _seek_reads(blob: bytes, size: int, rng: random.Random) -> list[tuple[int, bytes]]:
    import lmcodec

    got = []
    with lmcodec.LmzFile(io.BytesIO(blob), "rb", model=TINY) as f:
        for _ in range(3):
            off = rng.randrange(size + 2)
            f.seek(off)
            got.append((off, f.read(rng.choice([1, 100, 5000, -1]))))
    return got


def _cli(args: list[str], blob: bytes) -> tuple[int, bytes, str]:
    from lmcodec import cli

    stdin = io.TextIOWrapper(io.BytesIO(blob))
    stdout, stderr = io.TextIOWrapper(io.BytesIO(), write_through=True), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        code = cli.run(args + ["--model", TINY] if "-l" not in args else args)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return code, stdout.buffer.getvalue(), stderr.getvalue()


def _fields(fc, blob: bytes, truth: bytes) -> list:
    """tools/fuzz_container.py's length fields of blob, lm frames included (their content taken from truth)."""
    import lmz

    by_offset = {e.offset: truth[e.raw_offset: e.raw_offset + e.raw_size]
                 for e in lmz.read_index(io.BytesIO(blob)).entries}
    real = lmz.decode_frame
    fc.lmz.decode_frame = lambda f: by_offset[f.offset] if f.method == lmz.METHOD_LM else real(f)
    try:
        return fc.fields(blob)
    finally:
        fc.lmz.decode_frame = real


class Defect(AssertionError):
    pass


def run_case(entry: str, blob: bytes, truth: bytes, rng: random.Random, documented: tuple) -> str:
    """The outcome's name ('ok', or the documented error's class); raises Defect for wrong output."""
    import fsspec

    import lmcodec

    try:
        if entry == "decompress":
            out = lmcodec.decompress(blob, model=TINY)
            if out != truth:
                raise Defect("decompress returned other bytes without an error")
        elif entry == "seek":
            for off, got in _seek_reads(blob, len(truth), rng):
                if got != truth[off: off + len(got)]:
                    raise Defect(f"read at {off} returned bytes that are not the content")
        elif entry == "fsspec":
            with fsspec.open("memory://fuzz.lmz", "wb") as f:
                f.write(blob)
            with fsspec.open("memory://fuzz.lmz", "rb", compression="lmz") as f:
                out = f.read()
            if out != truth:
                raise Defect("fsspec read other bytes without an error")
        else:
            args = {"cli-t": ["-t"], "cli-dc": ["-dc"], "cli-l": ["-l"]}[entry]
            code, out, err = _cli(args, blob)
            if "Traceback" in err:
                raise Defect(f"lmcodec {' '.join(args)} printed a traceback")
            if code == 0:
                if entry == "cli-dc" and out != truth:
                    raise Defect("lmcodec -dc wrote other bytes with exit status 0")
                return "ok"
            if code != 1:
                raise Defect(f"lmcodec {' '.join(args)} exited {code}")
            if entry == "cli-dc" and out != truth[:len(out)]:
                raise Defect("lmcodec -dc wrote bytes that are not the content before failing")
            return "exit 1"
        return "ok"
    except documented as e:
        if "\n" in str(e).strip():
            raise Defect(f"{type(e).__name__} message of several lines") from None
        return type(e).__name__


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--case-seconds", type=float, default=10.0, help="a case taking longer counts as a time-out")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report = fuzz(args.cases, args.seed, args.case_seconds)
    print("\n".join(report["lines"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report["lines"]) + "\n")
    return 0 if report["undocumented"] == report["wrong"] == report["timeouts"] == 0 else 1


def fuzz(cases: int, seed: int, case_seconds: float = 10.0) -> dict:
    from tools import fuzz_container as fc
    import lmz

    import lmcodec

    documented = (lmcodec.LmzError, lmcodec.ModelError)
    base = bases()
    fields = {k: _fields(fc, *v) for k, v in base.items()}
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    by_entry: dict[str, Counter] = {e: Counter() for e in ENTRIES}
    undocumented, wrong, timeouts, slowest = [], [], 0, (0.0, "")
    t0 = time.perf_counter()
    for i in range(cases):
        name = rng.choice(sorted(base))
        blob, truth = base[name]
        other = base[rng.choice(sorted(base))][0]
        for _ in range(rng.randint(1, 3)):
            blob = mutate(rng, blob, other, fields[name])
        entry = ENTRIES[i % len(ENTRIES)]
        t = time.perf_counter()
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                res = run_case(entry, blob, truth, rng, documented)
        except Defect as e:
            wrong.append(f"case {i} ({name}, {entry}): {e}")
            res = "DEFECT"
        except Exception as e:  # noqa: BLE001 - counting exactly these is the point
            undocumented.append(f"case {i} ({name}, {entry}): {type(e).__name__}: {e}")
            res = "UNDOCUMENTED"
        dt = time.perf_counter() - t
        if dt > case_seconds:
            timeouts += 1
        slowest = max(slowest, (dt, f"case {i} ({name}, {entry})"))
        outcomes[res] += 1
        by_entry[entry][res] += 1
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = ["# Decoder fuzzing", "", f"`python -m tools.fuzz_decoder --cases {cases} --seed {seed}`", "",
             C.machine_info(), "",
             f"{cases:,} cases in {secs:.0f} s over {len(base)} bases ({', '.join(base)}; tiny model, 256-byte "
             f"chunks, lmz {lmz.FORMAT_VERSION}), entry points {', '.join(ENTRIES)}.", "",
             "| outcome | cases |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in outcomes.most_common()]
    lines += ["", "| entry point | " + " | ".join(ENTRIES) + " |", "|---|" + "---:|" * len(ENTRIES)]
    for k in sorted(outcomes):
        lines.append(f"| {k} | " + " | ".join(f"{by_entry[e][k]:,}" for e in ENTRIES) + " |")
    lines += ["", f"- undocumented exceptions: **{len(undocumented)}**", f"- wrong output without an error: "
              f"**{len(wrong)}**", f"- cases over {case_seconds:g} s: {timeouts}; slowest {slowest[0]:.2f} s "
              f"({slowest[1]})", f"- peak RSS of the process: {rss:.0f} MiB"]
    lines += [f"  - {x}" for x in (undocumented + wrong)[:20]]
    return {"lines": lines, "undocumented": len(undocumented), "wrong": len(wrong), "timeouts": timeouts,
            "outcomes": outcomes}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
