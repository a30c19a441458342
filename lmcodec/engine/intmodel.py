"""The integer model file: one safetensors file, memory-mapped; its SHA-256 is the model's identity."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import ModelError

FORMAT = "lmcodec-intmodel"
FORMAT_VERSION = "1"  # engine 1: 7-bit weight rows (spec/engine.md §2-10)
ENGINES = (1, 2)  # the format versions (engines) the engine computes on: engine 2 is spec/engine.md §12


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class IntModel:
    path: Path
    sha256: str
    model_id: str
    config: dict
    tensors: dict[str, torch.Tensor]
    tokenizer_json: str
    token_bytes: list[bytes]
    engine: int = 1  # the arithmetic the file is for: its format_version

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> "IntModel":
        """Memory-map a converted model. The hash is computed unless the caller already verified it."""
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ModelError(f"{path}: not an lmcodec integer model file")
                if meta.get("format_version") not in [str(e) for e in ENGINES]:
                    raise ModelError(f"{path}: integer model format {meta.get('format_version')!r} is not supported")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except ModelError:
            raise
        except Exception as e:  # safetensors raises its own SafetensorError (no common base) on bad files
            raise ModelError(f"{path}: cannot read model file: {e}") from e
        blob = tensors.pop("tokens.bytes").numpy().tobytes()
        offs = tensors.pop("tokens.offsets").tolist()
        token_bytes = [blob[offs[i]: offs[i + 1]] for i in range(len(offs) - 1)]
        return cls(path=path, sha256=sha256 or file_sha256(path), model_id=meta["model_id"],
                   config=json.loads(meta["config"]), tensors=tensors, tokenizer_json=meta["tokenizer"],
                   token_bytes=token_bytes, engine=int(meta["format_version"]))
