"""Who may reach the worker, and for how long: the token's minimum length, the back-off after wrong tokens, and the
timeouts (arguments of ``serve``, else environment variables, else these defaults)."""

from __future__ import annotations

import math
import os
import threading
import time

from ..context import JobError

MIN_TOKEN_CHARS = 16  # a shorter shared token is refused: guessing it must stay out of reach
AUTH_TIMEOUT = 5.0  # seconds from connecting to a complete hello (INR_AUTH_TIMEOUT)
IDLE_TIMEOUT = 600.0  # seconds a connected client may send nothing while no job runs; 0: forever (INR_IDLE_TIMEOUT)
STALL_TIMEOUT = 120.0  # seconds a client may take no bytes of a frame the worker sends (INR_STALL_TIMEOUT)
BACKOFF_BASE = 0.5  # seconds an address waits after its first wrong token, doubling per failure (INR_AUTH_BACKOFF)
BACKOFF_MAX = 30.0  # and at most (INR_AUTH_BACKOFF_MAX)


def setting(value: float | None, variable: str, default: float) -> float:
    """A timeout: the argument, else the environment variable, else the default; never negative."""
    if value is None:
        text = os.environ.get(variable, "")
        try:
            value = float(text) if text else default
        except ValueError:
            raise JobError(f"{variable}={text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise JobError(f"{variable.lower().removeprefix('inr_')} must be a number of seconds >= 0, got {value!r}")
    return value


class Backoff:
    """Per address: after n wrong tokens in a row, no attempt is heard for base * 2**(n-1) seconds (at most ``cap``)."""

    MAX_ADDRESSES = 4096

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self.lock = threading.Lock()
        self.failures: dict[str, tuple[int, float]] = {}  # address -> (wrong tokens in a row, blocked until)

    def remaining(self, host: str) -> float:
        with self.lock:
            _, until = self.failures.get(host, (0, 0.0))
        return max(0.0, until - time.monotonic())

    def failed(self, host: str) -> float:
        now = time.monotonic()
        with self.lock:
            count = self.failures.get(host, (0, 0.0))[0] + 1
            delay = min(self.cap, self.base * 2 ** min(count - 1, 30))
            self.failures[host] = (count, now + delay)
            if len(self.failures) > self.MAX_ADDRESSES:  # forget the addresses whose wait is long over
                for old in [h for h, (_, until) in self.failures.items() if until + self.cap < now]:
                    del self.failures[old]
                while len(self.failures) > self.MAX_ADDRESSES:
                    del self.failures[next(iter(self.failures))]
        return delay

    def succeeded(self, host: str) -> None:
        with self.lock:
            self.failures.pop(host, None)
