"""Live previews in the real bpy module with a real worker (issue 20): Fit SDF's preview object appears where the
field will be, changes as the field learns, and is replaced by the fitted surface; Cancel removes it."""

from __future__ import annotations

import types

import numpy as np
import pytest

import bpy

from conftest import add_point_cloud, interrupt_during, scene_state, sphere_points

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
        obj, image = bpy.data.objects.get(name), bpy.data.images.get(name)
        seen.append(
            {
                "image": tuple(image.size) if image is not None else None,
                "pixels": round(float(np.asarray(image.pixels[:]).sum()), 3) if image is not None else None,
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
    # Ctrl+C, as a user's interrupt of a headless run, once a preview came (and the operator showed it)
    result, _ = interrupt_during(lambda: bpy.ops.inr.fit_sdf(**LIVE_IGR, preview_every=0.2), when=lambda job: bool(job.previews), delay=0.3)
    assert result == {"CANCELLED"}
    assert shown and shown[0]["exists"]  # there was a preview
    assert bpy.data.objects.get("Scan_SDF preview") is None and bpy.data.meshes.get("Scan_SDF preview") is None
    assert scene_state() == before


class _Layout:
    """A stand-in for bpy.types.UILayout (the bpy module draws no panels): records the icons drawn."""

    def __init__(self, icons: list) -> None:
        self.icons = icons

    def __getattr__(self, name):
        return lambda *args, **kwargs: _Layout(self.icons)

    def panel(self, idname, **kwargs):
        return _Layout(self.icons), _Layout(self.icons)

    def template_icon(self, icon_value, **kwargs):
        self.icons.append(icon_value)


def test_radiance_preview_image_psnr_curve_and_panel(scene, addon):
    """Fit NeRF's preview camera is the scene camera shrunk to 128 px, which the backend accepts; its views land in
    an Image the Job panel draws with the PSNR curve; the image goes when the job ends. (A radiance fit through a
    worker takes minutes here: tests/backend/test_backend_preview.py fits one with previews.)"""
    from inr_blender.fitting.preview import preview_camera

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, 0.0, 2.5)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 480, 320, 100
    bpy.context.view_layer.update()  # the camera's matrix_world
    arrays = addon.operators.fit_nerf.preview_camera(scene)
    c2w, k, width, height = preview_camera(arrays)  # the backend's checks
    assert (width, height) == (128, 85) and np.allclose(c2w[:3, 3], (0, 0, 2.5))
    fx, fy, cx, cy, w, h = addon.operators.common.cameras.intrinsics(scene, camera)
    assert np.allclose(k, np.array([fx, fy, cx, cy]) * 128 / 480)

    module, job = addon.operators.common.preview, bpy.context.window_manager.inr_job
    name = module.preview_name("views_NeRF")
    rgb = np.zeros((85, 128, 3), np.uint8)
    rgb[:10] = 255  # the top rows white
    module.show(bpy.context, name, {"kind": "image", "info": {"step": 5, "total": 100}}, {"rgb": rgb})
    image = bpy.data.images[name]
    pixels = np.asarray(image.pixels[:]).reshape(85, 128, 4)
    assert tuple(image.size) == (128, 85) and job.preview_image == name
    assert pixels[-1, :, :3].min() == 1.0 and pixels[0, :, :3].max() == 0.0  # Blender's rows run bottom to top
    module.show(bpy.context, name, {"kind": "image", "info": {"step": 9, "total": 100}}, {"rgb": 255 - rgb})
    assert bpy.data.images[name] == image and image.pixels[0] == 1.0  # updated in place
    for step, value in ((1, 10.0), (2, 12.5), (2, 99.0), (3, 14.0)):
        module.record_psnr(bpy.context, step, value)
    assert [(h.step, h.value) for h in job.psnr_history] == [(1, 10.0), (2, 12.5), (3, 14.0)]

    job.running = True
    try:
        icons: list = []
        panel = addon.panels.job.VIEW3D_PT_inr_job
        panel.draw(types.SimpleNamespace(layout=_Layout(icons)), bpy.context)
        previews = addon.panels.loss_plot._previews
        assert len(icons) == 2 and tuple(previews["live:image"].image_size) == (128, 85)
        assert tuple(previews["live:psnr"].image_size) == addon.panels.loss_plot.SIZE
    finally:
        job.running = False
    module.remove(name)
    assert bpy.data.images.get(name) is None and job.preview_image == ""
