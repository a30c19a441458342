#!/usr/bin/env python3
"""Archives, binary inputs and small files (issue 11): lmcodec side by side with xz -9e and zstd -19, one run.

    python -m tools.bench_tar --out tools/results/tar [--member-bytes 16384] [--level 6] [--before DIR]

1. A tar (GNU tar, deterministic: sorted names, fixed mtime and owner) of the corpus's C sources and the
   Calgary/Canterbury text files, each member its first --member-bytes bytes (0: whole files; the whole set is
   4.6 MB, about an hour at the model's speed on 2 cores). Targets: lmcodec <= 0.45 x xz -9e, and the tar within
   5% (+ 64 B per member) of the sum of its members compressed one by one with lmcodec.
2. Binary inputs (random bytes, a JPEG, a PNG, a WAV, an ELF executable): lmcodec never larger than
   zstd -19 + 0.1%, compressing at >= 20 MB/s.
3. A 3,072-byte English sample (alice29.txt): the file, the model's code (lm payload) and the framing around it.

lmcodec runs through its API at the given level's chunk size (lmcodec -L). --before DIR: a checkout of
lmcodec 0.1 (git worktree add DIR ea08328) compresses the same inputs, in a subprocess.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import _common as C
from tools import compressors

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
TEXT = {"canterbury": ["alice29.txt", "asyoulik.txt", "cp.html", "fields.c", "grammar.lsp", "lcet10.txt",
                       "plrabn12.txt", "xargs.1"],
        "calgary": ["bib", "book1", "book2", "news", "paper1", "paper2", "progc", "progl", "progp", "trans"]}
BINARY = {"random (1 MiB)": None, "fireworks.jpeg": "image/fireworks.jpeg", "kodim03.png": "image/kodak/kodim03.png",
          "jfk.wav": "audio/jfk.wav", "tar (ELF)": "/usr/bin/tar"}


def make_tree(root: Path, member_bytes: int) -> list[Path]:
    """The archive's members under root/corpus/, each cut to member_bytes (0: whole)."""
    files = [(CORPUS / "code").glob("*")] + [[CORPUS / "text" / d / n for n in names] for d, names in TEXT.items()]
    out = []
    for group in files:
        for src in sorted(group):
            dst = root / "corpus" / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            dst.write_bytes(data[:member_bytes] if member_bytes else data)
            out.append(dst)
    return out


def make_tar(root: Path) -> bytes:
    return subprocess.run(["tar", "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner",
                           "-C", str(root), "-cf", "-", "corpus"], capture_output=True, check=True).stdout


def binary_inputs() -> dict[str, bytes]:
    out = {}
    for name, rel in BINARY.items():
        if rel is None:
            out[name] = os.urandom(1 << 20)
            continue
        p = Path(rel) if rel.startswith("/") else CORPUS / rel
        if p.is_file():
            out[name] = p.read_bytes()
    return out


def lm_payload(blob: bytes) -> int:
    import lmz

    return sum(len(f.payload) for f in lmz.Reader(io.BytesIO(blob)).frames() if f.method == lmz.METHOD_LM)


