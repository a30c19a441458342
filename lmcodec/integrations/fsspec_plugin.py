"""fsspec compression "lmz": fsspec.open("memory://x.txt.lmz", "rt", compression="infer") and friends.

fsspec has no entry point for compressions, so the wheel ships a start-up hook (lmcodec-fsspec.pth, which
imports the tiny top-level module _lmcodec_fsspec_hook) that registers "lmz" right after fsspec.compression
is first imported, without importing lmcodec or fsspec before that. Importing this module registers too.
"""
from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ..io.lmzfile import LmzFile
    from ..io.settings import Settings

NAME = "lmz"
EXTENSIONS = ("lmz",)

# The settings of files that fsspec opens (fsspec passes none of its own), e.g.
#     lmcodec.integrations.fsspec_plugin.settings = lmcodec.Settings(model="path/to/model", level=9)
# Without a model in them, writing uses $LMCODEC_MODEL, else the default model.
settings: Settings | None = None


def lmz_file(f: IO[bytes], mode: str = "rb") -> LmzFile:
    """fsspec's compression callback: an lmcodec.LmzFile over the file object f, with the module's `settings`.

    fsspec calls it as callback(f, mode="rb"|"wb"), OpenFile as callback(f, mode="r"|"w"), the tar
    filesystem as callback(f). Text modes are fsspec's job (it wraps the result in a TextIOWrapper), so a
    't' is ignored.
    """
    from ..io.lmzfile import LmzFile
    from ..io.settings import Settings

    m = mode.replace("t", "").replace("b", "")
    if m not in ("r", "w", "a", "x"):
        raise ValueError(f"invalid mode {mode!r} for lmz compression")
    s = globals()["settings"] or Settings()
    if m != "r" and s.model is None and os.environ.get("LMCODEC_MODEL"):
        s = s.replace(model=os.environ["LMCODEC_MODEL"])
    return LmzFile(f, m + "b", s)


def register(force: bool = True) -> None:
    """Register "lmz" with fsspec (idempotent)."""
    from fsspec.compression import register_compression

    register_compression(NAME, lmz_file, list(EXTENSIONS), force=force)


register()
