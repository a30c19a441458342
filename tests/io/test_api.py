"""The Python API: open() modes, LmzFile as a buffered binary file, seeking by the index, pipes, concatenation,
atomic writes to paths, and the errors for foreign models, corruption, truncation and garbage."""
from __future__ import annotations

import gc
import io
import os
import random

import pytest

import lmcodec
import lmz
from lmcodec import ChecksumError, FormatError, LmzError, ModelError, TruncatedError
from lmcodec.io.lmzfile import get_codec
from lmcodec.pipeline import mixed, plain
from lmcodec.pipeline.codec import Codec

# Binary content (control bytes: the pre-check keeps it away from the model) for the file mechanics, and a
# little text for what needs lm frames.
LINES = b"".join(b"line %04d \x00\x01\x02 %s\n" % (i, bytes(random.Random(i).randbytes(i % 23))) for i in range(300))
BIN = random.Random(1).randbytes(20_000)
TEXT = ("Wie heißt du? Je m'appelle Zoë. The quick brown fox jumps over the lazy dog.\n" * 8)
OPTS = dict(chunk_size=1024, batch_size=8)


@pytest.fixture()
def opts(tiny):
    return dict(OPTS, model=tiny)


# ---------------------------------------------------------------------------------------------- modes


def test_binary_modes_on_paths(tmp_path, opts):
    p = tmp_path / "a.lmz"
    with lmcodec.open(p, "wb", **opts) as f:
        assert isinstance(f, lmcodec.LmzFile) and isinstance(f, io.BufferedIOBase)
        assert f.writable() and not f.readable() and not f.seekable()
        assert f.write(BIN[:5000]) == 5000
        assert f.write(memoryview(BIN)[5000:]) == len(BIN) - 5000
        assert f.tell() == len(BIN)
    assert f.closed
    with lmcodec.open(p, "rb") as f:
        assert f.readable() and not f.writable() and f.seekable()
        assert f.read() == BIN
    with lmcodec.open(str(p), "ab", **opts) as f:
        f.write(LINES)
    assert lmcodec.decompress(p.read_bytes()) == BIN + LINES
    assert len(lmz.read_index(open(p, "rb")).streams) == 2
    with pytest.raises(FileExistsError):
        lmcodec.open(p, "xb", **opts)
    assert lmcodec.decompress(p.read_bytes()) == BIN + LINES  # untouched
    with lmcodec.open(tmp_path / "new.lmz", "xb", **opts) as f:
        f.write(b"x")
    assert lmcodec.open(tmp_path / "new.lmz").read() == b"x"
    assert sorted(os.listdir(tmp_path)) == ["a.lmz", "new.lmz"]  # no temp files left behind


def test_append_to_missing_file_creates_it(tmp_path, opts):
    with lmcodec.open(tmp_path / "n.lmz", "ab", **opts) as f:
        f.write(LINES)
    assert lmcodec.decompress((tmp_path / "n.lmz").read_bytes()) == LINES


def test_append_to_file_object(opts):
    buf = io.BytesIO()
    for part in (LINES[:100], b"", LINES[100:]):
        with lmcodec.open(buf, "ab", **opts) as f:
            f.write(part)
    assert not buf.closed  # a caller's file object stays open
    assert lmcodec.decompress(buf.getvalue()) == LINES
    assert len(lmz.read_index(io.BytesIO(buf.getvalue())).streams) == 3


def test_text_modes(tmp_path, opts):
    p = tmp_path / "t.lmz"
    with lmcodec.open(p, "wt", encoding="latin-1", newline="\r\n", **opts) as f:
        f.write("naïve\nline two\n")
    assert lmcodec.decompress(p.read_bytes()) == "naïve\r\nline two\r\n".encode("latin-1")
    with lmcodec.open(p, "rt", encoding="latin-1", newline="") as f:
        assert f.read() == "naïve\r\nline two\r\n"
    with lmcodec.open(p, "rt", encoding="latin-1") as f:
        assert f.readlines() == ["naïve\n", "line two\n"]
    with lmcodec.open(p, "rt", encoding="utf-8", errors="replace") as f:
        assert f.read() == "na\ufffdve\nline two\n"
    with pytest.raises(UnicodeDecodeError):
        with lmcodec.open(p, "rt", encoding="utf-8") as f:
            f.read()
    with lmcodec.open(p, "at", encoding="utf-8", **opts) as f:
        f.write("ümlaut\n")
    with lmcodec.open(p, "rt", encoding="utf-8", errors="surrogateescape") as f:
        assert f.read().endswith("line two\nümlaut\n")
    with pytest.raises(FileExistsError):
        lmcodec.open(p, "xt", **opts)
    with lmcodec.open(tmp_path / "u.lmz", "xt", encoding="utf-8", **opts) as f:
        f.write(TEXT)
    with lmcodec.open(tmp_path / "u.lmz", "rt", encoding="utf-8", batch_size=16) as f:
        assert f.read() == TEXT


