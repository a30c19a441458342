"""The integer model file: one safetensors file, memory-mapped; its SHA-256 is the model's identity."""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    tensors: dict[str, np.ndarray]  # views of the mapped file (copy-on-write), or copies where unaligned
    tokenizer_json: str
    token_bytes: list[bytes]
    engine: int = 1  # the arithmetic the file is for: its format_version

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> "IntModel":
        """Memory-map a converted model. The hash is computed unless the caller already verified it."""
        path = Path(path)
        try:
            meta, tensors = _read_safetensors(path)
            if meta.get("format") != FORMAT:
                raise ModelError(f"{path}: not an lmcodec integer model file")
            if meta.get("format_version") not in [str(e) for e in ENGINES]:
                raise ModelError(f"{path}: integer model format {meta.get('format_version')!r} is not supported")
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{path}: cannot read model file: {e}") from e
        blob = tensors.pop("tokens.bytes").tobytes()
        offs = tensors.pop("tokens.offsets").tolist()
        token_bytes = [blob[offs[i]: offs[i + 1]] for i in range(len(offs) - 1)]
        return cls(path=path, sha256=sha256 or file_sha256(path), model_id=meta["model_id"],
                   config=json.loads(meta["config"]), tensors=tensors, tokenizer_json=meta["tokenizer"],
                   token_bytes=token_bytes, engine=int(meta["format_version"]))


_DTYPES = {"U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64}  # safetensors' names


def write_safetensors(tensors: dict, metadata: dict[str, str], path: str | Path) -> None:
    """Write a safetensors file of arrays (numpy, or torch tensors on the CPU) byte-for-byte reproducibly: names and
    metadata keys sorted, data in name order. (safetensors' own writer orders the metadata through a hash map, so
    equal inputs can give different bytes.)"""
    names = {np.dtype(t): name for name, t in _DTYPES.items()}
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, arrays) of a file write_safetensors wrote (an 8-byte little-endian header size, a JSON header,
    the data), the arrays mapped from the file. Raises ValueError (or KeyError, TypeError, AttributeError) where
    it is malformed."""
    data = np.memmap(path, dtype=np.uint8, mode="c")  # copy-on-write: writable views, the file never written
    if data.size < 8:
        raise ValueError("too short for a safetensors header")
    (size,) = struct.unpack("<Q", data[:8].tobytes())
    if size > data.size - 8:
        raise ValueError("its header runs past the end of the file")
    header = json.loads(data[8: 8 + size].tobytes())
    meta = header.pop("__metadata__", None) or {}
    base = 8 + size
    arrays = {}
    for name, info in header.items():
        dtype = np.dtype(_DTYPES[info["dtype"]])
        shape = tuple(int(n) for n in info["shape"])
        a, b = (base + int(o) for o in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if not base <= a <= b <= data.size or b - a != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r} does not fit its place in the file")
        arr = data[a:b].view(dtype).reshape(shape)
        arrays[name] = arr if arr.flags.aligned else arr.copy()
    return meta, arrays
