"""lmcodec's errors; the container's (lmz.LmzError and subclasses, all ValueError) are re-exported here."""
from lmz import ChecksumError, FormatError, LimitError, LmzError, TruncatedError, UnsupportedError


class ModelError(OSError):
    """A model is missing, unreadable, unsupported, or not the one a stream needs."""


__all__ = ["ChecksumError", "FormatError", "LimitError", "LmzError", "ModelError", "TruncatedError",
           "UnsupportedError"]
