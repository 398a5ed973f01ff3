"""The worker's sender of frames that may be dropped: only the latest one offered is ever sent (live previews)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestSender:
    """Sends the latest frame offered (a running job's preview) from a thread of its own: a newer one replaces one not
    sent yet, so a slow client costs the job nothing (frames are dropped, never queued). Errors of the kinds
    ``ignore`` lose that frame only."""

    def __init__(self, send: Callable[[dict[str, Any], dict], None], ignore: tuple[type[BaseException], ...]) -> None:
        self._send, self._ignore = send, ignore
        self._ready = threading.Condition()
        self._item: tuple[dict[str, Any], dict] | None = None
        self._closed = False
        self.dropped = 0
        threading.Thread(target=self._run, daemon=True).start()

    def offer(self, header: dict[str, Any], arrays: dict) -> None:
        with self._ready:
            if self._item is not None:
                self.dropped += 1
            self._item = (header, arrays)
            self._ready.notify()

    def clear(self) -> None:
        """Forget a preview not sent yet (its job is over)."""
        with self._ready:
            self._item = None

    def close(self) -> None:
        with self._ready:
            self._closed, self._item = True, None
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._item is None and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                item, self._item = self._item, None
            assert item is not None  # the wait ends on an item or on close
            header, arrays = item
            try:
                self._send(header, arrays)
            except self._ignore:
                pass
