"""lmcodec.Settings: one reusable settings object that every entry point takes, checked against the mode."""
from __future__ import annotations

import io

import pytest

import lmcodec
import lmz
from lmcodec.defaults import PRESETS

TEXT = ("Settings are held once and reused, as zstandard.ZstdCompressor holds its level. " * 30).encode()


def test_fields_are_checked_when_made():
    for bad in (dict(level=0), dict(level=10), dict(chunk_size=0), dict(chunk_size=lmz.MAX_CHUNK + 1),
                dict(window=4), dict(zstd_level=23), dict(batch_size=0), dict(memory=0), dict(threads=-1),
                dict(device="tpu"), dict(threads=1.5), dict(level=True)):
        with pytest.raises(ValueError):
            lmcodec.Settings(**bad)
    s = lmcodec.Settings(level=9)
    assert (s.chunk, s.write_batch, s.zstd) == (*PRESETS[9], 19)
    assert lmcodec.Settings(level=2).zstd == 9 and lmcodec.Settings(level=2, zstd_level=3).zstd == 3
    assert s.replace(chunk_size=1000).chunk == 1000
    with pytest.raises(ValueError):
        s.replace(level=11)


def test_one_settings_object_everywhere_gives_the_same_bytes(tiny):
    s = lmcodec.Settings(model=tiny, chunk_size=512)
    ref = lmcodec.compress(TEXT, model=tiny, chunk_size=512)
    assert s.compress(TEXT) == ref == lmcodec.compress(TEXT, s)
    c = s.compressor()
    assert c.compress(TEXT[:100]) + c.compress(TEXT[100:]) + c.flush() == ref
    buf = io.BytesIO()
    with s.open(buf, "wb") as f:
        f.write(TEXT)
    assert buf.getvalue() == ref
    assert s.decompress(ref) == TEXT == lmcodec.decompress(ref, s)
    with s.open(io.BytesIO(ref), "rt", encoding="utf-8") as f:
        assert f.read() == TEXT.decode()
    assert s.decompressor().decompress(ref) == TEXT
    # keywords win over the object's fields
    assert lmcodec.compress(TEXT, s, chunk_size=1024) == lmcodec.compress(TEXT, model=tiny, chunk_size=1024)


def test_options_that_do_not_apply_to_the_mode_are_refused(tiny):
    """As lzma refuses a preset when reading: writing fields to a reader, memory to a writer."""
    blob = lmcodec.compress(TEXT, model=tiny, chunk_size=512)
    for kw in (dict(chunk_size=4096), dict(level=9), dict(window=4096), dict(zstd_level=3)):
        with pytest.raises(ValueError, match="not an option for reading"):
            lmcodec.open(io.BytesIO(blob), "rb", **kw)
    with pytest.raises(ValueError, match="not an option for writing"):
        lmcodec.open(io.BytesIO(), "wb", model=tiny, memory=1 << 30)
    with pytest.raises(TypeError):
        lmcodec.decompress(blob, level=9)  # not a parameter of decompress at all
    with pytest.raises(TypeError):
        lmcodec.compress(TEXT, memory=1 << 30)
    with pytest.raises(TypeError, match="lmcodec.Settings"):
        lmcodec.compress(TEXT, {"chunk_size": 512})
    # a Settings object carries both kinds: each mode takes the fields it uses
    both = lmcodec.Settings(model=tiny, chunk_size=512, memory=1 << 30)
    assert lmcodec.decompress(both.compress(TEXT), both) == TEXT
