"""The wire format and the worker process: framing, auth, progress, cancel, crashes."""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, sphere_points


@pytest.fixture
def client(addon):
    from neural_fields.inr_blender.wire import client

    return client


def test_frames_round_trip_arrays_of_many_dtypes():
    from inr_blender.wire.protocol import decode_array, encode_frame

    arrays = {
        "f": np.random.rand(5, 3).astype(np.float32),
        "i": np.arange(7, dtype=np.int64),
        "b": np.array([True, False]),
        "u8": np.frombuffer(b"abc", np.uint8),
    }
    frame = encode_frame({"type": "job", "params": {"x": 1}}, arrays)
    (n,) = struct.unpack("!I", frame[:4])
    header = json.loads(frame[4 : 4 + n])
    assert header["type"] == "job" and [a[0] for a in header["arrays"]] == list(arrays)
    offset = 4 + n
    for (_name, size), original in zip(header["arrays"], arrays.values()):
        out = decode_array(frame[offset : offset + size])
        offset += size
        np.testing.assert_array_equal(out, original)
        assert out.dtype == original.dtype
    assert offset == len(frame)


def test_object_arrays_cannot_be_sent_and_pickled_payloads_are_refused():
    from inr_blender.wire.protocol import decode_array, encode_frame

    with pytest.raises(ValueError):
        encode_frame({"type": "job"}, {"bad": np.array([{"a": 1}], dtype=object)})
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        decode_array(buf.getvalue())


@pytest.mark.slow
def test_wrong_token_is_refused_before_any_payload_is_read(remote_worker):
    from inr_blender.wire.protocol import recv_frame

    proc, port, token = remote_worker
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # announce a 1 GB payload and never send it: a worker that read payloads before checking would hang
        header = json.dumps({"type": "hello", "token": "wrong", "arrays": [["blob", 1 << 30]]}).encode()
        sock.sendall(struct.pack("!I", len(header)) + header)
        reply, _ = recv_frame(sock)
        assert reply["type"] == "error" and reply["kind"] == "auth"
        assert sock.recv(1) == b""  # and the connection is closed
    assert proc.poll() is None  # the worker keeps serving others


def test_remote_worker_serves_a_job_with_the_right_token(client, remote_worker):
    _, port, token = remote_worker
    backend = client.Backend(client.BackendConfig(mode="REMOTE", port=port, token=token)).start()
    try:
        info = backend.run("info", {"device": "cpu"}).params
        assert info["device"] == "cpu" and info["torch_version"].startswith("2.")
    finally:
        backend.close()


@pytest.mark.slow
def test_client_reports_wrong_token(client, remote_worker):
    _, port, _ = remote_worker
    with pytest.raises(client.BackendError, match="rejected the token"):
        client.Backend(client.BackendConfig(mode="REMOTE", port=port, token="not-the-token")).start()


def _long_fit(tmp_path) -> dict:
    """A small IGR fit that runs until something stops it."""
    return {
        "method": "igr",
        "iterations": 100000,
        "width": 32,
        "depth": 2,
        "batch_size": 256,
        "device": "cpu",
        "checkpoint_path": str(tmp_path / "f.pt"),
    }


@pytest.mark.slow
def test_local_worker_streams_progress_and_honours_cancel(client, tmp_path):
    backend = client.Backend(client.BackendConfig(python=sys.executable, log_dir=str(tmp_path))).start()
    try:
        pts, nrm = sphere_points(2000)
        params = _long_fit(tmp_path)
        job = backend.submit("fit_sdf", params, {"points": pts, "normals": nrm})
        events = []
        deadline = time.monotonic() + 120
        while len([e for e in events if e["step"] > 0]) < 3:
            events += job.poll()
            assert not job.done, job.outcome
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert [e for e in events if e["total"] == 100000 and e["step"] > 0], events
        assert any(e["loss"] is not None for e in events)
        job.cancel()
        outcome = job.wait()
        assert outcome.status == "cancelled"
        assert not (tmp_path / "f.pt").exists()
        # the worker survives a cancel and serves the next job
        assert backend.run("info", {"device": "cpu"}).params["device"] == "cpu"
    finally:
        backend.close()
    assert backend.process.poll() is not None  # close() stops a local worker


