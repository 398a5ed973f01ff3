"""Hostile and faulty input against a real worker process (issue 18, the wire): no frame or connection pattern
kills or blocks it, every job answers, Cancel and disconnects are noticed within a second, and the client treats
the worker's frames as untrusted.

Every attack is followed by a legitimate job on the same worker, which must succeed. The worker runs with short
timeouts from the environment (INR_AUTH_TIMEOUT, INR_IDLE_TIMEOUT, INR_AUTH_BACKOFF) so that no test waits long.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from numpy.lib import format as npy_format

from inr_blender.wire import client
from inr_blender.wire.protocol import ConnectionClosed, ProtocolError, encode_frame, recv_frame

from conftest import REPO, sphere_points

# 78 cases, about 30 s: the full run's (make test); make test-fast samples the wire through test_worker.py
pytestmark = pytest.mark.slow

AUTH_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.5
BACKOFF = 0.5  # seconds after the first wrong token, doubling
LONG_SEARCH = {"space": "local", "tolerance": 1e-9, "device": "cpu"}  # closest points: a search of many seconds


def _start_worker(log_path, token: str, **env: str) -> tuple[subprocess.Popen, int]:
    port_file = log_path.with_suffix(".port")
    environ = dict(os.environ, INR_TOKEN=token, PYTHONUNBUFFERED="1", **env)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inr_blender", "serve", "--port-file", str(port_file), "--workdir", str(log_path.parent)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    return proc, int(port_file.read_text())


class Worker:
    def __init__(self, proc: subprocess.Popen, port: int, token: str, log_path) -> None:
        self.proc, self.port, self.token, self.log_path = proc, port, token, log_path

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def backend(self, within: float = 3.0) -> client.Backend:
        """A real client connected to the worker; a worker still finishing the previous client answers busy for a
        moment, which is retried until ``within`` seconds have passed."""
        deadline = time.monotonic() + within
        while True:
            try:
                return client.Backend(client.BackendConfig(mode="REMOTE", port=self.port, token=self.token)).start()
            except client.BackendError as exc:
                if "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def assert_serves(self, within: float = 3.0) -> None:
        """The worker process lives and runs a legitimate job."""
        assert self.proc.poll() is None, self.log()
        backend = self.backend(within)
        try:
            assert backend.run("info", {"device": "cpu"}).params["device"] == "cpu"
        finally:
            backend.close()
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    token = secrets.token_hex(16)
    env = {"INR_AUTH_TIMEOUT": str(AUTH_TIMEOUT), "INR_IDLE_TIMEOUT": str(IDLE_TIMEOUT), "INR_AUTH_BACKOFF": str(BACKOFF)}
    proc, port = _start_worker(folder / "worker.log", token, **env)
    yield Worker(proc, port, token, folder / "worker.log")
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def field_path(worker):
    """A small IGR field (its geometric initialisation: about a sphere), fitted through the worker into its
    working folder."""
    path = worker.log_path.parent / "sphere.pt"
    pts, nrm = sphere_points(500, radius=0.5)
    backend = worker.backend()
    try:
        params = {"method": "igr", "iterations": 2, "width": 16, "depth": 2, "batch_size": 128, "device": "cpu", "checkpoint_path": str(path)}
        backend.run("fit_sdf", params, {"points": pts, "normals": nrm})
    finally:
        backend.close()
    assert path.is_file()
    return str(path)


def _queries(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.3, 0.3, (n, 3))


# -- raw frames -------------------------------------------------------------------------------------------------


def _frame(header: dict | bytes | str, payload: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode("utf-8", "surrogatepass")
    return struct.pack("!I", len(raw)) + raw + payload


def _hello(worker: Worker, within: float = 3.0) -> socket.socket:
    """A raw connection that passed the handshake (a worker still finishing the previous client answers busy for
    a moment: retried, as :meth:`Worker.backend` does)."""
    deadline = time.monotonic() + within
    while True:
        sock = worker.connect()
        sock.sendall(_frame({"type": "hello", "token": worker.token}))
        reply, _ = recv_frame(sock)
        if reply.get("kind") == "busy" and time.monotonic() < deadline:
            sock.close()
            time.sleep(0.05)
            continue
        assert reply["type"] == "welcome", reply
        return sock


def _closed_after(sock: socket.socket, timeout: float = 5.0) -> list[dict]:
    """The frames the worker sends before it closes the connection (asserts that it does, within ``timeout``)."""
    sock.settimeout(timeout)
    frames = []
    try:
        while True:
            header, _ = recv_frame(sock)
            frames.append(header)
    except (ConnectionClosed, ConnectionResetError):
        pass
    except ProtocolError as exc:
        pytest.fail(f"the worker did not close the connection: {exc}")
    finally:
        sock.close()
    return frames


def _attack(worker: Worker, phase: str, frame: bytes, kind: str = "protocol") -> None:
    """Send ``frame`` first on a new connection (phase 'hello') or after a valid hello ('job'); the worker answers
    one error line of ``kind`` and closes that connection only."""
    sock = worker.connect() if phase == "hello" else _hello(worker)
    sock.sendall(frame)
    frames = _closed_after(sock)
    assert frames and frames[-1]["type"] == "error" and frames[-1]["kind"] == kind, frames
    assert "\n" not in frames[-1]["message"]
    worker.assert_serves()


# -- frames parsed under limits ---------------------------------------------------------------------------------

PHASES = ["hello", "job"]


@pytest.mark.parametrize("phase", PHASES)
def test_oversized_header(worker, phase):
    _attack(worker, phase, struct.pack("!I", 0xFFFFFFFF) if phase == "hello" else struct.pack("!I", (1 << 20) + 1) + b"{")


@pytest.mark.parametrize("phase", PHASES)
def test_deep_nesting(worker, phase):
    depth = 5000 if phase == "hello" else 100_000  # inside each phase's header size limit: refused for its depth
    nested = "[" * depth + "]" * depth
    _attack(worker, phase, _frame(f'{{"type": "{phase}", "token": "{worker.token}", "params": {{"x": {nested}}}}}'))


@pytest.mark.parametrize("literal", ["1" * 5000, "-" + "9" * 10_000, "1e999999", "1" + "0" * 64 + ".5"], ids=["int", "negative", "inf", "float"])
@pytest.mark.parametrize("phase", PHASES)
def test_huge_number_literal(worker, phase, literal):
    _attack(worker, phase, _frame(f'{{"type": "{phase}", "token": "{worker.token}", "params": {{"n": {literal}}}}}'))


@pytest.mark.parametrize("text", [b'"tok\xff\xfeen"', b'"\\ud800"', b'"\\udfff\\ud800x"'])
@pytest.mark.parametrize("phase", PHASES)
def test_bad_unicode(worker, phase, text):
    field = b"token" if phase == "hello" else b"job"
    _attack(worker, phase, _frame(b'{"type": "' + phase.encode() + b'", "' + field + b'": ' + text + b"}"))


BAD_ARRAYS = {
    "not a list": "x",
    "entry not a pair": [["a"]],
    "entry a dict": [{"name": "a", "nbytes": 8}],
    "name not text": [[1, 10]],
    "empty name": [["", 10]],
    "negative size": [["a", -1]],
    "size as text": [["a", "10"]],
    "size as bool": [["a", True]],
    "size as float": [["a", 1.5]],
    "repeated name": [["a", 10], ["a", 10]],
    "too many arrays": [[f"a{i}", 1] for i in range(65)],
    "size over the limit": [["a", 1 << 40]],
}


@pytest.mark.parametrize("entries", list(BAD_ARRAYS.values()), ids=list(BAD_ARRAYS))
@pytest.mark.parametrize("phase", PHASES)
def test_bad_arrays_metadata(worker, phase, entries):
    header = {"type": phase, "token": worker.token, "job_id": "7", "job": "info", "params": {}, "arrays": entries}
    _attack(worker, phase, _frame(header))


def test_hello_with_arrays_is_refused(worker):
    _attack(worker, "hello", _frame({"type": "hello", "token": worker.token, "arrays": [["a", 4]]}, b"abcd"))


def _npy_claiming(shape: tuple[int, ...], data: bytes = b"\0" * 8) -> bytes:
    """A .npy payload whose header claims float64 ``shape`` followed by only ``data``."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def test_declared_array_larger_than_what_arrives_then_closed(worker):
    sock = _hello(worker)
    header = {"type": "job", "job_id": "1", "job": "info", "params": {}, "arrays": [["points", 100_000_000]]}
    sock.sendall(_frame(header, b"\x93NUMPY" + b"\0" * 1000))
    sock.close()  # the rest never comes
    worker.assert_serves()


