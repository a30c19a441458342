"""The integer inference engine: token ids -> frequency tables, the same integers on every machine.

passes: the Engine (full-sequence and incremental passes, the torch reference path and the fused path) and the
decoder's KV cache; exact: integer operations with proven exact fast paths (int8 matmul, rounding shifts);
blocks, blockdot: engine 2's linear layer and its block kernel; fused: numba kernels for the element-wise steps;
simd: explicit SIMD blocks for attention; layerstep: engine 2's decoding step, a layer a compiled call; threads:
the kernel pool and the thread layout of decoding steps; intmodel: the converted model file the engine runs.
The engine knows nothing of coding, containers or files: spec/engine.md defines every step.
"""
from typing import Any

__all__ = ["Engine", "DecodeState", "ring_slots", "TOTAL", "SPEC_SLOTS"]


def __getattr__(name: str) -> Any:
    """The passes' names, imported on first use: intmodel (the model file, its hashes) stays light without them."""
    if name in __all__:
        from . import passes

        return getattr(passes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
