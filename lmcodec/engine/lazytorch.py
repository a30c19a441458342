"""torch, imported where it is first used.

The fused CPU path of engine 2, which writes and reads every new stream, computes with numpy and numba alone, so a
process that runs only that path never imports torch (about a second of every start). The torch reference path,
CUDA and engine 1's int8 products need torch: their modules name it through this proxy, whose first attribute
read imports it, with interrupts held as for the other heavy imports (lmcodec.interrupts)."""
from __future__ import annotations

import sys
from types import ModuleType

from ..interrupts import held_signals


class _Torch:
    def __getattr__(self, name: str):
        module = sys.modules.get("torch")
        if module is None:
            with held_signals():
                import torch as module
        return getattr(module, name)


torch = _Torch()


def loaded() -> ModuleType | None:
    """torch if this process has imported it (by any way), else None."""
    return sys.modules.get("torch")
