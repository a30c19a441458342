"""The benchmark tools (tools/bench.py, context_curve.py, generate.py and their modules), on the tiny model."""
from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest

from tools import compressors, modalities


def run_tool(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    assert module.main() == 0


def test_image_patches_are_32x64_grayscale_in_raster_order(tmp_path):
    from PIL import Image

    gray = np.arange(64 * 128, dtype=np.uint32).reshape(64, 128) % 251
    Image.fromarray(gray.astype(np.uint8), "L").convert("RGB").save(tmp_path / "x.png")
    patches = modalities.image_patches(tmp_path / "x.png")
    assert len(patches) == 4 and all(len(p) == 2048 for p in patches)
    assert patches[1] == gray[:32, 64:].astype(np.uint8).tobytes()  # second patch: top row, right half
    s = modalities.prepare(tmp_path / "x.png", max_bytes=4096)
    assert s.modality == "image" and s.data == patches[1] + patches[3] and "2 of 4" in s.how


def test_audio_is_8_bit_mono_16_khz(tmp_path):
    import soundfile as sf

    t = np.arange(48000) / 48000
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1)  # stereo 48 kHz
    sf.write(tmp_path / "x.wav", x, 48000, subtype="PCM_16")
    u8 = np.frombuffer(modalities.audio_u8(tmp_path / "x.wav"), np.uint8).astype(float)
    assert len(u8) == 16000
    ref = 128 + 0.25 * 128 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)  # mono = mean of channels
    assert np.abs(u8 - ref)[100:-100].max() <= 1.5
    s = modalities.prepare(tmp_path / "x.wav", max_bytes=4096)
    assert s.modality == "audio" and len(s.data) == 4096


def test_compressors_round_trip_and_count_framing_once():
    data = bytes(range(256)) * 24  # 6 KiB: 64-pixel rows for PNG, 8-bit samples for FLAC
    for comp in compressors.general() + [compressors.png(), compressors.flac()]:
        whole = comp.compress(data)
        assert comp.decompress(whole) == data, comp.name
        blobs = [comp.compress(p) for p in compressors.pieces(data, 2048)]
        assert b"".join(comp.decompress(b) for b in blobs) == data
        framing = comp.framing(blobs[1])
        assert 0 < framing < len(blobs[1])
        assert compressors.chunked_size(comp, blobs) == sum(map(len, blobs)) - 2 * framing  # 3 chunks, 1 header


def test_bench_writes_tables_csv_and_plots(tiny, corpus, tmp_path, monkeypatch):
    from tools import bench

    out = tmp_path / "out"
    run_tool(bench, monkeypatch, str(corpus / "text/canterbury/alice29.txt"), str(corpus / "image/kodak/kodim03.png"),
             str(corpus / "audio/jfk.wav"), "--model", tiny, "--chunk-size", "512", "--max-bytes", "2048",
             "--decode-bytes", "64", "--out", str(out))
    md = (out / "bench.md").read_text()
    for head in ("## Text", "## Image", "## Audio", "Speed against the limit", "adjusted rate"):
        assert head in md
    assert "xz -9e" in md and "zstd -19" in md and "PNG" in md and "FLAC" in md
    rows = list(csv.DictReader(io.StringIO((out / "bench.csv").read_text())))
    by = {(r["file"], r["compressor"], r["chunk"]): r for r in rows}
    for name in ("gzip -9", "bzip2 -9", "xz -9e", "zstd -19", "zstd --ultra -22 --long", "brotli -q 11"):
        for chunk in ("", "512"):
            r = by[("alice29.txt", name, chunk)]
            assert 20 < float(r["rate_pct"]) < 100 and int(r["raw"]) == 2048
    assert ("kodim03.png", "PNG", "") in by and ("jfk.wav", "FLAC", "512") in by
    lm = by[("alice29.txt", "lmcodec", "512")]
    assert lm["frames"] == "4 lm" and float(lm["ideal_bits"]) > 0 and float(lm["enc_engine_s"]) > 0
    assert 100 * int(lm["size"]) / 2048 == pytest.approx(float(lm["rate_pct"]), abs=1e-3)
    assert float(lm["adjusted_rate_pct"]) > 100 * int(lm["model_bytes"]) / 2048
    assert 8 * int(lm["payload"]) >= float(lm["ideal_bits"])  # a code is never shorter than its ideal length
    # images and audio: the .lmz file skips the model; the model's own rate is measured as well
    assert by[("jfk.wav", "lmcodec", "512")]["skipped"] != "0"
    forced = by[("jfk.wav", "lmcodec, model forced", "512")]
    assert forced["skipped"] == "0" and int(forced["dec_bytes"]) == 64
    assert ("jfk.wav", "FLAC on the same samples", "2048") in by
    for png in ("rates.png", "tradeoff.png", "lm_speed.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_context_curve_writes_rates_for_each_size(tiny, corpus, tmp_path, monkeypatch):
    from tools import context_curve

    out = tmp_path / "curve"
    run_tool(context_curve, monkeypatch, str(corpus / "text/canterbury/alice29.txt"), "--model", tiny,
             "--max-bytes", "1024", "--sizes", "256,512", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO((out / "context_curve.csv").read_text())))
    rate = {(r["series"], r["chunk_size"]): float(r["rate_pct"]) for r in rows}
    assert rate[("gzip -9", "256")] > rate[("gzip -9", "512")] > rate[("gzip -9", "whole")]
    assert rate[("lmcodec file", "256")] > rate[("lmcodec model's code", "256")] > 0
    assert (out / "context_curve.png").is_file() and "| 512 |" in (out / "context_curve.md").read_text()


def test_generate_is_seeded_and_scores_the_models_code_length(tiny):
    from tools import generate
    prompt = b"The quick brown fox jumps over the lazy dog. The quick brown "
    gz = generate.classical_bits("gzip")
    assert generate.generate(gz, prompt, 6, 1, 512) == generate.generate(gz, prompt, 6, 1, 512)

    import torch

    bits = generate.ModelBits(tiny, None)
    got = bits(prompt)
    codec = bits.codec
    some = [0x20, 0x0A, 0x41, 0x66, 0x6A, 0xC3, 0xE2, 0xFF]  # letters, space, newline, UTF-8 leads, invalid
    want = []
    for b in some:  # the bare model's code length of prompt + b; the shared part cancels in differences
        ids = codec.tokenizer.encode(prompt + bytes([b]))
        seq = torch.tensor([[codec.engine.bos_id] + ids])
        tables = np.concatenate([t for _, t in codec.engine.full_tables(seq)], 1)[0]
        want.append(float(sum(-np.log2(tables[j, t] / 2**28) for j, t in enumerate(ids))))
    assert np.allclose(got[some] - got[some[0]], np.array(want) - want[0], atol=1e-9)
    assert generate.generate(bits, prompt, 2, 7, 64) == generate.generate(bits, prompt, 2, 7, 64)
