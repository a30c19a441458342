#!/usr/bin/env python
"""lmcodec against the classical compressors: sizes, rates, speeds and memory, as tables, a CSV and plots.

    python -m tools.bench FILE_OR_DIR... --out DIR [--model default] [--chunk-size 2048,8192]
                          [--max-bytes N] [--decode-bytes N] [--raw] [--batch-size 4] [--threads N]
    python -m tools.bench --suite readme CORPUS_DIR --out DIR      # the tables of docs/results.md

Files are prepared as the paper prepared its modalities (modalities.py): text as is; images (.png, .jpg, ...)
as 8-bit grayscale 32x64 patches; audio (.wav, .flac, ...) as 8-bit mono 16 kHz. --raw takes every file's
bytes as they are. --max-bytes takes the first N bytes of a text, and N bytes of evenly spaced 2048-byte
samples of an image or a recording.

Per file, each compressor of compressors.py runs on the whole input and, independently, on chunks of each
--chunk-size (framing counted once); PNG and FLAC join for images and audio. lmcodec runs with each --model
and chunk size: the .lmz file that lmcodec.compress writes and, where that file holds frames that skipped the
model (its pre-check sends non-text chunks to zstd or stored), also a stream forced through the model, so
both what the file does and the model's own rate are reported. Every output is decompressed and compared;
lmcodec's decompression (slow) is timed on a stream of the first --decode-bytes bytes.

Writes DIR/bench.md, DIR/bench.csv and the plots DIR/rates.png, DIR/tradeoff.png, DIR/lm_speed.png.
Speeds are absolute and vary between machines; the ratios are what to compare.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tools import _common as C
from tools import compressors
from tools.lm_measure import Lm, frames, unspellable
from tools.modalities import SAMPLE, Sample, prepare

# The measurement of docs/results.md: small because the default model codes ~300 B/s and decodes ~60 B/s on 2 cores.
SUITES = {
    "readme": {
        "files": [  # path under the corpus folder, bytes taken, chunk sizes
            ("text/canterbury/alice29.txt", 8192, (2048, 8192)),
            ("text/calgary/book2", 8192, (2048, 8192)),
            ("text/calgary/paper1", 8192, (2048, 8192)),
            ("text/canterbury/lcet10.txt", 8192, (2048, 8192)),
            ("image/kodak/kodim03.png", 8192, (2048,)),
            ("image/kodak/kodim08.png", 8192, (2048,)),
            ("audio/jfk.wav", 16384, (2048,)),
        ],
        "decode_bytes": 1024,
    },
}
LM = "lmcodec"
FORCED = "lmcodec, model forced"
SAME = " on the same samples"
# What lmcodec is held against, per modality (name, chunk size): the paper's PNG and FLAC per 2048-byte sample
RIVALS = {"text": [("xz -9e", None), ("zstd -19", None)], "image": [("PNG", SAMPLE)], "audio": [("FLAC", SAMPLE)]}


@dataclass
class Row:
    file: str
    modality: str
    raw: int
    compressor: str
    chunk: int | None  # None: the whole input as one stream
    size: int
    enc_s: float
    enc_peak: int
    dec_s: float
    dec_bytes: int  # the bytes the decompression time covers
    dec_peak: int
    model: str = ""  # lmcodec rows: the model, its file size, the lm payload and ideal code length, engine time
    model_bytes: int = 0
    payload: int = 0
    ideal_bits: float = 0.0
    enc_engine_s: float = 0.0
    dec_engine_s: float = 0.0
    frames: str = ""  # lmcodec rows: frames by method
    skipped: int = 0  # lmcodec rows: frames that skipped the model
    coverage: str = ""  # samples the model's vocabulary can spell, where that limited a measurement
    files: int = field(default=1, repr=False)  # files summed into this row

    @property
    def rate(self) -> float:
        return 100.0 * self.size / self.raw

    @property
    def is_lm(self) -> bool:
        return self.compressor in (LM, FORCED)

    @property
    def label(self) -> str:
        return f"{self.compressor} ({self.model})" if self.model else self.compressor

    @property
    def chunks(self) -> str:
        return "whole" if self.chunk is None else f"{self.chunk} B"


def speed(n: float, s: float) -> str:
    if s <= 0:
        return "—"
    v = n / s
    for unit, k in (("MB/s", 1e6), ("kB/s", 1e3)):
        if v >= k:
            return f"{v / k:.3g} {unit}"
    return f"{v:.3g} B/s"


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def pct(x: float) -> str:
    return f"{x:.1f}%" if x < 1000 else f"{x:,.0f}%"


# ---- measuring ------------------------------------------------------------------------------------------

def classical(name: str, modality: str, data: bytes, comp: compressors.Compressor, chunk: int | None) -> Row:
    parts = compressors.pieces(data, chunk) if chunk else [data]
    if comp.name == "PNG" and any(len(p) % compressors.PATCH_W for p in parts):
        raise ValueError("PNG needs whole 64-pixel rows")
    blobs, enc_s, enc_peak = C.measured(lambda: [comp.compress(p) for p in parts])
    back, dec_s, dec_peak = C.measured(lambda: b"".join(comp.decompress(b) for b in blobs))
    if back != data:
        raise SystemExit(f"{comp.name} on {name}: ROUND TRIP FAILED")
    return Row(name, modality, len(data), comp.name, chunk, compressors.chunked_size(comp, blobs),
               enc_s, enc_peak, dec_s, len(data), dec_peak)


def lm_row(sample: Sample, data: bytes, lm: Lm, forced: bool, decode_bytes: int | None) -> Row:
    blob, enc = lm.compress(data, forced)
    by, payload = frames(blob)
    part = data[:decode_bytes] if decode_bytes else data
    dec = lm.decompress(blob if len(part) == len(data) else lm.compress(part, forced)[0], part)
    return Row(sample.name, sample.modality, len(data), FORCED if forced else LM, lm.chunk_size, len(blob),
               enc.seconds, enc.peak, dec.seconds, len(part), dec.peak, lm.codec().model.model_id,
               lm.model_bytes, payload, enc.ideal_bits, enc.engine_seconds, dec.engine_seconds,
               ", ".join(f"{n} {m}" for m, n in sorted(by.items())), sum(by.values()) - by["lm"])


def lmcodec_rows(sample: Sample, lms: list[Lm], comps: list[compressors.Compressor],
                 decode_bytes: int | None) -> list[Row]:
    """The .lmz file at each chunk size; where it let chunks skip the model, also the model's own rate.

    The model can only code bytes its vocabulary spells, so its own rate is measured on the 2048-byte samples
    that hold none of the others, next to this modality's rivals on those same samples."""
    rows = [lm_row(sample, sample.data, lm, False, decode_bytes) for lm in lms]
    if not any(r.skipped for r in rows):
        return rows
    bad = set(unspellable(lms[0].codec()))
    pieces = compressors.pieces(sample.data, SAMPLE)
    good = [p for p in pieces if not bad & set(p)]
    coverage = f"{len(good)} of {len(pieces)} samples"
    if good:
        data = b"".join(good)
        rows += [lm_row(sample, data, lm, True, decode_bytes) for lm in lms]
        rivals = {c.name: c for c in comps}
        for name, chunk in RIVALS[sample.modality]:
            r = classical(sample.name, sample.modality, data, rivals[name], chunk)
            r.compressor, r.model = name + SAME, rows[0].model
            rows.append(r)
    for r in rows:
        r.coverage = coverage
    return rows


