"""Round trips, pipes, concatenation, random access, lm batching, import hygiene; format versions 1 and 2."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest

import lmz

SHA = hashlib.sha256(b"model").digest()
VERSIONS = pytest.mark.parametrize("version", [1, 2])


def lm_header(chunk: int, version: int = lmz.FORMAT_VERSION) -> lmz.StreamHeader:
    """A header for a stream with lm frames (a toy model)."""
    if version == 1:
        return lmz.StreamHeader("toy", SHA, chunk, 1, 1, 0, 1)
    return lmz.StreamHeader("", SHA[:16], chunk, 1, 1, 0, 2)


def plain(chunk: int, version: int = lmz.FORMAT_VERSION) -> lmz.StreamHeader:
    """A header for a stream without lm frames."""
    return lmz.StreamHeader("", bytes(32) if version == 1 else b"", chunk, 0, 0, 0, version)


class Pipe(io.RawIOBase):
    """Non-seekable stream that returns short reads, like a pipe."""

    def __init__(self, data: bytes = b"", piece: int = 7) -> None:
        self._buf = io.BytesIO(data)
        self._piece = piece
        self.written = bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *a: object) -> int:
        raise io.UnsupportedOperation("pipe")

    def tell(self) -> int:
        raise io.UnsupportedOperation("pipe")

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(self._piece if n < 0 else min(n, self._piece))

    def write(self, b: bytes) -> int:
        self.written += b
        return len(b)


def content(n: int, seed: int = 0) -> bytes:
    """Half text, half noise: both stored and zstd frames appear."""
    text = b"".join(b"%d the cat sat on the mat\n" % i for i in range(n // 20 + 1))[: n // 2]
    return text + hashlib.shake_256(bytes([seed])).digest(n - len(text))


def rev_decoder(calls: list[int]):
    def dec(header: lmz.StreamHeader, frames: list[lmz.Frame]) -> list[bytes]:
        assert header.coder_id == lmz.CODER_LMCODEC
        calls.append(len(frames))
        return [f.payload[::-1] for f in frames]

    return dec


@VERSIONS
@pytest.mark.parametrize("n", [0, 1, 2, 255, 256, 257, 1000, 4096, 10_000, 100_003])
@pytest.mark.parametrize("chunk", [1, 256, 4096])
def test_round_trip(n: int, chunk: int, version: int) -> None:
    if chunk == 1 and n > 1000 and version == 1:
        pytest.skip("too many frames")
    data = content(n)
    blob = lmz.compress_bytes(data, chunk_size=chunk, version=version)
    assert lmz.decompress_bytes(blob) == data
    idx = lmz.read_index(io.BytesIO(blob))
    limit = plain(chunk, version).frame_limit  # version 2: stored/zstd frames of up to 1 MiB
    assert idx.raw_size == n and len(idx.entries) == -(-n // limit)
    assert all(1 <= e.raw_size <= limit for e in idx.entries)
    assert lmz.read_range(io.BytesIO(blob), idx, n // 3, n) == data[n // 3:]


@pytest.mark.parametrize("frames", [1, 5, lmz.INDEX_MIN_FRAMES - 1, lmz.INDEX_MIN_FRAMES, 200])
def test_v2_index_only_where_it_pays(frames: int) -> None:
    """Below INDEX_MIN_FRAMES frames a stream has no index (readers scan frame headers); from there on it has one,
    and both give the same index. A one-frame stream costs what the spec's table says."""
    raws = [content(40, i) for i in range(frames)]
    out = io.BytesIO()
    with lmz.Writer(out, lm_header(40)) as w:
        for r in raws:
            w.write_frame(lmz.METHOD_LM, r, r[::-1])
    blob = out.getvalue()
    has_footer = blob.endswith(b"ZML\x8a")
    assert has_footer == (frames >= lmz.INDEX_MIN_FRAMES)
    idx = lmz.read_index(io.BytesIO(blob))
    assert [e.raw_size for e in idx.entries] == [40] * frames
    dec = rev_decoder([])
    assert b"".join(lmz.decode_stream(io.BytesIO(blob), dec)) == b"".join(raws)
    assert lmz.read_range(io.BytesIO(blob), idx, 40 * (frames - 1), 40, dec) == raws[-1]
    if frames == 1:  # header 4+1+3+1+16+1+4 = 30, frame 1+1+40+4, trailer 2
        assert len(blob) == 30 + 46 + 2


def test_pipe_writer_and_reader() -> None:
    data = content(50_000)
    pipe = Pipe()
    with lmz.Writer(pipe, plain(1000)) as w:
        w.write_data(data)
    blob = bytes(pipe.written)
    assert blob == lmz.compress_bytes(data, chunk_size=1000)
    assert b"".join(lmz.decode_stream(Pipe(blob))) == data
    assert [s.raw_size for s in lmz.summary(Pipe(blob))] == [50_000]
    assert lmz.summary(Pipe(blob)) == lmz.summary(io.BytesIO(blob))


