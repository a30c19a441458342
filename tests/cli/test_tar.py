"""GNU tar drives lmcodec as its compressor (`tar -I lmcodec`, `--use-compress-program`) through real processes:
tar runs `lmcodec` on a pipe to compress and `lmcodec -d` to list and extract.

The model comes from $LMCODEC_MODEL (the tiny one here); the members are text, so lm frames are in the archive.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmz

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
ENGLISH = (Path(__file__).parents[1] / "data" / "english.txt").read_bytes()

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="needs tar")


def _env(cache: Path) -> dict:
    bindir = str(Path(sys.executable).parent)  # where the lmcodec script of this environment is
    return dict(os.environ, LMCODEC_CACHE=str(cache), LMCODEC_MODEL=TINY,
                PATH=bindir + os.pathsep + os.environ.get("PATH", ""))


def _tar(cache: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tar", *args], cwd=cwd, env=_env(cache), capture_output=True, timeout=300)


@pytest.fixture()
def tree(tmp_path):
    d = tmp_path / "src" / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(ENGLISH[:2500])  # prose, not a repeated line: zstd would beat the tiny model on that
    (d / "sub" / "b.py").write_bytes(b"".join(b"def f%d(x):\n    return x * %d  # times %d\n" % (i, i, i) for i in range(60)))
    (d / "sub" / "empty").write_bytes(b"")
    (d / "blob.bin").write_bytes(bytes(range(256)) * 8)
    return tmp_path


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("program", [["-I", "lmcodec"], ["--use-compress-program=lmcodec -9"]])
def test_create_list_extract(tree, cache, program):
    archive = tree / "docs.tar.lmz"
    r = _tar(cache, tree / "src", *program, "-cf", str(archive), "docs")
    assert r.returncode == 0, r.stderr.decode()
    with open(archive, "rb") as f:  # a real lmz stream, its text members coded by the model
        methods = {fr.method for fr in lmz.Reader(f).frames()}
    assert lmz.METHOD_LM in methods

    r = _tar(cache, tree, *program, "-tf", str(archive))
    assert r.returncode == 0, r.stderr.decode()
    listed = {x.rstrip("/") for x in r.stdout.decode().split()}
    assert {"docs/a.txt", "docs/sub/b.py", "docs/sub/empty", "docs/blob.bin"} <= listed

    out = tree / "out"
    out.mkdir()
    r = _tar(cache, out, *program, "-xf", str(archive))
    assert r.returncode == 0, r.stderr.decode()
    assert _contents(out / "docs") == _contents(tree / "src" / "docs")


def test_damaged_archive_fails_extraction(tree, cache):
    archive = tree / "docs.tar.lmz"
    assert _tar(cache, tree / "src", "-I", "lmcodec", "-cf", str(archive), "docs").returncode == 0
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    archive.write_bytes(bytes(data))
    out = tree / "out"
    out.mkdir()
    r = _tar(cache, out, "-I", "lmcodec", "-xf", str(archive))
    assert r.returncode != 0
    assert b"lmcodec" in r.stderr  # the decompressor says what went wrong, and tar reports its failure