def test_declared_array_larger_than_what_arrives_then_silent(worker):
    sock = _hello(worker)
    header = {"type": "job", "job_id": "1", "job": "info", "params": {}, "arrays": [["points", 100_000_000]]}
    sock.sendall(_frame(header, b"\0" * 1000))
    started = time.monotonic()
    assert _closed_after(sock, timeout=IDLE_TIMEOUT + 3) == []  # a stalled frame counts as idle
    assert time.monotonic() - started < IDLE_TIMEOUT + 1.5
    worker.assert_serves()


def test_npy_header_declares_more_than_its_payload(worker):
    # the frame's size is consistent, the .npy header inside claims 10^10 floats: nothing of that size is allocated
    payload = _npy_claiming((10**10,))
    _attack(
        worker, "job", _frame({"type": "job", "job_id": "3", "job": "info", "params": {}, "arrays": [["points", len(payload)]]}, payload), "input"
    )


def test_declared_arrays_beyond_the_available_memory(worker):
    sizes = [["a", (1 << 34) - 1], ["b", (1 << 34) - 1], ["c", (1 << 34) - 1], ["d", (1 << 34) - 1]]  # 64 GiB in all
    sock = _hello(worker)
    sock.sendall(_frame({"type": "job", "job_id": "9", "job": "info", "params": {}, "arrays": sizes}))
    frames = _closed_after(sock, timeout=IDLE_TIMEOUT + 3)
    if frames:  # a machine with less memory than that refuses the job at once, with a line that says why
        assert frames[-1]["job_id"] == "9" and "available memory" in frames[-1]["message"], frames
    worker.assert_serves()


