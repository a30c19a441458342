"""The classical compressors lmcodec is measured against, through their Python bindings.

Levels are those of the command-line tools named. Checked on alice29.txt and its first 8 KiB against the
Debian CLIs (gzip 1.12, bzip2 1.0.8, xz 5.4.1, zstd 1.5.4): gzip -9n, bzip2 -9 and xz -9e give the same
sizes; zstd -19 and --ultra -22 --long are within 3 bytes. PNG (Pillow, optimize) and FLAC (libsndfile's
libFLAC, level 8) take the prepared modalities of modalities.py: 64-pixel-wide 8-bit grayscale rows and 8-bit
mono 16 kHz samples.

Chunked sizes count each compressor's framing once, as the paper does: every chunk but the first is charged
its size less `framing(blob)` (for stream compressors, the size of their output for empty input).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tools.modalities import AUDIO_RATE, PATCH_W


@dataclass(frozen=True)
class Compressor:
    name: str  # as on the command line, e.g. "xz -9e"
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    framing: Callable[[bytes], int]  # header/trailer bytes of one output, counted once when chunked
    impl: str  # what runs it, with versions


def _lib_version(name: str, symbol: str) -> str:
    """The version a system C library reports (the one Python's bz2/lzma modules link), or '?'."""
    import ctypes
    import ctypes.util

    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library(name)), symbol)
    except (OSError, AttributeError, TypeError):
        return "?"
    fn.restype = ctypes.c_char_p
    return fn().decode().split(",")[0]


def _stream(name: str, compress: Callable[[bytes], bytes], decompress: Callable[[bytes], bytes],
            impl: str) -> Compressor:
    empty = len(compress(b""))
    return Compressor(name, compress, decompress, lambda blob: empty, impl)


def general() -> list[Compressor]:
    """gzip -9, bzip2 -9, xz -9e, zstd -19, zstd --ultra -22 --long, brotli -q 11."""
    import brotli
    import bz2
    import gzip
    import lzma
    import zlib

    import zstandard as zstd

    z19 = zstd.ZstdCompressor(level=19, write_checksum=True)  # the CLI writes a checksum by default
    unz = zstd.ZstdDecompressor()

    def z22(data: bytes) -> bytes:
        # --long: long-distance matching, window 2^27 (adjusted down to the input's size, as the CLI does)
        p = zstd.ZstdCompressionParameters.from_level(22, source_size=len(data), enable_ldm=True,
                                                      write_checksum=True)
        return zstd.ZstdCompressor(compression_params=p).compress(data)

    zv = f"zstandard {zstd.__version__} (libzstd {'.'.join(map(str, zstd.ZSTD_VERSION))})"
    return [
        _stream("gzip -9", lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress,
                f"Python gzip (zlib {zlib.ZLIB_RUNTIME_VERSION}) level 9"),
        _stream("bzip2 -9", lambda d: bz2.compress(d, 9), bz2.decompress, f"Python bz2 (libbz2 {_lib_version('bz2', 'BZ2_bzlibVersion')}) level 9"),
        _stream("xz -9e", lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress,
                f"Python lzma (liblzma {_lib_version('lzma', 'lzma_version_string')}) preset 9 | EXTREME, CRC64"),
        _stream("zstd -19", z19.compress, unz.decompress, f"{zv} level 19, checksum"),
        _stream("zstd --ultra -22 --long", z22, unz.decompress,
                f"{zv} level 22, long-distance matching, checksum"),
        _stream("brotli -q 11", lambda d: brotli.compress(d, quality=11, lgwin=24), brotli.decompress,
                f"brotli {brotli.__version__} quality 11, window 2^24 (the CLI's largest default)"),
    ]


def _png_framing(blob: bytes) -> int:
    """Bytes of a PNG outside its IDAT chunks' data: signature, IHDR, IEND and 12 bytes per IDAT."""
    pos, data = 8, 0
    while pos < len(blob):
        n = int.from_bytes(blob[pos: pos + 4], "big")
        if blob[pos + 4: pos + 8] == b"IDAT":
            data += n
        pos += 12 + n
    return len(blob) - data


def png() -> Compressor:
    """8-bit grayscale PNG, PATCH_W pixels wide (a stack of 32x64 patches), Pillow's optimize (level 9)."""
    import PIL
    from PIL import Image

    def compress(data: bytes) -> bytes:
        out = io.BytesIO()
        Image.frombytes("L", (PATCH_W, len(data) // PATCH_W), data).save(out, "PNG", optimize=True)
        return out.getvalue()

    def decompress(blob: bytes) -> bytes:
        return Image.open(io.BytesIO(blob)).tobytes()

    return Compressor("PNG", compress, decompress, _png_framing, f"Pillow {PIL.__version__}, optimize=True")


def _flac_framing(blob: bytes) -> int:
    """Bytes of a FLAC file before its first audio frame: 'fLaC' and the metadata blocks."""
    pos = 4
    while True:
        last, n = blob[pos] & 0x80, int.from_bytes(blob[pos + 1: pos + 4], "big")
        pos += 4 + n
        if last:
            return pos


def flac() -> Compressor:
    """FLAC of 8-bit mono samples at AUDIO_RATE, highest compression level (8)."""
    import soundfile as sf

    def compress(data: bytes) -> bytes:
        s8 = np.frombuffer(data, np.uint8).astype(np.int16) - 128
        out = io.BytesIO()
        # int16 values s8 * 256 pass libsndfile's int16 -> PCM_S8 conversion exactly
        sf.write(out, s8 << 8, AUDIO_RATE, subtype="PCM_S8", format="FLAC", compression_level=1.0)
        return out.getvalue()

    def decompress(blob: bytes) -> bytes:
        x, _ = sf.read(io.BytesIO(blob), dtype="int16")
        return ((x >> 8) + 128).astype(np.uint8).tobytes()

    return Compressor("FLAC", compress, decompress, _flac_framing,
                      f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}, libFLAC), "
                      f"compression level 8, PCM_S8")


def for_modality(modality: str) -> list[Compressor]:
    """The general compressors, plus PNG for images and FLAC for audio."""
    return general() + {"image": [png()], "audio": [flac()]}.get(modality, [])


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i: i + size] for i in range(0, len(data), size)] or [b""]


def chunked_size(comp: Compressor, blobs: list[bytes]) -> int:
    """Total size of independently compressed chunks with the framing counted once."""
    return sum(len(b) - comp.framing(b) for b in blobs) + comp.framing(blobs[0])
