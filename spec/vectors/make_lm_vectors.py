#!/usr/bin/env python3
"""Generate the lm conformance vectors of the current format, coder and engine (spec/vectors/*-lm-v3-e2-kv8-*.lmz:
format 3, coder 1 version 3, engine 2) with the tiny test model, and merge their entries into
spec/vectors/manifest.json (needs_lm: true, with the model they need and its engine). Earlier lm vectors ("frozen"
in the manifest: *-lm-1-*, *-lm-2-* by lmcodec 0.1.0, *-lm-v2-* by lmcodec 0.2.0 in format 2, *-lm-v3-* by lmcodec
0.3.0 with an engine-1 model, *-lm-v3-e2-* with coder 1 version 2 on engine 2) are kept as they are, so that files
written by earlier versions keep decoding.

Usage: python -m spec.vectors.make_lm_vectors [OUTDIR]      (after spec.vectors.make_vectors)

Decoding them needs lmcodec and the tiny model (tests/data/tiny-llama) converted on the decoding machine; its
converted SHA-256 must equal model_sha256 in the manifest (conversion is deterministic).
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny-llama"
ENGLISH = (b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
           b"foolishness, it was the epoch of belief, it was the epoch of incredulity.\n")
MIXED_TEXT = "Grüße! 日本語のテキスト, emoji 🎉 and <|endoftext|> inside.\n".encode()


def build(tiny: str | Path = TINY) -> tuple[dict[str, bytes], list[dict]]:
    import lmcodec
    import lmz
    from lmcodec.io.lmzfile import get_codec

    tiny = str(Path(tiny).resolve())
    model = get_codec(tiny, chunk_size=128).model
    files: dict[str, bytes] = {}
    meta: list[dict] = []
    ref = {"needs_lm": True, "model_id": model.model_id, "model_sha256": model.sha256, "engine": model.engine,
           "model_source": f"tests/data/tiny-llama (converted by lmcodec for engine {model.engine})"}

    def good(name: str, data: bytes, content: bytes, desc: str) -> None:
        files[name] = data
        idx = lmz.read_index(io.BytesIO(data))
        methods = sorted({lmz.METHOD_NAMES[e.method] for e in idx.entries})
        meta.append({"file": name, "kind": "good", "description": desc, **ref, "methods": methods,
                     "content_length": len(content), "content_sha256": hashlib.sha256(content).hexdigest(),
                     "streams": len(idx.streams), "frames": len(idx.entries)})

    english = ENGLISH * 2
    e_blob = lmcodec.compress(english, model=tiny, chunk_size=128, batch_size=8)
    good("good-lm-v3-e2-kv8-1-english.lmz", e_blob, english, "English prose in lm frames of chunk size 128")
    noise = random.Random(0).randbytes(150)
    mixed = MIXED_TEXT + noise + MIXED_TEXT + b"\x00" * 70
    m_blob = lmcodec.compress(mixed, model=tiny, chunk_size=64, batch_size=8)
    good("good-lm-v3-e2-kv8-2-mixed-concat.lmz", m_blob + e_blob, mixed + english,
         "UTF-8 text cut at chunk size 64 (lm), random bytes (stored), zeros (zstd); then a second stream")

    entry = next(e for e in lmz.read_index(io.BytesIO(e_blob)).entries if e.method == lmz.METHOD_LM and e.number)
    frame = lmz.read_frame_at(io.BytesIO(e_blob), entry)
    bad = bytearray(e_blob)
    bad[frame.payload_offset + len(frame.payload) // 2] ^= 0x04
    files["bad-lm-v3-e2-kv8-1-payload-bitflip.lmz"] = bytes(bad)
    meta.append({"file": "bad-lm-v3-e2-kv8-1-payload-bitflip.lmz", "kind": "bad", **ref, "error": "ChecksumError",
                 "description": f"good-lm-v3-e2-kv8-1-english with one bit flipped in the lm payload of frame {entry.number}"})
    for v in meta:
        v["size"] = len(files[v["file"]])
        v["sha256"] = hashlib.sha256(files[v["file"]]).hexdigest()
    return files, meta


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else ROOT / "spec" / "vectors"
    files, meta = build()
    for name, data in files.items():
        (outdir / name).write_bytes(data)
    mpath = outdir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["vectors"] = [v for v in manifest["vectors"] if v["file"] not in files] + meta
    mpath.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} lm vectors to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
