"""The range coder, coder id 1 (normative description: spec/coder.md): the one that codes every lm frame.

Exact integer arithmetic only. ``low`` is a 56-bit window plus one carry bit (bit 56), ``range`` lies in
[2**48, 2**56] after every coded symbol. A symbol (cum, freq) of a table summing to ``total``::

    r = range // total;  low += r * cum;  range = r * freq      (no remainder given to any symbol)

then, while range < 2**48, the top byte of the window is shifted out. Carries are exact (LZMA's cache byte and
count of pending 0xFF bytes). Termination writes the value with the most trailing zero bits inside the final
interval and strips trailing 0x00 bytes; the decoder reads 0x00 past the end of the payload. Zero symbols code
to b"".

The coder's state lives in small int64 arrays (slots named ENC_* and DEC_*), so that the mixer's compiled loops
code symbol after symbol without leaving compiled code; ``Encoder`` and ``Decoder`` hold the same state for
Python callers and check their arguments. No value exceeds 2**63: range <= 2**56, r * cum < range, low < 2**57.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..jit import jit
from ..tables import TOTAL

WINDOW_BITS = 56  # width of low (without the carry bit) and of the decoder's code register
WINDOW_BYTES = WINDOW_BITS // 8
RANGE_MAX = 1 << WINDOW_BITS  # initial range
RANGE_MIN = 1 << (WINDOW_BITS - 8)  # renormalise while range < RANGE_MIN
SHIFTED_BITS = WINDOW_BITS - 8  # low's bits below its top byte
# Bytes one symbol can shift out: r = range // total >= 2**20 and freq >= 1 leave range >= 2**20, so at most
# 4 shifts bring it back to 2**48. Finishing pushes out the window and the cache byte.
SYMBOL_BYTES = 4
FINISH_BYTES = WINDOW_BYTES + 1

# encoder state: low, range, the cache byte, pending 0xFF bytes, whether the cache holds a real byte, bytes out
ENC_LOW, ENC_RANGE, ENC_CACHE, ENC_FF, ENC_STARTED, ENC_OUT = range(6)
# decoder state: the code register, range, the next payload byte, r of the symbol being decoded
DEC_CODE, DEC_RANGE, DEC_NEXT, DEC_R = range(4)


def encoder_state() -> np.ndarray:
    """A new encoder's state (ENC_* slots)."""
    st = np.zeros(6, dtype=np.int64)
    st[ENC_RANGE] = RANGE_MAX
    return st


def decoder_state() -> np.ndarray:
    """A decoder's state (DEC_* slots), for start()."""
    return np.zeros(4, dtype=np.int64)


def output_buffer(symbols: int) -> np.ndarray:
    """A buffer that holds the payload of `symbols` symbols."""
    return np.zeros(SYMBOL_BYTES * symbols + FINISH_BYTES, dtype=np.uint8)


@jit
def _shift_low(st, out):
    low = st[ENC_LOW]
    if (low >> SHIFTED_BITS) != 0xFF:  # the top byte is final: no carry can pass a byte below 0xFF
        carry = low >> WINDOW_BITS
        if st[ENC_STARTED]:
            out[st[ENC_OUT]] = (st[ENC_CACHE] + carry) & 0xFF
            st[ENC_OUT] += 1
        while st[ENC_FF] > 0:
            out[st[ENC_OUT]] = (0xFF + carry) & 0xFF
            st[ENC_OUT] += 1
            st[ENC_FF] -= 1
        st[ENC_CACHE] = (low >> SHIFTED_BITS) & 0xFF
        st[ENC_STARTED] = 1
    else:
        st[ENC_FF] += 1
    st[ENC_LOW] = (low & (RANGE_MIN - 1)) << 8


@jit
def encode(st, out, cum, freq, total):
    """Code the symbol (cum, freq) of a table summing to total; its bytes go to out."""
    r = st[ENC_RANGE] // total
    st[ENC_LOW] += r * cum
    st[ENC_RANGE] = r * freq
    while st[ENC_RANGE] < RANGE_MIN:
        st[ENC_RANGE] <<= 8
        _shift_low(st, out)


@jit
def finish(st, out):
    """Terminate; returns the payload's length in out (trailing 0x00 bytes left out)."""
    low, rng = st[ENC_LOW], st[ENC_RANGE]
    v = low
    for s in range(WINDOW_BITS + 1, -1, -1):  # the value in [low, low + range) with the most trailing zeros
        v = -((-low) >> s) << s
        if v < low + rng:
            break
    st[ENC_LOW] = v
    for _ in range(FINISH_BYTES):
        _shift_low(st, out)
    n = st[ENC_OUT]
    while n > 0 and out[n - 1] == 0:
        n -= 1
    return n


