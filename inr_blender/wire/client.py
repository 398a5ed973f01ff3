"""Backend client: start or reach a worker, submit jobs, stream progress, cancel.

Needs only the standard library and numpy (no bpy, no torch), so it is the same
code in Blender, in tests and in scripts. A local worker is a subprocess of a
configurable Python interpreter serving on 127.0.0.1 with a random token; a
remote worker is reached over TCP with the user's token.

What the worker sends is untrusted, as what the client sends is to the worker: frames are read under the
protocol's limits and each event is checked before a job sees it. A malformed frame, or any failure of the
connection, closes the connection and ends the running job with one clear line, never a hang.
"""

from __future__ import annotations

import itertools
import os
import queue
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..outputs import atomic_write
from .inbound import checked_event, checked_preview
from .protocol import (
    BUSY,
    CANCEL,
    CANCELLED,
    CHECKPOINT,
    CHECKPOINT_PATH,
    ERROR,
    HELLO,
    JOB,
    LOST,
    MAX_PREVIEW_BYTES,
    PREVIEW,
    PROGRESS,
    RESULT,
    RETURN_CHECKPOINT,
    SHUTDOWN,
    WELCOME,
    ConnectionClosed,
    ProtocolError,
    array_bytes,
    one_line,
    recv_arrays,
    recv_frame,
    recv_header,
    send_frame,
)

ADDON_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds inr_blender/
START_TIMEOUT = 120.0  # importing torch on a cold disk can take a while
CANCEL_GRACE = 5.0  # seconds a worker has to stop before a local one is killed


class BackendError(RuntimeError):
    """The backend is missing, crashed, refused us, or reported an error."""


@dataclass(frozen=True)
class BackendConfig:
    """Where the worker is: a local interpreter (``python``) or a remote ``host:port``."""

    mode: str = "PYTHON"  # 'PYTHON' (local subprocess) or 'REMOTE'
    python: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    token: str = ""
    log_dir: str = field(default_factory=tempfile.gettempdir)

    @property
    def checkpoints(self) -> CheckpointTransport:
        """How checkpoints cross to this worker: as files (local) or as bytes (remote)."""
        return CheckpointTransport(remote=self.mode == "REMOTE")


