"""The job loop: a TCP server that runs one job at a time and streams progress.

Each connection starts with a ``hello`` frame carrying the shared token. A wrong
token is refused before any payload is read. After that the client sends
``job`` frames and may send ``cancel`` at any time; the worker answers with
``progress`` frames, ``preview`` frames (a fit's live preview, sent by a thread of its own and dropped, never
queued, while the client is slow to read) and one ``result`` or ``error`` frame per job.

The same server is the local worker (a subprocess on 127.0.0.1 with a random
token) and the remote worker (``python -m inr_blender serve``).

No frame or connection pattern stops or blocks it. An acceptor thread takes connections and a thread per
connection authenticates it: the hello must arrive within ``auth_timeout`` seconds, a wrong token makes its
address wait (doubling, up to ``backoff_max`` seconds) before it may try again, and while one client is connected
another gets a ``busy`` error at once. The main thread serves the one connected client: its jobs run there while
a reader thread takes its frames (a cancel, or the connection's end, stops the running job); a client with no job
running that sends nothing for ``idle_timeout`` seconds is dropped. Every frame is read under the protocol's
limits and the worker's available memory. Whatever goes wrong with one connection closes that connection only.
"""

from __future__ import annotations

import hmac
import math
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
from ..outputs import atomic_write
from ..sandbox import Sandbox
from .gate import AUTH_TIMEOUT, BACKOFF_BASE, BACKOFF_MAX, IDLE_TIMEOUT, MIN_TOKEN_CHARS, STALL_TIMEOUT, Backoff, setting
from .latest import LatestSender
from .protocol import (
    AUTH,
    BAD_MESSAGE,
    BUSY,
    BYE,
    CANCEL,
    CANCELLED,
    ERROR,
    HELLO,
    HELLO_LIMITS,
    INPUT,
    INTERNAL,
    JOB,
    LIMITS,
    PING,
    PONG,
    PREVIEW,
    PROGRESS,
    PROTOCOL_VERSION,
    RESULT,
    SHUTDOWN,
    WELCOME,
    ConnectionClosed,
    FrameTimeout,
    ProtocolError,
    array_bytes,
    encode_frame,
    one_line,
    recv_arrays,
    recv_header,
    send_bytes,
)

# A job runner as the worker calls it: (params, arrays, ctx) -> (result params, result arrays).
Runner = Callable[[dict[str, Any], dict, JobContext], tuple[dict[str, Any], dict]]

MAX_PENDING = 32  # connections authenticating at once; more are closed at once
MAX_JOB_ID_CHARS = 64
TICK = 0.25  # seconds between the main loop's looks at the clock


def _log(message: str) -> None:
    print(message, flush=True)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _ClientGone(Exception):
    """The connection to the client failed (a socket error while sending): not the job's own OSError."""


