"""lmcodec: lossless compression with a language model in exact integer arithmetic.

    import lmcodec
    blob = lmcodec.compress(b"some text")
    assert lmcodec.decompress(blob) == b"some text"
    with lmcodec.open("notes.txt.lmz", "wt") as f: f.write("hello")
    fast = lmcodec.Settings(level=1, threads=2)    # held and reused: fast.compress(data), fast.open(...)
"""
from .io.compressor import LmzCompressor, LmzDecompressor
from .io.lmzfile import LmzFile, compress, decompress, open
from .io.settings import Settings
from .errors import (ChecksumError, DamageWarning, FormatError, LimitError, LmzError, ModelError, TruncatedError,
                     UnsupportedError)

__version__ = "0.4.0"

__all__ = ["Settings", "LmzFile", "LmzCompressor", "LmzDecompressor", "open", "compress", "decompress", "LmzError",
           "FormatError", "ChecksumError", "TruncatedError", "LimitError", "UnsupportedError", "ModelError",
           "DamageWarning", "__version__"]