@dataclass
class JobOutcome:
    """How a job ended: ``status`` is 'finished', 'cancelled' or 'failed'."""

    status: str
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A field's weights as a job takes them: the file ``path``, or its bytes ``data`` for a remote worker."""

    path: str
    data: np.ndarray | None = None

    def job_input(self, name: str = CHECKPOINT, path_param: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The job params and arrays that hand it over: the array ``name``, or the param ``path_param``
        (default ``<name>_path``) naming the file."""
        if self.data is not None:
            return {}, {name: self.data}
        return {path_param or f"{name}_path": self.path}, {}


@dataclass(frozen=True)
class CheckpointTransport:
    """Whether checkpoints cross as paths or as bytes, decided once per backend: a worker on this machine reads
    and writes the files; a remote one gets their bytes and sends a new checkpoint's bytes back, written here."""

    remote: bool = False

    def read(self, path: str) -> Checkpoint:
        """The checkpoint file ``path`` as a job takes it."""
        return Checkpoint(path, np.fromfile(path, dtype=np.uint8) if self.remote else None)

    def output(self, path: str, param: str = CHECKPOINT_PATH) -> dict[str, Any]:
        """The job params that ask for a new checkpoint at ``path`` (the param ``param``): written there by a
        local worker, sent back by a remote one (see :meth:`store`)."""
        return {param: path, RETURN_CHECKPOINT: True} if self.remote else {param: path}

    @staticmethod
    def result(outcome: JobOutcome, path: str) -> Checkpoint:
        """The checkpoint a finished job made (asked for at ``path`` with :meth:`output`), for a following job."""
        return Checkpoint(path, outcome.arrays.get(CHECKPOINT))

    @staticmethod
    def store(outcome: JobOutcome, path: str) -> bool:
        """Write the checkpoint bytes a remote worker sent back to ``path``; True when the file is there."""
        data = outcome.arrays.get(CHECKPOINT)
        if data is not None:
            with atomic_write(path) as fh:
                fh.write(np.asarray(data, dtype=np.uint8).tobytes())
        return os.path.isfile(path)


class Job:
    """A submitted job. ``poll()`` never blocks; ``wait()`` does."""

    def __init__(self, backend: Backend, job_id: str, name: str) -> None:
        self.backend = backend
        self.job_id = job_id
        self.name = name
        self.events: queue.Queue = queue.Queue()
        self.progress: dict[str, Any] = {"step": 0, "total": 0, "loss": None, "message": "starting"}
        self.outcome: JobOutcome | None = None
        self.previews = 0  # preview frames received (each replaces the one before it)
        self._preview: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None
        self._cancel_sent_at: float | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def fraction(self) -> float:
        total = self.progress.get("total") or 0
        return min(1.0, self.progress.get("step", 0) / total) if total else 0.0

    def offer_preview(self, event: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Keep a checked preview until it is taken; a newer one replaces it (a slow client drops previews)."""
        self._preview = (event, arrays)
        self.previews += 1

    def take_preview(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The latest preview not taken yet (event: ``kind``, ``info``; arrays), or None."""
        preview, self._preview = self._preview, None
        return preview

    def poll(self) -> list[dict[str, Any]]:
        """Drain pending events; return the progress events seen. Sets ``outcome`` when done."""
        seen = []
        while True:
            try:
                header, arrays = self.events.get_nowait()
            except queue.Empty:
                break
            kind = header.get("type")
            if kind == PROGRESS:
                self.progress = {k: header.get(k) for k in ("step", "total", "loss", "message", "psnr")}
                seen.append(self.progress)
            elif kind == RESULT:
                self.outcome = JobOutcome("finished", header.get("params") or {}, arrays)
            elif kind == ERROR:
                status = "cancelled" if header.get("kind") == CANCELLED else "failed"
                self.outcome = JobOutcome(status, message=header.get("message", "the backend reported an error"))
            elif kind == LOST:
                status = "cancelled" if self._cancel_sent_at and not header.get("failed") else "failed"
                self.outcome = JobOutcome(status, message=header["message"])
        if self.outcome is None and self.backend.reader_done and self.events.empty():
            # the connection ended without a word for this job (it was submitted as the reader stopped)
            status = "cancelled" if self._cancel_sent_at else "failed"
            self.outcome = JobOutcome(status, message=self.backend.lost_reason or "lost the connection to the backend worker")
        if self.outcome is None and self._cancel_sent_at is not None:
            if time.monotonic() - self._cancel_sent_at > CANCEL_GRACE:
                self.backend.kill("the job did not stop in time after Cancel")
        return seen

    def cancel(self) -> None:
        """Ask the worker to stop; a local worker that does not stop in time is killed."""
        if self.outcome is not None or self._cancel_sent_at is not None:
            return
        self._cancel_sent_at = time.monotonic()
        try:
            self.backend.send({"type": CANCEL, "job_id": self.job_id})
        except BackendError:
            pass

    def wait(
        self,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.05,
        on_preview: Callable[[dict[str, Any], dict[str, np.ndarray]], None] | None = None,
    ) -> JobOutcome:
        """Block until the job ends, calling ``on_progress`` for each progress event and ``on_preview`` with the
        latest preview, when one came."""
        while True:
            for event in self.poll():
                if on_progress is not None:
                    on_progress(event)
            if on_preview is not None and self.outcome is None:
                preview = self.take_preview()
                if preview is not None:
                    on_preview(*preview)
            if self.outcome is not None:
                return self.outcome
            time.sleep(interval)


class Backend:
    """One connection to a worker (and, when local, the worker process itself)."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.process: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: dict[str, Any] = {}
        self._send_lock = threading.Lock()
        self._current: Job | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self.reader_done = False  # the connection's reader has stopped: no more events will come
        self.lost_reason = ""  # why, when it was not the worker's ordinary end
        self._log_path = ""

    # -- life cycle -----------------------------------------------------------------
    def start(self) -> Backend:
        """Start the local worker or connect to the remote one, then authenticate."""
        if self.config.mode == "REMOTE":
            token = self.config.token
            self.sock = self._connect(self.config.host, int(self.config.port), timeout=10.0)
        else:
            token = secrets.token_hex(16)
            port = self._spawn(token)
            self.sock = self._connect("127.0.0.1", port, timeout=10.0)
        self._hello(token)
        threading.Thread(target=self._read_loop, daemon=True).start()
        return self

    def _spawn(self, token: str) -> int:
        python = self.config.python
        if not python:
            raise BackendError("no backend Python is set: choose one in the add-on preferences or set up the managed backend")
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise BackendError(f"backend Python not found or not executable: {python}")
        os.makedirs(self.config.log_dir, exist_ok=True)
        port_file = os.path.join(self.config.log_dir, f"worker-{os.getpid()}-{secrets.token_hex(4)}.port")
        self._log_path = os.path.join(self.config.log_dir, "worker.log")
        # a local worker keeps an idle Blender connected as long as it likes (--once: it ends with the connection)
        env = dict(os.environ, INR_TOKEN=token, INR_IDLE_TIMEOUT="0", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = ADDON_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [python, "-m", "inr_blender", "serve", "--local", "--host", "127.0.0.1", "--port", "0", "--once", "--port-file", port_file]
        with open(self._log_path, "w") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ADDON_ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as fh:
                    port = int(fh.read().strip())
                os.remove(port_file)
                return port
            if self.process.poll() is not None:
                raise BackendError(f"the backend worker did not start ({python}): {self._log_tail()}")
            time.sleep(0.05)
        self.kill("start timed out")
        raise BackendError(f"the backend worker did not start within {START_TIMEOUT:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, errors="replace") as fh:
                lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"

    @staticmethod
    def _connect(host: str, port: int, timeout: float) -> socket.socket:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise BackendError(f"cannot reach the backend worker at {host}:{port}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _hello(self, token: str) -> None:
        assert self.sock is not None
        self.sock.settimeout(START_TIMEOUT)
        try:
            send_frame(self.sock, {"type": HELLO, "token": token})
            header, _ = recv_frame(self.sock, deadline=time.monotonic() + START_TIMEOUT)
        except (ProtocolError, OSError) as exc:
            self.close()
            raise BackendError(f"the backend worker closed the connection during the handshake: {one_line(exc, 200)}") from None
        if header["type"] != WELCOME:
            self.close()
            if header["type"] == ERROR and header.get("kind") == BUSY:
                raise BackendError("the backend worker is busy with another client: try again when its job is done")
            reason = header.get("message") if isinstance(header.get("message"), str) else header["type"]
            raise BackendError(f"the backend worker refused the connection: {one_line(reason, 200)}")
        self.sock.settimeout(None)
        self.info = header

    @property
    def alive(self) -> bool:
        if self._closed or self.reader_done or self.sock is None:
            return False
        return self.process is None or self.process.poll() is None

    def kill(self, reason: str = "") -> None:
        """Stop the worker now (local) or drop the connection (remote)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.close()

    def close(self) -> None:
        """Ask a local worker to exit and release the connection."""
        if self._closed:
            return
        self._closed = True
        if self.sock is not None:
            try:
                if self.process is not None and self.process.poll() is None:
                    self.sock.settimeout(2.0)
                    send_frame(self.sock, {"type": SHUTDOWN})
            except OSError:
                pass
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    # -- jobs -----------------------------------------------------------------------
    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        sock = self.sock
        if sock is None or not self.alive:
            raise BackendError("the backend worker is not running")
        try:
            with self._send_lock:
                send_frame(sock, header, arrays)
        except OSError as exc:
            raise BackendError(f"lost the connection to the backend worker: {exc}") from None

    def submit(self, name: str, params: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None) -> Job:
        """Send a job; the worker runs one at a time."""
        if self._current is not None and not self._current.done:
            raise BackendError("the backend is busy with another job")
        job = Job(self, str(next(self._ids)), name)
        self._current = job
        self.send({"type": JOB, "job_id": job.job_id, "job": name, "params": params or {}}, arrays)
        return job

    def run(self, name: str, params: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None) -> JobOutcome:
        """Submit and wait; raise :class:`BackendError` unless the job finished."""
        outcome = self.submit(name, params, arrays).wait()
        if outcome.status != "finished":
            raise BackendError(outcome.message)
        return outcome

    def _read_loop(self) -> None:
        sock = self.sock
        assert sock is not None  # started by start() once the connection is made
        reason = ""
        try:
            while True:
                header = recv_header(sock)
                if header["type"] == PREVIEW and array_bytes(header) > MAX_PREVIEW_BYTES:
                    raise ProtocolError(f"a preview of {array_bytes(header)} bytes (the limit is {MAX_PREVIEW_BYTES})")
                arrays = recv_arrays(sock, header)
                job = self._current
                if job is not None and str(header.get("job_id")) == job.job_id:
                    event = checked_event(header)
                    if event is not None and event["type"] == PREVIEW:
                        job.offer_preview(event, checked_preview(event["kind"], arrays))
                    elif event is not None:
                        job.events.put((event, arrays))
        except (ConnectionClosed, OSError):
            pass
        except ProtocolError as exc:
            reason = f"the backend worker sent a malformed frame ({one_line(exc, 200)}); the connection was closed"
        except Exception as exc:  # whatever a frame did, the job ends with a line, not with a dead thread
            reason = f"reading from the backend worker failed ({type(exc).__name__}: {one_line(exc, 200)}); the connection was closed"
        if reason:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.lost_reason = reason
        job = self._current
        if job is not None and not job.done:
            job.events.put(({"type": LOST, "message": reason or self._lost_message(), "failed": bool(reason)}, {}))
        self.reader_done = True

    def _lost_message(self) -> str:
        if self.process is not None:
            try:
                code = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            return f"the backend worker stopped during the job (exit code {code}); see {self._log_path}"
        return "lost the connection to the remote backend worker during the job"


_backend: Backend | None = None
_backend_lock = threading.Lock()


def get_backend(config: BackendConfig) -> Backend:
    """The shared backend for ``config``, (re)started when needed."""
    global _backend
    with _backend_lock:
        if _backend is not None and (_backend.config != config or not _backend.alive):
            _backend.kill()
            _backend = None
        if _backend is None:
            _backend = Backend(config).start()
        return _backend


def current_backend() -> Backend | None:
    """The running shared backend, if any (does not start one)."""
    return _backend


def shutdown_backend() -> None:
    """Stop the shared backend (called on unregister and on exit)."""
    global _backend
    with _backend_lock:
        if _backend is not None:
            _backend.close()
            _backend = None
