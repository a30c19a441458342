"""Defaults shared by the API, the CLI and the codec (torch-free)."""

# 8 KiB chunks: the measured rate-vs-chunk-size curve is in README "Choosing the chunk size".
DEFAULT_CHUNK_SIZE = 8192
# Chunks decoded side by side; the KV cache costs about 92 KiB per token per row (SmolLM2-135M).
DEFAULT_BATCH_SIZE = 4
# zstd level of frames the model does not code (binary runs): never larger than zstd -19 alone. Level 19 moves at
# 2-4 MB/s on data that compresses (WAV, executables); data that does not is detected at level 1 and stays fast.
DEFAULT_ZSTD_LEVEL = 19
