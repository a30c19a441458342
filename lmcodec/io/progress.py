"""A one-line progress meter for the command line: bytes done, speed, ETA, redrawn with '\\r' on stderr.

Silent unless enabled (the CLI enables it only when stderr is a terminal and -q is not given), and it draws
nothing during the first second, so short jobs print nothing at all. No dependencies.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Call update(done) as work advances (done: bytes of input consumed) and close() at the end."""

    DELAY = 1.0  # seconds before the first draw
    INTERVAL = 0.25  # seconds between redraws

    def __init__(self, label: str, total: int | None, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total if total else None
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self._next = self.start + self.DELAY
        self._width = 0
        # rate and time left count from the first update: loading (or converting) the model comes before it
        self._first: tuple[float, int] | None = None

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)
        if now < self._next:
            return
        self._next = now + self.INTERVAL
        elapsed = max(now - self.start, 1e-9)
        t0, d0 = self._first
        speed = (done - d0) / max(now - t0, 1e-9)
        parts = [f"{self.label}:"]
        if self.total:
            parts.append(f"{min(100.0, 100.0 * done / self.total):5.1f}%")
            parts.append(f"{human_bytes(done)} / {human_bytes(self.total)}")
        else:
            parts.append(human_bytes(done))
        parts.append(f"{human_bytes(speed)}/s")
        parts.append(_clock(elapsed))
        if self.total and speed > 0:
            parts.append(f"ETA {_clock(max(0.0, (self.total - done) / speed))}")
        self._draw(" ".join(parts))

    def _draw(self, line: str) -> None:
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self.enabled and self._width:
            try:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self._width = 0
        self.enabled = False
