#!/usr/bin/env python
"""Speed and memory of the integer engine, side by side with the float32 transformers model, in one run.

    python -m tools.bench_engine [--text FILE] [--tokens 1000] [--batch 4] [--decode-batch 64] [--steps 16]
                                 [--prefill 8] [--reps 2] [--out RESULT.md]

Both systems get the same token ids (the integer model's tokenizer on --text; row r of a batch is the r-th
slice of the text) and the same torch thread count. Timed phases alternate between the two systems (engine
first in even repetitions, float first in odd ones) so that concurrent load hits both alike; each figure is the
best of --reps, and the ratio is taken between figures of the same run.
  (a) full-sequence pass, tokens/s = batch * (1 + tokens) positions / s:
      engine: Engine.full_tables on (batch, 1 + tokens) ids, every table block consumed;
      float:  model(ids).logits under torch.inference_mode(), then log_softmax over the vocabulary
              (the engine produces full normalized tables, so the float side pays for its normalization too).
  (b) incremental decoding with a KV cache, tokens/s = batch * steps / s, after --prefill tokens (not timed):
      engine: Engine.start(batch).step(ids) per position;
      float:  model(ids[:, -1:], past_key_values=cache, use_cache=True), then log_softmax; prefill is one forward.
      At --decode-batch (64, where the reference figure "about 430 tok/s float32" was taken) and at --batch.
  (c) peak RSS (ru_maxrss) of a fresh process running the engine alone with the default model: after a full
      pass at batch 1 over --tokens tokens, then after decoding at --batch (prefill + steps). Target <= 700 MB.
  (d) model load time in that fresh process: IntModel.load with a known hash (memory-map only), IntModel.load
      computing the SHA-256, models.resolve("default") and Engine(); target <= 1 s for IntModel.load.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from tools import _common as C


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cur_rss_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _token_rows(model, text: Path, rows: int, length: int):
    """(rows, length) token ids: consecutive slices of the text's tokens (the text repeats if too short)."""
    import torch

    from lmcodec.pipeline.tokens import ByteTokenizer

    ids = ByteTokenizer(model).encode(text.read_bytes())
    need = rows * length
    while len(ids) < need:
        ids = ids + ids
    return torch.tensor(ids[:need], dtype=torch.long).view(rows, length)


def _with_bos(ids, bos: int):
    import torch

    return torch.cat([torch.full((ids.shape[0], 1), bos, dtype=torch.long), ids], 1)


# ---- the child process: memory and load time of the engine alone ---------------------------------------------
def child(a) -> None:
    out = {}
    t = time.perf_counter()
    import torch  # noqa: F401

    from lmcodec import models
    from lmcodec.engine import Engine
    from lmcodec.engine.intmodel import IntModel

    out["import_s"] = time.perf_counter() - t
    out["rss_import"] = _rss_mb()
    t = time.perf_counter()
    m = models.resolve("default")
    out["resolve_s"] = time.perf_counter() - t
    path, sha = m.path, m.sha256
    del m
    t = time.perf_counter()
    m = IntModel.load(path, sha256=sha)
    out["load_nohash_s"] = time.perf_counter() - t
    t = time.perf_counter()
    IntModel.load(path)
    out["load_hash_s"] = time.perf_counter() - t
    out["rss_load"] = _rss_mb()
    t = time.perf_counter()
    e = Engine(m, device="cpu", threads=a.threads)
    out["engine_s"] = time.perf_counter() - t
    out["rss_engine"] = _rss_mb()
    out["model_mb"] = path.stat().st_size / 1e6

    ids = _with_bos(_token_rows(m, Path(a.text), 1, a.tokens), e.bos_id)
    for _t0, _tables in e.full_tables(ids):
        pass
    del _tables
    out["rss_full_b1"] = _rss_mb()
    out["cur_full_b1"] = _cur_rss_mb()
    ids = _with_bos(_token_rows(m, Path(a.text), a.batch, a.prefill + a.steps - 1), e.bos_id)
    st = e.start(a.batch)
    for j in range(ids.shape[1]):
        st.step(ids[:, j])
    out["rss_decode"] = _rss_mb()
    out["cur_decode"] = _cur_rss_mb()
    print(json.dumps(out))