# -- connection patterns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"\x00\x00", b"\x00\x00\x00\x20{"], ids=["nothing", "half length prefix", "half header"])
def test_slow_or_silent_connection(worker, sent):
    sock = worker.connect()
    sock.sendall(sent)
    started = time.monotonic()
    worker.assert_serves()  # served while the silent socket is still open
    assert _closed_after(sock, timeout=AUTH_TIMEOUT + 3) == []
    assert time.monotonic() - started < AUTH_TIMEOUT + 1.5
    worker.assert_serves()


def test_idle_authenticated_client_is_dropped(worker):
    sock = _hello(worker)
    started = time.monotonic()
    with pytest.raises(client.BackendError, match="busy"):
        worker.backend(within=0)  # while it is connected
    assert _closed_after(sock, timeout=IDLE_TIMEOUT + 3) == []
    assert IDLE_TIMEOUT - 0.1 < time.monotonic() - started < IDLE_TIMEOUT + 1.5
    worker.assert_serves()


def test_second_client_gets_busy_at_once_while_a_job_runs(worker, field_path):
    first = worker.backend()
    try:
        job = first.submit("closest_points", {**LONG_SEARCH, "checkpoint_path": field_path}, {"points": _queries()})
        while not job.poll():
            assert not job.done, job.outcome
            time.sleep(0.02)
        started = time.monotonic()
        with pytest.raises(client.BackendError, match="busy with another client"):
            worker.backend(within=0)
        assert time.monotonic() - started < 1.0
        job.cancel()
        assert job.wait().status == "cancelled"
    finally:
        first.close()
    worker.assert_serves()


def test_connection_reset_after_a_valid_hello(worker):
    hello = _frame({"type": "hello", "token": worker.token})
    for i in range(20):
        sock = worker.connect()
        sock.sendall(hello)
        if i % 2:
            time.sleep(0.02)  # sometimes after the welcome was sent
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    worker.assert_serves()


# -- jobs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["write", "read"])
def test_job_failing_with_an_os_error_answers(worker, tmp_path, target):
    folder = tmp_path / "a folder"
    folder.mkdir()
    backend = worker.backend()
    try:
        if target == "write":  # the checkpoint's path is a folder: found only when the fit renames its file there
            pts, nrm = sphere_points(300)
            params = {"method": "igr", "iterations": 2, "width": 16, "depth": 2, "batch_size": 128, "device": "cpu", "checkpoint_path": str(folder)}
            job = backend.submit("fit_sdf", params, {"points": pts, "normals": nrm})
        else:
            job = backend.submit("closest_points", {"checkpoint_path": str(folder), "device": "cpu"}, {"points": _queries(4)})
        outcome = _wait(job, 60)
        assert outcome.status == "failed", outcome
        assert outcome.message and "\n" not in outcome.message and "Traceback" not in outcome.message
    finally:
        backend.close()
    worker.assert_serves()


