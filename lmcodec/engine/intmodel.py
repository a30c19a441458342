"""The integer model file: one safetensors file, memory-mapped; its SHA-256 is the model's identity."""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

FORMAT = "lmcodec-intmodel"
FORMAT_VERSION = "1"  # engine 1: 7-bit weight rows (spec/engine.md §2-10)
ENGINES = (1, 2)  # the format versions (engines) the engine computes on: engine 2 is spec/engine.md §12


def _sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()
        # one update over the mapped file: hashlib releases the GIL once for all of it (reads in blocks would
        # wait for the GIL at every block while another thread imports)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return hashlib.sha256(data).hexdigest()


_ahead: dict[tuple, Future] = {}  # hashes begun by hash_ahead, by the file's identity and state (_identity)
_ahead_lock = threading.Lock()


def _identity(path: str | Path) -> tuple:
    """The file as it is now: its place, size and modification time (a hash begun for it stays its hash)."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, in hex; one that hash_ahead began is waited for instead of computed again."""
    try:
        with _ahead_lock:
            begun = _ahead.pop(_identity(path), None)
    except OSError:
        begun = None
    return begun.result() if begun is not None else _sha256(path)


def hash_ahead(paths: list[Path]) -> None:
    """Begin hashing these files on a background thread: reading and hashing release the GIL, so a start's
    imports and its model's hashes (a few hundred MB) take the time of the longer, not of both."""
    jobs = []
    with _ahead_lock:
        for p in paths:
            try:
                key = _identity(p)
            except OSError:
                continue
            if key not in _ahead:
                _ahead[key] = Future()
                jobs.append((p, _ahead[key]))
    if not jobs:
        return

    def run() -> None:
        for p, fut in jobs:
            try:
                fut.set_result(_sha256(p))
            except BaseException as e:  # the waiter raises it, as if it had hashed the file itself
                fut.set_exception(e)

    threading.Thread(target=run, name="lmcodec-hash", daemon=True).start()


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