class _Peer:
    """The connected client's socket as the reader sees it: a timeout (set to bound sends) only wakes ``recv`` up,
    and ``last`` is when bytes last arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last = time.monotonic()
        self.closing = False

    def recv(self, bufsize: int, /) -> bytes:
        while True:
            try:
                data = self.sock.recv(bufsize)
            except TimeoutError:
                if self.closing:
                    raise ConnectionClosed("connection closed by the worker") from None
                continue
            self.last = time.monotonic()
            return data

    def settimeout(self, value: float | None, /) -> None:
        raise AssertionError("the reader reads without a deadline: the socket's timeout bounds sends")


class _Connection:
    """One authenticated client: a reader thread feeds jobs, the caller runs them."""

    def __init__(
        self,
        sock: socket.socket,
        jobs: Mapping[str, Runner],
        sandbox: Sandbox | None = None,
        idle_timeout: float = 0.0,
        memory: Callable[[], int] | None = None,
    ) -> None:
        self.sock = sock
        self.peer = _Peer(sock)
        self.jobs = jobs
        self.sandbox = sandbox
        self.idle_timeout = idle_timeout
        self.memory = memory  # bytes the worker can allocate now (None: not checked)
        self.send_lock = threading.Lock()
        self.inbox: queue.Queue = queue.Queue()
        self.cancel_events: dict[str, threading.Event] = {}
        self.gone = False
        self.shutdown_requested = False
        # closed when serve() ends; a preview is lost if the client is gone (the job's own sends notice) or it is not encodable
        self.previews = LatestSender(self.send, ignore=(_ClientGone, ProtocolError, ValueError))

    def send(self, header: dict[str, Any], arrays: dict | None = None) -> None:
        data = encode_frame(header, arrays)  # a result that cannot be encoded is the job's error, raised here
        with self.send_lock:
            try:
                send_bytes(self.sock, data)
            except OSError as exc:
                raise _ClientGone(str(exc)) from None

    def _read_loop(self) -> None:
        job_id = ""
        try:
            while True:
                job_id = ""
                header = recv_header(self.peer, LIMITS)
                kind = header["type"]
                if kind == JOB:
                    job_id = _job_id(header)
                size = array_bytes(header)
                available = self.memory() if self.memory is not None and size else None
                if available is not None and size > available:
                    raise ProtocolError(
                        f"the job's arrays take {size / 2**20:.0f} MiB, more than the worker's available memory ({available / 2**20:.0f} MiB)"
                    )
                arrays = recv_arrays(self.peer, header)
                if kind == CANCEL:
                    event = self.cancel_events.get(_job_id(header))
                    if event is not None:
                        event.set()
                elif kind == PING:
                    self.send({"type": PONG})
                else:
                    if kind == JOB:  # its cancel event exists before the job runs: a cancel or a disconnect reaches it
                        self.cancel_events[job_id] = threading.Event()
                    self.inbox.put((header, arrays))
        except ConnectionClosed:
            pass
        except (FrameTimeout, _ClientGone, OSError):
            pass
        except ProtocolError as exc:
            _log(f"closing a connection: {one_line(exc)}")
            self._send_error(job_id, INPUT if job_id else BAD_MESSAGE, str(exc))
        except Exception:  # a bug in reading: this connection ends, the worker does not
            print(traceback.format_exc(), file=sys.stderr, flush=True)
        finally:
            self.gone = True
            for event in list(self.cancel_events.values()):
                event.set()  # the client is gone: stop whatever runs
            self.inbox.put(None)

    def serve(self) -> None:
        reader = threading.Thread(target=self._read_loop, daemon=True)
        reader.start()
        idle_since = time.monotonic()
        try:
            while True:
                try:
                    item = self.inbox.get(timeout=TICK if self.idle_timeout else None)
                except queue.Empty:
                    quiet = time.monotonic() - max(idle_since, self.peer.last)
                    if quiet > self.idle_timeout:
                        _log(f"closing a connection idle for {quiet:.1f} s")
                        return
                    continue
                if item is None:
                    return
                header, arrays = item
                kind = header["type"]
                if kind == SHUTDOWN:
                    self.shutdown_requested = True
                    self.send({"type": BYE})
                    return
                if kind == JOB:
                    if not self.gone:
                        self._run_job(header, arrays)
                    idle_since = time.monotonic()
                else:
                    self.send({"type": ERROR, "kind": BAD_MESSAGE, "message": f"unknown message type {one_line(kind, 60)!r}"})
        except _ClientGone:
            pass
        finally:
            self.previews.close()
            self.peer.closing = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader up
            except OSError:
                pass
            reader.join(timeout=5)

    def _run_job(self, header: dict[str, Any], arrays: dict) -> None:
        job_id = _job_id(header)
        name = header.get("job")
        params = header.get("params")
        cancel = self.cancel_events.setdefault(job_id, threading.Event())

        def send_progress(event: dict[str, Any]) -> None:
            self.send({"type": PROGRESS, "job_id": job_id, **event})

        def send_preview(kind: str, arrays: dict[str, Any], info: dict[str, Any]) -> None:
            self.previews.offer({"type": PREVIEW, "job_id": job_id, "kind": kind, "info": info}, arrays)

        ctx = JobContext(send=send_progress, cancel_event=cancel, sandbox=self.sandbox, preview=send_preview)
        started = time.monotonic()
        try:
            if not isinstance(name, str) or name not in self.jobs:
                raise JobError(f"the backend has no job named {one_line(name, 60)!r} (backend version {__version__})")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise JobError(f"a job's params must be a JSON object, got {type(params).__name__}")
            result_params, result_arrays = self.jobs[name](params, arrays, ctx)
            self.previews.clear()
            result_params = dict(result_params or {})
            result_params.setdefault("seconds", time.monotonic() - started)
            self.send({"type": RESULT, "job_id": job_id, "params": result_params}, result_arrays or {})
        except _ClientGone:
            _log(f"the client went away during job {job_id} ({name})")
        except Cancelled as exc:
            self._send_error(job_id, CANCELLED, str(exc))
        except JobError as exc:
            self._send_error(job_id, INPUT, str(exc))
        except MemoryError:
            self._send_error(job_id, INPUT, "the backend ran out of memory; lower the resolution or batch size")
        except OSError as exc:  # the job's own file or device: a folder where a file should be, a full disk
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            self._send_error(job_id, INPUT, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug: one line to the client, the traceback to the log; keep serving
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            self._send_error(job_id, INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            self.previews.clear()
            self.cancel_events.pop(job_id, None)

    def _send_error(self, job_id: str, kind: str, message: str) -> None:
        try:
            self.send({"type": ERROR, "job_id": job_id, "kind": kind, "message": one_line(message)})
        except (_ClientGone, ProtocolError, ValueError):
            pass


def _job_id(header: dict[str, Any]) -> str:
    return str(header.get("job_id", ""))[:MAX_JOB_ID_CHARS]


class _Server:
    """The listening socket, the acceptor and the one slot for a connected client."""

    def __init__(
        self,
        listener: socket.socket,
        jobs: Mapping[str, Runner],
        token: str,
        sandbox: Sandbox | None,
        auth_timeout: float,
        idle_timeout: float,
        stall_timeout: float,
        backoff: Backoff,
        memory: Callable[[], int] | None,
    ) -> None:
        self.listener = listener
        self.jobs = jobs
        self.token = token.encode("utf-8")
        self.sandbox = sandbox
        self.auth_timeout, self.idle_timeout, self.stall_timeout = auth_timeout, idle_timeout, stall_timeout
        self.backoff = backoff
        self.memory = memory
        self.slot = threading.Lock()  # held while a client is connected
        self.ready: queue.Queue = queue.Queue()  # the admitted client's socket, for the main thread
        self.pending = threading.BoundedSemaphore(MAX_PENDING)
        self.stopping = threading.Event()

    def accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, addr = self.listener.accept()
            except OSError as exc:
                if self.stopping.is_set():
                    return
                _log(f"accept failed: {one_line(exc)}")  # out of file descriptors, say: wait, then go on
                time.sleep(0.1)
                continue
            if not self.pending.acquire(blocking=False):
                _log(f"dropped a connection from {addr[0]}: {MAX_PENDING} others are authenticating")
                _close(sock)
                continue
            try:
                threading.Thread(target=self._admit, args=(sock, addr), daemon=True).start()
            except RuntimeError:
                self.pending.release()
                _close(sock)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        handed = False
        host = str(addr[0]) if isinstance(addr, tuple) and addr else "?"
        try:
            handed = self._authenticate(sock, host)
        except Exception as exc:  # whatever happens here ends this connection only
            _log(f"closed the connection from {host}: {type(exc).__name__}: {one_line(exc)}")
        finally:
            self.pending.release()
            if not handed:
                _close(sock)

    def _refuse(self, sock: socket.socket, kind: str, message: str) -> None:
        try:
            sock.settimeout(1.0)
            send_bytes(sock, encode_frame({"type": ERROR, "kind": kind, "message": message}))
        except OSError:
            pass

    def _authenticate(self, sock: socket.socket, host: str) -> bool:
        """Read the hello and check the token before reading anything else; True when the connection was handed to
        the main thread."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + self.auth_timeout
        wait = self.backoff.remaining(host)
        if wait > 0:
            self._refuse(sock, AUTH, f"too many wrong tokens from this address: try again in {math.ceil(wait)} s")
            _log(f"refused a connection from {host}: waiting after wrong tokens")
            return False
        try:
            header = recv_header(sock, HELLO_LIMITS, deadline)
        except FrameTimeout:
            _log(f"dropped a connection from {host}: no hello within {self.auth_timeout:g} s")
            return False
        except ConnectionClosed:
            return False
        except ProtocolError as exc:
            self._refuse(sock, BAD_MESSAGE, one_line(exc))
            _log(f"refused a connection from {host}: {one_line(exc)}")
            return False
        given = header.get("token")
        if header["type"] != HELLO or not isinstance(given, str) or not hmac.compare_digest(given.encode("utf-8"), self.token):
            delay = self.backoff.failed(host)
            self._refuse(sock, AUTH, "the worker rejected the token")
            _log(f"refused a connection from {host}: bad token (its next try is heard in {delay:g} s)")
            return False
        self.backoff.succeeded(host)
        if header["arrays"]:
            self._refuse(sock, BAD_MESSAGE, "a hello frame carries no arrays")
            return False
        if not self.slot.acquire(blocking=False):
            self._refuse(sock, BUSY, "the worker is busy with another client: try again when its job is done")
            _log(f"refused a connection from {host}: busy")
            return False
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            send_bytes(sock, encode_frame({"type": WELCOME, "protocol": PROTOCOL_VERSION, "backend_version": __version__, "pid": os.getpid()}))
            self.ready.put(sock)
        except BaseException:
            self.slot.release()
            raise
        return True

    def run(self, once: bool) -> None:
        """Serve the admitted clients, one at a time, until one asks to shut down (or, with ``once``, leaves)."""
        while True:
            try:
                sock = self.ready.get(timeout=TICK)
            except queue.Empty:
                continue
            try:
                sock.settimeout(self.stall_timeout or None)
                conn = _Connection(sock, self.jobs, self.sandbox, self.idle_timeout, self.memory)
                conn.serve()
                if conn.shutdown_requested or once:
                    return
            except Exception:  # a bug in serving: this connection ends, the worker does not
                print(traceback.format_exc(), file=sys.stderr, flush=True)
            finally:
                _close(sock)
                self.slot.release()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    token: str = "",
    once: bool = False,
    port_file: str | None = None,
    sandbox: Sandbox | None = None,
    auth_timeout: float | None = None,
    idle_timeout: float | None = None,
    stall_timeout: float | None = None,
    backoff: tuple[float, float] | None = None,
) -> None:
    """Serve jobs until a client asks to shut down (or, with ``once``, until the first client leaves). With a
    ``sandbox`` (a remote worker), jobs read and write files only where it allows. The timeouts (seconds; None:
    the environment's INR_AUTH_TIMEOUT, INR_IDLE_TIMEOUT, INR_STALL_TIMEOUT, else the defaults above) and
    ``backoff`` (base, cap; INR_AUTH_BACKOFF, INR_AUTH_BACKOFF_MAX) are described in the module docstring."""
    if not token:
        raise JobError("a token is required: pass --token-file or set INR_TOKEN")
    if len(token) < MIN_TOKEN_CHARS:
        raise JobError(
            f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} (e.g. python -c 'import secrets; print(secrets.token_hex(16))')"
        )
    auth = setting(auth_timeout, "INR_AUTH_TIMEOUT", AUTH_TIMEOUT) or AUTH_TIMEOUT
    idle = setting(idle_timeout, "INR_IDLE_TIMEOUT", IDLE_TIMEOUT)
    stall = setting(stall_timeout, "INR_STALL_TIMEOUT", STALL_TIMEOUT)
    base, cap = backoff if backoff is not None else (None, None)
    waits = Backoff(setting(base, "INR_AUTH_BACKOFF", BACKOFF_BASE), setting(cap, "INR_AUTH_BACKOFF_MAX", BACKOFF_MAX))
    from ..device import available_memory_bytes  # imports torch, as the jobs do: once, before we announce readiness
    from ..jobs import JOBS

    listener = socket.create_server((host, port))
    bound_port = listener.getsockname()[1]
    if port_file:
        with atomic_write(port_file, "w") as fh:
            fh.write(str(bound_port))
    print(f"inr_blender worker {__version__} listening on {host}:{bound_port}", flush=True)
    server = _Server(listener, JOBS, token, sandbox, auth, idle, stall, waits, available_memory_bytes)
    threading.Thread(target=server.accept_loop, daemon=True).start()
    try:
        server.run(once)
    finally:
        server.stopping.set()
        listener.close()
