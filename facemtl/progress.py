"""A progress bar on stderr for long commands: count, bar, rate and ETA, redrawn in place.

Drawn only when stderr is a terminal, so logs, pipes and tests get no control characters; at
most every ``min_interval`` seconds, so it costs nothing next to the work. No dependency.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Optional


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``with Progress(total, "predict", unit="img") as bar: ... bar.update(1, note=name)``.

    ``total`` None: a count and rate without bar or ETA. ``stream`` defaults to stderr;
    ``enabled`` None means "when the stream is a terminal".
    """

    def __init__(self, total: Optional[int], label: str, unit: str = "it", stream: Optional[IO[str]] = None,
                 enabled: Optional[bool] = None, min_interval: float = 0.2, width: int = 24):
        self.total, self.label, self.unit, self.width = total, label, unit, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.min_interval = min_interval
        self.done, self.start, self.last = 0, time.monotonic(), float("-inf")
        self.note = ""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more items done (``note``: e.g. the current file name, shown last)."""
        self.done += n
        self.note = note
        now = time.monotonic()
        if self.enabled and (now - self.last >= self.min_interval or self.done == self.total):
            self.last = now
            self.stream.write("\r\x1b[K" + self.line(now - self.start))
            self.stream.flush()

    def line(self, elapsed: float) -> str:
        """The text of the bar after ``elapsed`` seconds."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [self.label]
        if self.total:
            filled = min(self.width, self.width * self.done // self.total)
            parts += [f"{self.done}/{self.total}", "[" + "#" * filled + "." * (self.width - filled) + "]"]
            eta = (self.total - self.done) / rate if rate > 0 else None
            parts += [f"{rate:.1f} {self.unit}/s", f"ETA {_clock(eta) if eta is not None else '?'}"]
        else:
            parts += [str(self.done), f"{rate:.1f} {self.unit}/s", f"{_clock(elapsed)} elapsed"]
        if self.note:
            parts.append(self.note)
        return " ".join(parts)[:160]

    def close(self) -> None:
        """Clear the bar's line, so that what follows starts on a clean line."""
        if self.enabled and self.last > float("-inf"):
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.last = float("-inf")


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False
