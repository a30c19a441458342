#!/usr/bin/env python3
"""Generate spec/vectors/*.lmz and manifest.json deterministically (container-only: no lm frames).

Usage: python -m spec.vectors.make_vectors [OUTDIR]   (from the repository root; default: spec/vectors)
zstd frames come from the installed `zstandard`; another libzstd version may produce other bytes,
but the decoded content (recorded in the manifest) is the same. Version-1 vectors (`*-1-*`, `*-2-*`, ...) are
the files of lmz format 1, kept byte for byte; version-2 vectors are named `*-v2-*`. Run
spec/vectors/make_lm_vectors.py afterwards: it adds the vectors with lm frames to the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import lmz
from lmz import varint
from lmz.constants import FOOTER2_SIZE, FOOTER_SIZE, FRAME_HEADER_SIZE, HEADER_FIXED_SIZE

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog.\n" % i for i in range(20000))


def noise(n: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(n)


def stream(chunks: list[tuple[str, bytes]], *, chunk_size: int = 256, model_id: str = "",
           sha: bytes = bytes(32), coder: tuple[int, int] = (0, 0), version: int = 1, params: bytes = b"") -> bytes:
    """One stream; chunks are (method name, raw) with method 'stored', 'zstd' or 'auto'."""
    out = io.BytesIO()
    if version >= 2:
        model_id, sha = "", (sha[:16] if coder[0] else b"")
    with lmz.Writer(out, lmz.StreamHeader(model_id, sha, chunk_size, *coder, 0, version, params)) as w:
        for how, raw in chunks:
            if how == "stored":
                w.write_frame(lmz.METHOD_STORED, raw)
            elif how == "zstd":
                w.write_frame(lmz.METHOD_ZSTD, raw, lmz.zstd_compress(raw, 19))
            else:
                w.write_data(raw, 19)
    return out.getvalue()


def content_of(data: bytes) -> bytes:
    return lmz.decompress_bytes(data)


# --- surgery helpers: change fields and (optionally) recompute the covering CRC ---------------

def header_len(s: bytes, at: int = 0) -> int:
    return HEADER_FIXED_SIZE + s[at + HEADER_FIXED_SIZE - 1] + 4


def patch_header(s: bytes, off: int, new: bytes) -> bytes:
    """Overwrite bytes at header offset off and fix the header CRC."""
    n = header_len(s)
    b = bytearray(s)
    b[off:off + len(new)] = new
    b[n - 4:n] = struct.pack("<I", zlib.crc32(bytes(b[:n - 4])))
    return bytes(b)


def frame_offsets(s: bytes) -> list[int]:
    """Offsets of the frames of the first stream."""
    return [e.offset for e in lmz.read_index(io.BytesIO(s)).entries if e.stream_index == 0]


def patch_frame(s: bytes, at: int, off: int, new: bytes) -> bytes:
    """Overwrite bytes at offset off of the frame header at `at` and fix its CRC."""
    b = bytearray(s)
    b[at + off:at + off + len(new)] = new
    b[at + 9:at + 13] = struct.pack("<I", zlib.crc32(bytes(b[at:at + 9])))
    return bytes(b)


def trailer_span(s: bytes) -> tuple[int, int]:
    """(start, end) of the last stream's trailer (end = footer start)."""
    trailer_len = struct.unpack("<Q", s[-FOOTER_SIZE:-FOOTER_SIZE + 8])[0]
    return len(s) - FOOTER_SIZE - trailer_len, len(s) - FOOTER_SIZE


def patch_trailer(s: bytes, off: int, new: bytes) -> bytes:
    """Overwrite bytes at trailer offset off and fix the trailer CRC."""
    a, z = trailer_span(s)
    b = bytearray(s)
    b[a + off:a + off + len(new)] = new
    b[z - 4:z] = struct.pack("<I", zlib.crc32(bytes(b[a:z - 4])))
    return bytes(b)