def test_empty_stream_and_empty_file() -> None:
    blob = lmz.compress_bytes(b"")
    assert lmz.decompress_bytes(blob) == b""
    assert lmz.read_index(io.BytesIO(blob)).entries == ()
    with pytest.raises(lmz.FormatError, match="empty input"):
        lmz.decompress_bytes(b"")
    with pytest.raises(lmz.FormatError, match="empty input"):
        lmz.read_index(io.BytesIO(b""))


@pytest.mark.parametrize("versions", [(1, 1, 1, 1), (2, 2, 2, 2), (1, 2, 1, 2), (2, 1, 2, 2)])
def test_concatenation_and_random_access(versions: tuple[int, ...]) -> None:
    parts = [content(3000, 1), b"", content(777, 2), content(5000, 3)]
    chunks = [100, 4096, 7, 1 << 20]
    blob = b"".join(lmz.compress_bytes(p, chunk_size=c, model_id=f"m{i}" if v == 1 else "", version=v)
                    for i, (p, c, v) in enumerate(zip(parts, chunks, versions)))
    whole = b"".join(parts)
    assert lmz.decompress_bytes(blob) == whole
    assert b"".join(lmz.decode_stream(Pipe(blob))) == whole
    idx = lmz.read_index(io.BytesIO(blob))
    assert [s.header.version for s in idx.streams] == list(versions)
    assert [s.raw_size for s in idx.streams] == [len(p) for p in parts]
    assert sum(s.size for s in idx.streams) == len(blob)
    f = io.BytesIO(blob)
    for e in idx.entries:
        assert lmz.decode_entry(f, e) == whole[e.raw_offset:e.raw_offset + e.raw_size]
    for start, length in [(0, 1), (99, 2), (2999, 10), (3770, 100), (0, len(whole)), (len(whole) - 1, 50)]:
        assert lmz.read_range(f, idx, start, length) == whole[start:start + length]
    assert idx.find(3000) == next(i for i, e in enumerate(idx.entries) if e.stream_index == 2)
    summ = lmz.summary(io.BytesIO(blob))
    assert [s.chunk_size for s in summ] == chunks
    assert sum(sum(s.frames_by_method.values()) for s in summ) == len(idx.entries)



def test_random_access_through_damaged_earlier_lengths_fails() -> None:
    """A frame found through damaged lengths of frames before it (never read) fails its check instead of
    returning its verified bytes at a wrong offset: the check covers the frame's raw offset."""
    raws = [content(100, 1), content(200, 2), content(300, 3)]
    out = io.BytesIO()
    with lmz.Writer(out, plain(256)) as w:
        for r in raws:
            w.write_frame(lmz.METHOD_ZSTD, r, lmz.zstd_compress(r, 3))
    blob = bytearray(out.getvalue())
    first = lmz.read_index(io.BytesIO(bytes(blob))).entries[0].offset
    assert blob[first + 1] == 100  # frame 0's raw length varint
    blob[first + 1] = 99  # frame 0 is now invalid (its zstd frame holds 100 bytes), but nobody decodes it
    idx = lmz.read_index(io.BytesIO(bytes(blob)))  # no index below 64 frames: found by scanning headers
    last = idx.entries[-1]
    assert last.raw_offset == 299  # where the damage puts it
    with pytest.raises(lmz.ChecksumError):
        lmz.decode_entry(io.BytesIO(bytes(blob)), last)
    with pytest.raises(lmz.ChecksumError):
        lmz.read_range(io.BytesIO(bytes(blob)), idx, 299, 300)

@VERSIONS
@pytest.mark.parametrize("batch", [1, 2, 3, 100])
def test_lm_frames_batched_in_order(batch: int, version: int) -> None:
    raws = [content(50, i) for i in range(12)]
    pattern = "LLLSLLLLZLLL"  # lm, stored, zstd
    out = io.BytesIO()
    with lmz.Writer(out, lm_header(64, version)) as w:
        for raw, p in zip(raws, pattern):
            if p == "L":
                w.write_frame(lmz.METHOD_LM, raw, raw[::-1])
            elif p == "S":
                w.write_frame(lmz.METHOD_STORED, raw)
            else:
                w.write_frame(lmz.METHOD_ZSTD, raw, lmz.zstd_compress(raw))
    blob = out.getvalue()
    calls: list[int] = []
    assert list(lmz.decode_stream(io.BytesIO(blob), rev_decoder(calls), batch=batch)) == raws
    assert sum(calls) == 10 and max(calls) <= batch
    if batch >= 4:
        assert calls == [3, 4, 3]
    with pytest.raises(lmz.UnsupportedError):
        lmz.decompress_bytes(blob)
    idx = lmz.read_index(io.BytesIO(blob))
    assert lmz.decode_entry(io.BytesIO(blob), idx.entries[1], rev_decoder([])) == raws[1]
    assert lmz.summary(io.BytesIO(blob))[0].frames_by_method == {"lm": 10, "stored": 1, "zstd": 1}