# ---- reporting ------------------------------------------------------------------------------------------

def total(rows: list[Row]) -> Row:
    """Rows of one compressor and chunking summed over files (peak memory: the largest)."""
    t = Row(**{f.name: getattr(rows[0], f.name) for f in fields(Row)})
    t.file, t.files = f"{len(rows)} files", len(rows)
    for k in ("raw", "size", "enc_s", "dec_s", "dec_bytes", "payload", "ideal_bits", "enc_engine_s", "dec_engine_s"):
        setattr(t, k, sum(getattr(r, k) for r in rows))
    t.enc_peak, t.dec_peak = max(r.enc_peak for r in rows), max(r.dec_peak for r in rows)
    by: Counter = Counter()
    for r in rows:
        by.update({m: int(n) for n, m in (f.split() for f in r.frames.split(", ") if f)})
    t.frames = ", ".join(f"{n} {m}" for m, n in sorted(by.items()))
    return t


def totals(rows: list[Row]) -> list[Row]:
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.compressor, r.model, r.chunk)].append(r)
    return sorted((total(g) for g in groups.values()), key=lambda r: r.rate)


def table(head: list[str], body: list[list[str]]) -> list[str]:
    right = ["---:" if i else "---" for i in range(len(head))]
    return ["| " + " | ".join(head) + " |", "|" + "|".join(right) + "|"] + ["| " + " | ".join(b) + " |" for b in body]


