"""One way to compile lmcodec's integer kernels with numba, shared by the engine and the coding layer."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; callers keep a pure Python path
    njit = None

available = njit is not None


def jit(fn: Callable | None = None, **options: Any) -> Callable:
    """numba's njit, releasing the GIL, with the compiled code cached on disk (~5 s once per install), or per
    process where numba finds no writable cache directory (a read-only install without a home directory) rather
    than failing. Without numba the function stays Python (the same integers, slowly). Use as @jit or
    @jit(option=...)."""
    def decorate(f: Callable) -> Callable:
        if njit is None:
            return f
        try:
            return njit(cache=True, nogil=True, **options)(f)
        except RuntimeError:
            return njit(nogil=True, **options)(f)
    return decorate(fn) if fn is not None else decorate
