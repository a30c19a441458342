"""lmcodec.atomic.TempFile: the one way lmcodec writes a file that must appear whole or not at all."""
from __future__ import annotations

import os

import pytest

from lmcodec import atomic


def test_appears_only_when_committed(tmp_path):
    dest = tmp_path / "out.bin"
    t = atomic.TempFile(dest)
    t.file.write(b"abc")
    assert not dest.exists() and os.path.exists(t.path) and os.path.dirname(t.path) == str(tmp_path)
    t.commit()
    assert dest.read_bytes() == b"abc" and os.listdir(tmp_path) == ["out.bin"]


def test_an_error_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.TempFile(tmp_path / "out.txt", "w") as t:
            t.file.write("half")
            raise RuntimeError("failed half way")
    assert os.listdir(tmp_path) == []


def test_no_clobber_keeps_the_file_that_is_there(tmp_path):
    dest = tmp_path / "out.bin"
    t = atomic.TempFile(dest)
    t.file.write(b"new")
    dest.write_bytes(b"old")  # appeared while the temporary file was written
    with pytest.raises(FileExistsError):
        t.commit(replace=False)
    t.discard()
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_remove_all_removes_what_is_still_open(tmp_path):
    a, b = atomic.TempFile(tmp_path / "a"), atomic.TempFile(tmp_path / "b")
    b.commit()
    atomic.remove_all()
    assert os.listdir(tmp_path) == ["b"] and not a.open


def test_committed_file_has_the_mode_open_gives(tmp_path):
    """The umask decides the mode, as for open(): LmzFile's and the Dask path's outputs are ordinary files."""
    umask = os.umask(0o022)
    try:
        with atomic.TempFile(tmp_path / "out.bin") as t:
            t.file.write(b"x")
        open(tmp_path / "plain.bin", "wb").close()
    finally:
        os.umask(umask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o644
