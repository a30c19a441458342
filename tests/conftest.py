"""Shared fixtures: one model cache for the whole session, the tiny model, the shared corpus.

LMCODEC_CACHE is set in os.environ for the whole session (before any model is used), so compression and
decompression, in this process and in subprocesses, see the same converted models, and the tiny model is
converted once per session.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "tiny-llama")
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session", autouse=True)
def cache(tmp_path_factory) -> Path:
    """The session's model cache directory, exported as LMCODEC_CACHE."""
    d = tmp_path_factory.mktemp("model-cache")
    old = os.environ.get("LMCODEC_CACHE")
    os.environ["LMCODEC_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("LMCODEC_CACHE", None)
    else:
        os.environ["LMCODEC_CACHE"] = old


@pytest.fixture(scope="session")
def tiny() -> str:
    """Absolute path of the tiny test model (a Hugging Face directory, converted on first use)."""
    return TINY


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture()
def torch_threads_unchanged():
    """lmcodec sets the thread counts of its own calls only: torch's process-wide count must not change."""
    import torch

    n = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == n


@pytest.fixture()
def count_lm_frames(monkeypatch):
    """Counts lm frames the codec decodes (patched Codec.decode): returns a list of raw lengths."""
    from lmcodec.pipeline.codec import Codec

    seen: list[int] = []
    orig = Codec.decode

    def counting(self, header, frames, *rest, **kw):
        seen.extend(f.raw_length for f in frames)
        return orig(self, header, frames, *rest, **kw)

    monkeypatch.setattr(Codec, "decode", counting)
    return seen