# ---- the main process --------------------------------------------------------------------------------------
def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default="alice29.txt", help="text to tokenize (looked up under the corpus if bare)")
    ap.add_argument("--tokens", type=int, default=1000, help="tokens per row in the full pass (plus BOS)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16, help="timed decoding steps")
    ap.add_argument("--prefill", type=int, default=8, help="untimed tokens before the decoding steps")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.text = str(C.find_corpus_file(a.text))
    if a.rss_child:
        child(a)
        return 0

    t_start = time.perf_counter()
    # (c), (d) first, in a fresh process, before this one loads anything
    cmd = [sys.executable, "-m", "tools.bench_engine", "--rss-child", "--text", a.text, "--tokens", str(a.tokens), "--batch",
           str(a.batch), "--steps", str(a.steps), "--prefill", str(a.prefill)]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT)
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        raise SystemExit("the RSS child process failed")
    ch = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"  child: {ch}", file=sys.stderr, flush=True)

    import warnings

    import torch

    from lmcodec import models
    from lmcodec.engine import Engine

    # transformers 5.x: "`past_key_values` is deprecated ... Use `cache` instead"; the keyword still works
    warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
    if a.threads:
        torch.set_num_threads(a.threads)
    m = models.resolve("default")
    eng = Engine(m, device="cpu", threads=a.threads)
    fm = C.load_float_model()
    bos = m.config["bos_id"]

    # (a) full-sequence pass
    full_ids = _with_bos(_token_rows(m, Path(a.text), a.batch, a.tokens), bos)

    def eng_full(ids=full_ids):
        for _t0, _tables in eng.full_tables(ids):
            pass

    def flt_full(ids=full_ids):
        with torch.inference_mode():
            torch.log_softmax(fm(ids).logits, -1)

    eng_full(full_ids[:, :65])  # warm-up
    flt_full(full_ids[:, :65])
    res = {"full_e": [], "full_f": []}
    for rep in range(a.reps):
        for which in (("e", "f") if rep % 2 == 0 else ("f", "e")):
            res[f"full_{which}"].append(_time(eng_full if which == "e" else flt_full))
            print(f"  full {which} rep {rep}: {res[f'full_{which}'][-1]:.2f} s", file=sys.stderr, flush=True)
    positions = full_ids.numel()

    # (b) incremental decoding
    def eng_decode(ids):
        st = eng.start(ids.shape[0])
        for j in range(a.prefill):
            st.step(ids[:, j])
        t = time.perf_counter()
        for j in range(a.prefill, ids.shape[1]):
            st.step(ids[:, j])
        return time.perf_counter() - t

    def flt_decode(ids):
        with torch.inference_mode():
            out = fm(ids[:, : a.prefill], use_cache=True)
            pkv = out.past_key_values
            t = time.perf_counter()
            for j in range(a.prefill, ids.shape[1]):
                out = fm(ids[:, j: j + 1], past_key_values=pkv, use_cache=True)
                pkv = out.past_key_values
                torch.log_softmax(out.logits[:, -1], -1)
            return time.perf_counter() - t

    dec = {}
    for bsz in dict.fromkeys((a.decode_batch, a.batch)):
        ids = _with_bos(_token_rows(m, Path(a.text), bsz, a.prefill + a.steps - 1), bos)
        dec[bsz] = {"e": [], "f": []}
        for rep in range(a.reps):
            for which in (("e", "f") if rep % 2 == 0 else ("f", "e")):
                dec[bsz][which].append((eng_decode if which == "e" else flt_decode)(ids))
                print(f"  decode B={bsz} {which} rep {rep}: {dec[bsz][which][-1]:.2f} s", file=sys.stderr,
                      flush=True)

    # report
    def ratio_row(label, tokens, te, tf, target):
        e, f = tokens / min(te), tokens / min(tf)
        met = "yes" if e / f >= target else "**no**"
        allv = (f"engine {', '.join(f'{tokens / x:.0f}' for x in te)}; "
                f"float {', '.join(f'{tokens / x:.0f}' for x in tf)}")
        return f"| {label} | {e:.0f} tok/s | {f:.0f} tok/s | {e / f:.2f}x | >= {target:g}x | {met} | {allv} |"

    rows = [ratio_row(f"(a) full pass, batch {a.batch} x {full_ids.shape[1]} positions", positions,
                      res["full_e"], res["full_f"], 2.0)]
    for bsz, d in dec.items():
        rows.append(ratio_row(f"(b) decode with KV cache, batch {bsz}, {a.steps} steps after {a.prefill}-token "
                              f"prefill", bsz * a.steps, d["e"], d["f"], 2.0))

    def mb_row(label, v, note=""):
        return f"| {label} | {v:.0f} MB | | | <= 700 MB | {'yes' if v <= 700 else '**no**'} | {note} |"

    rows += [
        f"| process RSS after `import lmcodec.engine` (torch) | {ch['rss_import']:.0f} MB | | | | | baseline |",
        mb_row(f"(c) peak RSS after full pass, batch 1 x {a.tokens + 1}", ch["rss_full_b1"],
               f"current RSS then {ch['cur_full_b1']:.0f} MB; model file {ch['model_mb']:.0f} MB (mmap)"),
        mb_row(f"(c) peak RSS after decoding, batch {a.batch} x {a.prefill + a.steps}", ch["rss_decode"],
               f"current RSS then {ch['cur_decode']:.0f} MB"),
        f"| (d) IntModel.load, hash known (mmap only) | {ch['load_nohash_s']:.3f} s | | | <= 1 s | "
        f"{'yes' if ch['load_nohash_s'] <= 1 else '**no**'} | fresh process, file in page cache |",
        f"| (d) IntModel.load, computing SHA-256 | {ch['load_hash_s']:.3f} s | | | <= 1 s | "
        f"{'yes' if ch['load_hash_s'] <= 1 else '**no**'} | what models.resolve does on a cache hit |",
        f"| (d) models.resolve(\"default\") (first in process) | {ch['resolve_s']:.3f} s | | | | | "
        f"hashes the GGUF too, plus the converted file |",
        f"| (d) Engine(model) | {ch['engine_s']:.3f} s | | | | | |",
    ]
    out = ["## Integer engine vs float32 transformers: speed, memory, load time", "", C.machine_info(),
           f"- model: {m.model_id} sha256 {m.sha256[:16]}...; float: {models.default_gguf().name} as float32 "
           f"(attention: {getattr(fm.config, '_attn_implementation', '?')}); text {Path(a.text).name}",
           f"- each figure best of {a.reps} alternating repetitions (all repetitions in the last column)", "",
           "| measure | integer engine | float32 | engine/float | target | met | notes |",
           "|---|---:|---:|---:|---:|---|---|"] + rows + [
           "", f"Wall time {time.perf_counter() - t_start:.0f} s."]
    C.emit(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
