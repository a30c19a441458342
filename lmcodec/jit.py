"""One way to compile lmcodec's integer kernels with numba, shared by the engine and the coding layer."""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from numba import config, njit
except ImportError:  # pragma: no cover - numba is a dependency; callers keep a pure Python path
    njit = None

available = njit is not None
PACKAGE = Path(__file__).resolve().parent


def sources_digest() -> str:
    """SHA-256 of lmcodec's Python sources (names and contents)."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*.py")):
        h.update(p.relative_to(PACKAGE).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _kernel_dir() -> str | None:
    """The folder for compiled kernels: one per content of lmcodec's sources. numba keys a function's cached code
    by that function's own file, but a kernel inlines others (blockdot's intrinsics in blocks, simd's in fused,
    blocks and fused in layerstep) and freezes their constants: after an edit or an upgrade that changes only
    those, the cached code would go on computing the old integers. In the user cache directory even where
    LMCODEC_CACHE moves the models: kernels depend on the sources alone. None if it cannot be written (then
    each process compiles its kernels)."""
    import platformdirs

    path = Path(platformdirs.user_cache_dir("lmcodec")) / "kernels" / sources_digest()[:16]
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return None
    return str(path)


_cache_dir: str | None = None if njit is None or config.CACHE_DIR else _kernel_dir()
_cache = njit is not None and bool(config.CACHE_DIR or _cache_dir)  # NUMBA_CACHE_DIR: the user's choice


def jit(fn: Callable | None = None, **options: Any) -> Callable:
    """numba's njit, releasing the GIL, with the compiled code cached on disk in _kernel_dir (~5 s once per
    version), or per process where no cache folder can be written rather than failing. Without numba the
    function stays Python (the same integers, slowly). Use as @jit or @jit(option=...)."""
    def decorate(f: Callable) -> Callable:
        if njit is None:
            return f
        if not _cache:
            return njit(nogil=True, **options)(f)
        before = config.CACHE_DIR
        config.CACHE_DIR = before or _cache_dir  # read when the function's cache is set up, here
        try:
            return njit(cache=True, nogil=True, **options)(f)
        except RuntimeError:
            return njit(nogil=True, **options)(f)
        finally:
            config.CACHE_DIR = before
    return decorate(fn) if fn is not None else decorate
