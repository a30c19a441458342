"""Conformance vectors in spec/vectors (see manifest.json)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

import lmz

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
ENTRIES = MANIFEST["vectors"]


def _decode(data: bytes) -> bytes:
    return b"".join(lmz.decode_stream(io.BytesIO(data)))


def test_manifest_lists_every_file() -> None:
    on_disk = {p.name for p in VECTORS.glob("*.lmz")}
    assert on_disk == {v["file"] for v in ENTRIES}
    assert len(ENTRIES) >= 15
    assert {v["kind"] for v in ENTRIES} == {"good", "bad", "unsupported"}
    for v in ENTRIES:
        assert v["file"].startswith(v["kind"] + "-")


@pytest.mark.parametrize("v", ENTRIES, ids=[v["file"] for v in ENTRIES])
def test_vector(v: dict) -> None:
    if v.get("needs_lm"):
        pytest.skip("needs lmcodec's lm decoder")
    data = (VECTORS / v["file"]).read_bytes()
    assert len(data) == v["size"] and hashlib.sha256(data).hexdigest() == v["sha256"]
    if v["kind"] == "good":
        content = _decode(data)
        assert len(content) == v["content_length"]
        assert hashlib.sha256(content).hexdigest() == v["content_sha256"]
        idx = lmz.read_index(io.BytesIO(data))
        assert (len(idx.streams), len(idx.entries), idx.raw_size) == (v["streams"], v["frames"], len(content))
        assert lmz.read_range(io.BytesIO(data), idx, 0, len(content)) == content
        assert [s.raw_size for s in lmz.summary(io.BytesIO(data))] == [s.raw_size for s in idx.streams]
    else:
        with pytest.raises(lmz.LmzError) as e:
            _decode(data)
        assert type(e.value).__name__ == v["error"], str(e.value)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", MANIFEST["truncation_rule"]["files"])
def test_every_truncation_point(name: str) -> None:
    rule = MANIFEST["truncation_rule"]
    data = (VECTORS / name).read_bytes()
    with pytest.raises(getattr(lmz, rule["prefix_length_0"])):
        _decode(b"")
    for n in range(1, len(data)):
        with pytest.raises(getattr(lmz, rule["prefix_length_1_to_len_minus_1"])):
            _decode(data[:n])
        with pytest.raises(lmz.LmzError):  # random access fails too (not always as a truncation: it reads the end)
            lmz.read_index(io.BytesIO(data[:n]))


def test_truncation_of_concatenation() -> None:
    """Cutting a concatenation exactly between streams leaves a valid (shorter) stream."""
    data = (VECTORS / "good-2-concat.lmz").read_bytes()
    first = lmz.read_index(io.BytesIO(data)).streams[1].offset
    for n in range(1, len(data)):
        if n == first:
            assert _decode(data[:n]) == _decode(data)[: lmz.read_index(io.BytesIO(data)).streams[0].raw_size]
        else:
            with pytest.raises(lmz.TruncatedError):
                _decode(data[:n])


def test_generator_is_deterministic(tmp_path: Path) -> None:
    import zstandard

    from spec.vectors import make_vectors

    if ".".join(map(str, zstandard.ZSTD_VERSION)) != MANIFEST["libzstd"]:
        pytest.skip("another libzstd may code zstd frames differently")

    files, manifest = make_vectors.build()
    for name, blob in files.items():
        assert blob == (VECTORS / name).read_bytes(), name
    stored = {v["file"]: v for v in MANIFEST["vectors"]}
    for v in manifest["vectors"]:
        assert {k: stored[v["file"]][k] for k in v} == v
