"""The command line's progress display, fed by a job's progress events (``JobContext(send=...)``). Torch-free.

An event is ``{"step", "total", "loss", "message"}`` (and ``"psnr"`` from a radiance fit). A phase is a run of events
with the same message (numbers aside) and total. On a terminal one line per phase is redrawn in place (carriage
return): the message, a bar, step/total, steps per second, the time left, and the loss (a radiance fit's PSNR);
a new phase starts a new line. Elsewhere (a pipe, a log file) a phase prints plain lines: at its start, every
``interval`` seconds, and at its end. A phase of one step (``total`` 1, e.g. "estimating point spacing") is its
message alone.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

_NUMBERS = re.compile(r"\d+")
_RATE_WINDOW = 10.0  # seconds of recent events the rate is measured over


def duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def rate_text(rate: float) -> str:
    """Steps per second with three significant figures or so, never in exponent form."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


class ProgressBar:
    """Call it with each progress event; :meth:`close` ends the line in place. :meth:`note` prints a line of its own.

    ``tty`` (default: whether ``stream`` is a terminal) picks the in-place bar; ``interval`` is the seconds between
    two plain lines of a phase; ``width`` the terminal's columns (default: asked when drawing).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = 5.0,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.width = width
        self.clock = clock
        self._phase: tuple[str, int] | None = None
        self._started = 0.0
        self._recent: deque[tuple[float, int]] = deque()
        self._printed = 0.0  # when the last plain line was printed
        self._shown = 0  # length of the line drawn in place (0: none)

    def __call__(self, event: dict[str, Any]) -> None:
        step, total, message = int(event["step"]), int(event["total"]), str(event.get("message") or "")
        now = self.clock()
        phase = (_NUMBERS.sub("#", message), total)
        new = phase != self._phase or bool(self._recent) and step < self._recent[-1][1]  # another phase, or a restart
        if new:
            self._end_line()
            self._phase, self._started, self._printed = phase, now, now
            self._recent.clear()
        self._recent.append((now, step))
        while len(self._recent) > 2 and now - self._recent[1][0] >= _RATE_WINDOW:
            self._recent.popleft()
        if total <= 1:  # a one-step phase: its message alone, as it starts
            if new and message and step == 0:
                self._write_line(message)
            return
        message = message or "working"
        status = self.status(step, total, event.get("loss"), event.get("psnr"), now)
        if self.tty:
            self._draw(message, status, step / total)
        elif new or step >= total or now - self._printed >= self.interval:
            self._printed = now
            self._write_line(f"{message}: {status}")

    def rate(self) -> float | None:
        """Steps per second over the last few seconds of the phase (None before two events)."""
        (t0, s0), (t1, s1) = self._recent[0], self._recent[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def status(self, step: int, total: int, loss: float | None, psnr: float | None, now: float) -> str:
        """What follows the message: step/total, the rate, the time left (or taken), the loss or PSNR."""
        parts = [f"{step}/{total} ({100 * step // total}%)"]
        rate = self.rate()
        if rate is not None:
            parts.append(f"{rate_text(rate)} steps/s")
        if step >= total:
            parts.append(f"took {duration(now - self._started)}")
        elif rate is not None:
            parts.append(f"ETA {duration((total - step) / rate)}")
        if psnr is not None:
            parts.append(f"PSNR {psnr:.2f} dB")
        elif loss is not None:
            parts.append(f"loss {loss:.4g}")
        return ", ".join(parts)

    def note(self, text: str, stream: TextIO | None = None) -> None:
        """Print ``text`` on a line of its own (to ``stream``, default the bar's), below a line drawn in place."""
        self._end_line()
        print(text, file=stream or self.stream, flush=True)

    def close(self) -> None:
        """End the line drawn in place, if any (before the result is printed)."""
        self._end_line()

    def _draw(self, message: str, status: str, fraction: float) -> None:
        columns = (self.width or shutil.get_terminal_size((80, 24)).columns) - 1  # the last column would wrap
        cells = min(30, columns - len(message) - len(status) - 4)
        if cells >= 10:
            filled = int(cells * min(max(fraction, 0.0), 1.0))
            line = f"{message} [{'#' * filled}{'-' * (cells - filled)}] {status}"
        else:
            line = f"{message}: {status}"[:columns]
        self.stream.write("\r" + line.ljust(self._shown))
        self.stream.flush()
        self._shown = len(line)

    def _write_line(self, text: str) -> None:
        self._end_line()
        print(text, file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0
