"""LmzCompressor / LmzDecompressor: the semantics of lzma.LZMACompressor / LZMADecompressor."""
from __future__ import annotations

import io
import random

import pytest

import lmcodec
import lmz

TINY_OPTS = dict(chunk_size=512)
TEXT = ("The quick brown fox jumps over the lazy dog; a wizard's job is to vex chumps quickly. " * 40).encode()
DATA = TEXT[:1500] + bytes(range(256)) * 4 + TEXT[1500:2600]  # text and binary: lm and zstd frames


def pieces(data: bytes, seed: int) -> list[bytes]:
    rng, out, i = random.Random(seed), [], 0
    while i < len(data):
        n = rng.choice([1, 7, 100, 513, 2000])
        out.append(data[i: i + n])
        i += n
    return out


def test_compressor_output_does_not_depend_on_the_pieces(tiny):
    ref = lmcodec.compress(DATA, model=tiny, **TINY_OPTS)
    for seed in (0, 1):
        c = lmcodec.LmzCompressor(model=tiny, **TINY_OPTS)
        assert b"".join(c.compress(p) for p in pieces(DATA, seed)) + c.flush() == ref
    with pytest.raises(ValueError):
        c.flush()
    with pytest.raises(ValueError):
        c.compress(b"more")
    assert {m for m, _ in [(e.method, 0) for e in lmz.read_index(io.BytesIO(ref)).entries]} == {lmz.METHOD_LM,
                                                                                                lmz.METHOD_ZSTD}


def test_decompressor_in_pieces_with_max_length_and_unused_data(tiny):
    blob = lmcodec.compress(DATA, model=tiny, **TINY_OPTS)
    d = lmcodec.LmzDecompressor()
    assert d.needs_input and not d.eof
    out = bytearray()
    for p in pieces(blob + b"NEXT", 3):
        out += d.decompress(p, max_length=100)
        assert len(out) <= len(DATA)
        while not d.needs_input and not d.eof or (d.eof and len(out) < len(DATA)):
            out += d.decompress(b"", max_length=100)
    assert bytes(out) == DATA and d.eof and d.unused_data == b"NEXT"
    with pytest.raises(EOFError):
        d.decompress(b"x")


def test_decompressor_stops_after_one_stream(tiny):
    one = lmcodec.compress(TEXT[:700], model=tiny, **TINY_OPTS)
    d = lmcodec.LmzDecompressor()
    assert d.decompress(one + one) == TEXT[:700]
    assert d.eof and d.unused_data == one


def test_truncated_stream_waits_for_input(tiny):
    blob = lmcodec.compress(DATA, model=tiny, **TINY_OPTS)
    d = lmcodec.LmzDecompressor()
    got = d.decompress(blob[:-5])
    assert DATA.startswith(got) and not d.eof and d.needs_input
    assert got + d.decompress(blob[-5:]) == DATA and d.eof


def test_damage_gives_the_good_prefix_then_the_error(tiny):
    blob = bytearray(lmcodec.compress(TEXT, model=tiny, **TINY_OPTS))
    entries = lmz.read_index(io.BytesIO(bytes(blob))).entries
    e = entries[3]
    blob[e.offset + e.frame_size // 2] ^= 0x08
    d = lmcodec.LmzDecompressor()
    good = d.decompress(bytes(blob))
    assert good == TEXT[: e.raw_offset] and not d.eof
    with pytest.raises(lmcodec.LmzError):
        d.decompress(b"")


def test_options_are_checked_against_the_object():
    with pytest.raises(TypeError):
        lmcodec.LmzDecompressor(chunk_size=4096)  # a writing option, as lzma refuses filters when decoding
    with pytest.raises(TypeError):
        lmcodec.LmzCompressor(memory=1 << 30)
