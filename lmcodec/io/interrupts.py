"""Signals held back while the numeric libraries import.

An interrupt (Ctrl-C, SIGTERM, SIGHUP) that lands inside `import torch` or `import numpy` leaves them half
initialised, and the clean-up that follows can crash the interpreter (measured: SIGINT 1 s into a compression
ended in SIGABRT or a RecursionError in numpy instead of exit status 130). Imports take a second or two, so the
signal is held until they finish, then delivered to the handler that was in place."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