@jit
def start(st, payload):
    """Start decoding payload (uint8) into the state st (DEC_* slots)."""
    code = 0
    for i in range(WINDOW_BYTES):
        code = (code << 8) | (payload[i] if i < payload.shape[0] else 0)
    st[DEC_CODE], st[DEC_RANGE], st[DEC_NEXT] = code, RANGE_MAX, WINDOW_BYTES


@jit
def target(st, total):
    """The value in [0, total) that the next symbol's interval [cum, cum + freq) holds."""
    r = st[DEC_RANGE] // total
    st[DEC_R] = r
    return min(st[DEC_CODE] // r, total - 1)


@jit
def consume(st, payload, cum, freq):
    """Take the symbol (cum, freq) found from target() out of the code."""
    r = st[DEC_R]
    st[DEC_CODE] -= r * cum
    st[DEC_RANGE] = r * freq
    while st[DEC_RANGE] < RANGE_MIN:
        st[DEC_RANGE] <<= 8
        i = st[DEC_NEXT]
        st[DEC_CODE] = ((st[DEC_CODE] << 8) | (payload[i] if i < payload.shape[0] else 0)) & (RANGE_MAX - 1)
        st[DEC_NEXT] = i + 1


@jit
def find(freq, value):
    """(symbol, cum, freq) of the entry of a frequency table whose interval holds value."""
    cum = 0
    for s in range(freq.shape[0]):
        if value < cum + freq[s]:
            return s, cum, freq[s]
        cum += freq[s]
    return freq.shape[0] - 1, cum - freq[-1], freq[-1]  # unreachable for value < sum(freq)


def _check_symbol(cum: int, freq: int, total: int) -> None:
    if not 1 <= total <= TOTAL:
        raise ValueError(f"total {total} outside [1, {TOTAL}]")
    if freq < 1 or cum < 0 or cum + freq > total:
        raise ValueError(f"invalid symbol cum={cum} freq={freq} total={total}")


class Encoder:
    """Codes symbols one call at a time (spec/coder.md section 3); finish() returns the payload."""

    def __init__(self) -> None:
        self.state = encoder_state()
        self._out = output_buffer(64)
        self._done = False

    @property
    def low(self) -> int:
        return int(self.state[ENC_LOW])

    @property
    def range(self) -> int:
        return int(self.state[ENC_RANGE])

    def written(self) -> bytes:
        """The bytes shifted out so far (carries may still change the last pending ones)."""
        return bytes(self._out[: self.state[ENC_OUT]])

    def _room(self) -> None:
        if self.state[ENC_OUT] + self.state[ENC_FF] + SYMBOL_BYTES + FINISH_BYTES > len(self._out):
            self._out = np.concatenate([self._out, np.zeros(len(self._out), dtype=np.uint8)])

    def encode(self, cum: int, freq: int, total: int = TOTAL) -> None:
        if self._done:
            raise RuntimeError("encoder already finished")
        _check_symbol(cum, freq, total)
        self._room()
        encode(self.state, self._out, cum, freq, total)

    def finish(self) -> bytes:
        """Terminate and return the payload (trailing 0x00 bytes stripped; b"" for zero symbols)."""
        if self._done:
            raise RuntimeError("encoder already finished")
        self._done = True
        self._room()
        return bytes(self._out[: finish(self.state, self._out)])


class Decoder:
    """Decodes a payload (spec/coder.md section 4); reads 0x00 past its end."""

    def __init__(self, payload: bytes) -> None:
        self._payload = np.frombuffer(bytes(payload), dtype=np.uint8)
        self.state = decoder_state()
        start(self.state, self._payload)
        self._total = 0

    @property
    def code(self) -> int:
        return int(self.state[DEC_CODE])

    def target(self, total: int = TOTAL) -> int:
        """The next symbol is the s with cum[s] <= target < cum[s] + freq[s]."""
        if not 1 <= total <= TOTAL:
            raise ValueError(f"total {total} outside [1, {TOTAL}]")
        self._total = total
        return int(target(self.state, total))

    def consume(self, cum: int, freq: int) -> None:
        """Remove the symbol (cum, freq) that holds the last target()."""
        if not self._total:
            raise RuntimeError("consume() needs a target() first")
        _check_symbol(cum, freq, self._total)
        t = min(self.code // int(self.state[DEC_R]), self._total - 1)
        if not cum <= t < cum + freq:
            raise ValueError("consumed symbol does not contain the decoder target")
        consume(self.state, self._payload, cum, freq)
        self._total = 0

    def decode(self, freq: Sequence[int] | np.ndarray, total: int = TOTAL) -> int:
        """Decode one symbol of a frequency table that sums to total."""
        table = np.asarray(freq, dtype=np.int64)
        s, cum, f = find(table, self.target(total))
        self.consume(int(cum), int(f))
        return int(s)
