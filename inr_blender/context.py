"""What a running job sees of the worker: progress reporting, previews, cancellation, and a request to stop early."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar


class Cancelled(Exception):
    """Raised inside a job when the client asked to cancel it."""


class JobError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


if TYPE_CHECKING:
    from .sandbox import Sandbox

T = TypeVar("T")


# A preview as a job hands it over: its kind ("mesh", "image"), arrays and a small JSON-able dict of facts.
PreviewSink = Callable[[str, dict[str, Any], dict[str, Any]], None]


class JobContext:
    """Passed to every job: ``progress()`` reports and is also the cancellation point.

    ``send`` receives progress dicts (the worker turns them into frames). Progress
    is rate-limited to ``min_interval`` seconds, except the first and last step.
    A stop request (:meth:`request_stop`: the command line's first Ctrl-C) is not a cancel: a training loop
    that asks :meth:`stop_requested` ends at that step and the job goes on to keep what it has.
    ``preview`` receives a fit's previews (the worker's drops them when the client is slow;
    the CLI's writes files); without one, fits skip making them (:attr:`wants_preview`).
    """

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None] | None = None,
        cancel_event: threading.Event | None = None,
        min_interval: float = 0.1,
        verbose: bool = False,
        sandbox: Sandbox | None = None,
        preview: PreviewSink | None = None,
    ) -> None:
        self.sandbox = sandbox  # where a remote worker's jobs may read and write (None: anywhere)
        self._send = send
        self._preview = preview
        self._cancel = cancel_event or threading.Event()
        self._min_interval = min_interval
        self._last = 0.0
        self._verbose = verbose
        self._stop = threading.Event()
        self.stoppable = False  # a training loop asked stop_requested(): a stop request now keeps a fit

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def wants_preview(self) -> bool:
        """Whether previews go anywhere (a fit makes none otherwise)."""
        return self._preview is not None

    def preview(self, kind: str, arrays: dict[str, Any], info: dict[str, Any]) -> None:
        """Hand over a preview (``kind`` "mesh": local-frame ``vertices``, ``faces``; "image": ``rgb``) with ``info``
        (step, total, the field's centre and scale, ...); honours cancel."""
        self.check_cancel()
        if self._preview is not None:
            self._preview(kind, arrays, info)

    def quiet(self) -> JobContext:
        """A context that shares this one's cancellation and sandbox but reports nothing: for work done on the side
        (a preview's extraction), whose progress would read as the job's."""
        return JobContext(cancel_event=self._cancel, sandbox=self.sandbox)

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")

    def request_stop(self) -> None:
        """Ask the job to end its training at the next step and keep the fit (unlike a cancel, which discards it)."""
        self._stop.set()

    def stop_requested(self) -> bool:
        """Whether a stop was requested; a training loop asks once per step, which makes the job :attr:`stoppable`."""
        self.stoppable = True
        return self._stop.is_set()

    def run_cancellable(self, fn: Callable[[], T], poll: float = 0.1) -> T:
        """``fn()`` (a call that cannot look at Cancel itself, e.g. a solver) in a thread, checking Cancel every
        ``poll`` seconds meanwhile: a cancel (or the client's disconnect) raises :class:`Cancelled` at once, and the
        thread ends on its own in the background."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(poll)
            self.check_cancel()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def report_due(self, step: int, total: int) -> bool:
        """Whether :meth:`progress` would send a report of ``step`` of ``total`` now (the first and last step, or
        ``min_interval`` since the last): ask it before reading a value back from a GPU just to report it."""
        return step in (0, total) or time.monotonic() - self._last >= self._min_interval

    def progress(self, step: int, total: int, loss: float | None = None, message: str = "", psnr: float | None = None) -> None:
        """Report progress (step of total, current loss, a short message, a radiance field's PSNR) and honour cancel."""
        self.check_cancel()
        if not self.report_due(step, total):
            return
        self._last = time.monotonic()
        event = {"step": int(step), "total": int(total), "loss": None if loss is None else float(loss), "message": message}
        if psnr is not None:
            event["psnr"] = float(psnr)
        if self._verbose:
            loss_txt = "" if loss is None else f" loss {loss:.5g}"
            print(f"[{step}/{total}]{loss_txt} {message}", flush=True)
        if self._send is not None:
            self._send(event)
