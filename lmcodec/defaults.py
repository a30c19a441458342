"""Defaults shared by the API, the CLI and the codec (torch-free)."""

# 8 KiB chunks: the measured rate-vs-chunk-size curve is in docs/results.md, "Choosing the chunk size".
DEFAULT_CHUNK_SIZE = 8192
# Chunks decoded side by side; the KV cache costs about 92 KiB per token per row (SmolLM2-135M).
DEFAULT_BATCH_SIZE = 4
