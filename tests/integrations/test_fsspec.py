"""fsspec compression "lmz": registration, call forms, memory:// and local files, text, open_files, tar, hook."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import fsspec
import pytest
from fsspec.compression import compr

import lmcodec
import lmz
from lmcodec.integrations import fsspec_plugin

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
TEXT = "Grüße, fsspec! The quick brown fox jumps over the lazy dog.\n" * 20
BIN = bytes(range(256)) * 16


@pytest.fixture(autouse=True)
def _env(cache, monkeypatch):
    monkeypatch.setenv("LMCODEC_CACHE", str(cache))
    monkeypatch.setenv("LMCODEC_MODEL", TINY)  # what fsspec writes with (fsspec passes no options)
    monkeypatch.setattr(fsspec_plugin, "settings", lmcodec.Settings(chunk_size=2048))


@pytest.fixture()
def mem():
    fs = fsspec.filesystem("memory")
    root = f"/lmz-test-{os.getpid()}-{id(object())}"
    yield fs, root
    try:
        fs.rm(root, recursive=True)
    except FileNotFoundError:
        pass


def test_registered():
    assert "lmz" in compr
    assert fsspec.utils.infer_compression("a/b.txt.lmz") == "lmz"


@pytest.mark.parametrize("form", ["rb", "r", "rt", None])
def test_callback_read_forms(form):
    blob = lmz.compress_bytes(BIN)
    f = compr["lmz"](io.BytesIO(blob)) if form is None else compr["lmz"](io.BytesIO(blob), mode=form)
    assert isinstance(f, lmcodec.LmzFile)
    assert f.read() == BIN


@pytest.mark.parametrize("form", ["wb", "w"])
def test_callback_write_forms(form):
    buf = io.BytesIO()
    with compr["lmz"](buf, mode=form) as f:
        f.write(BIN)
    assert lmcodec.decompress(buf.getvalue()) == BIN
    with pytest.raises(ValueError):
        compr["lmz"](io.BytesIO(), mode="q")


def test_memory_binary_and_text(mem):
    fs, root = mem
    with fsspec.open(f"memory://{root}/a.bin", "wb", compression="lmz") as f:
        f.write(BIN)
    assert fs.cat(f"{root}/a.bin").startswith(lmz.MAGIC)
    with fsspec.open(f"memory://{root}/a.bin", "rb", compression="lmz") as f:
        assert f.read() == BIN
    with fsspec.open(f"memory://{root}/t.txt.lmz", "wt", compression="infer", encoding="utf-8") as f:
        f.write(TEXT)
    with fsspec.open(f"memory://{root}/t.txt.lmz", "rt", compression="infer", encoding="utf-8") as f:
        assert f.read() == TEXT
    with fsspec.open(f"memory://{root}/t.txt.lmz", "rt", compression="infer", encoding="utf-8") as f:
        assert f.readline() == TEXT.splitlines(keepends=True)[0]


def test_local_files(tmp_path):
    p = tmp_path / "x.txt.lmz"
    with fsspec.open(str(p), "wt", compression="infer") as f:
        f.write(TEXT)
    assert lmcodec.decompress(p.read_bytes()) == TEXT.encode()
    with fsspec.open(f"file://{p}", "rb", compression="infer") as f:
        assert f.read() == TEXT.encode()
    with fsspec.open(str(p), "rt", compression="lmz") as f:
        assert f.read() == TEXT


def test_open_files(mem):
    fs, root = mem
    names = [f"memory://{root}/d/part{i}.txt.lmz" for i in range(3)]
    for i, of in enumerate(fsspec.open_files(names, "wt", compression="infer")):
        with of as f:
            f.write(f"part {i}\n" + TEXT[: 100 * (i + 1)])
    got = fsspec.open_files(f"memory://{root}/d/*.lmz", "rt", compression="infer")
    assert len(got) == 3
    for i, of in enumerate(sorted(got, key=lambda o: o.path)):
        with of as f:
            assert f.read() == f"part {i}\n" + TEXT[: 100 * (i + 1)]


def test_tar_filesystem_no_mode_call(mem):
    fs, root = mem
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as t:
        info = tarfile.TarInfo("inner.txt")
        info.size = len(BIN)
        t.addfile(info, io.BytesIO(BIN))
    fs.pipe(f"{root}/a.tar.lmz", lmcodec.compress(tbuf.getvalue(), model=TINY, chunk_size=4096))
    tfs = fsspec.filesystem("tar", fo=f"memory://{root}/a.tar.lmz", compression="lmz")  # calls compr["lmz"](f)
    assert tfs.cat("inner.txt") == BIN


def test_hook_in_fresh_interpreter(cache):
    """The .pth hook registers 'lmz' on `import fsspec`, with no `import lmcodec` (and none at start-up)."""
    code = (
        "import sys\n"
        "assert 'lmcodec' not in sys.modules and 'fsspec' not in sys.modules and 'torch' not in sys.modules\n"
        "import fsspec, io, lmz\n"
        "assert 'lmz' in fsspec.compression.compr\n"
        "assert 'lmcodec' not in sys.modules\n"
        "fsspec.filesystem('memory').pipe('/hook/x.lmz', lmz.compress_bytes(b'hi there'))\n"
        "with fsspec.open('memory://hook/x.lmz', 'rb', compression='infer') as f:\n"
        "    assert f.read() == b'hi there'\n"
        "with fsspec.open('memory://hook/x.lmz', 'rt', compression='lmz') as f:\n"
        "    assert f.read() == 'hi there'\n"
        "print('HOOK-OK')\n"
    )
    e = dict(os.environ, LMCODEC_CACHE=str(cache))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "HOOK-OK" in r.stdout