@pytest.mark.parametrize("mode", ["r+", "rw", "wbt", "z", "rtb"])
def test_invalid_modes(mode, opts):
    with pytest.raises(ValueError):
        lmcodec.open(io.BytesIO(), mode, **opts)


def test_text_options_rejected_in_binary_mode(opts):
    with pytest.raises(ValueError):
        lmcodec.open(io.BytesIO(), "wb", encoding="utf-8", **opts)


# ---------------------------------------------------------------------------------------------- reading


@pytest.fixture()
def lines_blob(tiny):
    return lmcodec.compress(LINES, model=tiny, chunk_size=512)


def test_read_methods(lines_blob):
    f = lmcodec.open(io.BytesIO(lines_blob))
    assert f.read(0) == b""
    assert f.read(10) == LINES[:10]
    assert f.read1(5) == LINES[10:15]
    buf = bytearray(100)
    assert f.readinto(buf) == 100 and bytes(buf) == LINES[15:115]
    assert f.peek(1)[:1] == LINES[115:116]
    rest = LINES[115:]
    first_nl = rest.index(b"\n") + 1
    assert f.readline() == rest[:first_nl]
    assert f.readline(3) == rest[first_nl: first_nl + 3]
    assert list(f) == io.BytesIO(rest[first_nl + 3:]).readlines()
    assert f.read() == b"" and f.read(5) == b"" and f.readline() == b""
    f.close()
    assert f.closed
    with pytest.raises(ValueError):
        f.read()


def test_read_in_small_pieces(lines_blob):
    with lmcodec.open(io.BytesIO(lines_blob)) as f:
        got = b"".join(iter(lambda: f.read(37), b""))
    assert got == LINES


def test_seek_and_tell(lines_blob):
    n = len(LINES)
    with lmcodec.open(io.BytesIO(lines_blob)) as f:
        assert f.tell() == 0
        assert f.seek(1000) == 1000 and f.tell() == 1000
        assert f.read(50) == LINES[1000:1050]
        assert f.seek(-30, io.SEEK_CUR) == 1020 and f.read(10) == LINES[1020:1030]
        assert f.seek(-100, io.SEEK_END) == n - 100 and f.read() == LINES[-100:]
        assert f.tell() == n
        assert f.seek(0) == 0 and f.read(20) == LINES[:20]
        assert f.seek(5000) == 5000 and f.read(600) == LINES[5000:5600]  # across a chunk boundary
        assert f.seek(n + 1000) == n + 1000 and f.read() == b"" and f.tell() == n + 1000
        assert f.seek(0, io.SEEK_END) == n and f.read(1) == b""
        assert f.seek(3) == 3 and f.read() == LINES[3:]
        with pytest.raises(ValueError):
            f.seek(-1)
    positions = random.Random(5).sample(range(n), 40)
    with lmcodec.open(io.BytesIO(lines_blob)) as f:
        for pos in positions:
            f.seek(pos)
            assert f.read(77) == LINES[pos: pos + 77], pos


