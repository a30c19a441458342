"""Compiled kernels are cached per content of all of lmcodec's sources: a kernel inlines code and constants of
other files, so a cache keyed by its own file alone could keep computing integers that the sources changed."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("numba")
from lmcodec import jit
from lmcodec.engine import blocks, layerstep


def test_kernels_cache_under_a_folder_named_for_the_sources():
    if jit.config.CACHE_DIR:
        pytest.skip("NUMBA_CACHE_DIR chosen by the user")
    assert jit._cache_dir and jit._cache_dir.endswith(jit.sources_digest()[:16])
    for kernel in (blocks._products, layerstep.layer):
        assert kernel._cache._cache_path.startswith(jit._cache_dir)
    assert not jit.config.CACHE_DIR  # numba's own setting is left as it was


def test_an_edit_in_any_source_changes_the_folder(tmp_path, monkeypatch):
    copy = tmp_path / "lmcodec"
    shutil.copytree(jit.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(jit, "PACKAGE", copy)
    before = jit.sources_digest()
    assert before == jit.sources_digest()
    simd = copy / "engine" / "simd.py"
    text = simd.read_text()
    edited = text.replace("STEP_AHEAD = 8", "STEP_AHEAD = 4")
    assert edited != text
    simd.write_text(edited)
    assert jit.sources_digest() != before