def best(tots: list[Row], name: str, chunk: int | None = None) -> Row | None:
    return next((r for r in tots if r.compressor == name and r.chunk == chunk), None)


def verdicts(modality: str, tots: list[Row]) -> list[str]:
    """Each lmcodec variant against this modality's rivals: the .lmz file on all the data, the model's own
    rate against the rivals on the same samples."""
    lines = []
    for r in (x for x in tots if x.is_lm):
        for name, chunk in RIVALS[modality]:
            if r.compressor == FORCED:
                o = next((x for x in tots if x.compressor == name + SAME and x.model == r.model), None)
                what = f"the model's own rate on {r.coverage} (its code alone {pct(100.0 * r.payload / r.raw)})"
            else:
                o, what = best(tots, name, chunk), "the .lmz file"
            if o is None:
                continue
            word = "beats" if r.size < o.size else "LOSES TO"
            lines.append(f"- {modality}, {r.model}, {r.chunks} chunks, {what}: {pct(r.rate)} — {word} {o.label} "
                         f"({o.chunks}) at {pct(o.rate)} (lmcodec / {name} = {r.size / o.size:.2f})")
    return lines


def report(samples: list[Sample], rows: list[Row], comps: dict[str, str]) -> list[str]:
    out = ["# lmcodec against classical compressors", "", C.machine_info(), "",
           "Implementations: " + "; ".join(f"{k}: {v}" for k, v in comps.items()) + ".",
           "Chunked classical sizes count each compressor's framing once (the paper's convention); lmcodec "
           "sizes are whole .lmz files (header, per-frame checksums, trailer index).", ""]
    for modality in ("text", "image", "audio"):
        mrows = [r for r in rows if r.modality == modality]
        if not mrows:
            continue
        tots = totals(mrows)
        out += [f"## {modality.capitalize()}", "",
                "Data: " + "; ".join(f"{s.name} ({s.how})" for s in samples if s.modality == modality) + ".", ""]
        limited = sorted({(r.model, r.file, r.coverage) for r in mrows if r.compressor == LM and r.coverage})
        if limited:
            out += ["The .lmz file sent chunks to zstd or stored frames (the codec's pre-check: not text), so the "
                    "model was also run on its own (\"model forced\"). It can only code bytes its vocabulary "
                    "spells, so that is measured on the 2048-byte samples holding none of the others, next to "
                    "the rivals on those same samples: " + "; ".join(f"{m}, {f}: {c}" for m, f, c in limited)
                    + ".", ""]
        out += table(["compressor", "chunks", "raw bytes", "compressed", "rate", "bits/byte", "compress",
                      "decompress", "peak memory MiB (compress / decompress)"],
                     [[f"**{r.label}**" if r.is_lm else r.label, r.chunks, str(r.raw), str(r.size), pct(r.rate),
                       f"{8 * r.size / r.raw:.3f}", speed(r.raw, r.enc_s),
                       speed(r.dec_bytes, r.dec_s) + ("" if r.dec_bytes == r.raw else f" ({r.dec_bytes} B)"),
                       f"{mib(r.enc_peak)} / {mib(r.dec_peak)}"] for r in tots])
        out += ["", *verdicts(modality, tots), ""]
        cols = [r for r in tots if r.is_lm or r.chunk is None or r.model or r.compressor in ("PNG", "FLAC")]
        by_file = {(r.file, r.compressor, r.model, r.chunk): r for r in mrows}
        names = list(dict.fromkeys(r.file for r in mrows))
        out += ["Rate per file:", ""]
        out += table(["file", "bytes"] + [f"{c.label}, {c.chunks}" for c in cols],
                     [[n, str(next(r.raw for r in mrows if r.file == n and not r.model))]
                      + [pct(by_file[(n, c.compressor, c.model, c.chunk)].rate)
                         if (n, c.compressor, c.model, c.chunk) in by_file else "" for c in cols] for n in names])
        xz = best(tots, "xz -9e")
        out += ["", "lmcodec in detail: the model's code alone (lm payloads, the paper's measure), its ideal "
                "length, and the adjusted rate (compressed size plus the model file, the paper's definition); "
                "break-even: the input size from which the adjusted size is below xz -9e's:", ""]
        body = []
        for r in (x for x in tots if x.is_lm):
            adjusted = 100.0 * (r.size + r.model_bytes) / r.raw
            code = [pct(100.0 * r.payload / r.raw), f"{r.ideal_bits / r.raw:.3f}", f"{8 * r.payload / r.raw:.3f}"]
            even = "—"  # the model-forced rows code other bytes than xz did
            if xz and r.compressor == LM:
                gain = (xz.size - r.size) / r.raw  # bytes saved per input byte
                even = f"{r.model_bytes / gain / 1e6:,.1f} MB" if gain > 0 else "never"
            body.append([r.label, r.chunks, r.frames, pct(r.rate), *(code if r.payload else ["—"] * 3),
                         f"{r.model_bytes:,}", pct(adjusted), even])
        out += table(["lmcodec", "chunks", "frames", "rate (file)", "rate (model's code)", "ideal bits/byte",
                      "coded bits/byte", "model bytes", "adjusted rate", "break-even vs xz -9e"], body)
        out += ["", "Speed against the limit: the engine alone (the model's forward passes) next to the whole "
                "compressor; the rest is tokenizing, range coding, framing and checksums:", ""]
        out += table(["lmcodec", "chunks", "compress", "engine alone", "not engine", "decompress", "engine alone",
                      "not engine"],
                     [[r.label, r.chunks, speed(r.raw, r.enc_s), speed(r.raw, r.enc_engine_s),
                       f"{100 * (1 - r.enc_engine_s / r.enc_s):.1f}%", speed(r.dec_bytes, r.dec_s),
                       speed(r.dec_bytes, r.dec_engine_s), f"{100 * (1 - r.dec_engine_s / r.dec_s):.1f}%"]
                      for r in tots if r.payload])
        out.append("")
    out += ["Plots: rates.png (rate by compressor), tradeoff.png (rate against compression speed), "
            "lm_speed.png (lmcodec against its engine alone). Every row in bench.csv."]
    return out


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        keys = [k for k in asdict(rows[0]) if k != "files"]
        w.writerow(keys + ["rate_pct", "bits_per_byte", "adjusted_rate_pct", "compress_Bps", "decompress_Bps"])
        for r in rows:
            adj = f"{100 * (r.size + r.model_bytes) / r.raw:.3f}" if r.is_lm else ""
            w.writerow([getattr(r, k) for k in keys] + [f"{r.rate:.3f}", f"{8 * r.size / r.raw:.4f}", adj,
                                                        f"{r.raw / r.enc_s:.1f}", f"{r.dec_bytes / r.dec_s:.1f}"])


