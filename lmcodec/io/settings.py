"""Settings: what lmcodec codes with, held once and reused, in the manner of zstandard.ZstdCompressor.

    s = lmcodec.Settings(level=9, threads=2)
    blob = s.compress(data)                      # = lmcodec.compress(data, s)
    with s.open("notes.txt.lmz", "wt") as f: ...

open(), compress(), decompress(), LmzFile, LmzCompressor/LmzDecompressor, the fsspec plugin, Dask and the
command line all take one. Each of them also takes the fields as keyword arguments, which override the
settings given; a writing field given to a reader (or memory to a writer) is refused, as lzma refuses a preset
when reading. Only model, level, chunk_size and window shape the output; the others change speed and memory.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Union

import lmz

from ..coding.versions import MAX_WINDOW, SINK
from ..defaults import PRESETS, DEFAULT_LEVEL, zstd_level
from ..pipeline.budget import DEFAULT_MEMORY

if TYPE_CHECKING:
    from ..engine.intmodel import IntModel
    from .compressor import LmzCompressor, LmzDecompressor

ModelSource = Union[str, os.PathLike, "IntModel", None]

DEVICE = re.compile(r"cpu|cuda(:\d+)?")  # the devices a Settings names
WRITING = frozenset({"level", "chunk_size", "window", "zstd_level"})  # fields only a writer uses
READING = frozenset({"memory"})  # fields only a reader uses


@dataclass(frozen=True)
class Settings:
    """model: a name, path or hash (see `lmcodec models`), a loaded IntModel, or None for the default model.
    When reading, a stream's model is found by the hash it names; a model given here is converted and used
    if a stream names it.

    level 1-9 picks chunk size, batch and zstd level for binary runs (PRESETS); chunk_size, batch_size and
    zstd_level override it. window: the attention window of new streams, in tokens (None: 2048).
    batch_size, when reading: frames decoded side by side (None: as many as `memory` bytes allow).
    device: "cpu", "cuda" or "cuda:N". threads: CPU threads for lmcodec's own work (None or 0: all cores);
    torch's process-wide settings are left as they are.
    """

    model: ModelSource = None
    level: int = DEFAULT_LEVEL
    chunk_size: int | None = None
    window: int | None = None
    zstd_level: int | None = None
    batch_size: int | None = None
    memory: int = DEFAULT_MEMORY
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_range("level", self.level, min(PRESETS), max(PRESETS))
        _check_range("chunk_size", self.chunk_size, 1, lmz.MAX_CHUNK)
        _check_range("window", self.window, SINK + 1, MAX_WINDOW)
        _check_range("zstd_level", self.zstd_level, 1, 22)
        _check_range("batch_size", self.batch_size, 1, None)
        _check_range("memory", self.memory, 1, None)
        _check_range("threads", self.threads, 0, None)
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")

    # --- what the fields come to ---
    @property
    def chunk(self) -> int:
        """Bytes per chunk of new streams."""
        return self.chunk_size or PRESETS[self.level][0]

    @property
    def write_batch(self) -> int:
        """Chunks coded side by side when writing."""
        return self.batch_size or PRESETS[self.level][1]

    @property
    def zstd(self) -> int:
        """zstd level of frames the model does not code."""
        return self.zstd_level if self.zstd_level is not None else zstd_level(self.level)

    def replace(self, **changes: Any) -> Settings:
        """A copy with these fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def merged(self, mode: str, **given: Any) -> Settings:
        """These settings with the keyword arguments that were given (not None) over them; a field that does
        not apply to mode ('r' reading, else writing) raises ValueError."""
        given = {k: v for k, v in given.items() if v is not None}
        wrong = sorted(given.keys() & (WRITING if mode == "r" else READING))
        if wrong:
            doing = "reading" if mode == "r" else "writing"
            raise ValueError(f"{', '.join(wrong)}: not an option for {doing}")
        return self.replace(**given) if given else self

    # --- the API, with these settings ---
    def compress(self, data: bytes) -> bytes:
        from .lmzfile import compress

        return compress(data, self)

    def decompress(self, data: bytes) -> bytes:
        from .lmzfile import decompress

        return decompress(data, self)

    def open(self, filename: Any, mode: str = "rb", **text: Any) -> IO:
        """lmcodec.open(filename, mode, self, encoding=..., errors=..., newline=...)."""
        from .lmzfile import open as open_

        return open_(filename, mode, self, **text)

    def compressor(self) -> LmzCompressor:
        from .compressor import LmzCompressor

        return LmzCompressor(self)

    def decompressor(self) -> LmzDecompressor:
        from .compressor import LmzDecompressor

        return LmzDecompressor(self)



def _check_range(name: str, value: int | None, lo: int, hi: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a whole number {rng}, got {value!r}")


DEFAULT = Settings()


def settings_for(settings: Settings | None, mode: str, **given: Any) -> Settings:
    """The settings an API call works with: `settings` (default: Settings()) with the keywords given over them."""
    if settings is None:
        settings = DEFAULT
    elif not isinstance(settings, Settings):
        raise TypeError(f"settings must be an lmcodec.Settings, not {type(settings).__name__}")
    return settings.merged(mode, **given)