def flip(s: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(s)
    b[pos] ^= 1 << bit
    return bytes(b)


# --- version-2 surgery: fields are varints, the header ends in a CRC-32, each frame in a CRC-32 over its number,
# its header bytes and its raw bytes ---------------------------------------------------------------

def v2_header_len(s: bytes) -> int:
    return lmz.read_index(io.BytesIO(s)).entries[0].offset if lmz.read_index(io.BytesIO(s)).entries else \
        len(s) - 2


def v2_fix_header(b: bytearray, n: int) -> bytes:
    b[n - 4:n] = struct.pack("<I", zlib.crc32(bytes(b[:n - 4])))
    return bytes(b)


def v2_with_chunk(s: bytes, chunk: bytes) -> bytes:
    """s (a coder-0 stream) with its chunk-size varint replaced by the bytes `chunk`, header CRC fixed."""
    n = v2_header_len(s)
    old = len(varint.encode(lmz.read_index(io.BytesIO(s)).streams[0].header.chunk_size))
    b = bytearray(s[:8] + chunk + s[8 + old:n])
    return v2_fix_header(b, len(b)) + s[n:]


def v2_frame(header: lmz.StreamHeader, raw_start: int, method_byte: int, raw: bytes, payload: bytes,
             raw_field: bytes | None, payload_field: bytes | None = None) -> bytes:
    """A frame spelled field by field, with a valid check (raw_field None: the full-chunk form)."""
    head = bytes((method_byte,)) + (raw_field or b"") + (payload_field or varint.encode(len(payload)))
    return head + payload + lmz.frame_check(raw_start, head, raw)


def v2_trailer(count: int) -> bytes:
    return b"\xff" + varint.encode(count << 1)


def build() -> tuple[dict[str, bytes], list[dict]]:
    files: dict[str, bytes] = {}
    meta: list[dict] = []

    def good(name: str, data: bytes, desc: str) -> None:
        files[name] = data
        content = content_of(data)
        idx = lmz.read_index(io.BytesIO(data))
        meta.append({"file": name, "kind": "good", "description": desc, "needs_lm": False,
                     "content_length": len(content), "content_sha256": hashlib.sha256(content).hexdigest(),
                     "streams": len(idx.streams), "frames": len(idx.entries)})

    def bad(name: str, data: bytes, error: str, desc: str) -> None:
        files[name] = data
        kind = name.split("-", 1)[0]
        meta.append({"file": name, "kind": kind, "description": desc, "needs_lm": False, "error": error})

    sha_m = hashlib.sha256(b"test-model weights").digest()
    empty = stream([])
    stored = stream([("stored", b"Hello, lmz!\n")])
    mixed = stream([("stored", noise(200, b"a")), ("zstd", TEXT[:256]), ("stored", noise(77, b"b")),
                    ("zstd", TEXT[256:400])])
    zframes = stream([("zstd", TEXT[i:i + 4096]) for i in range(0, 4 * 4096, 4096)], chunk_size=4096)
    coder1 = stream([("stored", "héllo wörld\n".encode())], model_id="tëst-model/v1", sha=sha_m, coder=(1, 1))
    two_eq = stream([("stored", b"A" * 16), ("stored", b"B" * 16)], chunk_size=16)

    good("good-0-empty.lmz", empty, "empty content: header and trailer, zero frames")
    good("good-1-stored.lmz", stored, "one stored frame")
    good("good-1-zstd-frames.lmz", zframes, "four zstd frames, chunk size 4096")
    good("good-1-mixed.lmz", mixed, "stored and zstd frames interleaved (also the truncation base)")
    good("good-1-coder-no-lm.lmz", coder1, "coder 1 with a UTF-8 model id and hash, but no lm frames")
    good("good-1-many-frames.lmz", stream([("auto", TEXT[:1 << 20])], chunk_size=1 << 16),
         "1 MiB of text in 16 zstd frames of 64 KiB")
    good("good-2-concat.lmz", mixed + coder1, "two concatenated streams with different headers")
    good("good-2-empty-empty.lmz", empty + empty, "two concatenated empty streams")
    good("good-3-concat-empty-middle.lmz", stored + empty + zframes, "stream, empty stream, stream")

    f_mixed = frame_offsets(mixed)
    hl = header_len(mixed)
    ta, tz = trailer_span(mixed)
    bad("bad-0-empty-file.lmz", b"", "FormatError", "zero bytes: not an lmz stream")
    bad("bad-1-magic.lmz", b"\x89LMX" + stored[4:], "FormatError", "wrong stream magic")
    bad("bad-1-header-bitflip.lmz", flip(mixed, 20, 3), "ChecksumError", "bit flipped in the model hash")
    bad("bad-1-chunk-2e40.lmz", patch_header(stored, 8, struct.pack("<Q", 1 << 40)), "LimitError",
        "header declares a 2^40-byte chunk size (valid CRC)")
    bad("bad-1-chunk-zero.lmz", patch_header(empty, 8, struct.pack("<Q", 0)), "FormatError",
        "header declares chunk size 0")
    bad("bad-1-frame-header-bitflip.lmz", flip(mixed, f_mixed[1] + 8, 7), "ChecksumError",
        "bit flipped in a frame's payload length")
    bad("bad-1-payload-bitflip.lmz", flip(mixed, f_mixed[0] + FRAME_HEADER_SIZE + 50, 1), "ChecksumError",
        "bit flipped in a stored payload")
    bad("bad-1-frame-checksum.lmz", flip(mixed, f_mixed[1] - 3, 5), "ChecksumError",
        "bit flipped in a frame's raw checksum")
    bad("bad-1-raw-over-chunk.lmz", patch_frame(stored, header_len(stored), 1, struct.pack("<I", 1 << 20)),
        "LimitError", "frame raw length larger than the chunk size (valid frame CRC)")
    bad("bad-1-payload-huge.lmz", patch_frame(mixed, f_mixed[1], 5, struct.pack("<I", 0xFFFFFFFF)),
        "LimitError", "frame payload length 2^32-1 (valid frame CRC)")
    bad("bad-1-raw-zero.lmz", patch_frame(stored, header_len(stored), 1, struct.pack("<I", 0)),
        "FormatError", "frame raw length 0 (valid frame CRC)")
    bad("bad-1-lm-without-coder.lmz", patch_frame(stored, header_len(stored), 0, b"\x02"), "FormatError",
        "lm frame in a stream with coder id 0")
    bad("bad-1-trailer-bitflip.lmz", flip(mixed, tz - 10, 2), "ChecksumError",
        "bit flipped in the trailer's content checksum")
    bad("bad-1-footer-bitflip.lmz", flip(mixed, len(mixed) - 15, 0), "ChecksumError",
        "bit flipped in the footer's stream size")
    bad("bad-1-footer-magic.lmz", mixed[:-1] + b"\x00", "FormatError", "wrong footer magic")
    bad("bad-1-index-mismatch.lmz", patch_trailer(mixed, 9 + 5, struct.pack("<I", 199)), "FormatError",
        "trailer index raw size differs from the frame (valid trailer CRC)")
    bad("bad-1-content-checksum.lmz", patch_trailer(mixed, tz - ta - 20, b"\x00" * 16), "ChecksumError",
        "wrong content checksum (valid trailer CRC)")
    f2 = frame_offsets(two_eq)
    n = f2[1] - f2[0]  # both frames have this size
    first, second = two_eq[f2[0]:f2[1]], two_eq[f2[1]:f2[1] + n]
    bad("bad-1-frames-swapped.lmz", two_eq[:f2[0]] + second + first + two_eq[f2[1] + n:], "ChecksumError",
        "two frames of equal size swapped: only the content checksum catches it")
    bad("bad-1-trailing-garbage.lmz", stored + b"garbage\n", "FormatError", "bytes after the stream that are not a stream")
    bad("bad-1-trailing-zeros.lmz", stored + b"\x00" * 8, "FormatError", "zero padding after the stream")
    bad("bad-1-truncated-header.lmz", mixed[:hl - 2], "TruncatedError", "cut inside the header")
    bad("bad-1-truncated-frame.lmz", mixed[:f_mixed[2] + 30], "TruncatedError", "cut inside a frame payload")
    bad("bad-1-truncated-footer.lmz", mixed[:-3], "TruncatedError", "cut inside the footer")
    bad("bad-2-truncated-second.lmz", stored + zframes[:100], "TruncatedError", "second stream cut short")
    bad("bad-2-partial-magic.lmz", stored + b"\x89L", "TruncatedError", "second stream cut inside its magic")
    bad("unsupported-1-version.lmz", patch_header(stored, 4, b"\x04"), "UnsupportedError",
        "format version 4 (this vector said version 2, then 3, until those were defined)")
    bad("unsupported-1-flags.lmz", patch_header(stored, 5, b"\x80"), "UnsupportedError", "reserved flag bit set")
    bad("unsupported-1-method.lmz", patch_frame(stored, header_len(stored), 0, b"\x03"), "UnsupportedError",
        "frame method 3")
    bad("unsupported-1-coder.lmz", patch_header(stored, 6, b"\x09"), "UnsupportedError", "coder id 9")
    bad("unsupported-1-coder-version.lmz", patch_header(coder1, 7, b"\x63"), "UnsupportedError",
        "coder 1 version 99")
    v2_vectors(good, bad, sha_m)
    v3_vectors(good, bad, sha_m)
    for v in meta:
        v["format_version"] = 3 if "-v3-" in v["file"] else 2 if "-v2-" in v["file"] else 1
    manifest = {
        "format": "lmz", "format_versions": [1, 2, 3],
        "generator": "spec/vectors/make_vectors.py",
        "libzstd": ".".join(map(str, __import__("zstandard").ZSTD_VERSION)),
        "decoding": "decode every vector with a container-only decoder (no lm decoder): good vectors must "
                    "decode to content_length bytes with content_sha256; bad/unsupported vectors must raise "
                    "`error` (a class of lmz.errors). Vectors with needs_lm=true need lmcodec's lm decoder.",
        "truncation_rule": {"files": ["good-1-mixed.lmz", "good-v2-1-mixed.lmz", "good-v2-1-indexed.lmz",
                                      "good-v3-1-mixed.lmz", "good-v3-1-indexed.lmz"],
                            "prefix_length_0": "FormatError",
                            "prefix_length_1_to_len_minus_1": "TruncatedError",
                            "description": "every proper prefix of each of these single streams must fail: "
                                           "the empty prefix with FormatError, all others with TruncatedError"},
        "vectors": meta,
    }
    return files, manifest


def v2_vectors(good, bad, sha_m: bytes) -> None:
    """The version-2 vectors."""
    def s2(chunks, **kw):
        return stream(chunks, version=2, **kw)

    empty = s2([])
    stored = s2([("stored", b"Hello, lmz!\n")])
    mixed = s2([("stored", noise(200, b"a")), ("zstd", TEXT[:256]), ("stored", noise(77, b"b")),
                ("zstd", TEXT[256:400])])
    full = s2([("stored", noise(256, b"c")), ("stored", noise(256, b"d")), ("stored", noise(10, b"e"))])
    coder1 = s2([("stored", "héllo wörld\n".encode())], sha=sha_m, coder=(1, 1), params=b"\x01\x02")
    indexed = s2([("stored", noise(16, bytes([i]))) for i in range(lmz.INDEX_MIN_FRAMES + 6)], chunk_size=16)
    two_eq = s2([("stored", b"A" * 16), ("stored", b"B" * 16)], chunk_size=16)
    good("good-v2-0-empty.lmz", empty, "version 2: empty content, zero frames (15 bytes)")
    good("good-v2-1-stored.lmz", stored, "version 2: one stored frame")
    good("good-v2-1-mixed.lmz", mixed, "version 2: stored and zstd frames interleaved (also a truncation base)")
    good("good-v2-1-full-chunk.lmz", full, "version 2: two frames of exactly the chunk size (flag 0x80, raw "
                                           "length not written) and a short last frame")
    good("good-v2-1-coder-no-lm.lmz", coder1, "version 2: coder 1 version 1 with a model hash and two bytes of "
                                              "coder parameters, no lm frames")
    good("good-v2-1-indexed.lmz", indexed, f"version 2: {lmz.INDEX_MIN_FRAMES + 6} frames, so an index and a "
                                           "footer end the stream (also a truncation base)")
    good("good-v2-1-bulk.lmz", s2([("auto", TEXT[:300_000])], chunk_size=4096),
         "version 2: 300,000 bytes in one zstd frame although the chunk size is 4096 (stored/zstd frames may "
         "hold up to max(chunk size, 1 MiB))")
    good("good-v2-3-mixed-versions.lmz", mixed + stream([("stored", b"v1 stream\n")]) + indexed,
         "version-2, version-1 and indexed version-2 streams back to back")

    hl = v2_header_len(mixed)
    f = [e.offset for e in lmz.read_index(io.BytesIO(mixed)).entries]
    sh = lmz.read_index(io.BytesIO(stored)).streams[0].header
    shl = v2_header_len(stored)
    hello = b"Hello, lmz!\n"
    bad("bad-v2-1-header-bitflip.lmz", flip(coder1, 12, 3), "ChecksumError", "bit flipped in the model hash")
    bad("bad-v2-1-chunk-2e40.lmz", v2_with_chunk(stored, varint.encode(1 << 40)), "LimitError",
        "header declares a 2^40-byte chunk size (valid CRC)")
    bad("bad-v2-1-chunk-zero.lmz", v2_with_chunk(empty, b"\x00"), "FormatError", "header declares chunk size 0")
    bad("bad-v2-1-varint-overlong.lmz", v2_with_chunk(empty, b"\x80\x82\x00"), "FormatError",
        "chunk size 256 spelled in 3 bytes instead of 2 (not the shortest form; valid CRC)")
    bad("bad-v2-1-varint-11-bytes.lmz", v2_with_chunk(empty, b"\xff" * 10 + b"\x01"), "FormatError",
        "a varint of 11 bytes")
    bad("bad-v2-1-payload-bitflip.lmz", flip(mixed, f[0] + 3 + 50, 1), "ChecksumError",
        "bit flipped in a stored payload")
    bad("bad-v2-1-check-bitflip.lmz", flip(mixed, f[1] - 2, 5), "ChecksumError", "bit flipped in a frame's check")
    bad("bad-v2-1-raw-over-chunk.lmz", stored[:shl] + v2_frame(sh, 0, 0, hello, hello, varint.encode(1 << 21))
        + v2_trailer(1), "LimitError", "frame raw length 2^21, over the frame limit of 1 MiB")
    bad("bad-v2-1-payload-huge.lmz", stored[:shl] + b"\x01\x0c" + varint.encode(1 << 40) + b"x" * 20,
        "LimitError", "frame payload length 2^40")
    bad("bad-v2-1-raw-zero.lmz", stored[:shl] + v2_frame(sh, 0, 0, b"", hello, b"\x00") + v2_trailer(1),
        "FormatError", "frame raw length 0")
    cfull = lmz.read_index(io.BytesIO(full)).streams[0].header
    bad("bad-v2-1-full-chunk-spelled.lmz", full[:v2_header_len(full)]
        + v2_frame(cfull, 0, 0, noise(256, b"c"), noise(256, b"c"), varint.encode(256)) + v2_trailer(1),
        "FormatError", "a frame of exactly the chunk size written with its raw length instead of the flag")
    bad("bad-v2-1-lm-without-coder.lmz", stored[:shl] + v2_frame(sh, 0, 2, hello, hello, varint.encode(12))
        + v2_trailer(1), "FormatError", "lm frame in a stream with coder id 0")
    f2 = [e.offset for e in lmz.read_index(io.BytesIO(two_eq)).entries]
    n = f2[1] - f2[0]
    first, second = two_eq[f2[0]:f2[1]], two_eq[f2[1]:f2[1] + n]
    bad("bad-v2-1-frames-swapped.lmz", two_eq[:f2[0]] + second + first + two_eq[f2[1] + n:], "ChecksumError",
        "two frames of equal size swapped: the frame number in each check catches it")
    bad("bad-v2-1-frame-dropped.lmz", two_eq[:f2[0]] + second + v2_trailer(1), "ChecksumError",
        "the first of two frames removed and the count fixed: the second is checked as frame 0")
    bad("bad-v2-1-count-mismatch.lmz", mixed[:-2] + v2_trailer(3), "FormatError",
        "trailer frame count 3, the stream has 4 frames")
    ie = lmz.read_index(io.BytesIO(indexed))
    tstart = ie.entries[-1].offset + ie.entries[-1].frame_size
    body = bytearray(indexed[tstart:-FOOTER2_SIZE])
    body[3] ^= 0x01  # the first entry's raw field: 0 (a full chunk) becomes 1 (byte 2 is its frame size)
    fixed = bytes(body) + indexed[-FOOTER2_SIZE:-8]
    fixed = fixed + struct.pack("<I", zlib.crc32(fixed)) + indexed[-4:]
    bad("bad-v2-1-index-mismatch.lmz", indexed[:tstart] + fixed, "FormatError",
        "an index entry's raw size differs from its frame (valid trailer CRC)")
    bad("bad-v2-1-index-bitflip.lmz", flip(indexed, tstart + 5, 0), "ChecksumError", "bit flipped in the index")
    bad("bad-v2-1-footer-magic.lmz", indexed[:-1] + b"\x00", "FormatError", "wrong footer magic")
    bad("bad-v2-1-trailing-garbage.lmz", stored + b"garbage\n", "FormatError", "bytes after the stream")
    bad("bad-v2-1-truncated-header.lmz", mixed[:hl - 2], "TruncatedError", "cut inside the header")
    bad("bad-v2-1-truncated-frame.lmz", mixed[:f[2] + 30], "TruncatedError", "cut inside a frame payload")
    bad("bad-v2-1-truncated-trailer.lmz", mixed[:-1], "TruncatedError", "cut inside the trailer")
    bad("bad-v2-1-truncated-footer.lmz", indexed[:-3], "TruncatedError", "cut inside the footer")
    bad("unsupported-v2-1-flags.lmz", v2_fix_header(bytearray(stored[:5] + b"\x80" + stored[6:shl]), shl)
        + stored[shl:], "UnsupportedError", "reserved flag bit set")
    bad("unsupported-v2-1-method.lmz", stored[:shl] + v2_frame(sh, 0, 3, hello, hello, varint.encode(12))
        + v2_trailer(1), "UnsupportedError", "frame method 3")
    chl = v2_header_len(coder1)
    bad("unsupported-v2-1-coder.lmz", v2_fix_header(bytearray(coder1[:6] + b"\x09" + coder1[7:chl]), chl)
        + coder1[chl:], "UnsupportedError", "coder id 9")
    bad("unsupported-v2-1-coder-version.lmz", v2_fix_header(bytearray(coder1[:7] + b"\x63" + coder1[8:chl]), chl)
        + coder1[chl:], "UnsupportedError", "coder 1 version 99")


def v3_vectors(good, bad, sha_m: bytes) -> None:
    """The version-3 vectors: version 2's layout, each frame ending in a store check after its check."""
    def s3(chunks, **kw):
        return stream(chunks, version=3, **kw)

    empty = s3([])
    mixed = s3([("stored", noise(200, b"a")), ("zstd", TEXT[:256]), ("stored", noise(77, b"b")),
                ("zstd", TEXT[256:400])])
    full = s3([("stored", noise(256, b"c")), ("stored", noise(256, b"d")), ("stored", noise(10, b"e"))])
    coder1 = s3([("stored", "héllo wörld\n".encode())], sha=sha_m, coder=(1, 2), params=b"\x80\x10")
    indexed = s3([("stored", noise(16, bytes([i]))) for i in range(lmz.INDEX_MIN_FRAMES + 6)], chunk_size=16)
    good("good-v3-0-empty.lmz", empty, "version 3: empty content, zero frames")
    good("good-v3-1-mixed.lmz", mixed, "version 3: stored and zstd frames interleaved (also a truncation base)")
    good("good-v3-1-full-chunk.lmz", full, "version 3: two frames of exactly the chunk size, then a short one")
    good("good-v3-1-coder-params.lmz", coder1, "version 3: coder 1 version 2 with a model hash and parameters, "
         "no lm frame")
    good("good-v3-1-indexed.lmz", indexed, f"version 3: {lmz.INDEX_MIN_FRAMES + 6} frames, so an index and a footer")
    good("good-v3-3-mixed-versions.lmz", mixed + stream([("stored", b"v1 stream\n")]) + s3([], chunk_size=64)
         + stream([("stored", b"v2 stream\n")], version=2), "version-3, -1, -3 (empty) and -2 streams back to back")
    f = [e.offset for e in lmz.read_index(io.BytesIO(mixed)).entries]
    fs = [e.frame_size for e in lmz.read_index(io.BytesIO(mixed)).entries]
    bad("bad-v3-1-payload-bitflip.lmz", flip(mixed, f[0] + 3 + 50, 1), "ChecksumError",
        "bit flipped in a stored payload: the store check fails before anything is decoded")
    bad("bad-v3-1-store-check-bitflip.lmz", flip(mixed, f[1] + fs[1] - 1, 2), "ChecksumError",
        "bit flipped in a frame's store check")
    bad("bad-v3-1-check-bitflip.lmz", flip(mixed, f[1] + fs[1] - 6, 5), "ChecksumError",
        "bit flipped in a frame's check (over position, header bytes and content)")
    bad("bad-v3-1-truncated-store-check.lmz", mixed[: f[1] + fs[1] - 2], "TruncatedError",
        "cut inside a frame's store check")
    bad("bad-v3-1-index-bitflip.lmz", flip(indexed, len(indexed) - 30, 0), "ChecksumError",
        "bit flipped in the index")


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    outdir.mkdir(parents=True, exist_ok=True)
    files, manifest = build()
    for name, data in files.items():
        (outdir / name).write_bytes(data)
    for v in manifest["vectors"]:
        v["size"] = len(files[v["file"]])
        v["sha256"] = hashlib.sha256(files[v["file"]]).hexdigest()
    old = outdir / "manifest.json"
    if old.exists():  # the lm vectors are spec/vectors/make_lm_vectors.py's (or frozen): keep their entries
        manifest["vectors"] += [v for v in json.loads(old.read_text())["vectors"] if v.get("needs_lm")]
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} vectors to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