def plots(rows: list[Row], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = [m for m in ("text", "image", "audio") if any(r.modality == m for r in rows)]
    tots = {m: totals([r for r in rows if r.modality == m]) for m in mods}
    color = lambda r: "tab:red" if r.compressor == LM else "tab:orange" if r.is_lm else "tab:blue"  # noqa: E731

    fig, axes = plt.subplots(1, len(mods), figsize=(6 * len(mods), 0.3 * max(len(t) for t in tots.values()) + 1.5),
                             squeeze=False)
    for ax, m in zip(axes[0], mods):
        t = tots[m][::-1]
        ax.barh([f"{r.label}, {r.chunks}" for r in t], [r.rate for r in t], color=[color(r) for r in t])
        ax.set_title(f"{m}: {max(r.raw for r in t)} bytes, {max(r.files for r in t)} file(s)")
        ax.set_xlabel("compressed / raw (%), lower is better")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "rates.png", dpi=100)
    plt.close(fig)

    names = list(dict.fromkeys(r.label for m in mods for r in tots[m]))
    palette = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, len(mods), figsize=(5.5 * len(mods) + 3, 4.5), squeeze=False)
    for ax, m in zip(axes[0], mods):
        for r in tots[m]:
            ax.scatter(r.raw / r.enc_s, r.rate, color=palette(names.index(r.label) % 20),
                       marker="o" if r.chunk is None else "s", label=f"{r.label}, {r.chunks}")
        ax.set_xscale("log")
        ax.set_xlabel("compression speed (bytes/s, log)")
        ax.set_ylabel("rate (%)")
        ax.set_title(f"{m} (o whole input, s chunked)")
        ax.grid(True, alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.collections}
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=6)
    fig.tight_layout(rect=(0, 0, 1 - 3 / (5.5 * len(mods) + 3), 1))
    fig.savefig(out / "tradeoff.png", dpi=100)
    plt.close(fig)

    lm = [(m, r) for m in mods for r in tots[m] if r.payload]  # variants that ran the model
    if not lm:
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(lm) + 2), 4))
    x = range(len(lm))
    def rate(n: float, s: float) -> float:
        return n / s if s > 0 else 0.0  # a time too short to measure draws no bar

    series = [("compress", lambda r: rate(r.raw, r.enc_s)), ("compress, engine alone", lambda r: rate(r.raw, r.enc_engine_s)),
              ("decompress", lambda r: rate(r.dec_bytes, r.dec_s)),
              ("decompress, engine alone", lambda r: rate(r.dec_bytes, r.dec_engine_s))]
    for i, (name, fn) in enumerate(series):
        ax.bar([j + 0.2 * i - 0.3 for j in x], [fn(r) for _, r in lm], width=0.2, label=name)
    ax.set_xticks(list(x), [f"{m}\n{r.compressor.replace('lmcodec, ', '')}\n{r.chunks}" for m, r in lm], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("bytes/s (log)")
    ax.set_title("lmcodec: whole compressor against its engine alone")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "lm_speed.png", dpi=100)
    plt.close(fig)


