"""Speed side by side in one run: an earlier lmcodec (a git worktree), this checkout, and llama.cpp (issue 24).

    python -m tools.bench_speed --before DIR [--file F] [--bytes 16384] [--many-bytes 131072]
                                [--llama-python PY] [--threads 2] [--out tools/results/speed.md]

DIR is a checkout of the earlier version (`git worktree add DIR REV`); PY a Python with llama-cpp-python
(default /work/llama-venv/bin/python; left out if missing). On the same text, each a fresh process (model load
included for lmcodec; llama.cpp's figures are its own timings around eval, load excluded), in turns
before/now so that drifting load hits both alike:

  * encode:       `lmcodec -c` at the default level, --bytes of the file;
  * decode one:   `lmcodec -dc` of those bytes coded at -9 (one frame up to 64 KiB);
  * many frames:  --many-bytes (>= 16 frames of 8 KiB) coded at the default level, then `lmcodec -dc`;
                  decoding's speed as a fraction of its own encoding's;
  * llama.cpp:    the same token ids, logits for every position: prompt processing in batches of 512, and
                  one token per eval (generation with logits every step) over all of them, the positions the
                  one frame decodes; its speed over the first 1,024 alone is printed too (attention costs
                  grow with the position, so a shorter run is faster).

tokens/s counts the model's tokens of the input (this checkout's tokenizer; the GGUF's vocabulary is the
same). The load average is read before and after every run and printed beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import _common as C

ROOT = Path(__file__).resolve().parent.parent
LLAMA_PYTHON = "/work/llama-venv/bin/python"
LLAMA_CHILD = r"""
import json, sys, time
from llama_cpp import Llama
gguf, ids, threads = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
llm = Llama(model_path=gguf, n_ctx=len(ids) + 8, n_batch=512, n_ubatch=512, logits_all=True,
            n_threads=threads, n_threads_batch=threads, verbose=False)
t = time.perf_counter(); llm.eval(ids); pp = time.perf_counter() - t
llm.reset()
first = min(len(ids), 1024)
t = time.perf_counter()
for i, tok in enumerate(ids):
    llm.eval([tok])
    if i + 1 == first:
        head = time.perf_counter() - t
gen = time.perf_counter() - t
print(json.dumps({"pp": len(ids) / pp, "gen": len(ids) / gen, "gen_first": first / head, "first": first}))
"""


def load() -> float:
    return os.getloadavg()[0]


def run_lmcodec(args: list[str], src: Path, dst: Path, before: Path | None, threads: int) -> tuple[float, str]:
    """(seconds, load before->after) of one `lmcodec ARGS < src > dst` process."""
    env = dict(os.environ, LMCODEC_THREADS=str(threads))
    if before is not None:
        env["PYTHONPATH"] = f"{before}:{before / 'container'}"
    l0 = load()
    t = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        r = subprocess.run([sys.executable, "-m", "lmcodec", *args], stdin=fin, stdout=fout,
                           stderr=subprocess.PIPE, env=env, cwd=before or ROOT)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"lmcodec {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
    return secs, f"{l0:.1f}->{load():.1f}"


def run_llama(python: str, gguf: Path, ids: list[int], threads: int) -> dict | None:
    if not Path(python).exists():
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(ids, f)
    l0 = load()
    r = subprocess.run([python, "-c", LLAMA_CHILD, str(gguf), f.name, str(threads)], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        print(f"llama.cpp failed: {r.stderr[-500:]}", file=sys.stderr)
        return None
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = f"{l0:.1f}->{load():.1f}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    ap.add_argument("--file", default="book2")
    ap.add_argument("--bytes", type=int, default=16384)
    ap.add_argument("--many-bytes", type=int, default=131072)
    ap.add_argument("--llama-python", default=LLAMA_PYTHON)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    from lmcodec import models
    from lmcodec.io.lmzfile import get_codec

    data = C.find_corpus_file(a.file).read_bytes()
    tok = get_codec("default").tokenizer
    ids = tok.encode(data[: a.bytes])
    many_tokens = len(tok.encode(data[: a.many_bytes]))
    versions = {"before": a.before.resolve(), "now": None}
    rows: list[list[str]] = []
    results: dict[str, dict[str, float]] = {v: {} for v in versions}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "small").write_bytes(data[: a.bytes])
        (t / "many").write_bytes(data[: a.many_bytes])
        for v, path in versions.items():  # make each version's files (not timed)
            run_lmcodec(["-c9"], t / "small", t / f"{v}.small9.lmz", path, a.threads)
        for v, path in versions.items():
            secs, ld = run_lmcodec(["-c"], t / "small", t / f"{v}.small.lmz", path, a.threads)
            results[v]["encode"] = len(ids) / secs
            rows.append([v, f"`lmcodec -c` {a.bytes} B", f"{secs:.1f}", f"{len(ids) / secs:.0f}", ld])
        for v, path in versions.items():
            secs, ld = run_lmcodec(["-dc"], t / f"{v}.small9.lmz", t / "out", path, a.threads)
            results[v]["decode one frame"] = len(ids) / secs
            rows.append([v, "`lmcodec -dc` of `-9` (one frame)", f"{secs:.1f}", f"{len(ids) / secs:.0f}", ld])
        for v, path in versions.items():
            secs, ld = run_lmcodec(["-c"], t / "many", t / f"{v}.many.lmz", path, a.threads)
            results[v]["many: encode"] = many_tokens / secs
            rows.append([v, f"`lmcodec -c` {a.many_bytes} B", f"{secs:.1f}", f"{many_tokens / secs:.0f}", ld])
            secs, ld = run_lmcodec(["-dc"], t / f"{v}.many.lmz", t / "out", path, a.threads)
            results[v]["many: decode"] = many_tokens / secs
            rows.append([v, f"`lmcodec -dc` {a.many_bytes} B", f"{secs:.1f}", f"{many_tokens / secs:.0f}", ld])
    llama = run_llama(a.llama_python, models.default_gguf(), ids, a.threads)

    lines = [f"# Speed side by side: {a.file}, first {a.bytes} B ({len(ids)} tokens) and {a.many_bytes} B "
             f"({many_tokens} tokens)", "", C.machine_info(), "",
             "| version | command | seconds | tokens/s | load |", "|---|---|---:|---:|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if llama:
        lines += [f"| llama.cpp | prompt processing, logits for every position | | {llama['pp']:.0f} "
                  f"| {llama['load']} |",
                  f"| llama.cpp | one token per eval, logits every step, all {len(ids)} positions | | "
                  f"{llama['gen']:.0f} | |",
                  f"| llama.cpp | the same, first {llama['first']} positions only | | {llama['gen_first']:.0f} | |"]
    b, n = results["before"], results["now"]
    lines += ["", "| ratio | now / before | target |", "|---|---:|---:|",
              f"| encoding | {n['encode'] / b['encode']:.2f} | >= 3 |",
              f"| decoding one frame | {n['decode one frame'] / b['decode one frame']:.2f} | >= 2 |",
              f"| many frames: decoding / its encoding | {n['many: decode'] / n['many: encode']:.2f} "
              f"(before {b['many: decode'] / b['many: encode']:.2f}) | >= 0.8 |"]
    if llama:
        lines += [f"| decoding one frame / llama.cpp generation | {n['decode one frame'] / llama['gen']:.2f} "
                  f"(before {b['decode one frame'] / llama['gen']:.2f}) | >= 1.0 |",
                  f"| encoding / llama.cpp prompt processing | {n['encode'] / llama['pp']:.2f} "
                  f"(before {b['encode'] / llama['pp']:.2f}) | >= 3 |"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
