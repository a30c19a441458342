"""Output files that appear only when complete: written to a temporary file beside the destination, renamed
into place by commit(); any failure, Ctrl-C, SIGTERM or SIGHUP removes the temporary file."""
from __future__ import annotations

import os
import stat
import tempfile
from typing import IO

from .messages import Skipped

_TEMPS: set[str] = set()


def remove_temps() -> None:
    """Remove every temporary output still open (on interrupt or error)."""
    for t in list(_TEMPS):
        try:
            os.unlink(t)
        except OSError:
            pass
        _TEMPS.discard(t)


def _exists(path: str) -> Skipped:
    return Skipped(f"{path} already exists; not overwritten (use -f to overwrite it)")


class Output:
    """A destination file written through a temporary file beside it; commit() renames it into place.

    An existing non-regular destination (/dev/null, a FIFO) is written directly; an existing regular file
    is replaced only with force (without it: Skipped, exit status 2, as gzip).
    """

    def __init__(self, path: str, force: bool, like: os.stat_result | None) -> None:
        self.path = path
        self.like = like
        self.tmp: str | None = None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "output is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.fp: IO[bytes] = open(path, "wb")
            return
        if st is not None and not force:
            raise _exists(path)
        d, base = os.path.split(path)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=d or ".")
        _TEMPS.add(self.tmp)
        self.fp = os.fdopen(fd, "wb")

    def commit(self, force: bool, sync: bool = False) -> None:
        self.fp.flush()
        if sync:
            os.fsync(self.fp.fileno())
        self.fp.close()
        if self.tmp is None:
            return
        if self.like is not None:
            try:
                os.chmod(self.tmp, stat.S_IMODE(self.like.st_mode))
                os.utime(self.tmp, ns=(self.like.st_atime_ns, self.like.st_mtime_ns))
            except OSError:
                pass
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
        if force:
            os.replace(self.tmp, self.path)
        else:
            try:  # no clobbering, even of a file that appeared meanwhile
                os.link(self.tmp, self.path)
                os.unlink(self.tmp)
            except FileExistsError:
                raise _exists(self.path) from None
            except OSError:
                if os.path.lexists(self.path):
                    raise _exists(self.path) from None
                os.replace(self.tmp, self.path)
        if sync:  # the rename itself is durable before an input is removed
            try:
                dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass
        _TEMPS.discard(self.tmp)
        self.tmp = None

    def abort(self) -> None:
        try:
            self.fp.close()
        except OSError:
            pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            _TEMPS.discard(self.tmp)
            self.tmp = None