def jobs(args) -> tuple[list[tuple[Path, int | None, tuple[int, ...]]], int | None]:
    """(file, bytes to take, chunk sizes) for each input, and the decode limit."""
    if args.suite:
        if len(args.paths) != 1 or not args.paths[0].is_dir():
            raise SystemExit("--suite takes one argument: the corpus folder")
        s = SUITES[args.suite]
        return [(args.paths[0] / p, n, sizes) for p, n, sizes in s["files"]], s["decode_bytes"]
    sizes = tuple(int(x) for x in args.chunk_size.split(","))
    files = [f for p in args.paths for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])]
    return [(f, args.max_bytes, sizes) for f in files], args.decode_bytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for bench.md, bench.csv and the plots")
    ap.add_argument("--suite", choices=sorted(SUITES), help="a fixed selection; PATHS is then the corpus folder")
    ap.add_argument("--model", action="append", help="lmcodec model (repeatable; default: the default model)")
    ap.add_argument("--chunk-size", default="8192", help="comma-separated chunk sizes for lmcodec and chunked runs")
    ap.add_argument("--max-bytes", type=int, help="bytes to take from each file (see above)")
    ap.add_argument("--decode-bytes", type=int, help="time lmcodec's decompression on this many bytes")
    ap.add_argument("--raw", action="store_true", help="no modality preparation: every file's bytes as they are")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = ap.parse_args()

    todo, decode_bytes = jobs(args)
    samples = [prepare(f, n, args.raw) for f, n, _ in todo]
    models = args.model or ["default"]
    comps = {m: compressors.for_modality(m) for m in {s.modality for s in samples}}
    units = sum(len(comps[s.modality]) * (1 + len(sizes)) + len(models) * len(sizes)
                for s, (_, _, sizes) in zip(samples, todo))
    rows: list[Row] = []
    with C.progress(units, "bench") as bar:
        for s, (_, _, sizes) in zip(samples, todo):
            for comp in comps[s.modality]:
                for chunk in (None, *sizes):
                    bar.set_postfix_str(f"{s.name}: {comp.name} {chunk or 'whole'}")
                    try:
                        rows.append(classical(s.name, s.modality, s.data, comp, chunk))
                    except ValueError:
                        pass  # PNG at a chunk size that cuts image rows
                    bar.update()
        for model in models:  # one model loaded at a time
            # load (the first time, convert) the model and warm it up, outside the timings
            Lm(model, todo[0][2][0], args.batch_size, args.threads).warm()
            for s, (_, _, sizes) in zip(samples, todo):
                bar.set_postfix_str(f"{s.name}: lmcodec {model} {','.join(map(str, sizes))}")
                lms = [Lm(model, chunk, args.batch_size, args.threads) for chunk in sizes]
                rows += lmcodec_rows(s, lms, comps[s.modality], decode_bytes)
                bar.update(len(sizes))

    args.out.mkdir(parents=True, exist_ok=True)
    impl = {c.name: c.impl for cs in comps.values() for c in cs}
    write_csv(rows, args.out / "bench.csv")
    C.emit(report(samples, rows, impl), args.out / "bench.md")
    plots(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