def before_sizes(checkout: Path, inputs: dict[str, bytes]) -> dict[str, int]:
    """.lmz sizes from an lmcodec 0.1 checkout at its default level, run in a subprocess with its own code."""
    code = ("import json, sys, lmcodec\n"
            "print(json.dumps({n: len(lmcodec.compress(open(p, 'rb').read())) "
            "for n, p in json.loads(sys.argv[1]).items()}))\n")
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for i, (name, data) in enumerate(inputs.items()):
            paths[name] = os.path.join(d, str(i))
            Path(paths[name]).write_bytes(data)
        env = dict(os.environ, PYTHONPATH=f"{checkout}:{checkout / 'container'}")
        r = subprocess.run([sys.executable, "-c", code, json.dumps(paths)], capture_output=True, text=True, env=env,
                           check=True, cwd=d)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tools/results/tar")
    ap.add_argument("--member-bytes", type=int, default=16384)
    ap.add_argument("--level", type=int, default=None, help="lmcodec level (default: the CLI's)")
    ap.add_argument("--before", type=Path, help="a checkout of lmcodec 0.1")
    ap.add_argument("--verify", action="store_true", help="also decode the archive and compare (slow)")
    args = ap.parse_args()
    if shutil.which("tar") is None:
        raise SystemExit("needs GNU tar")
    import lmcodec
    from lmcodec.defaults import DEFAULT_LEVEL, PRESETS

    level = args.level or DEFAULT_LEVEL
    chunk, batch = PRESETS[level]
    opts = {"chunk_size": chunk, "batch_size": batch}
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    comps = {c.name: c for c in compressors.general()}
    xz, zstd = comps["xz -9e"], comps["zstd -19"]
    lmcodec.compress(b"warm up: load the model and compile the kernels", **opts)

    with tempfile.TemporaryDirectory() as d:
        members = make_tree(Path(d), args.member_bytes)
        tar = make_tar(Path(d))
        member_data = {str(p.relative_to(d)): p.read_bytes() for p in members}
    t = time.perf_counter()
    blob = lmcodec.compress(tar, **opts)
    tar_s = time.perf_counter() - t
    print(f"tar {len(tar):,} -> {len(blob):,} in {tar_s:.0f} s", flush=True)
    if args.verify:
        assert lmcodec.decompress(blob) == tar, "tar: ROUND TRIP FAILED"
    each = {}
    for name, data in member_data.items():
        each[name] = len(lmcodec.compress(data, **opts))
        print(f"  {name} {len(data):,} -> {each[name]:,}", flush=True)
    sum_each = sum(each.values())
    allowed = 1.05 * sum_each + 64 * len(each)
    xz_tar, zstd_tar = len(xz.compress(tar)), len(zstd.compress(tar))
    xz_each = sum(len(xz.compress(v)) for v in member_data.values())

    binaries = binary_inputs()
    brows = []
    for name, data in binaries.items():
        t = time.perf_counter()
        b = lmcodec.compress(data, **opts)
        s = time.perf_counter() - t
        assert lmcodec.decompress(b) == data, f"{name}: ROUND TRIP FAILED"
        z = len(zstd.compress(data))
        brows.append((name, len(data), len(b), z, len(data) / s / 1e6))
        print(f"{name} {len(data):,} -> {len(b):,} (zstd -19 {z:,}) {len(data) / s / 1e6:.1f} MB/s", flush=True)

    sample = (CORPUS / "text/canterbury/alice29.txt").read_bytes()[:3072]
    small = lmcodec.compress(sample, **opts)
    assert lmcodec.decompress(small) == sample
    small_payload = lm_payload(small)

    before = {}
    if args.before:
        before = before_sizes(args.before, {"tar": tar, "sample": sample, **member_data})
        before["members"] = sum(before[n] for n in member_data)

    cut = f"first {args.member_bytes:,} bytes of each" if args.member_bytes else "whole files"
    lines = ["# Archives, binary inputs and small files", "",
             f"`python -m tools.bench_tar --out {args.out} --member-bytes {args.member_bytes}"
             + (f" --level {args.level}" if args.level else "") + (f" --before {args.before}" if args.before else "")
             + "`", "", C.machine_info(), "",
             f"lmcodec -{level} ({chunk // 1024} KiB chunks). The archive: GNU tar of {len(members)} files ({cut}) "
             f"from the corpus's C sources and the Calgary/Canterbury text files, {len(tar):,} bytes.", "",
             "| | bytes | lmcodec / xz -9e |" + (" lmcodec 0.1 |" if before else ""),
             "|---|---:|---:|" + ("---:|" if before else "")]

    def row(label: str, n: int, ref: int | None = None, b: int | None = None) -> str:
        return (f"| {label} | {n:,} | {f'{n / ref:.3f}' if ref else ''} |"
                + (f" {b:,} |" if before and b is not None else (" |" if before else "")))

    lines += [row("tar", len(tar)), row(f"lmcodec -{level}, tar", len(blob), xz_tar, before.get("tar")),
              row(f"lmcodec -{level}, members one by one (sum)", sum_each, xz_each, before.get("members")),
              row("xz -9e, tar", xz_tar), row("xz -9e, members one by one (sum)", xz_each),
              row("zstd -19, tar", zstd_tar), "",
              f"- lmcodec tar / xz -9e tar = **{len(blob) / xz_tar:.3f}** (target <= 0.45)",
              f"- lmcodec tar / sum of members = {len(blob) / sum_each:.3f}; allowed 1.05 x sum + 64 B x "
              f"{len(each)} members = {allowed:,.0f} B: {'met' if len(blob) <= allowed else 'MISSED'}",
              f"- compression speed on the tar: {len(tar) / tar_s / 1000:.2f} kB/s", "",
              "## Binary inputs", "", "| input | bytes | lmcodec | zstd -19 | lmcodec / zstd -19 | lmcodec MB/s |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, n, b, z, mbs in brows:
        lines.append(f"| {name} | {n:,} | {b:,} | {z:,} | {b / z:.4f} | {mbs:.1f} |")
    ok = all(b <= 1.001 * z for _, _, b, z, _ in brows)
    fast = all(m >= 20 for *_, m in brows)
    lines += ["", f"- never larger than zstd -19 + 0.1%: {'met' if ok else 'MISSED'}; >= 20 MB/s: "
                  f"{'met' if fast else 'MISSED'}", "",
              "## A small file", "",
              f"3,072 bytes of alice29.txt: **{len(small)} B** (lm payload {small_payload} B, framing "
              f"{len(small) - small_payload} B)" + (f"; lmcodec 0.1: {before['sample']} B" if before else "")
              + f"; xz -9e {len(xz.compress(sample))} B, zstd -19 {len(zstd.compress(sample))} B.", ""]
    (outdir / "bench_tar.json").write_text(json.dumps(
        {"tar": len(tar), "lmz": len(blob), "members": each, "xz_tar": xz_tar, "xz_each": xz_each,
         "zstd_tar": zstd_tar, "binary": brows, "small": [len(small), small_payload], "before": before,
         "tar_seconds": tar_s}, indent=1))
    C.emit(lines, outdir / "bench_tar.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
