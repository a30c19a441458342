"""lmcodec's errors; the container's (lmz.LmzError and subclasses, all ValueError) are re-exported here."""
from lmz import ChecksumError, FormatError, LimitError, LmzError, TruncatedError, UnsupportedError


class ModelError(OSError):
    """A model is missing, unreadable, unsupported, or not the one a stream needs."""


class DamageWarning(UserWarning):
    """Reading with errors="salvage": a range of content was lost to damage (the message names it; the LmzFile's
    `damage` list holds each as an lmz.Damage)."""


__all__ = ["ChecksumError", "DamageWarning", "FormatError", "LimitError", "LmzError", "ModelError",
           "TruncatedError", "UnsupportedError"]
