"""Exception hierarchy. Every error the decoder raises on bad input is an LmzError."""

from __future__ import annotations


class LmzError(ValueError):
    """Base class: the input is not a valid, supported lmz stream (or an argument is invalid)."""


class FormatError(LmzError):
    """The bytes violate the format (bad magic, inconsistent sizes, trailing garbage, ...)."""


class ChecksumError(LmzError):
    """A CRC-32 or BLAKE2b checksum does not match: the data is corrupt."""


class TruncatedError(LmzError):
    """The input ends before the stream does."""


class LimitError(LmzError):
    """A declared size exceeds a decoder limit (MAX_CHUNK, MAX_FRAME, MAX_FRAMES)."""


class UnsupportedError(LmzError):
    """Valid framing, but an unknown version, flag, method or coder; or no lm decoder given."""
