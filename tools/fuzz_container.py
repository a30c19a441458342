#!/usr/bin/env python3
"""Fuzz the lmz container decoder with mutated valid vectors (hypothesis).

Property, for every mutation of every good vector in spec/vectors:
  * only LmzError subclasses escape decode_stream / read_index / decode_entry, with one-line messages;
  * every chunk decode_stream yields is verified: together they are a prefix of the true content;
  * memory stays bounded (tracemalloc peak) whatever lengths the mutated bytes declare.
Mutations: bit flips, byte insertions and deletions, truncations, and overwriting length/method
fields with huge or off-by-one values, with the covering CRC fixed up so the limits are reached.

Usage: python -m tools.fuzz_container [--examples N] [--seed S]
tests/container/test_container_fuzz.py runs the same property with a few hundred examples.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import lmz
from lmz import varint
from lmz.constants import FOOTER_SIZE

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
MEMORY_SLACK = 8 << 20  # bytes of tracemalloc peak allowed beyond 3x the true content


def load_bases() -> list[tuple[str, bytes, bytes]]:
    """(name, stream bytes, true content) for every good container-only vector."""
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    out = []
    for v in manifest["vectors"]:
        if v["kind"] == "good" and not v.get("needs_lm"):
            blob = (VECTORS / v["file"]).read_bytes()
            out.append((v["file"], blob, lmz.decompress_bytes(blob)))
    return out


def fields(blob: bytes) -> list[tuple]:
    """Integer fields of a valid blob: version 1 as (offset, size, crc_start, crc_offset); version-2/3 varints as
    (offset, size, "varint", fix) with fix(new blob, shift) restoring the covering CRC."""
    idx = lmz.read_index(io.BytesIO(blob))
    out: list[tuple] = []
    for s in idx.streams:
        if s.header.version >= 2:
            out += _v2_fields(blob, s, [e for e in idx.entries if e.stream_index == s.stream_index])
            continue
        hl = s.header.size
        out.append((s.offset + 8, 8, s.offset, s.offset + hl - 4))  # chunk size
        out.append((s.offset + 4, 1, -1, -1))  # version (checked before the CRC)
        out.append((s.offset + 5, 1, s.offset, s.offset + hl - 4))  # flags
        end = s.offset + s.size
        f = end - FOOTER_SIZE
        t_len = struct.unpack("<Q", blob[f:f + 8])[0]
        t = f - t_len
        out += [(t + 1, 8, t, f - 4), (f - 4 - 16 - 8, 8, t, f - 4)]  # frame count, total raw
        for i in range(s.frame_count):
            e = t + 9 + 9 * i
            out += [(e, 1, t, f - 4), (e + 1, 4, t, f - 4), (e + 5, 4, t, f - 4)]
        out += [(f, 8, f, f + 16), (f + 8, 8, f, f + 16)]  # footer sizes
    for e in idx.entries:
        if e.header.version == 1:
            o = e.offset
            out += [(o, 1, o, o + 9), (o + 1, 4, o, o + 9), (o + 5, 4, o, o + 9)]  # method, raw, payload
    return out


def _v2_fields(blob: bytes, s, entries) -> list[tuple]:
    """The chunk size (header CRC fixed after a change) and each frame's lengths (its check fixed)."""
    out: list[tuple] = []
    start = s.offset
    n = len(varint.encode(s.header.chunk_size))
    hl = len(s.header.encode())

    def fix_header(b: bytearray, shift: int) -> None:
        end = start + hl + shift
        b[end - 4:end] = struct.pack("<I", zlib.crc32(bytes(b[start:end - 4])))

    out.append((start + 8, n, "varint", fix_header))
    for e in entries:
        f = lmz.read_frame_at(io.BytesIO(blob), e)
        raw = lmz.decode_frame(f)
        pos = e.offset + 1

        def fix_frame(b: bytearray, shift: int, e=e, f=f, raw=raw) -> None:
            head_len = len(f.head) + shift
            end = e.offset + e.frame_size + shift
            head = bytes(b[e.offset:e.offset + head_len])
            if f.header.version >= 3:  # the check, then the store check over the stored bytes
                b[end - 8:end - 4] = lmz.frame_check(f.raw_start, head, raw)
                b[end - 4:end] = lmz.store_check(head, bytes(b[e.offset + head_len:end - 8]))
            else:
                b[end - 4:end] = lmz.frame_check(f.raw_start, head, raw)

        for size in ([len(varint.encode(f.raw_length))] if not f.head[0] & 0x80 else []) + \
                [len(f.head) - 1 - (0 if f.head[0] & 0x80 else len(varint.encode(f.raw_length)))]:
            out.append((pos, size, "varint", fix_frame))
            pos += size
    return out


