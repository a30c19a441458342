"""Output files that appear only when complete (lmcodec.atomic.TempFile), with gzip's manners: an existing file
is replaced only with -f, the input's mode and times are kept, and non-regular destinations are written directly."""
from __future__ import annotations

import os
import stat
from typing import IO

from ..atomic import TempFile
from .messages import Skipped


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
        self.temp: TempFile | None = None
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
        self.temp = TempFile(path)
        self.fp = self.temp.file

    @property
    def tmp(self) -> str | None:
        """The temporary file's name while it is open."""
        return self.temp.path if self.temp is not None and self.temp.open else None

    def commit(self, force: bool, sync: bool = False) -> None:
        if self.temp is None:
            self.fp.flush()
            if sync:
                os.fsync(self.fp.fileno())
            self.fp.close()
            return
        self.fp.flush()
        if self.like is not None:  # else the mode the umask gave (atomic.TempFile)
            try:
                os.chmod(self.temp.path, stat.S_IMODE(self.like.st_mode))
                os.utime(self.temp.path, ns=(self.like.st_atime_ns, self.like.st_mtime_ns))
            except OSError:
                pass
        try:
            self.temp.commit(replace=force, sync=sync)
        except FileExistsError:
            raise _exists(self.path) from None

    def abort(self) -> None:
        if self.temp is not None:
            self.temp.discard()
        else:
            try:
                self.fp.close()
            except OSError:
                pass