def test_cancel_stops_a_long_closest_points_search(worker, field_path):
    backend = worker.backend()
    try:
        job = backend.submit("closest_points", {**LONG_SEARCH, "checkpoint_path": field_path}, {"points": _queries()})
        while not job.poll():
            assert not job.done, job.outcome
            time.sleep(0.02)
        time.sleep(0.5)  # inside the search now
        assert not job.done
        started = time.monotonic()
        job.cancel()
        outcome = _wait(job, 10)
        assert outcome.status == "cancelled", outcome
        assert time.monotonic() - started < 2.0
    finally:
        backend.close()
    worker.assert_serves()


def test_disconnect_mid_job_frees_the_worker(worker, field_path):
    sock = _hello(worker)
    header = {"type": "job", "job_id": "1", "job": "closest_points", "params": {**LONG_SEARCH, "checkpoint_path": field_path}}
    sock.sendall(encode_frame(header, {"points": _queries()}))
    sock.settimeout(30)
    first, _ = recv_frame(sock)
    assert first["type"] == "progress", first
    time.sleep(0.5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    started = time.monotonic()
    worker.assert_serves(within=2.0)
    assert time.monotonic() - started < 2.5


def _wait(job: client.Job, timeout: float) -> client.JobOutcome:
    deadline = time.monotonic() + timeout
    while not job.done:
        job.poll()
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.02)
    assert job.outcome is not None
    return job.outcome


