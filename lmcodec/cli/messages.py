"""One-line messages on standard error, gzip style: `lmcodec: FILE: message`."""
from __future__ import annotations

import sys

import lmz

from ..errors import ModelError

PROG = "lmcodec"


class Say:
    """Errors (shown unless -qq), warnings (unless -q) and information (with -v)."""

    verbose = 0
    quiet = 0

    def error(self, where: str | None, msg: str) -> None:
        if self.quiet < 2:
            self.line(where, msg)

    def warn(self, where: str | None, msg: str) -> None:
        if self.quiet < 1:
            self.line(where, msg)

    def info(self, where: str | None, msg: str) -> None:
        if self.verbose > 0 and self.quiet == 0:
            self.line(where, msg)

    @staticmethod
    def line(where: str | None, msg: str) -> None:
        msg = " ".join(str(msg).split()) or "error"
        try:
            sys.stderr.write(f"{PROG}: {where}: {msg}\n" if where else f"{PROG}: {msg}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


say = Say()


def describe(e: BaseException) -> str:
    """One line for an exception: the message users need, never a traceback."""
    if isinstance(e, lmz.FormatError) and "not an lmz stream" in str(e):
        return "not an lmz file"
    if isinstance(e, (lmz.LmzError, ModelError)):
        return str(e)
    if isinstance(e, OSError):
        return e.strerror or str(e)  # the file name is already in front of the message
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, ValueError):
        return str(e)
    return f"{type(e).__name__}: {e}"


class Skipped(Exception):
    """A file left alone with a warning; status is the exit status it earns (gzip: 2, or 0 for some); silent:
    said only with -v (gzip -r passes such files over without a word)."""

    def __init__(self, msg: str, status: int = 2, silent: bool = False) -> None:
        super().__init__(msg)
        self.status = status
        self.silent = silent
