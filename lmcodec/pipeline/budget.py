"""How many lm frames decode side by side within a memory budget (torch-free arithmetic).

A decoding step streams every weight of the model once for all the frames of a batch, so more frames per step
is nearly free in weights and costs memory in KV caches: a frame's cache has one slot per position it attends
to (the attention window W of a coder-2 stream, allocated whole; for version-1 streams up to the chunk's
symbols), each slot holding k (int16; int32 for version 1; a byte for version 3) and v (int16; a byte for version
3) of every layer and KV head. Other
per-frame state (the online models' tables, the model's output row) is FRAME_EXTRA; the process itself (torch,
the mapped model, buffers) is BASE plus the model file.
"""
from __future__ import annotations

import re

DEFAULT_MEMORY = 2 << 30
BASE = 512 << 20
FRAME_EXTRA = 16 << 20
MAX_FRAMES = 64  # beyond this a step's attention, not the weights, dominates: no gain in speed

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'2G', '1500M', '64k', '1073741824' (binary units; an optional trailing 'B' or 'iB') -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"invalid size {text!r} (e.g. 2G, 1500M)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def kv_bytes_per_slot(n_layers: int, n_kv_heads: int, head_dim: int, fused: bool = True, k_bytes: int = 2,
                      v_bytes: int = 2) -> int:
    """Bytes of one cache slot (one position) over all layers: k (int16 with a window, int32 without, or 8-bit
    codes) + v (int16 or 8-bit codes) and 2 bytes beside them (the codes' two exponents; for int16 caches a
    share of its key block's float64 squared norm, 8 bytes a block of 16 slots), float64 k and v on the torch
    path."""
    if fused:
        return n_layers * n_kv_heads * (head_dim * (k_bytes + v_bytes) + 2)
    return n_layers * n_kv_heads * head_dim * 16


def frames_within(memory: int, model_bytes: int, slot_bytes: int, slots: int) -> int:
    """Frames decoded side by side: as many as fit in memory after the process's own share, 1 at least."""
    per_frame = slots * slot_bytes + FRAME_EXTRA
    return max(1, min(MAX_FRAMES, (memory - BASE - model_bytes) // per_frame))