def test_seek_decodes_only_needed_chunks(tiny, count_lm_frames):
    text = "".join(f"Sentence number {i} is here, in chunk {i // 4}.\n" for i in range(20)).encode()
    blob = lmcodec.compress(text, model=tiny, chunk_size=128, batch_size=8)
    entries = lmz.read_index(io.BytesIO(blob)).entries
    assert len(entries) >= 5 and all(e.method == lmz.METHOD_LM for e in entries)
    last = entries[-1]
    with lmcodec.open(io.BytesIO(blob), batch_size=1) as f:
        f.seek(last.raw_offset + 3)
        assert f.read(5) == text[last.raw_offset + 3: last.raw_offset + 8]
        assert count_lm_frames == [last.raw_size]  # only the last chunk
        mid = entries[len(entries) // 2]
        f.seek(mid.raw_offset)
        assert f.read(mid.raw_size) == text[mid.raw_offset: mid.raw_offset + mid.raw_size]
        assert count_lm_frames == [last.raw_size, mid.raw_size]
        f.seek(-2, io.SEEK_END)
        assert f.read() == text[-2:]
    count_lm_frames.clear()
    with lmcodec.open(io.BytesIO(blob), batch_size=16) as f:
        assert f.read() == text
    assert len(count_lm_frames) == len(entries)  # each chunk decoded once when reading straight through


def test_write_mode_file_cannot_read_or_seek(opts):
    f = lmcodec.open(io.BytesIO(), "wb", **opts)
    for op in (lambda: f.read(), lambda: f.read1(1), lambda: f.readline(), lambda: f.seek(0),
               lambda: f.readinto(bytearray(1)), lambda: f.peek()):
        with pytest.raises(io.UnsupportedOperation):
            op()
    f.close()
    with pytest.raises(ValueError):
        f.write(b"late")
    with pytest.raises(ValueError):
        f.tell()
    f.close()  # closing twice is fine


def test_read_mode_file_cannot_write(lines_blob):
    with lmcodec.open(io.BytesIO(lines_blob)) as f:
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
    with pytest.raises(ValueError):
        f.read()


class Pipe(io.RawIOBase):
    """A non-seekable source that returns short reads, like a pipe."""

    def __init__(self, data: bytes, step: int = 999) -> None:
        self._b = io.BytesIO(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:
        data = self._b.read(min(len(b), self._step))
        b[: len(data)] = data
        return len(data)


def test_pipe_reads_fully_and_stays_at_eof(lines_blob, tiny):
    with lmcodec.open(Pipe(lines_blob)) as f:
        assert not f.seekable()
        assert f.read() == LINES
        assert f.read() == b""  # regression: a second read at EOF must not fail or restart
        assert f.read(10) == b""
    blob = lmcodec.compress(TEXT.encode(), model=tiny, chunk_size=256) + lines_blob
    with lmcodec.open(Pipe(blob, 7), batch_size=16) as f:
        assert b"".join(iter(lambda: f.read(100), b"")) == TEXT.encode() + LINES
        assert f.read() == b""
    with lmcodec.open(Pipe(lines_blob)) as f:
        f.read(10)
        with pytest.raises(io.UnsupportedOperation):
            f.seek(len(LINES) - 5)


def test_concatenated_streams(tiny):
    a = lmcodec.compress(TEXT.encode(), model=tiny, chunk_size=256, batch_size=4)
    b = lmcodec.compress(LINES, model=tiny, chunk_size=1000)
    e = lmcodec.compress(b"", model=tiny)
    blob = a + e + b + a
    want = TEXT.encode() + LINES + TEXT.encode()
    assert lmcodec.decompress(blob, batch_size=16) == want
    with lmcodec.open(io.BytesIO(blob), batch_size=16) as f:
        pos = len(TEXT) + len(LINES) - 10  # last bytes of b, then into the second a
        f.seek(pos)
        assert f.read(40) == want[pos: pos + 40]


# ---------------------------------------------------------------------------------------------- failures while writing


def _fail_after(monkeypatch, n_ok: int):
    calls = {"n": 0}
    orig = Codec.encode

    def encode(self, chunks, *rest):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise RuntimeError("simulated codec failure")
        return orig(self, chunks, *rest)

    monkeypatch.setattr(Codec, "encode", encode)


def test_failure_mid_write_leaves_nothing(tmp_path, opts, monkeypatch):
    big = random.Random(2).randbytes(3 << 20)  # non-text: coded in 1 MiB frames while it is written
    _fail_after(monkeypatch, 1)
    with pytest.raises(RuntimeError, match="simulated"):
        with lmcodec.open(tmp_path / "out.lmz", "wb", **opts) as f:
            for i in range(0, len(big), 1 << 16):
                f.write(big[i: i + (1 << 16)])
                assert i < len(big) - (1 << 16), "the failure must come from a write, not from close"
    assert os.listdir(tmp_path) == []


def test_failure_in_close_leaves_nothing(tmp_path, opts, monkeypatch):
    f = lmcodec.open(tmp_path / "out.lmz", "wb", **opts)
    f.write(b"short")
    _fail_after(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="simulated"):
        f.close()
    assert f.closed
    assert os.listdir(tmp_path) == []


def test_exception_in_with_block_is_not_masked(tmp_path, opts):
    with pytest.raises(KeyError, match="mine"):
        with lmcodec.open(tmp_path / "out.lmz", "wb", **opts) as f:
            f.write(LINES)
            raise KeyError("mine")
    assert os.listdir(tmp_path) == []


def test_failed_append_keeps_the_original(tmp_path, opts, monkeypatch):
    p = tmp_path / "a.lmz"
    with lmcodec.open(p, "wb", **opts) as f:
        f.write(LINES)
    before = p.read_bytes()
    _fail_after(monkeypatch, 0)
    with pytest.raises(RuntimeError):
        with lmcodec.open(p, "ab", **opts) as f:
            f.write(BIN)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.lmz"]


# ---------------------------------------------------------------------------------------------- errors


def _lm_stream(model_id: str, sha: bytes, raw: bytes = b"hello", payload: bytes = b"\x12\x34\x56",
               version: int = 1) -> bytes:
    """One lm frame in a stream that names a model (format 1: id and whole hash; format 2: 128 bits of hash)."""
    out = io.BytesIO()
    header = lmz.StreamHeader(model_id, sha, 1024, lmz.CODER_LMCODEC, 1, 0, 1) if version == 1 else \
        lmz.StreamHeader("", sha[:16], 1024, lmz.CODER_LMCODEC, 1)
    with lmz.Writer(out, header) as w:
        w.write_frame(lmz.METHOD_LM, raw, payload)
    return out.getvalue()


def test_stream_for_another_model_raises_model_error_before_decoding(tiny, monkeypatch):
    def boom(*args, **kw):
        raise AssertionError("decoding started")

    monkeypatch.setattr(plain, "decode_batch", boom)
    monkeypatch.setattr(mixed, "decode_batch", boom)
    sha = bytes(range(32))
    blob = _lm_stream("some-other-model", sha)
    for call in (lambda: lmcodec.decompress(blob), lambda: lmcodec.decompress(blob, model=tiny),
                 lambda: lmcodec.open(io.BytesIO(blob)).read(1)):
        with pytest.raises(ModelError) as e:
            call()
        assert "some-other-model" in str(e.value) and sha.hex() in str(e.value)
    assert isinstance(e.value, OSError)


@pytest.mark.parametrize("version", [1, 2])
def test_loaded_codec_refuses_a_stream_for_another_model(tiny, version):
    codec = get_codec(tiny, chunk_size=1024)
    blob = _lm_stream("x", b"\x01" * 32, version=version)
    frames = list(lmz.Reader(io.BytesIO(blob)).frames())
    with pytest.raises(ModelError, match="01010101") as e:  # both names and hashes
        codec.decode(frames[0].header, frames)
    assert codec.model.sha256 in str(e.value) and codec.model.model_id in str(e.value)


@pytest.mark.parametrize("enabled", [True, False])
def test_loading_leaves_the_collector_as_it_was(tiny, tmp_path, enabled):
    """Loading pauses the cycle collector (what it creates lives on): after, loaded or failed, it is as before."""
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        get_codec(tiny, chunk_size=2048 if enabled else 4096)  # a new codec each time
        assert gc.isenabled() == enabled
        with pytest.raises(ModelError):
            get_codec(str(tmp_path / "missing.gguf"))
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_corrupted_lm_payload(tiny):
    text = TEXT.encode()[:400]
    blob = lmcodec.compress(text, model=tiny, chunk_size=128, batch_size=8)
    entries = lmz.read_index(io.BytesIO(blob)).entries
    assert len(entries) >= 3 and all(e.method == lmz.METHOD_LM for e in entries)
    bad_entry = entries[2]
    # first and middle payload bytes (the last byte may not matter: the coder's termination leaves slack there)
    for where in (0, 1 / 2):  # first, a middle, the last payload byte
        frame = lmz.read_frame_at(io.BytesIO(blob), bad_entry)
        pos = frame.payload_offset + int(where * len(frame.payload))
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        with pytest.raises(LmzError):
            lmcodec.decompress(bytes(bad), batch_size=8)
        got = bytearray()
        with pytest.raises(LmzError) as e:
            with lmcodec.open(io.BytesIO(bytes(bad)), batch_size=1) as f:
                while piece := f.read(16):
                    got += piece
        assert isinstance(e.value, (ChecksumError, FormatError)), e.value
        assert len(got) <= bad_entry.raw_offset and bytes(got) == text[: len(got)]  # nothing of the bad chunk
        with lmcodec.open(io.BytesIO(bytes(bad)), batch_size=1) as f:  # by the index: chunks before it still read
            assert f.read(bad_entry.raw_offset) == text[: bad_entry.raw_offset]
            with pytest.raises(ChecksumError):
                f.read(1)


def test_truncated_stream(tiny):
    blob = lmcodec.compress(TEXT.encode(), model=tiny, chunk_size=256) + lmcodec.compress(LINES, model=tiny)
    for n in (1, 3, 10, 60, len(blob) // 3, len(blob) - 30, len(blob) - 1):
        with pytest.raises(TruncatedError):
            lmcodec.decompress(blob[:n], batch_size=64)  # a big batch: no lm work before the error


@pytest.mark.parametrize("junk", [b"", b"x", b"not an lmz stream at all", bytes(200), b"\x89LMX" + bytes(100)])
def test_garbage_is_a_format_error(junk):
    with pytest.raises(FormatError):
        lmcodec.decompress(junk)


def test_trailing_garbage(lines_blob):
    with pytest.raises(FormatError):
        lmcodec.decompress(lines_blob + b"junk")


def test_error_hierarchy():
    for cls in (FormatError, ChecksumError, TruncatedError, lmcodec.LimitError, lmcodec.UnsupportedError):
        assert issubclass(cls, LmzError) and issubclass(cls, ValueError)
    assert issubclass(ModelError, OSError) and not issubclass(ModelError, LmzError)