def set_field(blob: bytes, field: tuple, value: int) -> bytes:
    if field[2] == "varint":
        pos, size, _, fix = field
        new = varint.encode(value % (1 << 64))
        b = bytearray(blob[:pos] + new + blob[pos + size:])
        try:
            fix(b, len(new) - size)
        except (IndexError, struct.error, ValueError):
            pass
        return bytes(b)
    pos, size, crc_start, crc_pos = field
    b = bytearray(blob)
    b[pos:pos + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    if crc_start >= 0:
        b[crc_pos:crc_pos + 4] = struct.pack("<I", zlib.crc32(bytes(b[crc_start:crc_pos])))
    return bytes(b)


HUGE = [0, 1, 2, 3, 255, 0xFFFF, 1 << 24, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, 1 << 40, (1 << 63) - 1, (1 << 64) - 1]


@st.composite
def mutation(draw: st.DrawFn, blob: bytes, flds: list) -> bytes:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "field", "field_delta", "overwrite"]))
    n = len(blob)
    if kind == "truncate":
        return blob[:draw(st.integers(0, max(0, n - 1)))]
    if kind == "insert":
        p = draw(st.integers(0, n))
        return blob[:p] + draw(st.binary(min_size=1, max_size=16)) + blob[p:]
    if n == 0:
        return blob
    p = draw(st.integers(0, n - 1))
    if kind == "flip":
        b = bytearray(blob)
        b[p] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if kind == "delete":
        return blob[:p] + blob[p + draw(st.integers(1, 16)):]
    if kind == "overwrite":
        return blob[:p] + draw(st.binary(min_size=1, max_size=8)) + blob[p + 8:]
    f = draw(st.sampled_from(flds))
    if f[0] + f[1] > n:
        return blob
    if kind == "field":
        return set_field(blob, f, draw(st.sampled_from(HUGE)))
    if f[2] == "varint":
        try:
            old = varint.read(lmz._io.Source(io.BytesIO(blob[f[0]:f[0] + f[1]])), "field")[0]
        except lmz.LmzError:
            return blob
    else:
        old = int.from_bytes(blob[f[0]:f[0] + f[1]], "little")
    return set_field(blob, f, max(0, old + draw(st.integers(-3, 3))))


@st.composite
def cases(draw: st.DrawFn, bases: list, fieldmap: dict) -> tuple[str, bytes, bytes, bool]:
    name, blob, truth = draw(st.sampled_from(bases))
    for _ in range(draw(st.integers(1, 3))):
        blob = draw(mutation(blob, fieldmap[name]))
    return name, blob, truth, draw(st.booleans())


class _Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._b.read(13 if n < 0 else min(n, 13))


def check(blob: bytes, truth: bytes, pipe: bool) -> str:
    """Run the property on one input; return the outcome ('ok' or the error class name)."""
    outcome = "ok"
    got = 0
    tracemalloc.start()
    try:
        try:
            for chunk in lmz.decode_stream(_Pipe(blob) if pipe else io.BytesIO(blob)):
                assert truth[got:got + len(chunk)] == chunk, "yielded bytes that are not the true content"
                got += len(chunk)
        except lmz.LmzError as e:
            assert "\n" not in str(e)
            outcome = type(e).__name__
        if not pipe:
            f = io.BytesIO(blob)
            try:
                idx = lmz.read_index(f)
                for e in idx.entries[:4] + idx.entries[-2:]:
                    try:
                        lmz.decode_entry(f, e)
                    except lmz.LmzError:
                        pass
            except lmz.LmzError:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_SLACK + 3 * len(truth), f"tracemalloc peak {peak}"
    return outcome


def make_test(examples: int, counter: Counter):  # type: ignore[no-untyped-def]
    bases = load_bases()
    fieldmap = {name: fields(blob) for name, blob, _ in bases}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(cases(bases, fieldmap))
    def prop(case: tuple[str, bytes, bytes, bool]) -> None:
        _, blob, truth, pipe = case
        counter[check(blob, truth, pipe)] += 1

    return prop


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    counter: Counter = Counter()
    prop = seed(args.seed)(make_test(args.examples, counter))
    t = time.perf_counter()
    try:
        prop()
        result = "PASS"
    except Exception as e:  # report, then fail
        result = f"FAIL: {type(e).__name__}: {e}"
    dt = time.perf_counter() - t
    print(f"examples run: {sum(counter.values())} (requested {args.examples}), {dt:.1f} s, seed {args.seed}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in counter.most_common()))
    print(result)
    return 0 if result == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