@VERSIONS
def test_wrong_lm_output_is_never_yielded(version: int) -> None:
    out = io.BytesIO()
    with lmz.Writer(out, lm_header(64, version)) as w:
        w.write_frame(lmz.METHOD_STORED, b"ok")
        w.write_frame(lmz.METHOD_LM, b"abc", b"xyz")
    got: list[bytes] = []
    with pytest.raises(lmz.ChecksumError, match="frame 1"):
        for chunk in lmz.decode_stream(io.BytesIO(out.getvalue()), lambda h, fs: [b"abd" for _ in fs]):
            got.append(chunk)
    assert got == [b"ok"]
    with pytest.raises(lmz.FormatError):
        lmz.decompress_bytes(out.getvalue(), lambda h, fs: [])


def test_write_chunk_picks_smallest() -> None:
    out = io.BytesIO()
    with lmz.Writer(out, lm_header(1 << 16)) as w:
        assert w.write_chunk(os.urandom(1000)) == lmz.METHOD_STORED
        assert w.write_chunk(b"a" * 1000) == lmz.METHOD_ZSTD
        assert w.write_chunk(b"a" * 1000, lm_payload=b"x") == lmz.METHOD_LM
        assert w.write_chunk(b"ab", lm_payload=b"xy") == lmz.METHOD_STORED  # tie: simplest
    assert [e.method for e in lmz.read_index(io.BytesIO(out.getvalue())).entries] == [0, 1, 2, 0]


@VERSIONS
def test_writer_rejects_bad_input(version: int) -> None:
    with pytest.raises(lmz.LimitError):
        lmz.Writer(io.BytesIO(), plain(1 << 40, version))
    with pytest.raises(lmz.UnsupportedError):
        lmz.Writer(io.BytesIO(), lmz.StreamHeader("", bytes(32) if version == 1 else b"", 10, 5, 0, 0, version))
    with pytest.raises(lmz.FormatError):
        lmz.Writer(io.BytesIO(), lmz.StreamHeader("x" * 65, bytes(32), 10, 0, 0, 0, version))
    with pytest.raises(lmz.FormatError):  # a version-2 stream names its model by a 128-bit hash, no id
        lmz.Writer(io.BytesIO(), lmz.StreamHeader("toy", SHA, 10, 1, 1, 0, 2))
    w = lmz.Writer(io.BytesIO(), plain(10, version))
    with pytest.raises(lmz.LimitError):
        w.write_frame(lmz.METHOD_STORED, b"x" * (plain(10, version).frame_limit + 1))
    with pytest.raises(lmz.FormatError):
        w.write_frame(lmz.METHOD_STORED, b"")
    with pytest.raises(lmz.FormatError):
        w.write_frame(lmz.METHOD_LM, b"abc", b"x")  # coder 0
    with pytest.raises(lmz.UnsupportedError):
        w.write_frame(7, b"abc", b"x")


def test_writer_exception_leaves_truncated_stream() -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with lmz.Writer(out, plain(10)) as w:
            w.write_frame(lmz.METHOD_STORED, b"abc")
            raise RuntimeError
    with pytest.raises(lmz.TruncatedError):
        lmz.decompress_bytes(out.getvalue())


def test_limits_enforced() -> None:
    blob = lmz.compress_bytes(b"x" * 5000, chunk_size=2048, version=1)
    with pytest.raises(lmz.LimitError):
        lmz.decompress_bytes(blob, limits=lmz.Limits(max_chunk=1024))
    with pytest.raises(lmz.LimitError):
        lmz.decompress_bytes(blob, limits=lmz.Limits(max_frames=2))
    assert lmz.decompress_bytes(blob, limits=lmz.Limits(max_frames=3)) == b"x" * 5000


def test_zstd_bomb_and_size_mismatch() -> None:
    big = lmz.zstd_compress(b"\0" * 1_000_000)
    with pytest.raises(lmz.FormatError):
        lmz.zstd_decompress(big, 1000)
    with pytest.raises(lmz.FormatError):
        lmz.zstd_decompress(big + b"x", 1_000_000)
    with pytest.raises(lmz.FormatError):
        lmz.zstd_decompress(b"not zstd at all", 10)


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout


def test_import_does_not_pull_torch_or_numpy() -> None:
    _run("import lmz, sys; assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")


def test_import_time() -> None:
    best = min(float(_run("import time; t = time.perf_counter(); import lmz; print(time.perf_counter() - t)"))
               for _ in range(3))
    print(f"import lmz: {best * 1000:.1f} ms")
    assert best < 0.2  # target is < 50 ms; generous to avoid flakes on loaded CI machines
