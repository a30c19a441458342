"""The chunker alone: text runs to the model, binary runs and padding to bulk frames, decided by the bytes only."""
from __future__ import annotations

import random

import pytest

from lmcodec.pipeline import chunker
from lmcodec.pipeline.chunker import BLOCK, MIN_TEXT, looks_like_text

CHUNK, LIMIT = 8192, 1 << 20
TEXT = b"Plain English text, one sentence after another, with a number now and then: 42.\n"


def text(n: int) -> bytes:
    return (TEXT * (n // len(TEXT) + 1))[:n]


def binary(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def chunks(data: bytes, chunk: int = CHUNK, limit: int = LIMIT) -> list[tuple[int, bool]]:
    """(length, is_text) of every chunk of a final input."""
    out, pos = [], 0
    while pos < len(data):
        end, is_text = chunker.cut(data[pos:], True, chunk, limit)
        assert end > 0
        out.append((end, is_text))
        pos += end
    return out


def test_block_classes():
    assert looks_like_text(TEXT)
    assert looks_like_text(b"name\0\0\0\x00\x1b[1mbold\x1b[0m" + bytes(400))  # NUL padding and escapes are text
    assert not looks_like_text(bytes(512))  # all NUL: padding, for zstd
    assert not looks_like_text(binary(512))
    assert looks_like_text(text(500) + b"\x04\xff")  # a few bytes the vocabulary lacks
    assert looks_like_text("ångström ≠ ".encode()[1:])  # a character cut at the block's start is not binary


def test_text_fills_chunks():
    assert chunks(text(3 * CHUNK)) == [(CHUNK, True)] * 3
    assert chunks(text(100)) == [(100, True)]  # a short input that is all text still goes to the model


def test_binary_member_comes_apart_on_block_boundaries():
    data = text(5 * BLOCK) + binary(2 * BLOCK) + text(5 * BLOCK)
    assert chunks(data) == [(5 * BLOCK, True), (2 * BLOCK, False), (5 * BLOCK, True)]
    # text too short to start an lm chunk joins the binary after it
    assert chunks(text(3 * BLOCK) + binary(BLOCK) + text(5 * BLOCK)) == [(4 * BLOCK, False), (5 * BLOCK, True)]


def test_padding_is_bulk_and_short_text_in_binary_stays_bulk():
    data = binary(4 * BLOCK) + text(MIN_TEXT - BLOCK) + binary(BLOCK) + bytes(4 * BLOCK) + text(MIN_TEXT)
    assert chunks(data) == [(len(data) - MIN_TEXT, False), (MIN_TEXT, True)]
    assert chunks(text(MIN_TEXT) + bytes(20 * BLOCK)) == [(MIN_TEXT, True), (20 * BLOCK, False)]


def test_bulk_stops_at_the_frame_limit():
    assert chunks(binary(5 * BLOCK), chunk=BLOCK, limit=2 * BLOCK) == [(2 * BLOCK, False)] * 2 + [(BLOCK, False)]


def test_tar_of_text_files_is_all_text(tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(6):
            data = text(300 + 700 * i)
            info = tarfile.TarInfo(f"dir/file{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    cut = chunks(data)
    body = sum(n for n, t in cut if t)
    assert cut[-1][1] is False and len(data) - body == cut[-1][0] <= 10240  # only the end-of-archive zeros
    assert all(t for _, t in cut[:-1])


@pytest.mark.parametrize("seed", range(4))
def test_cuts_do_not_depend_on_how_the_input_arrives(seed):
    rng = random.Random(seed)
    parts = [text(rng.randrange(1, 3 * MIN_TEXT)) if rng.random() < 0.5 else
             (binary(rng.randrange(1, 3 * BLOCK), seed) if rng.random() < 0.7 else bytes(rng.randrange(1, 3000)))
             for _ in range(30)]
    data = b"".join(parts)
    chunk, limit = rng.choice([(CHUNK, LIMIT), (1000, 5000), (BLOCK, 3 * BLOCK)])
    want = chunks(data, chunk, limit)
    # the same cuts fed in pieces: a decision waits for enough input, and never changes once made
    got, buf, pos = [], b"", 0
    while pos < len(data) or buf:
        if pos < len(data):
            step = rng.randrange(1, 4000)
            buf += data[pos: pos + step]
            pos += step
        final = pos >= len(data)
        while buf:
            end, is_text = chunker.cut(buf[: limit + 1], final, chunk, limit)
            if not end:
                break
            got.append((end, is_text))
            buf = buf[end:]
    assert got == want


def test_strings_of_an_executable_stay_bulk():
    strings = b"".join(b"symbol_name_%d\0" % i for i in range(400))  # a string table: 1 NUL in ~16 bytes
    assert looks_like_text(strings[:BLOCK])
    data = binary(2 * BLOCK) + strings + binary(2 * BLOCK)
    assert chunks(data) == [(len(data), False)]
    # clean text after binary does start an lm chunk
    assert chunks(binary(2 * BLOCK) + text(MIN_TEXT)) == [(2 * BLOCK, False), (MIN_TEXT, True)]
