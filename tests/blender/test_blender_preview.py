"""Live previews in the real bpy module with a real worker (issue 20): Fit SDF's preview object appears where the
field will be, changes as the field learns, and is replaced by the fitted surface; Cancel removes it."""

from __future__ import annotations

import _thread
import signal
import threading
import time

import numpy as np
import pytest

import bpy

from conftest import add_point_cloud, scene_state, sphere_points

pytestmark = pytest.mark.slow  # fits through a real worker: tens of seconds on two cores

# A tiny IGR fit that runs until stopped
LIVE_IGR = dict(method="IGR", iterations=100000, width=32, depth=2, batch_size=1024, num_samples=5000, convergence_tolerance=0.0)


@pytest.fixture
def generous(addon, monkeypatch):
    """A fresh worker whose previews may take half the time (INR_PREVIEW_SHARE), so that a few seconds of fitting on
    a loaded 2-core machine make several; the next test starts a worker of its own again."""
    client = addon.inr_blender.wire.client
    monkeypatch.setenv("INR_PREVIEW_SHARE", "0.5")
    client.shutdown_backend()
    yield
    client.shutdown_backend()


@pytest.fixture
def shown(addon, monkeypatch):
    """What each preview looked like once the operator had shown it (the real ``show`` runs; this only looks)."""
    module = addon.operators.common.preview
    real, seen = module.show, []

    def look(context, name, event, arrays):
        real(context, name, event, arrays)
        obj = bpy.data.objects.get(name)
        seen.append(
            {
                "name": name,
                "exists": obj is not None and bool(obj.get(module.MARK)),
                "step": event["info"]["step"],
                "vertices": np.array([v.co[:] for v in obj.data.vertices]) if obj else None,
                "faces": len(obj.data.polygons) if obj else 0,
                "matrix": np.array(obj.matrix_world) if obj else None,
                "selectable": obj is not None and not obj.hide_select,
            }
        )

    monkeypatch.setattr(module, "show", look)
    return seen


def test_fit_sdf_preview_appears_changes_and_is_replaced_by_the_surface(scene, generous, shown):
    pts, nrm = sphere_points(2000)
    cloud = add_point_cloud(pts * 0.7 + np.array([0.5, -0.2, 0.3]), nrm)
    cloud.select_set(True)
    bpy.context.view_layer.objects.active = cloud
    assert bpy.ops.inr.fit_sdf(**LIVE_IGR, max_seconds=15.0, preview_every=0.5) == {"FINISHED"}

    field = bpy.data.objects["Scan_SDF"]
    assert len(shown) >= 2, f"{len(shown)} previews in 15 s"
    first, last = shown[0], shown[-1]
    assert all(s["name"] == "Scan_SDF preview" and s["exists"] and not s["selectable"] for s in shown)
    assert first["step"] < last["step"] and first["faces"] > 100
    assert first["vertices"].shape != last["vertices"].shape or not np.allclose(first["vertices"], last["vertices"])
    # it sat where the field now is: the same frame, so its local surface lands on the (world-space) input
    assert np.allclose(last["matrix"], np.array(field.matrix_world), atol=1e-6)
    world = last["vertices"] @ last["matrix"][:3, :3].T + last["matrix"][:3, 3]
    assert abs(np.median(np.linalg.norm(world - [0.5, -0.2, 0.3], axis=1)) - 0.7) < 0.1

    # replaced by the fitted surface: the preview and its mesh are gone, <field>_mesh is there in the field's frame
    assert bpy.data.objects.get("Scan_SDF preview") is None and bpy.data.meshes.get("Scan_SDF preview") is None
    surface = bpy.data.objects["Scan_SDF_mesh"]
    assert surface.type == "MESH" and len(surface.data.vertices) > len(last["vertices"])  # 128^3 against 64^3
    assert np.allclose(np.array(surface.matrix_world), np.array(field.matrix_world))
    assert bpy.context.active_object == field and field.inr_field.iterations > 0


def test_headless_fits_preview_only_when_asked(scene, shown):
    pts, nrm = sphere_points(500)
    cloud = add_point_cloud(pts, nrm)
    cloud.select_set(True)
    bpy.context.view_layer.objects.active = cloud
    assert bpy.ops.inr.fit_sdf(**dict(LIVE_IGR, iterations=5)) == {"FINISHED"}
    assert not shown and bpy.data.objects.get("Scan_SDF_mesh") is None  # off headless: no preview, no surface


def test_cancel_removes_the_preview(scene, shown, addon):
    pts, nrm = sphere_points(2000)
    cloud = add_point_cloud(pts, nrm)
    cloud.select_set(True)
    bpy.context.view_layer.objects.active = cloud
    before = scene_state()
    client = addon.inr_blender.wire.client

    def cancel_after_a_preview():  # Ctrl+C, as a user's interrupt of a headless run
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            backend = client.current_backend()
            job = backend._current if backend else None
            if job is not None and job.previews and not job.done:
                time.sleep(0.3)  # the operator shows it meanwhile
                _thread.interrupt_main()
                return
            time.sleep(0.02)

    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=cancel_after_a_preview)
    thread.start()
    try:
        result = bpy.ops.inr.fit_sdf(**LIVE_IGR, preview_every=0.2)
    finally:
        thread.join()
        signal.signal(signal.SIGINT, handler)
    assert result == {"CANCELLED"}
    assert shown and shown[0]["exists"]  # there was a preview
    assert bpy.data.objects.get("Scan_SDF preview") is None and bpy.data.meshes.get("Scan_SDF preview") is None
    assert scene_state() == before
