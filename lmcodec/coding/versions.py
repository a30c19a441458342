"""The lmcodec coder's versions and parameters, as stream headers carry them (torch-free, for `lmcodec -l`).

Coder 1 version 1: each lm frame codes the model's tokens with the bare model, full attention (spec/coder.md).
Coder 1 version 2: symbols (tokens and raw bytes) with the model's table mixed with online models per symbol
(spec/mixer.md), and attention to the first SINK positions and the latest W - SINK; the header's coder
parameters are W as a varint.
Coder 1 version 3: version 2 with the model's keys and values rounded to 8-bit codes and a power-of-two scale
each (spec/engine.md §5 step 2), so that a decoder's cache holds a byte per element: decoding reads half the
memory a step. Same parameters.
"""
from __future__ import annotations

from lmz import LmzError, varint

CODER_ID = 1
VERSION_PLAIN = 1
VERSION_MIXED = 2
VERSION_KV8 = 3
VERSIONS = (VERSION_PLAIN, VERSION_MIXED, VERSION_KV8)
CODER_VERSION = VERSION_KV8  # what the writer writes
DEFAULT_WINDOW = 2048
MAX_WINDOW = 1 << 16
# Version 2's window keeps the first SINK positions in view: the model uses them as attention sinks, and without
# them a sliding window loses (measured, 16 KiB of alice29, W 2048: 2,680 bytes with none, 2,390 with BOS alone,
# 2,389 with 4, 2,383 with full attention).
SINK = 4


def encode_params(window: int) -> bytes:
    return varint.encode(window)


def kv8_of(version: int) -> bool:
    """Whether a stream's engine rounds keys and values to 8-bit codes (spec/engine.md §5 step 2)."""
    return version >= VERSION_KV8


def window_of(version: int, params: bytes) -> int | None:
    """The attention window a stream's lm frames were coded with (None: full attention, version 1).
    Raises ValueError on parameters that are not a valid window."""
    if version == VERSION_PLAIN:
        if params:
            raise ValueError("coder 1 version 1 takes no parameters")
        return None
    try:
        w = varint.decode(params, "coder parameters")
    except LmzError:
        w = None
    if w is None or not SINK < w <= MAX_WINDOW:
        raise ValueError(f"coder parameters {params.hex()} are not a window of {SINK + 1}..{MAX_WINDOW} positions")
    return w


def describe(coder_id: int, version: int, params: bytes) -> str:
    """Words for a listing: what the coder version does and its parameters."""
    if coder_id != CODER_ID:
        return ""
    if version == VERSION_PLAIN:
        return "the model alone, full attention"
    try:
        cache = ", 8-bit attention cache" if kv8_of(version) else ""
        return f"model mixed with online models, attention window {window_of(version, params):,} positions{cache}"
    except ValueError as e:
        return str(e)
