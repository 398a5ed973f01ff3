"""Bad input: each case fails with a one-line reason and leaves the scene exactly as it was."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import bpy

from conftest import add_point_cloud, add_suzanne, interrupt_during, prefs, scene_state, sphere_points

TINY = dict(method="IGR", iterations=20, width=16, depth=2, batch_size=256, num_samples=2000)


def _refused(op, match, **kwargs):
    before = scene_state()
    with pytest.raises(RuntimeError, match=match) as info:
        op(**kwargs)
    assert "\n" not in str(info.value).strip(), "the reason must be one line"
    assert scene_state() == before


def test_nothing_selected(scene):
    add_suzanne().select_set(False)
    _refused(bpy.ops.inr.fit_sdf, "nothing selected", **TINY)


@pytest.mark.parametrize("kind", ["CAMERA", "LIGHT"])
def test_camera_or_light_selected(scene, kind):
    add_suzanne()
    data = bpy.data.cameras.new("Cam") if kind == "CAMERA" else bpy.data.lights.new("Lamp", "POINT")
    obj = bpy.data.objects.new("Thing", data)
    bpy.context.collection.objects.link(obj)
    obj.select_set(True)
    _refused(bpy.ops.inr.fit_sdf, f"'Thing' is a {kind.lower()}", **TINY)


def test_mesh_without_vertices(scene):
    obj = bpy.data.objects.new("Empty Mesh", bpy.data.meshes.new("Empty Mesh"))
    bpy.context.collection.objects.link(obj)
    obj.select_set(True)
    _refused(bpy.ops.inr.fit_sdf, "'Empty Mesh' has no vertices", **TINY)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_coordinates(scene, value):
    obj = add_suzanne(subdivision_levels=0)
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    co[7] = value
    obj.data.vertices.foreach_set("co", co)
    _refused(bpy.ops.inr.fit_sdf, "'Suzanne' has NaN or infinite coordinates", **TINY)


@pytest.mark.slow
def test_degenerate_mesh(scene):
    pts = np.zeros((50, 3))
    add_point_cloud(pts)
    _refused(bpy.ops.inr.fit_sdf, "(?i)degenerate|identical|zero", **TINY)


def test_point_cloud_without_normals_given_to_siren(scene):
    add_point_cloud(sphere_points(500)[0])
    _refused(bpy.ops.inr.fit_sdf, "SIREN needs oriented normals", **dict(TINY, method="SIREN"))


@pytest.fixture
def tiny_field(scene):
    add_suzanne(subdivision_levels=0)
    assert bpy.ops.inr.fit_sdf(**TINY) == {"FINISHED"}
    return bpy.context.active_object


@pytest.mark.slow
def test_resolution_over_the_machines_memory(tiny_field):
    _refused(bpy.ops.inr.extract_mesh, "resolution 8192 needs about .* available", resolution=8192)


def test_missing_checkpoint(tiny_field):
    os.remove(tiny_field.inr_field.checkpoint)
    _refused(bpy.ops.inr.extract_mesh, "checkpoint of '.*' not found", resolution=32)


def test_evaluate_after_the_source_was_deleted(tiny_field):
    bpy.data.objects.remove(bpy.data.objects["Suzanne"])
    bpy.context.view_layer.objects.active = tiny_field
    _refused(bpy.ops.inr.evaluate_field, "'Suzanne', which '.*' was fitted to, is no longer in the file", resolution=32)


def test_extract_without_a_field(scene):
    add_suzanne()
    _refused(bpy.ops.inr.extract_mesh, "not a neural field", resolution=32)


@pytest.mark.slow
def test_backend_interpreter_missing(scene, tmp_path):
    add_suzanne()
    prefs().python_path = str(tmp_path / "nowhere" / "python3")
    _refused(bpy.ops.inr.fit_sdf, "backend Python not found", **TINY)


def test_managed_backend_not_set_up(scene):
    add_suzanne()
    prefs().backend_mode = "MANAGED"
    _refused(bpy.ops.inr.fit_sdf, "managed backend is not set up", **TINY)


def test_setup_refused_without_online_access(scene):
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match="online access is disabled"):
        bpy.ops.inr.setup_backend()


@pytest.mark.slow
def test_worker_killed_in_the_middle_of_a_job(scene):
    from neural_fields.inr_blender.wire import client

    add_suzanne()
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            backend = client.current_backend()
            job = backend._current if backend else None
            if job is not None and not job.done and job.progress.get("step", 0) > 0 and backend.process:
                backend.process.kill()
                killed.append(True)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    _refused(bpy.ops.inr.fit_sdf, "backend worker stopped during the job", **dict(TINY, iterations=100000))
    thread.join()
    assert killed
    # the next job starts a fresh worker
    assert bpy.ops.inr.check_backend() == {"FINISHED"}


@pytest.mark.slow
def test_remote_worker_with_the_wrong_token(scene, remote_worker):
    _, port, token = remote_worker
    add_suzanne()
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token + "x"
    _refused(bpy.ops.inr.fit_sdf, "rejected the token", **TINY)


@pytest.mark.slow
def test_remote_worker_with_the_right_token_round_trips_the_checkpoint(scene, remote_worker):
    _, port, token = remote_worker
    add_suzanne(subdivision_levels=0)
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token
    assert bpy.ops.inr.fit_sdf(**TINY) == {"FINISHED"}
    field = bpy.context.active_object
    assert os.path.getsize(field.inr_field.checkpoint) > 1000  # the weights came back over the wire
    assert bpy.ops.inr.extract_mesh(resolution=32) == {"FINISHED"}


@pytest.mark.slow
def test_cancel_mid_job_leaves_the_scene_as_it_was(scene):
    """Ctrl+C in a headless run cancels like Esc does in the UI: the job stops, nothing is added."""
    from neural_fields.inr_blender.wire import client

    add_suzanne()
    before = scene_state()
    result, fired = interrupt_during(lambda: bpy.ops.inr.fit_sdf(**dict(TINY, iterations=100000, convergence_tolerance=0)))
    assert fired, "the job never reported a step"
    assert result == {"CANCELLED"}, f"interrupted at {fired[0]}, yet the fit finished"
    assert scene_state() == before
    assert client.current_backend().alive  # the worker stopped the job and lives on
