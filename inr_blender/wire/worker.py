"""The job loop: a TCP server that runs one job at a time and streams progress.

Each connection starts with a ``hello`` frame carrying the shared token. A wrong
token is refused before any payload is read. After that the client sends
``job`` frames and may send ``cancel`` at any time; the worker answers with
``progress`` frames and one ``result`` or ``error`` frame per job.

The same server is the local worker (a subprocess on 127.0.0.1 with a random
token) and the remote worker (``python -m inr_blender serve``).
"""

from __future__ import annotations

import hmac
import os
import queue
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .. import __version__
from ..context import Cancelled, JobContext, JobError
from ..sandbox import Sandbox
from .protocol import (
    AUTH,
    BAD_MESSAGE,
    BYE,
    CANCEL,
    CANCELLED,
    ERROR,
    HELLO,
    INPUT,
    INTERNAL,
    JOB,
    PING,
    PONG,
    PROGRESS,
    PROTOCOL_VERSION,
    RESULT,
    SHUTDOWN,
    WELCOME,
    ConnectionClosed,
    ProtocolError,
    recv_arrays,
    recv_frame,
    recv_header,
    send_frame,
)

# A job runner as the worker calls it: (params, arrays, ctx) -> (result params, result arrays).
Runner = Callable[[dict[str, Any], dict, JobContext], tuple[dict[str, Any], dict]]


class _Connection:
    """One authenticated client: a reader thread feeds jobs, the caller runs them."""

    def __init__(self, sock: socket.socket, jobs: Mapping[str, Runner], sandbox: Sandbox | None = None) -> None:
        self.sock = sock
        self.jobs = jobs
        self.sandbox = sandbox
        self.send_lock = threading.Lock()
        self.inbox: queue.Queue = queue.Queue()
        self.cancel_events: dict[str, threading.Event] = {}
        self.shutdown_requested = False

    def send(self, header: dict[str, Any], arrays: dict | None = None) -> None:
        with self.send_lock:
            send_frame(self.sock, header, arrays)

    def _read_loop(self) -> None:
        try:
            while True:
                header, arrays = recv_frame(self.sock)
                kind = header.get("type")
                if kind == CANCEL:
                    event = self.cancel_events.get(str(header.get("job_id")))
                    if event is not None:
                        event.set()
                elif kind == PING:
                    self.send({"type": PONG})
                else:
                    self.inbox.put((header, arrays))
        except (ProtocolError, OSError):
            pass
        finally:
            for event in list(self.cancel_events.values()):
                event.set()  # the client is gone: stop whatever runs
            self.inbox.put(None)

    def serve(self) -> None:
        threading.Thread(target=self._read_loop, daemon=True).start()
        while True:
            item = self.inbox.get()
            if item is None:
                return
            header, arrays = item
            kind = header.get("type")
            if kind == SHUTDOWN:
                self.shutdown_requested = True
                self.send({"type": BYE})
                return
            if kind == JOB:
                self._run_job(header, arrays)
            else:
                self.send({"type": ERROR, "kind": BAD_MESSAGE, "message": f"unknown message type {kind!r}"})

    def _run_job(self, header: dict[str, Any], arrays: dict) -> None:
        job_id = str(header.get("job_id", ""))
        name = header.get("job")
        params = header.get("params") or {}
        cancel = threading.Event()
        self.cancel_events[job_id] = cancel

        def send_progress(event: dict[str, Any]) -> None:
            self.send({"type": PROGRESS, "job_id": job_id, **event})

        ctx = JobContext(send=send_progress, cancel_event=cancel, sandbox=self.sandbox)
        started = time.monotonic()
        try:
            if not isinstance(name, str) or name not in self.jobs:
                raise JobError(f"the backend has no job named {name!r} (backend version {__version__})")
            result_params, result_arrays = self.jobs[name](params, arrays, ctx)
            result_params = dict(result_params or {})
            result_params.setdefault("seconds", time.monotonic() - started)
            self.send({"type": RESULT, "job_id": job_id, "params": result_params}, result_arrays or {})
        except Cancelled as exc:
            self._send_error(job_id, CANCELLED, str(exc))
        except JobError as exc:
            self._send_error(job_id, INPUT, str(exc))
        except MemoryError:
            self._send_error(job_id, INPUT, "the backend ran out of memory; lower the resolution or batch size")
        except (ProtocolError, OSError):
            pass  # the client went away mid-job
        except Exception as exc:  # report, keep serving
            detail = traceback.format_exc()
            print(detail, file=sys.stderr, flush=True)
            self._send_error(job_id, INTERNAL, f"{type(exc).__name__}: {exc}", detail)
        finally:
            self.cancel_events.pop(job_id, None)

    def _send_error(self, job_id: str, kind: str, message: str, detail: str = "") -> None:
        try:
            self.send({"type": ERROR, "job_id": job_id, "kind": kind, "message": message, "detail": detail})
        except (ProtocolError, OSError):
            pass


def authenticate(sock: socket.socket, token: str) -> bool:
    """Read the hello header and check the token before reading anything else."""
    try:
        header = recv_header(sock)
    except (ProtocolError, OSError):
        return False
    given = header.get("token")
    if header.get("type") != HELLO or not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
        try:
            send_frame(sock, {"type": ERROR, "kind": AUTH, "message": "the worker rejected the token"})
        except OSError:
            pass
        return False
    if header.get("arrays"):
        recv_arrays(sock, header)
    send_frame(sock, {"type": WELCOME, "protocol": PROTOCOL_VERSION, "backend_version": __version__, "pid": os.getpid()})
    return True


def serve(
    host: str = "127.0.0.1", port: int = 0, token: str = "", once: bool = False, port_file: str | None = None, sandbox: Sandbox | None = None
) -> None:
    """Serve jobs until a client asks to shut down (or, with ``once``, until the first client leaves). With a
    ``sandbox`` (a remote worker), jobs read and write files only where it allows."""
    if not token:
        raise SystemExit("a token is required: pass --token, --token-file or set INR_TOKEN")
    from ..jobs import JOBS  # imports torch: done once, before we announce readiness

    server = socket.create_server((host, port))
    bound_port = server.getsockname()[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(bound_port))
        os.replace(tmp, port_file)
    print(f"inr_blender worker {__version__} listening on {host}:{bound_port}", flush=True)
    try:
        while True:
            sock, addr = server.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if not authenticate(sock, token):
                    print(f"refused a connection from {addr[0]}: bad token", flush=True)
                    continue
                conn = _Connection(sock, JOBS, sandbox)
                conn.serve()
                if conn.shutdown_requested or once:
                    return
            except ConnectionClosed:
                pass
            finally:
                sock.close()
    finally:
        server.close()
