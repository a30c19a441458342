"""Signals: held back while the numeric libraries import, and the command's exit on a termination signal.

An interrupt (Ctrl-C, SIGTERM, SIGHUP) that lands inside `import torch` or `import numpy` leaves them half
initialised, and the clean-up that follows can crash the interpreter (measured: SIGINT 1 s into a compression
ended in SIGABRT or a RecursionError in numpy instead of exit status 130). Imports take a second or two, so the
signal is held until they finish, then delivered to the handler that was in place."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_HELD = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


@contextmanager
def held_signals() -> Iterator[None]:
    """Run the body with SIGINT/SIGTERM/SIGHUP held (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in _HELD}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(arrived):
            signal.raise_signal(s)


_terminated: list[int] = []  # the termination signals received (terminate)


def terminate(signum: int, frame: Any) -> None:
    """The command's handler of SIGTERM and SIGHUP: exit with status 128 + signum, through SystemExit so that
    temporary outputs are removed on the way out. A signal that lands while a __del__ method runs (numba's and
    llvmlite's objects have them) raises there, where Python reports the exception and drops it, and the work
    would go on: so the signal is also recorded, and check() raises it again before anything is committed."""
    _terminated.append(signum)
    raise SystemExit(128 + signum)


def check() -> None:
    """Raise the SystemExit of a termination signal already received, if any (see terminate)."""
    if _terminated:
        raise SystemExit(128 + _terminated[0])


def quiet_unraisable(unraisable: Any) -> None:
    """sys.unraisablehook while terminate is the handler: a SystemExit that terminate raised inside a __del__ is
    dropped without a report (check() raises it again); anything else goes to Python's own hook."""
    if isinstance(unraisable.exc_value, SystemExit) and _terminated:
        return
    sys.__unraisablehook__(unraisable)


def carried(e: BaseException) -> KeyboardInterrupt | SystemExit | None:
    """The interrupt inside an error, if any: a signal's handler that raises while compiled code runs (numba's
    dispatcher calling back into Python) leaves its KeyboardInterrupt or SystemExit as the cause of a SystemError
    ("returned a result with an exception set"), which would otherwise be reported as a failure, not an
    interruption."""
    seen: set[int] = set()
    x = e.__cause__ or e.__context__
    while x is not None and id(x) not in seen:
        if isinstance(x, (KeyboardInterrupt, SystemExit)):
            return x
        seen.add(id(x))
        x = x.__cause__ or x.__context__
    return None
