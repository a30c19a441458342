"""lmcodec -d --salvage and errors="salvage", through real processes and the API: a damaged 16-frame file of lm
frames gives back every intact frame, byte-exact, and names each lost range; exit status 1."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import lmcodec
import lmz

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
CHUNK = 256


@pytest.fixture(scope="module")
def sixteen(cache) -> tuple[bytes, bytes, list[lmz.IndexEntry]]:
    """(content, .lmz, index entries): 16 lm frames of English."""
    text = (Path(__file__).parents[1] / "data" / "english.txt").read_bytes()
    content = text[: 16 * CHUNK]
    blob = lmcodec.compress(content, model=TINY, chunk_size=CHUNK)
    entries = list(lmz.read_index(io.BytesIO(blob)).entries)
    assert len(entries) == 16 and {e.method for e in entries} == {lmz.METHOD_LM}
    return content, blob, entries


def flip(blob: bytes, at: int, mask: int = 0x40) -> bytes:
    return blob[:at] + bytes([blob[at] ^ mask]) + blob[at + 1:]


def proc(cache: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, LMCODEC_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "lmcodec", *args], input=input, capture_output=True, env=env,
                          timeout=300)


def lost_ranges(stderr: bytes) -> list[tuple[int, int | None]]:
    out = []
    for m in re.finditer(r"content offset (\d+): (\d+ bytes|an unknown number of bytes) lost", stderr.decode()):
        out.append((int(m.group(1)), int(m.group(2).split()[0]) if m.group(2)[0].isdigit() else None))
    return out


@pytest.mark.parametrize("region", ["payload", "frame header", "cut short", "trailer"])
def test_salvage_through_the_command(sixteen, cache, tmp_path, region):
    content, blob, entries = sixteen
    e = entries[7]
    damaged = {"payload": flip(blob, e.offset + e.frame_size - 10),
               "frame header": flip(blob, e.offset, 0x7F),
               "cut short": blob[: e.offset + 5],
               "trailer": flip(blob, len(blob) - 1)}[region]
    src = tmp_path / "x.lmz"
    src.write_bytes(damaged)
    r = proc(cache, "-d", "--salvage", str(src))
    out = (tmp_path / "x").read_bytes()
    if region == "trailer":  # no content is lost
        assert r.returncode == 0 and out == content, r.stderr
        return
    assert r.returncode == 1, r.stderr
    lost = (e.raw_offset, None if region == "cut short" else e.raw_size)
    assert lost_ranges(r.stderr) == [lost], r.stderr
    want = content[: e.raw_offset] + (b"" if region == "cut short" else content[e.raw_offset + e.raw_size:])
    assert out == want
    assert src.exists()  # the input stays
    # -dc --salvage writes the same to standard output; without --salvage the good prefix only, exit 1
    r2 = proc(cache, "-dc", "--salvage", str(src))
    assert (r2.returncode, r2.stdout) == (1, want)
    r3 = proc(cache, "-dc", str(src))
    assert r3.returncode == 1 and r3.stdout == content[: e.raw_offset]


def test_salvage_api_and_its_checks(sixteen):
    content, blob, entries = sixteen
    e = entries[3]
    damaged = flip(blob, e.offset + e.frame_size - 10)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = lmcodec.decompress(damaged, errors="salvage", batch_size=4)
    assert got == content[: e.raw_offset] + content[e.raw_offset + e.raw_size:]
    assert [w.category for w in seen] == [lmcodec.DamageWarning] and str(e.raw_offset) in str(seen[0].message)
    with lmcodec.LmzFile(io.BytesIO(damaged), "rb", errors="salvage") as f, pytest.warns(lmcodec.DamageWarning):
        assert f.read() == got and not f.seekable()
        assert [(d.offset, d.length) for d in f.damage] == [(e.raw_offset, e.raw_size)]
    with pytest.raises(lmcodec.LmzError):
        lmcodec.decompress(damaged)  # strict, the default
    with pytest.raises(ValueError):
        lmcodec.LmzFile(io.BytesIO(), "wb", errors="salvage")
    with pytest.raises(ValueError):
        lmcodec.LmzFile(io.BytesIO(blob), "rb", errors="ignore")


def test_salvage_goes_with_decompress_or_test(cache, tmp_path):
    r = proc(cache, "--salvage", str(tmp_path / "x"))
    assert r.returncode == 1 and b"--salvage goes with -d or -t" in r.stderr


def test_test_and_list_find_stored_damage_without_the_model(sixteen, tmp_path):
    """Format 3: -t checks every frame's stored bytes before it decodes any, and -l checks them too: damage in
    the last frame is reported at once, by a process that has no model at all (an empty model cache)."""
    content, blob, entries = sixteen
    assert lmz.read_index(io.BytesIO(blob)).streams[0].header.version == 3
    e = entries[-1]
    src = tmp_path / "x.lmz"
    src.write_bytes(flip(blob, e.offset + e.frame_size - 12))
    empty = tmp_path / "no-models"
    empty.mkdir()
    env = dict(os.environ, LMCODEC_CACHE=str(empty), PYTHONPATH="")  # and no way to the tiny model
    for mode, said in (("-t", f"frame 15 at offset {e.offset}: stored bytes damaged"),
                       ("-l", f"damaged: stream 0 frame 15 at offset {e.offset}: stored bytes damaged")):
        r = subprocess.run([sys.executable, "-m", "lmcodec", mode, str(src)], capture_output=True, env=env,
                           timeout=60)
        assert r.returncode == 1 and said in r.stderr.decode(), r.stderr
    (tmp_path / "ok.lmz").write_bytes(blob)
    r = subprocess.run([sys.executable, "-m", "lmcodec", "-l", str(tmp_path / "ok.lmz")], capture_output=True,
                       env=env, timeout=60)
    assert r.returncode == 0 and b"damaged" not in r.stderr