@pytest.mark.slow
def test_previews_cross_a_real_worker(client, tmp_path):
    backend = client.Backend(client.BackendConfig(python=sys.executable, log_dir=str(tmp_path))).start()
    try:
        pts, nrm = sphere_points(2000)
        job = backend.submit("fit_sdf", {**_long_fit(tmp_path), "preview_every": 0.2}, {"points": pts, "normals": nrm})
        preview, deadline = None, time.monotonic() + 120
        while preview is None:
            job.poll()
            preview = job.take_preview()
            assert not job.done, job.outcome
            assert time.monotonic() < deadline
            time.sleep(0.02)
        event, arrays = preview
        v, f = arrays["vertices"], arrays["faces"]
        assert event["kind"] == "mesh" and event["info"]["total"] == 100000 and event["info"]["scale"] > 0
        assert v.dtype == np.float32 and v.shape[1] == 3 and len(f) > 100 and f.max() < len(v) and np.abs(v).max() <= 1.0
        assert job.take_preview() is None  # taken once; a newer one replaces an untaken one
        job.cancel()
        assert job.wait().status == "cancelled"
        assert backend.run("info", {"device": "cpu"}).params["device"] == "cpu"  # and the worker serves on
    finally:
        backend.close()


@pytest.mark.slow
def test_worker_killed_mid_job_is_reported(client, tmp_path):
    backend = client.Backend(client.BackendConfig(python=sys.executable, log_dir=str(tmp_path))).start()
    pts, nrm = sphere_points(2000)
    params = _long_fit(tmp_path)
    job = backend.submit("fit_sdf", params, {"points": pts, "normals": nrm})
    while not job.poll():
        time.sleep(0.02)
    os.kill(backend.process.pid, signal.SIGKILL)
    outcome = job.wait()
    assert outcome.status == "failed"
    assert "stopped during the job" in outcome.message and "-9" in outcome.message
    assert not backend.alive


def test_missing_interpreter_is_a_clear_error(client, tmp_path):
    with pytest.raises(client.BackendError, match="backend Python not found"):
        client.Backend(client.BackendConfig(python=str(tmp_path / "no" / "python"))).start()


def test_interpreter_without_the_backend_is_a_clear_error(client, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(client.BackendError, match="did not start.*No module named torch"):
        client.Backend(client.BackendConfig(python=str(fake), log_dir=str(tmp_path))).start()


def test_checkpoints_cross_as_paths_to_a_local_worker_and_as_bytes_to_a_remote_one(client, tmp_path):
    path = tmp_path / "field.pt"
    path.write_bytes(b"weights")
    local, remote = client.BackendConfig(mode="PYTHON").checkpoints, client.BackendConfig(mode="REMOTE").checkpoints
    assert local.read(str(path)).job_input() == ({"checkpoint_path": str(path)}, {})
    params, arrays = remote.read(str(path)).job_input("other_checkpoint")
    assert params == {} and list(arrays) == ["other_checkpoint"] and arrays["other_checkpoint"].tobytes() == b"weights"
    assert local.output("new.pt") == {"checkpoint_path": "new.pt"}
    assert remote.output("new.pt", "output_checkpoint_path") == {"output_checkpoint_path": "new.pt", "return_checkpoint": True}
    # what a remote worker sends back is written where the field keeps it; a local worker's file is already there
    sent = client.JobOutcome("finished", {}, {"checkpoint": np.frombuffer(b"trained", dtype=np.uint8)})
    target = tmp_path / "fields" / "new.pt"
    assert remote.store(sent, str(target)) and target.read_bytes() == b"trained"
    assert remote.result(sent, str(target)).job_input()[1]["checkpoint"].tobytes() == b"trained"
    assert local.result(client.JobOutcome("finished"), str(target)).job_input() == ({"checkpoint_path": str(target)}, {})
    assert not local.store(client.JobOutcome("finished"), str(tmp_path / "missing.pt"))


def test_a_remote_worker_writes_only_in_its_default_working_folder(tmp_path):
    """``serve`` without --workdir (and without --local, which Blender's own worker passes) works in
    ~/.inr_blender/work: a relative checkpoint path lands there, an absolute one elsewhere is refused."""
    from inr_blender.wire import client

    token, port_file = secrets.token_hex(16), tmp_path / "port"
    env = dict(os.environ, HOME=str(tmp_path / "home"), INR_TOKEN=token)
    proc = subprocess.Popen(
        [sys.executable, "-m", "inr_blender", "serve", "--port", "0", "--port-file", str(port_file)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the worker exited"
            time.sleep(0.1)
        backend = client.Backend(client.BackendConfig(mode="REMOTE", port=int(port_file.read_text()), token=token)).start()
        try:
            pts, nrm = sphere_points(200)
            fit = {"method": "igr", "iterations": 1, "width": 16, "depth": 2, "batch_size": 64, "device": "cpu"}
            backend.run("fit_sdf", {**fit, "checkpoint_path": "fields/a.pt"}, {"points": pts, "normals": nrm})
            assert (tmp_path / "home" / ".inr_blender" / "work" / "fields" / "a.pt").is_file()
            outside = tmp_path / "outside.pt"
            with pytest.raises(client.BackendError, match="only inside its working folder"):
                backend.run("fit_sdf", {**fit, "checkpoint_path": str(outside)}, {"points": pts, "normals": nrm})
            assert not outside.exists()
        finally:
            backend.close()
    finally:
        proc.kill()
        proc.wait()
