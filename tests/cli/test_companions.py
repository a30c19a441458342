"""What gzip, xz and zstd users reach for, through real processes: -r and -S, lmzcat, lmzless, lmzgrep, and the
file(1) magic entry."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmcodec

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
BIN_DIR = Path(sys.executable).parent
MAGIC = Path(lmcodec.__file__).parent / "data" / "lmz.magic"
LINES = b"alpha line\nbeta line\ngamma alpha\n"


def env(cache: Path) -> dict:
    return dict(os.environ, LMCODEC_CACHE=str(cache), LMCODEC_MODEL=TINY)


def run(cache: Path, cmd: str, *args: str, cwd=None, input: bytes | None = None) -> subprocess.CompletedProcess:
    """An installed console script (lmcodec, lmzcat, ...) as a real process."""
    exe = BIN_DIR / cmd
    assert exe.exists(), f"{exe} is missing: install the package (pip install -e .) to get its console scripts"
    return subprocess.run([str(exe), *args], capture_output=True, env=env(cache), cwd=cwd, input=input, timeout=120)


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_bytes(LINES)
    (tmp_path / "d" / "sub" / "b.txt").write_bytes(b"second file\n" * 3)
    (tmp_path / "d" / "link.txt").symlink_to("a.txt")
    return tmp_path


def test_recursive_compress_and_decompress(tree, cache):
    d = tree / "d"
    r = run(cache, "lmcodec", "-r", str(d))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in d.rglob("*.lmz")) == ["a.txt.lmz", "b.txt.lmz"]  # the link is not followed
    r = run(cache, "lmcodec", "-r", str(d))  # .lmz files are passed over quietly; existing outputs are not
    assert r.returncode == 2 and b"suffix" not in r.stderr and r.stderr.count(b"already exists") == 2, r.stderr
    (d / "a.txt").unlink()
    (d / "sub" / "b.txt").unlink()
    r = run(cache, "lmcodec", "-dr", "--rm", str(d))  # files without the suffix (the link): quietly left alone
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert (d / "a.txt").read_bytes() == LINES and (d / "sub" / "b.txt").read_bytes() == b"second file\n" * 3
    assert not list(d.rglob("*.lmz"))
    r = run(cache, "lmcodec", str(d))  # without -r a directory is skipped with a warning, as gzip
    assert r.returncode == 2 and b"is a directory" in r.stderr


def test_suffix_option(tree, cache):
    a = tree / "d" / "a.txt"
    r = run(cache, "lmcodec", "-S", ".z", str(a))
    assert r.returncode == 0, r.stderr
    z = tree / "d" / "a.txt.z"
    assert z.exists() and not (tree / "d" / "a.txt.lmz").exists()
    a.unlink()
    r = run(cache, "lmcodec", "-d", "--suffix=.z", str(z))
    assert r.returncode == 0 and a.read_bytes() == LINES, r.stderr
    r = run(cache, "lmcodec", "-d", str(a) + ".lmz")
    assert r.returncode == 1  # no such file
    r = run(cache, "lmcodec", "-S", "", str(a))
    assert r.returncode == 1 and b"invalid suffix" in r.stderr


def test_lmzcat_lmzgrep_lmzless(tree, cache):
    a, b = tree / "d" / "a.txt", tree / "d" / "sub" / "b.txt"
    assert run(cache, "lmcodec", "-k", str(a), str(b)).returncode == 0
    za, zb = str(a) + ".lmz", str(b) + ".lmz"
    r = run(cache, "lmzcat", za, zb)
    assert r.returncode == 0 and r.stdout == LINES + b"second file\n" * 3
    r = run(cache, "lmzgrep", "-n", "alpha", za)
    assert (r.returncode, r.stdout) == (0, b"1:alpha line\n3:gamma alpha\n")
    r = run(cache, "lmzgrep", "-c", "alpha", za, zb)  # several files: named as grep names them
    assert (r.returncode, r.stdout.decode()) == (0, f"{za}:2\n{zb}:0\n")
    assert run(cache, "lmzgrep", "nothing-like-this", za).returncode == 1
    assert run(cache, "lmzgrep", "-q", "alpha", za).returncode == 0
    r = run(cache, "lmzgrep", "alpha", str(tree / "missing.lmz"))
    assert r.returncode == 2 and b"missing.lmz" in r.stderr
    r = run(cache, "lmzgrep", "-e", "beta", input=Path(za).read_bytes())  # standard input
    assert (r.returncode, r.stdout) == (0, b"beta line\n")
    if shutil.which("less") is None:
        pytest.skip("less is not installed")
    r = run(cache, "lmzless", za)  # output not a terminal: less copies what LESSOPEN gives it
    assert r.returncode == 0 and r.stdout == LINES, r.stderr


def test_file_magic_entry(tree, cache):
    if shutil.which("file") is None:
        pytest.skip("file(1) is not installed")
    a = tree / "d" / "a.txt"
    assert run(cache, "lmcodec", "-k", str(a)).returncode == 0
    out = subprocess.run(["file", "-m", str(MAGIC), str(a) + ".lmz"], capture_output=True, text=True).stdout
    assert "lmcodec .lmz compressed data, format 3, language-model coder 1 version 3" in out
    mime = subprocess.run(["file", "-m", str(MAGIC), "--mime-type", "-b", str(a) + ".lmz"],
                          capture_output=True, text=True).stdout
    assert mime.strip() == "application/x-lmz"
    plain = subprocess.run(["file", "-m", str(MAGIC), str(a)], capture_output=True, text=True).stdout
    assert "lmcodec" not in plain
