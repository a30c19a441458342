"""Models: where the integer models come from and where they are kept.

registry: resolve a model by name, path or hash (converting it once); convert: a float model (GGUF or a Hugging
Face directory) to the integer model file the engine runs; catalog: the model cache and what it holds (torch-free,
so `lmcodec -l` can name models without importing torch: the registry's names load on first use).
"""
from typing import Any

from .catalog import INSTALL_DEFAULT, cache_dir, model_name

_REGISTRY = ("resolve", "find", "hash_ahead", "list_models", "load_default", "default_gguf", "ModelInfo")

__all__ = ["model_name", "cache_dir", "INSTALL_DEFAULT", *_REGISTRY]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
