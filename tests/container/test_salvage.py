"""lmz.salvage: every intact frame of a damaged file, byte-exact, and each lost range named, for damage in every
region of a stream (header, a frame header, a payload, the trailer and its index) and for cut-short files."""
from __future__ import annotations

import hashlib
import io

import pytest

import lmz
from lmz.salvage import solve_raw_offset

CHUNK = 256


def text(i: int, n: int) -> bytes:
    words = hashlib.sha256(str(i).encode()).hexdigest()
    return (f"chunk {i:03d}: " + " ".join(words[j: j + 5] for j in range(0, 60, 5)) + "\n").encode() * (n // 80 + 1)


def stream(sizes: list[int], seed: int = 0) -> tuple[bytes, list[bytes]]:
    """One stream of zstd/stored frames, one per chunk of the given sizes (<= CHUNK)."""
    chunks = [text(seed + i, n)[:n] for i, n in enumerate(sizes)]
    out = io.BytesIO()
    with lmz.Writer(out, lmz.StreamHeader("", b"", CHUNK, lmz.CODER_NONE, 0)) as w:
        for c in chunks:
            w.write_chunk(c, None)
    return out.getvalue(), chunks


def entries(blob: bytes) -> list[lmz.IndexEntry]:
    return list(lmz.read_index(io.BytesIO(blob)).entries)


def salvaged(blob: bytes) -> tuple[bytes, list[lmz.Damage]]:
    got, lost = [], []
    for item in lmz.salvage(io.BytesIO(blob)):
        (lost if isinstance(item, lmz.Damage) else got).append(item)
    return b"".join(got), lost


def without(chunks: list[bytes], *gone: int) -> bytes:
    return b"".join(c for i, c in enumerate(chunks) if i not in gone)


def span(chunks: list[bytes], first: int, last: int) -> tuple[int, int]:
    return sum(map(len, chunks[:first])), sum(map(len, chunks[first: last + 1]))


SIXTEEN = [CHUNK] * 5 + [200] + [CHUNK] * 4 + [100, CHUNK, CHUNK, 77, CHUNK, CHUNK]


def flip(blob: bytes, at: int, mask: int = 0x40) -> bytes:
    return blob[:at] + bytes([blob[at] ^ mask]) + blob[at + 1:]


def test_intact_file_gives_everything_and_no_damage():
    blob, chunks = stream(SIXTEEN)
    assert salvaged(blob) == (b"".join(chunks), [])


@pytest.mark.parametrize("frame", [0, 5, 10, 15])
def test_damaged_payload_loses_exactly_its_frame(frame):
    blob, chunks = stream(SIXTEEN)
    e = entries(blob)[frame]
    got, lost = salvaged(flip(blob, e.offset + e.frame_size - 6))  # inside the payload
    assert got == without(chunks, frame)
    assert [(d.offset, d.length) for d in lost] == [span(chunks, frame, frame)]


@pytest.mark.parametrize("frame, at", [(3, 0), (5, 1), (5, 2), (6, 1), (9, 2), (10, 1), (15, 0)])
def test_damaged_frame_header_is_resynchronised_and_the_gap_measured(frame, at):
    """A frame's method byte or a length varint: the framing is lost; the next intact frame is found and the
    gap told by its check (frames 5 and 10 are not whole chunks: the gap is found by the full search)."""
    blob, chunks = stream(SIXTEEN)
    e = entries(blob)[frame]
    got, lost = salvaged(flip(blob, e.offset + at, 0x7F if at == 0 else 0x3C))
    offset, length = span(chunks, frame, frame)
    if frame == len(SIXTEEN) - 1:  # no frame follows to tell the lost length (no index below 64 frames)
        length = None
    assert [(d.offset, d.length) for d in lost] == [(offset, length)], lost
    assert got == without(chunks, frame)


def test_bytes_lost_inside_frames_and_two_frames_in_a_row():
    blob, chunks = stream(SIXTEEN)
    e = entries(blob)
    cut = blob[: e[4].offset + 10] + blob[e[5].offset + 30:]  # the end of frame 4 and the start of 5 gone
    got, lost = salvaged(cut)
    assert got == without(chunks, 4, 5)
    assert [(d.offset, d.length) for d in lost] == [span(chunks, 4, 5)]


def test_damaged_trailer_or_index_loses_nothing():
    blob, chunks = stream(SIXTEEN)
    assert salvaged(flip(blob, len(blob) - 1)) == (b"".join(chunks), [])  # the trailer's count
    big, many = stream([CHUNK] * 70)  # >= 64 frames: an index and a footer follow
    assert lmz.read_index(io.BytesIO(big)).raw_size == 70 * CHUNK
    for at in (len(big) - 3, len(big) - 30):  # footer magic, index entries
        assert salvaged(flip(big, at)) == (b"".join(many), [])


def test_damaged_stream_header_loses_its_stream_only():
    one, c1 = stream(SIXTEEN)
    two, c2 = stream([CHUNK] * 3, seed=100)
    got, lost = salvaged(flip(one, 6) + two)  # the coder id byte of stream 0's header
    assert got == b"".join(c2)
    assert len(lost) == 1 and lost[0].offset == 0 and lost[0].length is None and "header" in lost[0].reason


@pytest.mark.parametrize("cut_frame, into", [(10, 0), (10, 5), (15, 20)])
def test_cut_short_file_gives_the_prefix(cut_frame, into):
    blob, chunks = stream(SIXTEEN)
    e = entries(blob)[cut_frame]
    got, lost = salvaged(blob[: e.offset + into])
    assert got == b"".join(chunks[:cut_frame])
    assert [(d.offset, d.length) for d in lost] == [(sum(map(len, chunks[:cut_frame])), None)]


def test_raw_offset_solver_inverts_the_frame_check():
    head, raw = b"\x81\x05", b"some raw bytes" * 9
    for r in (0, 1, 255, 65535, 65536, 123_456_789):
        check = lmz.frame_check(r, head, raw)
        assert solve_raw_offset(head, raw, check, max(0, r - 70_000), r + 70_000) == r


@pytest.mark.parametrize("frame", [10, 69])
def test_an_index_that_survives_places_the_frames_after_damaged_framing(frame):
    """A stream of 70 frames carries an index: a frame header damaged anywhere, the last frame's included, is
    resolved by it, lengths and all (frame 10 is not a whole chunk)."""
    sizes = [CHUNK] * 10 + [123] + [CHUNK] * 59
    blob, chunks = stream(sizes)
    e = entries(blob)[frame]
    got, lost = salvaged(flip(blob, e.offset, 0x7F))
    assert [(d.offset, d.length) for d in lost] == [span(chunks, frame, frame)]
    assert "index" in lost[0].reason
    assert got == without(chunks, frame)
