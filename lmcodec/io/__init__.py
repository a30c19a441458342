"""I/O in the manner of the standard library's gzip and lzma: lmzfile (LmzFile, open, compress, decompress),
progress meters, and signals held while heavy modules import."""
