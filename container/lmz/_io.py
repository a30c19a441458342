"""Exact reads with offset tracking over any file-like object (pipes included)."""

from __future__ import annotations

TYPE_CHECKING = False  # avoids importing typing at run time
if TYPE_CHECKING:
    from typing import BinaryIO

from .errors import TruncatedError

_PIECE = 1 << 20  # never ask read() for more than this at once: memory follows real data


class Source:
    """Reads forward from fileobj, counting bytes; never seeks, but in skip() (seekable files only)."""

    def __init__(self, fileobj: BinaryIO, offset: int = 0) -> None:
        self._f = fileobj
        self.offset = offset

    def read_upto(self, n: int) -> bytes:
        """Up to n bytes; fewer only at end of input."""
        parts: list[bytes] = []
        remaining = n
        while remaining > 0:
            piece = self._f.read(min(remaining, _PIECE))
            if not piece:
                break
            parts.append(piece)
            remaining -= len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.offset += len(data)
        return data

    def read_exact(self, n: int, what: str) -> bytes:
        start = self.offset
        data = self.read_upto(n)
        if len(data) != n:
            raise TruncatedError(f"offset {start}: input ends inside {what} ({len(data)} of {n} bytes)")
        return data

    def skip(self, n: int, what: str) -> None:
        """Move n bytes forward without reading them (the file must be seekable); TruncatedError past the end."""
        start = self.offset
        here = self._f.tell()
        end = self._f.seek(0, 2)
        if end - here < n:
            self._f.seek(end)
            self.offset += end - here
            raise TruncatedError(f"offset {start}: input ends inside {what} ({end - here} of {n} bytes)")
        self._f.seek(here + n)
        self.offset += n
