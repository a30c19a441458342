"""fsspec compression "lmz": fsspec.open("memory://x.txt.lmz", "rt", compression="infer") and friends.

fsspec has no entry point for compressions, so the wheel ships a start-up hook (lmcodec-fsspec.pth, which
imports the tiny top-level module _lmcodec_fsspec_hook) that registers "lmz" right after fsspec.compression
is first imported, without importing lmcodec or fsspec before that. Importing this module registers too.
"""
from __future__ import annotations

from typing import IO, Any

import os

NAME = "lmz"
EXTENSIONS = ("lmz",)

# Options for files that fsspec opens (fsspec passes none of its own): e.g.
#     lmcodec.integrations.fsspec_plugin.options.update(model="path/to/model", chunk_size=16384)
# Without a model here, writing uses $LMCODEC_MODEL, else the default model.
options: dict[str, Any] = {}


def lmz_file(f: IO[bytes], mode: str = "rb", **options: Any):
    """fsspec's compression callback: an lmcodec.LmzFile over the file object f.

    fsspec calls it as callback(f, mode="rb"|"wb"), OpenFile as callback(f, mode="r"|"w"), the tar
    filesystem as callback(f). Text modes are fsspec's job (it wraps the result in a TextIOWrapper), so a
    't' is ignored. options (over the module's `options`) go to LmzFile: model, chunk_size, batch_size,
    device, threads.
    """
    from ..io.lmzfile import LmzFile

    m = mode.replace("t", "").replace("b", "")
    if m not in ("r", "w", "a", "x"):
        raise ValueError(f"invalid mode {mode!r} for lmz compression")
    opts = {**globals()["options"], **options}
    if m != "r" and opts.get("model") is None and os.environ.get("LMCODEC_MODEL"):
        opts["model"] = os.environ["LMCODEC_MODEL"]
    return LmzFile(f, m + "b", **opts)


def register(force: bool = True) -> None:
    """Register "lmz" with fsspec (idempotent)."""
    from fsspec.compression import register_compression

    register_compression(NAME, lmz_file, list(EXTENSIONS), force=force)


register()
