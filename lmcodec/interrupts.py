"""Signals: held back while the numeric libraries import, and interrupts that compiled code wrapped.

An interrupt (Ctrl-C, SIGTERM, SIGHUP) that lands inside `import torch` or `import numpy` leaves them half
initialised, and the clean-up that follows can crash the interpreter (measured: SIGINT 1 s into a compression
ended in SIGABRT or a RecursionError in numpy instead of exit status 130). Imports take a second or two, so the
signal is held until they finish, then delivered to the handler that was in place. (The command exits from its
own handler, lmcodec.cli._exit_at_once; what is held here matters where an interrupt raises, as Python's
KeyboardInterrupt does in a program that imports lmcodec.)"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# the interrupts this module holds and the command exits on
SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


@contextmanager
def held_signals() -> Iterator[None]:
    """Run the body with SIGINT/SIGTERM/SIGHUP held (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(arrived):
            signal.raise_signal(s)


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