# -- tokens -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--token", "INR_TOKEN", "--token-file", "missing --token-file", "no token"])
def test_serve_refuses_short_or_missing_tokens(tmp_path, how):
    args, env = [], dict(os.environ)
    env.pop("INR_TOKEN", None)
    if how == "--token":
        args = ["--token", "short-token"]
    elif how == "INR_TOKEN":
        env["INR_TOKEN"] = "x" * 15
    elif how == "--token-file":
        (tmp_path / "token").write_text("0123456789\n")
        args = ["--token-file", str(tmp_path / "token")]
    elif how == "missing --token-file":
        args = ["--token-file", str(tmp_path / "no-such-file")]
    done = subprocess.run(
        [sys.executable, "-m", "inr_blender", "serve", "--port", "0", "--workdir", str(tmp_path), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "listening" not in done.stdout
    expected = {"missing --token-file": "cannot read the token file", "no token": "a token is required"}.get(how, "use at least 16")
    assert expected in lines[0]


def test_wrong_tokens_make_the_address_wait_longer_each_time(worker):
    def attempt(token: str) -> str:
        sock = worker.connect()
        sock.sendall(_frame({"type": "hello", "token": token}))
        reply, _ = recv_frame(sock)
        sock.close()
        return reply.get("message", reply["type"])

    assert attempt("wrong" * 4) == "the worker rejected the token"
    # for BACKOFF seconds nothing from this address is heard, not even the right token
    assert "too many wrong tokens" in attempt(worker.token)
    time.sleep(BACKOFF + 0.1)
    assert attempt("wrong" * 4) == "the worker rejected the token"  # the second failure: twice as long
    time.sleep(BACKOFF + 0.05)
    assert "too many wrong tokens" in attempt("wrong" * 4)  # still waiting; unheard attempts do not count
    time.sleep(BACKOFF + 0.1)
    worker.assert_serves()  # and the right token, once the wait is over, resets it
    assert attempt("wrong" * 4) == "the worker rejected the token"
    time.sleep(BACKOFF + 0.1)
    worker.assert_serves()


# -- the client: the worker's frames are untrusted --------------------------------------------------------------


class FakeWorker:
    """A real socket that answers the handshake, reads the job (and a cancel, if asked) and then sends ``frame``."""

    def __init__(self, frame: bytes, expect_cancel: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frame, self.expect_cancel = frame, expect_cancel
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            recv_frame(conn)  # hello
            conn.sendall(encode_frame({"type": "welcome", "protocol": 1}))
            job, _ = recv_frame(conn)
            conn.sendall(encode_frame({"type": "progress", "job_id": job["job_id"], "step": 1, "total": 10, "loss": 0.5, "message": "ok"}))
            if self.expect_cancel:
                assert recv_frame(conn)[0]["type"] == "cancel"
            conn.sendall(self.frame)
            self.done.wait(10)  # and stays connected: a client that waited for more would hang

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()


_PREVIEW_INFO = {"step": 1, "total": 10, "center": [0, 0, 0], "scale": 1.0}
MALFORMED = {
    "bad JSON": _frame(b'{"type": "result", "job_id": "1", '),
    "not UTF-8": _frame(b'{"type": "result", "job_id": "1", "params": {"a": "\xff"}}'),
    "not an object": _frame("[1, 2, 3]"),
    "no type": _frame({"job_id": "1"}),
    "progress step as text": _frame({"type": "progress", "job_id": "1", "step": "x", "total": 10}),
    "progress loss as list": _frame({"type": "progress", "job_id": "1", "step": 1, "total": 10, "loss": [1]}),
    "result params as list": _frame({"type": "result", "job_id": "1", "params": [1, 2]}),
    "error message as object": _frame({"type": "error", "job_id": "1", "kind": "input", "message": {"a": 1}}),
    "absurd array size": _frame({"type": "result", "job_id": "1", "params": {}, "arrays": [["mesh", 1 << 62]]}),
    "npy header bigger than its payload": _frame(
        {"type": "result", "job_id": "1", "params": {}, "arrays": [["v", len(_npy_claiming((10**10,)))]]}, _npy_claiming((10**10,))
    ),
    "oversized header": struct.pack("!I", 0xFFFFFFFF),
    "deep nesting": _frame('{"type": "result", "job_id": "1", "params": ' + "[" * 50_000 + "]" * 50_000 + "}"),
    "huge int literal": _frame('{"type": "result", "job_id": "1", "params": {"n": ' + "7" * 5000 + "}}"),
    # previews (issue 20): checked like every frame, their size before their payload is read
    "preview of an unknown kind": encode_frame({"type": "preview", "job_id": "1", "kind": "script", "info": _PREVIEW_INFO}),
    "preview faces beyond its vertices": encode_frame(
        {"type": "preview", "job_id": "1", "kind": "mesh", "info": _PREVIEW_INFO},
        {"vertices": np.zeros((3, 3), np.float32), "faces": np.array([[0, 1, 5]], np.int32)},
    ),
    "preview vertices not finite": encode_frame(
        {"type": "preview", "job_id": "1", "kind": "mesh", "info": _PREVIEW_INFO},
        {"vertices": np.full((3, 3), np.inf, np.float32), "faces": np.array([[0, 1, 2]], np.int32)},
    ),
    "preview mesh without its frame": encode_frame(
        {"type": "preview", "job_id": "1", "kind": "mesh", "info": {"step": 1, "total": 10}},
        {"vertices": np.zeros((3, 3), np.float32), "faces": np.array([[0, 1, 2]], np.int32)},
    ),
    "preview image as floats": encode_frame({"type": "preview", "job_id": "1", "kind": "image", "info": _PREVIEW_INFO}, {"rgb": np.zeros((4, 4, 3))}),
    "preview larger than previews are": _frame(
        {"type": "preview", "job_id": "1", "kind": "image", "info": _PREVIEW_INFO, "arrays": [["rgb", 1 << 30]]}
    ),
}


@pytest.mark.parametrize("frame", list(MALFORMED.values()), ids=list(MALFORMED))
def test_client_ends_the_job_on_a_malformed_frame(frame):
    fake = FakeWorker(frame)
    backend = client.Backend(client.BackendConfig(mode="REMOTE", port=fake.port, token="t" * 16)).start()
    try:
        job = backend.submit("info")
        outcome = _wait(job, 5)
        assert outcome.status == "failed" and "malformed frame" in outcome.message and "\n" not in outcome.message, outcome
        assert not backend.alive
        with pytest.raises(client.BackendError):
            backend.submit("info")
    finally:
        backend.close()
        fake.close()


def test_client_ends_the_job_on_a_malformed_frame_after_cancel():
    fake = FakeWorker(_frame(b"\x00garbage"), expect_cancel=True)
    backend = client.Backend(client.BackendConfig(mode="REMOTE", port=fake.port, token="t" * 16)).start()
    try:
        job = backend.submit("info")
        while not job.poll():
            time.sleep(0.02)
        job.cancel()
        outcome = _wait(job, 5)
        assert outcome.status == "failed" and "malformed frame" in outcome.message, outcome
    finally:
        backend.close()
        fake.close()


def test_client_run_raises_one_line_on_a_malformed_frame():
    fake = FakeWorker(_frame({"type": "result", "job_id": "1", "params": "not an object"}))
    backend = client.Backend(client.BackendConfig(mode="REMOTE", port=fake.port, token="t" * 16)).start()
    try:
        with pytest.raises(client.BackendError, match="malformed frame") as info:
            backend.run("info")
        assert "\n" not in str(info.value)
    finally:
        backend.close()
        fake.close()
