"""Files that appear only when complete: written under a temporary name beside the destination, renamed into place
by commit(), removed by discard() or on any failure. Every file lmcodec writes to a local path goes through
TempFile: the command's outputs, LmzFile, converted models, the model catalogue. remove_all() removes those still
open, for a signal handler: a name is tracked before its file is created, so that no moment leaves a file the
handler does not know. (Outputs to other fsspec filesystems, on the Dask path, have the same shape on the
filesystem's own operations: integrations/distributed.py.)"""
from __future__ import annotations

import os
import secrets
from typing import IO, Any

_OPEN: set[str] = set()  # the temporary files remove_all() removes, each added before it is created


def remove_all() -> None:
    """Remove every temporary file still open (after an interrupt or an error)."""
    for path in list(_OPEN):
        try:
            os.unlink(path)
        except OSError:
            pass
        _OPEN.discard(path)


def _sync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class TempFile:
    """A temporary file beside `dest`, open as self.file (mode "wb" or "w"); self.path is its name."""

    def __init__(self, dest: str | os.PathLike, mode: str = "wb") -> None:
        self.dest = os.fspath(dest)
        d, base = os.path.split(self.dest)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        while True:
            self.path = os.path.join(d or ".", f".{base}.{secrets.token_hex(6)}.tmp")
            _OPEN.add(self.path)
            try:
                fd = os.open(self.path, flags, 0o666)  # the umask applies, as for open()
                break
            except FileExistsError:
                _OPEN.discard(self.path)
        self.file: IO[Any] = os.fdopen(fd, mode)

    @property
    def open(self) -> bool:
        return self.path in _OPEN

    def commit(self, dest: str | os.PathLike | None = None, *, replace: bool = True, sync: bool = False) -> None:
        """Close and rename into place at dest (default: the destination it was made for). replace=False never
        replaces a file, even one that appeared meanwhile (FileExistsError); sync makes the content and the
        rename durable first."""
        dest = self.dest if dest is None else os.fspath(dest)
        if not self.file.closed:  # (a caller that writes by name closes the file first)
            self.file.flush()
            if sync:
                os.fsync(self.file.fileno())
            self.file.close()
        if replace:
            os.replace(self.path, dest)
        else:
            try:
                os.link(self.path, dest)
                os.unlink(self.path)
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links
                if os.path.lexists(dest):
                    raise FileExistsError(17, f"{dest} exists") from None
                os.replace(self.path, dest)
        if sync:
            _sync_dir(dest)
        _OPEN.discard(self.path)

    def discard(self) -> None:
        """Close and remove the temporary file (nothing appears)."""
        try:
            self.file.close()
        except OSError:
            pass
        if self.open:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            _OPEN.discard(self.path)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
