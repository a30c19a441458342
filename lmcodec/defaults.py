"""Defaults shared by the API, the CLI and the codec, and the levels -1 ... -9 (torch-free)."""
import lmz

SUFFIX = ".lmz"  # of compressed files (gzip's .gz); the command's -S changes it

# 8 KiB chunks: the measured rate-vs-chunk-size curve is in docs/results.md, "Choosing the chunk size".
DEFAULT_CHUNK_SIZE = 8192
# Chunks decoded side by side; the KV cache costs about 92 KiB per token per row (SmolLM2-135M).
DEFAULT_BATCH_SIZE = 4

# level -> (chunk size, batch size). Bigger chunks give the model more context (each token attends to at most the
# last 2,048 before it, so cost per token stops growing past ~8 KiB) and fewer frames to decode side by side: a
# better ratio, slower decoding of one file. chunk x batch, and so the KV-cache memory, stays <= 64 KiB of text.
PRESETS: dict[int, tuple[int, int]] = {
    1: (2 * 1024, 16),
    2: (3 * 1024, 10),
    3: (4 * 1024, 8),
    4: (5 * 1024, 6),
    5: (6 * 1024, 5),
    6: (8 * 1024, 4),   # the default
    7: (12 * 1024, 3),
    8: (32 * 1024, 2),
    9: (64 * 1024, 1),
}
DEFAULT_LEVEL = 6
FAST_ZSTD_LEVEL = 9  # binary runs at -1 to -3: >= 20 MB/s on every input
assert PRESETS[DEFAULT_LEVEL] == (DEFAULT_CHUNK_SIZE, DEFAULT_BATCH_SIZE)


def zstd_level(level: int) -> int:
    """zstd level for data the model does not code (binary runs). From -4, zstd -19: never larger than zstd -19
    alone, at its speed on data that compresses (2-4 MB/s here; incompressible data stays fast, see
    lmz.Writer.write_chunk); -1 to -3 keep every input at >= 20 MB/s with level 9."""
    return FAST_ZSTD_LEVEL if level <= 3 else lmz.DEFAULT_ZSTD_LEVEL
