"""GPU exactness check: CUDA tables must equal CPU tables, bit for bit, for the default model.

    python -m tools.gpu_check [--model PATH_OR_NAME] [--text FILE] [--expect DIGEST]

(from the repository root; where lmcodec is not installed, as on a lent GPU machine:
 PYTHONPATH=.:container python -m tools.gpu_check)

Runs the full-sequence and the incremental pass on CPU and on CUDA (fast int8 kernels and the exact float64
fallback), over a batch of rows of different lengths, with full attention (coder 1 version 1) and with the
writer's coder (version 3: keys and values rounded to 8-bit codes, which a CPU decoder keeps as codes) under a
window shorter than the longest row (the sinks rotated on), and prints one verdict line:
    GPU CHECK PASS: ...   or   GPU CHECK FAIL: ...
--expect compares against a digest computed elsewhere (e.g. `--device cpu --digest-only` on another machine).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
from lmcodec import models
from lmcodec.coding import versions
from lmcodec.engine import Engine
from lmcodec.engine.intmodel import IntModel
from lmcodec.pipeline.tokens import ByteTokenizer

DEFAULT_TEXT = ROOT / "tests" / "data" / "english.txt"
DIFFERS = "incremental-differs-from-full"


def rows_for(model: IntModel, text: bytes, lengths: list[int]) -> list[list[int]]:
    ids = ByteTokenizer(model).encode(text)
    bos = model.config["bos_id"]
    return [[bos] + ids[i * 37: i * 37 + n] for i, n in enumerate(lengths)]


def tables(engine: Engine, rows: list[list[int]], incremental_steps: int) -> str:
    """SHA-256 over the full-pass tables of every real position and the first incremental steps."""
    h = hashlib.sha256()
    width = max(map(len, rows))
    x = torch.full((len(rows), width), engine.bos_id, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
    out = np.concatenate([t for _, t in engine.full_tables(x)], 1)
    for i, r in enumerate(rows):
        h.update(out[i, : len(r)].tobytes())
    st = engine.start(len(rows))
    for t in range(incremental_steps):
        if not np.array_equal(st.step(x[:, t]), out[:, t]):
            return DIFFERS
    return h.hexdigest()


def digest(model: IntModel, device: str, rows: list[list[int]], steps: int, window: int, fast: bool = True) -> str:
    """tables() of both coders' engines on one device, as one digest."""
    h = hashlib.sha256()
    for kw in ({}, {"window": window, "sink": versions.SINK, "kv8": versions.kv8_of(versions.CODER_VERSION)}):
        t = tables(Engine(model, device, fast=fast, **kw), rows, steps)
        if t == DIFFERS:
            return f"{DIFFERS}-{device}-{'window' if kw else 'full-attention'}"
        h.update(t.encode())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model source (default: the embedded SmolLM2 model)")
    ap.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    ap.add_argument("--lengths", default="600,257,33", help="tokens per row (rows of different lengths)")
    ap.add_argument("--steps", type=int, default=24, help="incremental steps compared against the full pass")
    ap.add_argument("--window", type=int, default=256, help="the attention window of the version-3 engine")
    ap.add_argument("--expect", default=None, help="digest computed on another machine")
    ap.add_argument("--digest-only", action="store_true", help="print the CPU digest and exit")
    args = ap.parse_args()

    model = models.resolve(args.model)
    rows = rows_for(model, args.text.read_bytes(), [int(n) for n in args.lengths.split(",")])
    t0 = time.time()
    cpu = digest(model, "cpu", rows, args.steps, args.window)
    if args.digest_only:
        print(cpu)
        return
    results = {"cpu": cpu}
    if torch.cuda.is_available():
        for fast in (True, False):
            t = time.time()
            results[f"cuda-{'int8' if fast else 'f64'}"] = digest(model, "cuda", rows, args.steps, args.window, fast)
            print(f"cuda fast={fast}: {time.time() - t:.1f}s", file=sys.stderr)
    if args.expect:
        results["expected"] = args.expect
    name = f"{model.model_id} (sha256 {model.sha256[:16]}...)"
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    if not torch.cuda.is_available():
        print(f"GPU CHECK SKIPPED: {where}; cpu digest {cpu}")
    elif len(set(results.values())) == 1 and DIFFERS not in cpu:
        print(f"GPU CHECK PASS: {name}, {len(rows)} rows {args.lengths} tokens + {args.steps} incremental steps: "
              f"CUDA (int8 and float64 kernels) == CPU{' == expected' if args.expect else ''} on {where}, "
              f"torch {torch.__version__}, digest {cpu[:16]} ({time.time() - t0:.0f}s)")
    else:
        print(f"GPU CHECK FAIL: {name} on {where}: " + ", ".join(f"{k}={v[:16]}" for k, v in results.items()))
        sys.exit(1)


if __name__ == "__main__":
    main()
