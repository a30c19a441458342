"""Range coder, coder id 1, version 1 (normative description: spec/coder.md).

Exact integer arithmetic only. State: ``low`` is a 56-bit window plus one carry bit (bit 56), ``range``
lies in [2**48, 2**56] after every coded symbol. For a symbol (cum, freq) of a table with total ``total``::

    r = range // total;  low += r * cum;  range = r * freq      (no remainder given to any symbol)

then, while range < 2**48, the top byte of the window is shifted out (byte-wise renormalisation).
Carries are exact (LZMA-style cache byte + pending 0xFF count in the scalar reference; a deferred carry
buffer resolved with one big-integer addition in the batch classes; both give identical bytes).
Termination writes the value with the most trailing zero bits inside the final interval and strips
trailing 0x00 bytes; the decoder reads 0x00 past the end of the payload. The zero-symbol stream is b"".

Contents:
  * ``Encoder`` / ``Decoder``            -- scalar reference, plain Python ints, any total in [1, 2**28].
  * ``BatchEncoder`` / ``BatchDecoder``  -- n independent streams in lockstep with numpy, total == 2**28.

numpy overflow argument (uint64 wraps silently): every quantity stays below 2**64 because
  range <= 2**56, r = range >> 28 <= 2**28, r*cum < r*total <= range <= 2**56,
  low < 2**56 before an add so low + r*cum < 2**57,
  the encoder shifts low left only after masking it to 48 bits per shifted byte (result < 2**56),
  the decoder's code register is < 2**56 and is shifted by at most 32 bits; a wrap can only happen for a
  corrupted stream and is harmless because the result is reduced mod 2**56 (mod 2**64 then mod 2**56 ==
  mod 2**56).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

CODER_ID = 1
CODER_VERSION = 1

TOTAL_BITS = 28
TOTAL = 1 << TOTAL_BITS  # the total the engine's tables always have
MAX_TOTAL = TOTAL

WINDOW_BITS = 56  # width of low (without the carry bit) and of the decoder's code register
RANGE_MAX = 1 << WINDOW_BITS  # initial range
RANGE_MIN = 1 << (WINDOW_BITS - 8)  # renormalise while range < RANGE_MIN
WINDOW_BYTES = WINDOW_BITS // 8  # 7

_MASK56 = RANGE_MAX - 1
_MASK48 = RANGE_MIN - 1

__all__ = [
    "CODER_ID", "CODER_VERSION", "TOTAL_BITS", "TOTAL", "Encoder", "Decoder", "BatchEncoder",
    "BatchDecoder", "encode_symbols", "decode_symbols",
]


def _check_symbol(cum: int, freq: int, total: int) -> None:
    if not (1 <= total <= MAX_TOTAL):
        raise ValueError(f"total {total} outside [1, 2**{TOTAL_BITS}]")
    if freq < 1 or cum < 0 or cum + freq > total:
        raise ValueError(f"invalid symbol cum={cum} freq={freq} total={total}")


# --------------------------------------------------------------------------------------------------
# Scalar reference
# --------------------------------------------------------------------------------------------------
class Encoder:
    """Scalar reference encoder (spec/coder.md section 3)."""

    def __init__(self) -> None:
        self.low = 0  # 57 bits: bit 56 is the carry into the pending bytes
        self.range = RANGE_MAX
        self._cache = 0  # the pending byte; starts as the implicit, never transmitted byte 0x00
        self._ff = 0  # number of pending 0xFF bytes after the cache byte
        self._started = False  # False while the cache holds the implicit leading byte
        self._out = bytearray()
        self._done = False

    def _shift_low(self) -> None:
        low = self.low
        if (low >> 48) != 0xFF:  # top byte known final (no carry can reach past a non-0xFF byte)
            carry = low >> 56
            if self._started:
                self._out.append((self._cache + carry) & 0xFF)
            # (carry into the implicit leading byte is impossible: the coded value is < 1)
            if self._ff:
                self._out.extend(bytes([(0xFF + carry) & 0xFF]) * self._ff)
                self._ff = 0
            self._cache = (low >> 48) & 0xFF
            self._started = True
        else:
            self._ff += 1
        self.low = (low & _MASK48) << 8

    def encode(self, cum: int, freq: int, total: int = TOTAL) -> None:
        if self._done:
            raise RuntimeError("encoder already finished")
        _check_symbol(cum, freq, total)
        r = self.range // total
        self.low += r * cum
        self.range = r * freq
        while self.range < RANGE_MIN:
            self.range <<= 8
            self._shift_low()

    def finish(self) -> bytes:
        """Terminate and return the payload (trailing 0x00 bytes stripped; b"" for zero symbols)."""
        if self._done:
            raise RuntimeError("encoder already finished")
        self._done = True
        low, rng = self.low, self.range
        # The value in [low, low + range) with the most trailing zero bits.
        for s in range(WINDOW_BITS + 1, -1, -1):
            v = -((-low) >> s) << s  # ceil(low / 2**s) * 2**s
            if v < low + rng:
                break
        self.low = v
        for _ in range(WINDOW_BYTES + 1):  # push the 7 window bytes and the cache byte out
            self._shift_low()
        out = bytes(self._out)
        return out.rstrip(b"\x00")


class Decoder:
    """Scalar reference decoder (spec/coder.md section 4). Reads 0x00 past the end of ``payload``."""

    def __init__(self, payload: bytes) -> None:
        self._buf = bytes(payload)
        self._pos = 0
        self.range = RANGE_MAX
        self.code = 0
        for _ in range(WINDOW_BYTES):
            self.code = (self.code << 8) | self._next_byte()
        self._r = 0
        self._total = 0

    def _next_byte(self) -> int:
        p = self._pos
        self._pos = p + 1
        return self._buf[p] if p < len(self._buf) else 0

    def target(self, total: int = TOTAL) -> int:
        """Target value in [0, total): the next symbol is the s with cum[s] <= target < cum[s] + freq[s]."""
        if not (1 <= total <= MAX_TOTAL):
            raise ValueError(f"total {total} outside [1, 2**{TOTAL_BITS}]")
        self._r = self.range // total
        self._total = total
        return min(self.code // self._r, total - 1)

    def consume(self, cum: int, freq: int, total: int = TOTAL) -> None:
        """Remove the symbol (cum, freq) found from ``target(total)``; it must contain the target."""
        _check_symbol(cum, freq, total)
        r = self.range // total
        t = min(self.code // r, total - 1)
        if not (cum <= t < cum + freq):
            raise ValueError("consumed symbol does not contain the decoder target")
        self.code -= r * cum
        self.range = r * freq
        while self.range < RANGE_MIN:
            self.range <<= 8
            self.code = ((self.code << 8) | self._next_byte()) & _MASK56

    def decode(self, cum_table: Sequence[int] | np.ndarray, total: int = TOTAL) -> int:
        """Convenience: decode one symbol from an inclusive cumulative table (cum_table[-1] == total)."""
        t = self.target(total)
        inc = np.asarray(cum_table, dtype=np.int64)
        s = int(np.searchsorted(inc, t, side="right"))
        lo = int(inc[s - 1]) if s else 0
        self.consume(lo, int(inc[s]) - lo, total)
        return s


def encode_symbols(symbols: Sequence[int], freq_tables: Sequence[Sequence[int]], total: int = TOTAL) -> bytes:
    """Scalar helper: code symbols[i] with the frequency table freq_tables[i]."""
    enc = Encoder()
    for s, f in zip(symbols, freq_tables):
        f = [int(x) for x in f]
        enc.encode(sum(f[:s]), f[s], total)
    return enc.finish()


def decode_symbols(payload: bytes, freq_tables: Sequence[Sequence[int]], total: int = TOTAL) -> list[int]:
    dec = Decoder(payload)
    return [dec.decode(np.cumsum(np.asarray(f, dtype=np.int64)), total) for f in freq_tables]


# --------------------------------------------------------------------------------------------------
# Batch (numpy, lockstep over n independent streams, total == 2**28)
# --------------------------------------------------------------------------------------------------
_U = np.uint64
_SH4 = np.array([24, 16, 8, 0], dtype=np.uint64)  # big-endian bytes of a 32-bit word
_AR4 = np.arange(4, dtype=np.int64)
_TB = np.uint64(TOTAL_BITS)
_C48, _C40, _C32, _C24 = (np.uint64(1 << b) for b in (48, 40, 32, 24))
_M56 = np.uint64(_MASK56)
_S56 = np.uint64(56)
_S24 = np.uint64(24)


def _nshift(rng: np.ndarray) -> np.ndarray:
    """Bytes to shift so that range >= 2**48 (range >= 2**20 always, so 0..4)."""
    return ((rng < _C48).astype(np.uint64) + (rng < _C40) + (rng < _C32) + (rng < _C24))


class BatchEncoder:
    """n independent encoders in lockstep; byte-identical to ``Encoder`` with total == 2**28.

    Output bytes are written into a growable (n, cap) uint8 buffer: after each symbol the 4 bytes
    window[55..24] are stored at the stream's write position and the position advances by the number of
    bytes shifted out (0..4; bytes past the new position are overwritten later). A carry out of the window
    is recorded in a parallel carry buffer at the byte before the window and all carries are resolved at
    ``finish`` with one big-integer addition. Position 0 is the implicit leading 0x00 byte.
    """

    def __init__(self, n: int, capacity: int = 1024) -> None:
        self.n = int(n)
        self.low = np.zeros(self.n, dtype=np.uint64)
        self.range = np.full(self.n, RANGE_MAX, dtype=np.uint64)
        self.pos = np.ones(self.n, dtype=np.int64)  # window starts at byte 1 (byte 0 is implicit 0x00)
        self._cap = max(16, int(capacity))
        self._buf = np.zeros((self.n, self._cap), dtype=np.uint8)
        self._carry = np.zeros((self.n, self._cap), dtype=np.uint8)
        self._rows = np.arange(self.n, dtype=np.int64)
        self._done = False

    def _ensure(self, need: int) -> None:
        if need > self._cap:
            cap = max(need, 2 * self._cap)
            for name in ("_buf", "_carry"):
                old = getattr(self, name)
                new = np.zeros((self.n, cap), dtype=np.uint8)
                new[:, : self._cap] = old
                setattr(self, name, new)
            self._cap = cap

    @staticmethod
    def _validate(cum: np.ndarray, freq: np.ndarray) -> None:
        if freq.size and (freq.min() < 1 or cum.min() < 0 or (cum + freq).max() > TOTAL):
            raise ValueError("invalid symbol: need freq >= 1, cum >= 0, cum + freq <= 2**28")

    def _step(self, rows: np.ndarray | None, cum: np.ndarray, freq: np.ndarray) -> None:
        # rows None: all streams. cum/freq: uint64 arrays of the selected rows.
        if rows is None:
            low, rng, pos, rows_ = self.low, self.range, self.pos, self._rows
        else:
            low, rng, pos, rows_ = self.low[rows], self.range[rows], self.pos[rows], rows
        r = rng >> _TB
        low = low + r * cum  # < 2**57
        rng = r * freq
        c = low >> _S56
        if c.any():
            self._carry[rows_, pos - 1] += c.astype(np.uint8)
            low &= _M56
        k = _nshift(rng)
        self._buf[rows_[:, None], pos[:, None] + _AR4] = ((low >> _S24)[:, None] >> _SH4).astype(np.uint8)
        sh = k << np.uint64(3)
        low = (low << sh) & _M56
        rng = rng << sh
        pos = pos + k.astype(np.int64)
        if rows is None:
            self.low, self.range, self.pos = low, rng, pos
        else:
            self.low[rows], self.range[rows], self.pos[rows] = low, rng, pos

    def encode(self, cum: np.ndarray, freq: np.ndarray, active: np.ndarray | None = None) -> None:
        """Code one symbol per stream; cum/freq shape (n,); streams with active False are untouched."""
        if self._done:
            raise RuntimeError("encoder already finished")
        cum = np.asarray(cum, dtype=np.int64).reshape(self.n)
        freq = np.asarray(freq, dtype=np.int64).reshape(self.n)
        rows = None
        if active is not None:
            active = np.asarray(active, dtype=bool).reshape(self.n)
            if not active.all():
                rows = np.flatnonzero(active)
                if rows.size == 0:
                    return
                cum, freq = cum[rows], freq[rows]
        self._validate(cum, freq)
        self._ensure(int(self.pos.max()) + 8)
        self._step(rows, cum.astype(np.uint64), freq.astype(np.uint64))

    def _block_row(self, i: int, cums: list, freqs: list) -> None:
        """Code a run of symbols on stream i with plain Python ints (same state/bytes as ``_step``)."""
        low, rng, pos0 = int(self.low[i]), int(self.range[i]), int(self.pos[i])
        out = bytearray()
        carries = []
        m56, m48, rmin = _MASK56, _MASK48, RANGE_MIN
        for c, f in zip(cums, freqs):
            r = rng >> TOTAL_BITS
            low += r * c
            rng = r * f
            if low > m56:
                carries.append(len(out))  # carry into the byte before the window
                low &= m56
            while rng < rmin:
                out.append(low >> 48)
                low = (low & m48) << 8
                rng <<= 8
        k = len(out)
        if k:
            self._buf[i, pos0 : pos0 + k] = np.frombuffer(bytes(out), dtype=np.uint8)
        if carries:
            np.add.at(self._carry[i], np.asarray(carries, dtype=np.int64) + (pos0 - 1), 1)
        self.low[i], self.range[i], self.pos[i] = low, rng, pos0 + k

    def encode_block(
        self, cum2d: np.ndarray, freq2d: np.ndarray, lengths: np.ndarray | None = None, method: str = "auto"
    ) -> None:
        """Code a (n, T) block: stream i codes columns 0..lengths[i]-1 (default all T), in order.

        method: "lockstep" (numpy over streams, one step per column), "rows" (per-stream loop with Python
        ints; faster for few streams), or "auto" (rows when n <= 64). All give identical bytes.
        """
        if self._done:
            raise RuntimeError("encoder already finished")
        cum2d = np.asarray(cum2d, dtype=np.int64)
        freq2d = np.asarray(freq2d, dtype=np.int64)
        n, T = cum2d.shape
        if n != self.n or freq2d.shape != cum2d.shape:
            raise ValueError("block shape mismatch")
        lengths = np.full(n, T, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (n,) or (lengths < 0).any() or (lengths > T).any():
            raise ValueError("lengths must be in [0, T]")
        valid = np.arange(T)[None, :] < lengths[:, None]
        self._validate(cum2d[valid], freq2d[valid])
        # worst case 4 bytes per symbol (range >= 2**20 after any symbol)
        self._ensure(int(self.pos.max()) + 4 * int(lengths.max(initial=0)) + 8)
        if method not in ("auto", "rows", "lockstep"):
            raise ValueError(f"unknown method {method!r}")
        if method == "rows" or (method == "auto" and n <= 64):
            for i in range(n):
                L = int(lengths[i])
                if L:
                    self._block_row(i, cum2d[i, :L].tolist(), freq2d[i, :L].tolist())
            return
        cumT = np.ascontiguousarray(cum2d.T).astype(np.uint64)
        freqT = np.ascontiguousarray(freq2d.T).astype(np.uint64)
        # columns where the active set changes (it only shrinks as t grows)
        order = np.unique(np.concatenate([[0], lengths, [T]]))
        for a, b in zip(order[:-1], order[1:]):
            rows = np.flatnonzero(lengths > a)
            if rows.size == 0:
                break
            if rows.size == n:
                for t in range(a, b):
                    self._step(None, cumT[t], freqT[t])
            else:
                for t in range(a, b):
                    self._step(rows, cumT[t, rows], freqT[t, rows])

    def finish(self) -> list[bytes]:
        if self._done:
            raise RuntimeError("encoder already finished")
        self._done = True
        out = []
        for i in range(self.n):
            low, rng, pos = int(self.low[i]), int(self.range[i]), int(self.pos[i])
            for s in range(WINDOW_BITS + 1, -1, -1):
                v = -((-low) >> s) << s
                if v < low + rng:
                    break
            body = bytes(self._buf[i, :pos])  # byte 0 is the implicit 0x00
            carries = bytes(self._carry[i, :pos])
            length = pos + WINDOW_BYTES
            val = (int.from_bytes(body, "big") + int.from_bytes(carries, "big")) << (8 * WINDOW_BYTES)
            val += v  # v < 2**57: its bit 56 is a carry into byte pos - 1
            data = val.to_bytes(length, "big")  # carry into byte 0 impossible (coded value < 1)
            out.append(data[1:].rstrip(b"\x00"))
        return out


class BatchDecoder:
    """n independent decoders in lockstep; identical results to ``Decoder`` with total == 2**28."""

    def __init__(self, payloads: Sequence[bytes]) -> None:
        self.n = len(payloads)
        lens = [len(p) for p in payloads]
        width = max(lens, default=0) + WINDOW_BYTES + 8
        buf = np.zeros((self.n, width), dtype=np.uint8)
        for i, p in enumerate(payloads):
            buf[i, : len(p)] = np.frombuffer(bytes(p), dtype=np.uint8)
        self._buf = buf
        self._width = width
        self._rows = np.arange(self.n, dtype=np.int64)
        # code = first 7 bytes, big-endian
        w = buf[:, :WINDOW_BYTES].astype(np.uint64)
        code = np.zeros(self.n, dtype=np.uint64)
        for j in range(WINDOW_BYTES):
            code = (code << np.uint64(8)) | w[:, j]
        self.code = code
        self.range = np.full(self.n, RANGE_MAX, dtype=np.uint64)
        self.pos = np.full(self.n, WINDOW_BYTES, dtype=np.int64)  # next byte to read

    def _ensure(self, need: int) -> None:
        if need > self._width:  # corrupted/over-long decode: reading past the end gives zeros
            width = max(need, 2 * self._width)
            new = np.zeros((self.n, width), dtype=np.uint8)
            new[:, : self._width] = self._buf
            self._buf, self._width = new, width

    def target(self) -> np.ndarray:
        """(n,) int64 targets in [0, 2**28) for all streams."""
        t = self.code // (self.range >> _TB)
        return np.minimum(t, np.uint64(TOTAL - 1)).astype(np.int64)

    def consume(self, cum: np.ndarray, freq: np.ndarray, active: np.ndarray | None = None) -> None:
        """Remove the symbols (cum, freq) (shape (n,)); each must contain its stream's target."""
        cum = np.asarray(cum, dtype=np.int64).reshape(self.n)
        freq = np.asarray(freq, dtype=np.int64).reshape(self.n)
        if active is None:
            rows = self._rows
        else:
            rows = np.flatnonzero(np.asarray(active, dtype=bool).reshape(self.n))
            if rows.size == 0:
                return
            cum, freq = cum[rows], freq[rows]
        if freq.min() < 1 or cum.min() < 0 or (cum + freq).max() > TOTAL:
            raise ValueError("invalid symbol: need freq >= 1, cum >= 0, cum + freq <= 2**28")
        code, rng, pos = self.code[rows], self.range[rows], self.pos[rows]
        r = rng >> _TB
        t = np.minimum(code // r, np.uint64(TOTAL - 1)).astype(np.int64)
        if ((t < cum) | (t >= cum + freq)).any():
            raise ValueError("consumed symbol does not contain the decoder target")
        code = code - r * cum.astype(np.uint64)
        rng = r * freq.astype(np.uint64)
        k = _nshift(rng)
        if k.any():
            self._ensure(int(pos.max()) + 4)
            b = self._buf[rows[:, None], pos[:, None] + _AR4].astype(np.uint64)
            word = (b[:, 0] << np.uint64(24)) | (b[:, 1] << np.uint64(16)) | (b[:, 2] << np.uint64(8)) | b[:, 3]
            sh = k << np.uint64(3)
            # (code << 8k | next k bytes) mod 2**56; the uint64 wrap (corrupt streams only) is harmless.
            code = ((code << sh) | (word >> (np.uint64(32) - sh))) & _M56
            rng = rng << sh
            pos = pos + k.astype(np.int64)
        self.code[rows], self.range[rows], self.pos[rows] = code, rng, pos

    def decode_step(self, freq_tables: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Decode one symbol per active stream from its (V,) frequency row (rows sum to 2**28).

        Returns (n,) int64 symbols; inactive rows are untouched and give -1.
        """
        freq_tables = np.asarray(freq_tables)
        if freq_tables.ndim != 2 or freq_tables.shape[0] != self.n:
            raise ValueError("freq_tables must have shape (n, V)")
        if active is None:
            rows = self._rows
            ft = freq_tables
        else:
            active = np.asarray(active, dtype=bool).reshape(self.n)
            rows = np.flatnonzero(active)
            ft = freq_tables if rows.size == self.n else freq_tables[rows]
        out = np.full(self.n, -1, dtype=np.int64)
        if rows.size == 0:
            return out
        inc = np.cumsum(ft, axis=1, dtype=np.int64)  # inclusive cumulative table
        if (inc[:, -1] != TOTAL).any():
            raise ValueError("each frequency row must sum to 2**28")
        t = self.target()[rows]
        sym = np.empty(rows.size, dtype=np.int64)
        for j in range(rows.size):
            sym[j] = np.searchsorted(inc[j], t[j], side="right")
        hi = inc[np.arange(rows.size), sym]
        f = ft[np.arange(rows.size), sym].astype(np.int64)
        cum = np.zeros(self.n, dtype=np.int64)
        freq = np.ones(self.n, dtype=np.int64)
        cum[rows] = hi - f
        freq[rows] = f
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        self.consume(cum, freq, mask)  # raises if a zero/negative frequency was selected
        out[rows] = sym
        return out
