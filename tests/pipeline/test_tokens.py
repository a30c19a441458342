"""Bytes <-> tokens is lossless for any byte string (tiny model's ByteTokenizer), and chunk cuts respect UTF-8."""
from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmcodec
import lmz
from lmcodec.io.lmzfile import get_codec
from lmcodec.pipeline.tokens import utf8_cut

CASES = {
    "empty": b"",
    "ascii": b"The quick brown fox jumps over the lazy dog.\n",
    "invalid-utf8": b"ab\xc3\x28cd\xa0\xa1\xe2\x28\xa1 \xf0\x28\x8c\xbc end",
    "nul": b"\x00",
    "nuls-in-text": b"abc\x00\x00def\x00",
    "lone-ff": b"\xff",
    "lone-fe-ff": b"\xfe\xff\xfe",
    "truncated-char": "é".encode()[:1],
    "truncated-emoji": "🎉".encode()[:3],
    "overlong": b"\xc0\xaf\xe0\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "special-token": b"<|endoftext|>",
    "special-token-in-text": b"one<|endoftext|>two <|endoftext|>\n<|endoftext|",
    "multibyte": "héllo wörld 日本語 🎉 ∑ ≠ Ω\u0301".encode(),
    "crlf-tabs": b"a\r\nb\tc\x0bd\x0ce\x1b[0m",
    "all-bytes": bytes(range(256)),
    "bom": "\ufeffBOM text".encode(),
}


@pytest.fixture(scope="module")
def tok(tiny):
    return get_codec(tiny, chunk_size=1024, batch_size=8).tokenizer


@pytest.mark.parametrize("data", list(CASES.values()), ids=list(CASES))
def test_encode_decode_lossless(tok, data):
    ids = tok.encode(data)
    assert all(0 <= i < len(tok.token_bytes) for i in ids)
    assert tok.decode(ids) == data
    assert (ids == []) == (data == b"")


def test_every_byte_has_a_single_byte_token(tok):
    assert -1 not in tok.byte_tokens
    assert [tok.token_bytes[t] for t in tok.byte_tokens] == [bytes([b]) for b in range(256)]


def test_special_token_text_is_spelled_as_bytes(tok):
    """Text that looks like a special token must come back byte for byte, not as a control token."""
    data = b"x<|endoftext|>y"
    ids = tok.encode(data)
    assert tok.decode(ids) == data
    assert b"".join(tok.token_bytes[i] for i in ids) == data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_lossless(tok, data):
    assert tok.decode(tok.encode(data)) == data


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_random_text_lossless(tok, text):
    data = text.encode("utf-8", "surrogatepass")
    assert tok.decode(tok.encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")), st.integers(0, 80))
def test_utf8_cut_on_text(data, limit):
    cut = utf8_cut(data, limit)
    if limit >= len(data):
        assert cut == len(data)
        return
    assert limit - 3 <= cut <= limit
    # a cut never splits a character: both sides stay valid UTF-8 (cut 0 means "no safe cut found")
    if cut:
        data[:cut].decode("utf-8", "surrogatepass")
        data[cut:].decode("utf-8", "surrogatepass")
    if cut < limit:  # it only moves back when a character straddles the limit
        assert data[limit] & 0xC0 == 0x80


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 50))
def test_utf8_cut_on_any_bytes(data, limit):
    cut = utf8_cut(data, limit)
    assert 0 <= cut <= min(limit, len(data)) or (limit >= len(data) and cut == len(data))
    assert cut >= min(limit, len(data)) - 3


def test_utf8_cut_examples():
    e = "é".encode()  # c3 a9
    assert utf8_cut(b"a" + e + b"b", 2) == 1  # cut would split é
    assert utf8_cut(b"a" + e + b"b", 3) == 3
    assert utf8_cut(b"a" + e + b"b", 1) == 1
    emoji = "🎉".encode()  # 4 bytes
    for k in range(1, 4):
        assert utf8_cut(b"x" + emoji + b"y", 1 + k) == 1
    assert utf8_cut(b"x" + emoji + b"y", 5) == 5
    assert utf8_cut(b"\xff\xff\xff", 1) == 1  # not UTF-8 at all: cut where asked
    assert utf8_cut(b"abc", 10) == 3


TEXT_MB = ("Grüße aus Köln! 日本語のテキスト。 Emoji: 🎉🚀👍🏽 and é at the end é".encode()) * 2


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 13])
def test_chunk_boundaries_never_split_characters(tiny, chunk_size):
    """Chunk sizes that fall inside é / 日本 / emoji: the stream round-trips and each lm frame is whole UTF-8."""
    data = TEXT_MB[: 60 if chunk_size < 5 else len(TEXT_MB)]
    blob = lmcodec.compress(data, model=tiny, chunk_size=chunk_size, batch_size=64)
    frames = list(lmz.Reader(io.BytesIO(blob)).frames())
    assert sum(f.raw_length for f in frames) == len(data)
    assert all(f.raw_length <= chunk_size for f in frames if f.method == lmz.METHOD_LM)
    if chunk_size >= 4:  # a whole character always fits: no frame may end inside one
        pos = 0
        for f in frames:
            pos += f.raw_length
            assert pos == len(data) or data[pos] & 0xC0 != 0x80, (f.number, pos)
    assert lmcodec.decompress(blob, batch_size=64) == data


def test_cut_splits_a_character_only_when_it_cannot_fit(tiny):
    codec = get_codec(tiny, chunk_size=2, batch_size=8)
    chunk, used = codec.cut("日".encode(), final=True)  # 3 bytes, chunk size 2
    assert used == 2 and chunk.raw == "日".encode()[:2]
    assert codec.tokenizer.decode(chunk.tokens) == chunk.raw


@pytest.mark.parametrize("data", [b"\xff" * 10, b"\x00" * 10, b"ab\xc3", b"<|endoftext|>" * 3,
                                  b"\xe6\x97\xa5\xe6\x9c"], ids=["ff", "nul", "cut-e-acute", "special", "cut-cjk"])
def test_odd_inputs_round_trip_through_compress(tiny, data):
    blob = lmcodec.compress(data, model=tiny, chunk_size=4, batch_size=64)
    assert lmcodec.decompress(blob, batch_size=64) == data
