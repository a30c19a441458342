#!/usr/bin/env python3
"""Generate spec/vectors/*.lmz and manifest.json deterministically (container-only: no lm frames).

Usage: python tools/make_vectors.py [OUTDIR]   (default: spec/vectors next to this script's repo)
zstd frames come from the installed `zstandard`; another libzstd version may produce other bytes,
but the decoded content (recorded in the manifest) is the same.
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
from lmz.constants import FOOTER_SIZE, FRAME_HEADER_SIZE, HEADER_FIXED_SIZE

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog.\n" % i for i in range(20000))


def noise(n: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(n)


def stream(chunks: list[tuple[str, bytes]], *, chunk_size: int = 256, model_id: str = "",
           sha: bytes = bytes(32), coder: tuple[int, int] = (0, 0)) -> bytes:
    """One stream; chunks are (method name, raw) with method 'stored', 'zstd' or 'auto'."""
    out = io.BytesIO()
    with lmz.Writer(out, lmz.StreamHeader(model_id, sha, chunk_size, *coder)) as w:
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
    bad("unsupported-1-version.lmz", patch_header(stored, 4, b"\x02"), "UnsupportedError", "format version 2")
    bad("unsupported-1-flags.lmz", patch_header(stored, 5, b"\x80"), "UnsupportedError", "reserved flag bit set")
    bad("unsupported-1-method.lmz", patch_frame(stored, header_len(stored), 0, b"\x03"), "UnsupportedError",
        "frame method 3")
    bad("unsupported-1-coder.lmz", patch_header(stored, 6, b"\x09"), "UnsupportedError", "coder id 9")
    bad("unsupported-1-coder-version.lmz", patch_header(coder1, 7, b"\x63"), "UnsupportedError",
        "coder 1 version 99")
    manifest = {
        "format": "lmz", "format_version": 1,
        "generator": "tools/make_vectors.py",
        "libzstd": ".".join(map(str, __import__("zstandard").ZSTD_VERSION)),
        "decoding": "decode every vector with a container-only decoder (no lm decoder): good vectors must "
                    "decode to content_length bytes with content_sha256; bad/unsupported vectors must raise "
                    "`error` (a class of lmz.errors). Vectors with needs_lm=true need lmcodec's lm decoder.",
        "truncation_rule": {"file": "good-1-mixed.lmz", "prefix_length_0": "FormatError",
                            "prefix_length_1_to_len_minus_1": "TruncatedError",
                            "description": "every proper prefix of this single stream must fail: "
                                           "the empty prefix with FormatError, all others with TruncatedError"},
        "vectors": meta,
    }
    return files, manifest


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "spec" / "vectors"
    outdir.mkdir(parents=True, exist_ok=True)
    files, manifest = build()
    for name, data in files.items():
        (outdir / name).write_bytes(data)
    for v in manifest["vectors"]:
        v["size"] = len(files[v["file"]])
        v["sha256"] = hashlib.sha256(files[v["file"]]).hexdigest()
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} vectors to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
