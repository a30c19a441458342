"""`lmcodec -l`: one line per file, as `xz -l` does; -v adds one block per stream. Reads only the container."""
from __future__ import annotations

import os
import sys

import lmz

from ..coding import versions
from ..models.catalog import model_name
from .messages import Skipped, describe, say
from .work import EXIT_ERROR, EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _frames(ss: list[lmz.StreamSummary]) -> str:
    c: dict[str, int] = {}
    for s in ss:
        for k, v in s.frames_by_method.items():
            c[k] = c.get(k, 0) + v
    return "/".join(str(c.get(k, 0)) for k in ("lm", "zstd", "stored"))


def _ratio(comp: int, raw: int) -> str:
    return f"{comp / raw:.3f}" if raw else "---"


def _one(ss: list[lmz.StreamSummary], key) -> str:
    vals = {key(s) for s in ss}
    return str(next(iter(vals))) if len(vals) == 1 else "mixed"


def _coder(s: lmz.StreamSummary) -> str:
    return "-" if s.coder_id == lmz.CODER_NONE else f"{s.coder_id}/{s.coder_version}"


def _name(s: lmz.StreamSummary) -> str:
    """The model's id: from the stream (format 1) or from this machine's model catalogue (format 2)."""
    return s.model_id or model_name(s.model_sha256)


def _model(s: lmz.StreamSummary) -> str:
    return f"{_name(s) or '?'} ({s.model_sha256[:16]})" if s.coder_id != lmz.CODER_NONE else "-"


def _hash_label(sha: str) -> str:
    """Format 2 headers carry the first 128 bits of the model's SHA-256 (the whole hash is checked on load)."""
    return f"sha256 {sha}" if len(sha) == 64 else f"sha256 (first {4 * len(sha)} bits) {sha}"


def _stream_block(s: lmz.StreamSummary) -> list[str]:
    by = ", ".join(f"{k} {v}" for k, v in sorted(s.frames_by_method.items())) or "none"
    lines = [f"  stream {s.stream_index} at offset {s.offset:,} (format version {s.version}):",
             f"    model        {_name(s) or '(not known on this machine)'}, {_hash_label(s.model_sha256)}"
             if s.coder_id != lmz.CODER_NONE else "    model        none (no lm frames)",
             f"    chunk size   {s.chunk_size:,} bytes"
             + (f" (frames of stored/zstd data up to {s.frame_limit:,})" if s.frame_limit != s.chunk_size else ""),
             f"    coder        {s.coder_id} version {s.coder_version}"
             + (f": {versions.describe(s.coder_id, s.coder_version, bytes.fromhex(s.coder_params))}"
                if s.coder_id != lmz.CODER_NONE else ""),
             f"    frames       {_plural(s.frames, 'frame')} ({by})",
             f"    sizes        {s.compressed_size:,} -> {s.raw_size:,} bytes, ratio {_ratio(s.compressed_size, s.raw_size)}"]
    return lines


def list_files(paths: list[str], verbose: int) -> int:
    status = EXIT_OK
    rows: list[tuple[str, list[lmz.StreamSummary]]] = []
    for path in paths:
        label = "(stdin)" if path == "-" else path
        try:
            if path == "-":
                streams = lmz.summary(sys.stdin.buffer)
            else:
                if os.path.isdir(path):
                    raise Skipped("is a directory -- ignored")
                with open(path, "rb") as f:
                    streams = lmz.summary(f)
                    f.seek(0)
                    damaged = [str(e) for e in lmz.check_stored(f)]
                for msg in damaged:  # format 3: every frame's stored bytes are checked, without the model
                    say.error(label, f"damaged: {msg}")
                if damaged:
                    status = EXIT_ERROR
            rows.append((label, streams))
        except Skipped as w:
            say.warn(label, str(w))
            status = max(status, w.status)
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:
            say.error(label, describe(e))
            status = EXIT_ERROR
    if not rows:
        return status
    head = (f"{'Strms':>5} {'Frames lm/zstd/st':>17} {'Compressed':>12} {'Raw':>12} {'Ratio':>6} {'Chunk':>6} "
            f"{'Coder':>5}  {'Model (sha256)':<36} Filename")
    lines = [head]
    tot_c = tot_r = tot_s = 0
    for label, ss in rows:
        comp = sum(s.compressed_size for s in ss)
        raw = sum(s.raw_size for s in ss)
        tot_c, tot_r, tot_s = tot_c + comp, tot_r + raw, tot_s + len(ss)
        lines.append(f"{len(ss):>5} {_frames(ss):>17} {comp:>12,} {raw:>12,} {_ratio(comp, raw):>6} "
                     f"{_one(ss, lambda s: s.chunk_size):>6} {_one(ss, _coder):>5}  {_one(ss, _model):<36} {label}")
        if verbose:
            for s in ss:
                lines += _stream_block(s)
    if len(rows) > 1:
        lines.append(f"{tot_s:>5} {'':>17} {tot_c:>12,} {tot_r:>12,} {_ratio(tot_c, tot_r):>6} {'':>6} {'':>5}  "
                     f"{'':<36} {len(rows)} files")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return status
