"""Radiance fields in the real bpy module: camera rigs, training views, transforms.json, Fit NeRF, Render View.

Renders are tiny (at most 40x40 pixels, Cycles on the CPU with a few samples) so that the
whole file runs on 2 cores in about a minute.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from conftest import prefs, scene_state, select_only

RIG = "INR Camera Rig"


# -- scene helpers -------------------------------------------------------------------------------
def _cube(size=1.0, location=(0.0, 0.0, 0.0), color=None, name="Cube"):
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.active_object
    obj.name = name
    if color is not None:
        _paint(obj, color)
    return obj


def _paint(obj, color) -> None:
    material = bpy.data.materials.new(obj.name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = 1.0
    obj.data.materials.append(material)


def _cycles(scene, samples=4) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 2
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 2


def _rig():
    return bpy.data.collections[RIG]


def _cameras(rig=None):
    return sorted((o for o in (rig or _rig()).objects if o.type == "CAMERA"), key=lambda o: o.name)


def _state():
    """scene_state() plus what these operators could touch: collections, cameras, images, render settings."""
    scene = bpy.context.scene
    r = scene.render
    return (
        scene_state(),
        sorted(c.name for c in bpy.data.collections),
        sorted(c.name for c in bpy.data.cameras),
        sorted(i.name for i in bpy.data.images),
        sorted(m.name for m in bpy.data.materials),
        (r.resolution_x, r.resolution_y, r.resolution_percentage, r.filepath, r.film_transparent, r.image_settings.file_format),
        scene.camera.name if scene.camera else None,
        sorted((c.name, str(c.get("inr_views"))) for c in bpy.data.collections),
    )


def _refused(op, match, **kwargs):
    before = _state()
    with pytest.raises(RuntimeError, match=match) as info:
        op(**kwargs)
    assert "\n" not in str(info.value).strip(), "the reason must be one line"
    assert _state() == before


def _c2w(cam) -> np.ndarray:
    """The camera's world matrix with its scale divided out (computed here, not by the add-on)."""
    m = np.array(cam.matrix_world, dtype=np.float64)
    m[:3, :3] /= np.linalg.norm(m[:3, :3], axis=0)
    return m


def _blender_pixels(scene, cam, points) -> np.ndarray:
    """Blender's own projection of world points into ``cam``'s render, in pixels (u right, v down from the top)."""
    from neural_fields.operators.common.cameras import render_size

    w, h = render_size(scene)
    ndc = np.array([tuple(world_to_camera_view(scene, cam, Vector(p))) for p in points])
    return np.stack([ndc[:, 0] * w, (1.0 - ndc[:, 1]) * h], axis=-1)


def _points_in_view(cam, n=50, seed=0) -> np.ndarray:
    """World points in front of the camera, spread over (and a bit past) its view."""
    rng = np.random.default_rng(seed)
    local = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), -rng.uniform(1.0, 8.0, n)], axis=-1)
    local[:, :2] *= -local[:, 2:3] * 0.5
    m = _c2w(cam)
    return local @ m[:3, :3].T + m[:3, 3]


# -- Create Camera Rig -----------------------------------------------------------------------
def test_sphere_rig_surrounds_the_selection_and_looks_at_its_centre(scene):
    a = _cube(size=2.0, location=(1.0, 2.0, 3.0), name="A")
    b = _cube(size=1.0, location=(3.0, 2.0, 3.0), name="B")
    b.rotation_euler = (0.0, 0.0, math.radians(45))
    select_only(a, b)
    assert bpy.ops.inr.create_camera_rig(shape="SPHERE", count=24) == {"FINISHED"}

    rig = _rig()
    cams = _cameras(rig)
    assert len(cams) == 24 and len(rig.objects) == 24 and rig["inr_rig"]
    assert rig.name in bpy.context.scene.collection.children
    # the selection's world box (B is rotated 45 degrees: its corners reach 3 + sqrt(2)/2 in x)
    lo, hi = np.array([0.0, 1.0, 2.0]), np.array([3.0 + math.sqrt(0.5), 3.0, 4.0])
    center = 0.5 * (lo + hi)
    assert np.allclose(rig["inr_center"], center, atol=1e-5)
    pad = 0.05 * (hi - lo).max()
    assert np.allclose(rig["inr_aabb"], [*(lo - pad), *(hi + pad)], atol=1e-5)
    # every camera looks at the centre (its -Z axis points there), all at the same distance
    radius = rig["inr_radius"]
    for cam in cams:
        m = np.array(cam.matrix_world)
        to_center = center - m[:3, 3]
        assert np.linalg.norm(to_center) == pytest.approx(radius, rel=1e-5)
        cosine = np.dot(-m[:3, 2], to_center) / np.linalg.norm(to_center)
        assert cosine > 1 - 1e-6, cam.name
        assert m[2, 1] >= -1e-6  # no camera is upside down: its up axis never points below the horizon
    # automatic radius: the bounding sphere spans 80% of the (square, 200 px) view of a 50 mm lens
    bound = 0.5 * np.linalg.norm(hi - lo)
    tan_half_fov = 0.5 * 36.0 / 50.0
    assert bound / math.sqrt(radius**2 - bound**2) == pytest.approx(0.8 * tan_half_fov, rel=1e-5)
    r = bpy.context.scene.render
    assert (r.resolution_x, r.resolution_y, r.resolution_percentage) == (200, 200, 100)
    assert all(c.data.lens == 50.0 and c.data.type == "PERSP" for c in cams)
    # evenly spread: the directions average to ~0 and no two cameras are close together
    d = np.array([np.array(c.matrix_world)[:3, 3] - center for c in cams]) / radius
    assert np.linalg.norm(d.mean(axis=0)) < 0.05
    angles = np.arccos(np.clip(d @ d.T, -1, 1)) + np.eye(len(d)) * 10
    assert angles.min() > 0.6 * math.sqrt(4 * math.pi / len(d))  # Fibonacci: 0.72 of the mean spacing
    # the selection is untouched
    assert {o.name for o in bpy.context.selected_objects} == {"A", "B"}


def test_hemisphere_and_ring_rigs(scene):
    cube = _cube(size=2.0, location=(0.0, 0.0, 1.0))
    assert bpy.ops.inr.create_camera_rig(shape="HEMISPHERE", count=12) == {"FINISHED"}
    hemi = _cameras()
    assert len(hemi) == 12 and all(c.matrix_world.translation.z >= 1.0 for c in hemi)
    heights = sorted(c.matrix_world.translation.z for c in hemi)
    assert heights[-1] - heights[0] > 0.5 * _rig()["inr_radius"]  # spread over the dome, not one ring

    select_only(cube)
    assert bpy.ops.inr.create_camera_rig(shape="RING", count=8, radius=5.0, lens=35.0, resolution_x=64, resolution_y=48) == {"FINISHED"}
    ring = bpy.data.collections[f"{RIG}.001"]
    cams = _cameras(ring)
    locs = np.array([c.matrix_world.translation for c in cams])
    assert len(cams) == 8 and np.allclose(locs[:, 2], 1.0, atol=1e-6)
    assert np.allclose(np.linalg.norm(locs[:, :2], axis=1), 5.0, atol=1e-5)
    azimuths = np.sort(np.arctan2(locs[:, 1], locs[:, 0]))
    assert np.allclose(np.diff(azimuths), 2 * math.pi / 8, atol=1e-5)
    assert all(c.data.lens == 35.0 for c in cams)
    r = bpy.context.scene.render
    assert (r.resolution_x, r.resolution_y) == (64, 48)

    select_only(cube)
    assert bpy.ops.inr.create_camera_rig(shape="RING", count=6, radius=4.0, elevation=math.radians(30)) == {"FINISHED"}
    locs = np.array([c.matrix_world.translation for c in _cameras(bpy.data.collections[f"{RIG}.002"])])
    assert np.allclose(locs[:, 2], 1.0 + 4.0 * math.sin(math.radians(30)), atol=1e-5)


def test_flat_selection_gets_a_box_with_depth(scene):
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    assert bpy.ops.inr.create_camera_rig(count=4) == {"FINISHED"}
    box = np.array(_rig()["inr_aabb"]).reshape(2, 3)
    assert np.allclose(box[1] - box[0], [2.2, 2.2, 0.2], atol=1e-5)


def test_rig_refuses_nothing_to_frame(scene):
    cube = _cube()
    cube.select_set(False)
    _refused(bpy.ops.inr.create_camera_rig, "nothing selected")
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    bpy.context.collection.objects.link(cam)
    select_only(cam)
    _refused(bpy.ops.inr.create_camera_rig, "'Cam' is a camera")
    empty = bpy.data.objects.new("Nothing", bpy.data.meshes.new("Nothing"))
    bpy.context.collection.objects.link(empty)
    select_only(empty)
    _refused(bpy.ops.inr.create_camera_rig, "the selected objects are empty")


# -- cameras: intrinsics against Blender's own projection --------------------------------------
CAMERA_CASES = {
    "square": dict(res=(32, 32)),
    "landscape_shift": dict(res=(32, 24), shift=(0.1, -0.05)),
    "portrait_auto": dict(res=(24, 40), shift=(0.05, 0.1)),
    "vertical_fit": dict(res=(32, 24), fit="VERTICAL", sensor=(36.0, 20.0), shift=(-0.08, 0.0)),
    "horizontal_fit_portrait": dict(res=(24, 40), fit="HORIZONTAL", sensor=(30.0, 24.0), lens=35.0),
    "pixel_aspect": dict(res=(40, 30), aspect=(1.0, 1.25), shift=(0.1, 0.1)),
    "pixel_aspect_vertical": dict(res=(30, 40), aspect=(1.3, 1.0), fit="VERTICAL", sensor=(36.0, 24.0)),
    "percentage": dict(res=(64, 48), percent=50, shift=(0.0, 0.2)),
}


def _configure(scene, cam, case) -> None:
    r = scene.render
    r.resolution_x, r.resolution_y = case["res"]
    r.resolution_percentage = case.get("percent", 100)
    r.pixel_aspect_x, r.pixel_aspect_y = case.get("aspect", (1.0, 1.0))
    cam.data.sensor_fit = case.get("fit", "AUTO")
    cam.data.sensor_width, cam.data.sensor_height = case.get("sensor", (36.0, 24.0))
    cam.data.shift_x, cam.data.shift_y = case.get("shift", (0.0, 0.0))
    cam.data.lens = case.get("lens", 50.0)


@pytest.mark.parametrize("case", list(CAMERA_CASES))
def test_projection_agrees_with_blender(scene, case):
    import torch
    from neural_fields.operators.common.cameras import camera_to_world, intrinsics

    from inr_blender.render.cameras import project_points, rays_from_pixels

    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location = (1.0, -4.0, 2.0)
    cam.rotation_euler = (1.2, 0.1, 0.3)
    cam.scale = (2.0, 2.0, 2.0)  # the scale must not change the projection
    _configure(scene, cam, CAMERA_CASES[case])
    bpy.context.view_layer.update()
    fx, fy, cx, cy, w, h = intrinsics(scene, cam)
    assert (w, h) == tuple(int(v * CAMERA_CASES[case].get("percent", 100) / 100) for v in CAMERA_CASES[case]["res"])
    points = _points_in_view(cam)
    uv, depth = project_points(camera_to_world(cam), np.array([fx, fy, cx, cy]), points)
    expected = _blender_pixels(scene, cam, points)
    assert np.abs(uv - expected).max() < 1e-3
    assert np.allclose(depth, [world_to_camera_view(scene, cam, Vector(p)).z for p in points], rtol=1e-5)
    # the backend's ray through the pixel where Blender projects each point passes through the point
    n = len(points)
    c2w = torch.as_tensor(camera_to_world(cam))[None].expand(n, 4, 4)
    pinhole = torch.tensor([fx, fy, cx, cy], dtype=torch.float64)[None].expand(n, 4)
    pixel = torch.as_tensor(expected) - 0.5  # rays_from_pixels takes pixel indices and adds the half pixel
    origins, directions, _ = rays_from_pixels(c2w, pinhole, pixel[:, 0], pixel[:, 1])
    target = torch.as_tensor(points, dtype=torch.float64)
    along = ((target - origins) * directions).sum(dim=-1)
    assert (along > 0).all() and torch.allclose(origins + directions * along[:, None], target, atol=1e-6)


# -- Render Training Views and transforms.json ---------------------------------------------------------
def _small_rig(scene, count=5, res=(32, 24), samples=4, **rig):
    cube = _cube(size=1.0, location=(0.3, -0.2, 0.5), color=(0.8, 0.1, 0.1))
    _cycles(scene, samples)
    assert bpy.ops.inr.create_camera_rig(count=count, resolution_x=res[0], resolution_y=res[1], **rig) == {"FINISHED"}
    return cube


def _read_rgba(path) -> np.ndarray:
    from inr_blender.render.dataset import read_image

    return read_image(str(path))


def test_transforms_round_trip(scene, tmp_path):
    """A rig rendered by Cycles and read back by the backend: the same cameras, intrinsics and images."""
    from inr_blender.render.cameras import project_points
    from inr_blender.render.dataset import load_transforms

    cube = _small_rig(scene, count=5, shape="SPHERE")
    cams = _cameras()
    # vary the cameras: shift, sensor fits, another lens, a scaled camera object
    cams[1].data.shift_x = 0.1
    cams[2].data.sensor_fit, cams[2].data.sensor_height, cams[2].data.shift_y = "VERTICAL", 20.0, -0.05
    cams[3].data.sensor_fit, cams[3].data.lens = "HORIZONTAL", 35.0
    cams[4].scale = (3.0, 3.0, 3.0)
    scene.render.filepath = "//keep/"
    scene.render.image_settings.file_format = "JPEG"
    scene.camera = None
    bpy.context.view_layer.update()

    folder = tmp_path / "views"
    assert bpy.ops.inr.render_training_views(directory=str(folder), transparent=True) == {"FINISHED"}
    # the scene is as it was, save for the rig's folder
    assert scene.camera is None and scene.render.filepath == "//keep/" and scene.render.image_settings.file_format == "JPEG"
    assert not scene.render.film_transparent
    assert _rig()["inr_views"] == str(folder)
    files = sorted(os.listdir(folder))
    assert files == ["r_000.png", "r_001.png", "r_002.png", "r_003.png", "r_004.png", "transforms.json"]

    doc = json.loads((folder / "transforms.json").read_text())
    assert doc["camera_model"] == "PINHOLE" and (doc["w"], doc["h"]) == (32, 24)
    assert doc["camera_angle_x"] == pytest.approx(2 * math.atan(16 / doc["fl_x"]))
    assert np.allclose(doc["aabb"], np.array(_rig()["inr_aabb"]).reshape(2, 3))
    assert [f["file_path"] for f in doc["frames"]] == [f"./r_{k:03d}.png" for k in range(5)]
    assert "fl_x" not in doc["frames"][0] and "cx" in doc["frames"][1]  # frames repeat only what differs

    views = load_transforms(str(folder), background=(1.0, 1.0, 1.0))
    assert views.images.shape == (5, 24, 32, 3) and views.names == [f"r_{k:03d}.png" for k in range(5)]
    assert np.allclose(views.aabb, np.array(_rig()["inr_aabb"]).reshape(2, 3))
    for k, cam in enumerate(cams):
        assert np.allclose(views.c2w[k], _c2w(cam), atol=1e-6), cam.name
        points = _points_in_view(cam, seed=k)
        uv, _ = project_points(views.c2w[k], views.intrinsics[k], points)
        assert np.abs(uv - _blender_pixels(scene, cam, points)).max() < 1e-3, cam.name
        # the image is this camera's: the cube's silhouette sits where the camera projects the cube
        alpha = _read_rgba(folder / f"r_{k:03d}.png")[..., 3]
        assert alpha.shape == (24, 32) and alpha.max() == 1.0 and alpha[0, 0] == 0.0
        v, u = np.nonzero(alpha > 0.5)
        corners = np.array([cube.matrix_world @ Vector(c) for c in cube.bound_box])
        box_uv, _ = project_points(views.c2w[k], views.intrinsics[k], corners)
        assert box_uv[:, 0].min() - 1 <= u.min() and u.max() + 1 <= box_uv[:, 0].max() + 1, cam.name
        assert box_uv[:, 1].min() - 1 <= v.min() and v.max() + 1 <= box_uv[:, 1].max() + 1, cam.name
        assert abs(u.mean() + 0.5 - box_uv[:, 0].mean()) < 2.0 and abs(v.mean() + 0.5 - box_uv[:, 1].mean()) < 2.0, cam.name
    # transparent film over the chosen background: corners are white
    assert np.allclose(views.images[:, 0, 0], 1.0)


def test_views_go_beside_the_saved_blend(scene, tmp_path):
    _small_rig(scene, count=2, res=(16, 16))
    _refused(bpy.ops.inr.render_training_views, "relative to the .blend, which is not saved yet", directory="//views/")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "capture.blend"))
    assert bpy.ops.inr.render_training_views() == {"FINISHED"}
    rig = _rig()
    assert rig["inr_views"] == "//INR_Camera_Rig_views/"
    assert (tmp_path / "INR_Camera_Rig_views" / "transforms.json").is_file()
    assert sorted(p.name for p in (tmp_path / "INR_Camera_Rig_views").iterdir()) == ["r_000.png", "r_001.png", "transforms.json"]


def test_blender_reader_for_a_remote_worker_matches_the_backend(scene, tmp_path):
    """The remote path reads views in Blender: the same pixels, cameras and intrinsics as the backend's reader."""
    from neural_fields.operators.fit_nerf import read_views

    from inr_blender.render.dataset import load_transforms

    _small_rig(scene, count=3, shape="RING", elevation=0.3)
    _cameras()[1].data.shift_x = 0.07
    folder = tmp_path / "views"
    assert bpy.ops.inr.render_training_views(directory=str(folder), transparent=True) == {"FINISHED"}
    images_before = len(bpy.data.images)
    arrays, aabb = read_views(str(folder))
    assert len(bpy.data.images) == images_before  # the loaded images are removed again
    assert arrays["images"].dtype == np.uint8 and arrays["images"].shape == (3, 24, 32, 4)
    for k in range(3):
        assert np.array_equal(arrays["images"][k], np.round(_read_rgba(folder / f"r_{k:03d}.png") * 255).astype(np.uint8))
    views = load_transforms(str(folder))
    assert np.allclose(arrays["c2w"], views.c2w, atol=1e-6)
    assert np.allclose(arrays["intrinsics"], views.intrinsics, rtol=1e-6)
    assert np.allclose(aabb, views.aabb)


# -- bad input ---------------------------------------------------------------------------
def test_render_without_a_rig(scene):
    _cube()
    _refused(bpy.ops.inr.render_training_views, "no camera rig in the scene")


@pytest.mark.parametrize("lens", ["ORTHO", "PANO"])
def test_non_perspective_camera_is_refused_before_rendering(scene, tmp_path, lens):
    _small_rig(scene, count=3, res=(16, 16))
    _cameras()[2].data.type = lens
    folder = tmp_path / "views"
    kind = "orthographic" if lens == "ORTHO" else "panoramic"
    _refused(bpy.ops.inr.render_training_views, f"'{RIG} 002' has an? {kind} lens: radiance fields need perspective cameras", directory=str(folder))
    assert not folder.exists() or not any(folder.iterdir())


def test_two_rigs_need_a_camera_selected(scene, tmp_path):
    cube = _small_rig(scene, count=2, res=(16, 16))
    select_only(cube)
    assert bpy.ops.inr.create_camera_rig(count=3, shape="RING") == {"FINISHED"}
    _refused(bpy.ops.inr.render_training_views, "2 camera rigs are in the scene: select a camera", directory=str(tmp_path / "a"))
    second = _cameras(bpy.data.collections[f"{RIG}.001"])
    select_only(second[0])
    assert bpy.ops.inr.render_training_views(directory=str(tmp_path / "b")) == {"FINISHED"}
    assert len(json.loads((tmp_path / "b" / "transforms.json").read_text())["frames"]) == 3


def test_fit_nerf_needs_views(scene, tmp_path):
    _cube()
    _refused(bpy.ops.inr.fit_nerf, "no camera rig in the scene", source="RIG")
    _small_rig(scene, count=2, res=(16, 16))
    _refused(bpy.ops.inr.fit_nerf, "has no rendered views: render the training views first", source="RIG")
    _refused(
        bpy.ops.inr.fit_nerf, "transforms file not found: .*nowhere", source="FILE", transforms_path=str(tmp_path / "nowhere" / "transforms.json")
    )
    _refused(bpy.ops.inr.fit_nerf, "no transforms.json in", source="FILE", transforms_path=str(tmp_path))


def _fake_field(kind: str, checkpoint: str = "/nonexistent/field.pt"):
    """A field object as Fit makes one, without weights: for refusals that come before any job."""
    obj = bpy.data.objects.new(f"{kind} Field", None)
    bpy.context.collection.objects.link(obj)
    obj.inr_field.is_field, obj.inr_field.kind, obj.inr_field.checkpoint = True, kind, checkpoint
    select_only(obj)
    return obj


def test_render_view_refusals(scene):
    _refused(bpy.ops.inr.render_nerf_view, "not a neural field")
    _fake_field("SDF")
    _refused(bpy.ops.inr.render_nerf_view, "'SDF Field' is a signed distance field: Render View needs a radiance field")
    _fake_field("NERF")
    _refused(bpy.ops.inr.render_nerf_view, "the scene has no active camera")
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.type = "ORTHO"
    _refused(bpy.ops.inr.render_nerf_view, "'Cam' has an orthographic lens")
    cam.data.type = "PERSP"
    _refused(bpy.ops.inr.render_nerf_view, "checkpoint of 'NERF Field' not found")
    _refused(bpy.ops.inr.evaluate_field, "'NERF Field' is a radiance field: Evaluate Field needs a signed distance field")
    _refused(bpy.ops.inr.extract_mesh, "checkpoint of 'NERF Field' not found")


def _write_views(folder, frames, images=None, **meta):
    """A transforms.json with ``frames`` and small PNG files (via Blender) named in ``images``: name -> (w, h)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in (images or {}).items():
        image = bpy.data.images.new("tmp", w, h)
        image.filepath_raw = str(folder / name)
        image.file_format = "PNG"
        image.save()
        bpy.data.images.remove(image)
    (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, **meta, "frames": frames}) if frames is not None else "{ not json")
    return folder


EYE = np.eye(4).tolist()
BAD_FILES = {
    "missing image": (lambda f: _write_views(f, [{"file_path": "./r_000", "transform_matrix": EYE}]), "frame 0: image not found: .*r_000"),
    "different sizes": (
        lambda f: _write_views(
            f,
            [{"file_path": "./a.png", "transform_matrix": EYE}, {"file_path": "./b.png", "transform_matrix": EYE}],
            {"a.png": (8, 8), "b.png": (8, 6)},
        ),
        "images of different sizes: b.png is 8x6",
    ),
    "malformed": (lambda f: _write_views(f, None), "cannot read .*transforms.json"),
    "zero frames": (lambda f: _write_views(f, []), "zero frames"),
    "distortion": (lambda f: _write_views(f, [{"file_path": "./a.png", "transform_matrix": EYE}], {"a.png": (8, 8)}, k1=0.1), "distortion k1"),
    "fisheye": (
        lambda f: _write_views(f, [{"file_path": "./a.png", "transform_matrix": EYE}], {"a.png": (8, 8)}, camera_model="OPENCV_FISHEYE"),
        "camera model 'OPENCV_FISHEYE' is not supported",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_transforms_for_a_remote_worker_are_refused_in_blender(scene, tmp_path, case):
    """A remote worker gets arrays that Blender read: Blender refuses a bad file before any connection."""
    make, match = BAD_FILES[case]
    folder = make(tmp_path / "views")
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", 9, "unused"
    images = len(bpy.data.images)
    _refused(bpy.ops.inr.fit_nerf, match, source="FILE", transforms_path=str(folder), iterations=1)
    assert len(bpy.data.images) == images


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_transforms_are_refused_by_the_local_backend(scene, tmp_path, case):
    make, match = BAD_FILES[case]
    folder = make(tmp_path / "views")
    _refused(bpy.ops.inr.fit_nerf, match, source="FILE", transforms_path=str(folder), iterations=1)


# -- end to end: Cycles views -> Fit NeRF -> Render View -> Extract Mesh ------------------------------
# A small fast field for 2 CPU cores: 8 hash levels of 2^14 entries up to 128^3, 4096 samples per
# step along 128 marching steps across the cube. 24 views of 32x32, every 8th held out (3 views).
TINY_NERF = dict(
    model="FAST", iterations=150, holdout_every=8, levels=8, log2_table_size=14, finest_resolution=128, samples_per_step=4096, march_steps=128
)
# Measured on the development machine (2 CPU cores, shared): held-out PSNR 23.97 dB (SSIM 0.82) after
# 150 steps; Render View of held-out camera 0 against Cycles' image 23.16 dB (upside down: 12.6 dB; a
# blank white image scores about 11 dB). The bounds leave 3-4 dB for run-to-run noise.
HELD_OUT_PSNR_BOUND = 20.0
VIEW_PSNR_BOUND = 20.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10.0 * np.log10(np.mean((a - b) ** 2)))


def _coloured_scene(scene):
    """A red cube beside a blue sphere, lit by a sun and a grey world, on transparent film."""
    cube = _cube(size=1.0, location=(-0.5, 0.0, 0.0), color=(0.8, 0.05, 0.05), name="Red")
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(0.6, 0.0, 0.0), segments=24, ring_count=12)
    sphere = bpy.context.active_object
    sphere.name = "Blue"
    _paint(sphere, (0.05, 0.1, 0.8))
    world = bpy.data.worlds.new("Grey")
    world.color = (0.5, 0.5, 0.5)
    scene.world = world
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.5)
    scene.collection.objects.link(sun)
    scene.view_settings.view_transform = "Standard"
    _cycles(scene, samples=8)
    select_only(cube, sphere)
    return cube, sphere


@pytest.mark.slow
def test_fit_render_and_extract_a_radiance_field(scene, tmp_path):
    import time

    from inr_blender.render.dataset import composite

    _coloured_scene(scene)
    assert bpy.ops.inr.create_camera_rig(shape="SPHERE", count=24, resolution_x=32, resolution_y=32) == {"FINISHED"}
    rig = _rig()
    assert bpy.ops.inr.render_training_views(directory=str(tmp_path / "views"), transparent=True) == {"FINISHED"}
    started = time.monotonic()
    assert bpy.ops.inr.fit_nerf(source="RIG", **TINY_NERF) == {"FINISHED"}
    fit_seconds = time.monotonic() - started

    field = bpy.context.active_object
    s = field.inr_field
    assert field.name == f"{RIG}_NeRF" and field.type == "EMPTY" and s.is_field and s.kind == "NERF" and s.nerf.model == "FAST"
    assert (s.nerf.num_views, s.nerf.num_holdout, s.nerf.image_width, s.nerf.image_height) == (21, 3, 32, 32)
    assert s.nerf.views_path == str(tmp_path / "views") and os.path.isfile(s.checkpoint)
    assert s.iterations == 150 and len(s.loss_history) > 10 and s.stop_reason
    assert tuple(s.nerf.background) == (1.0, 1.0, 1.0)
    # the field's cube is the rig's box: local [-1, 1]^3 -> world holds the padded selection
    box = np.array(rig["inr_aabb"]).reshape(2, 3)
    assert np.allclose(field.location, box.mean(axis=0), atol=1e-5)
    assert np.allclose(field.scale, [0.5 * (box[1] - box[0]).max()] * 3, atol=1e-5)
    print(
        f"tiny NeRF: held-out PSNR {s.nerf.psnr:.2f} dB (bound {HELD_OUT_PSNR_BOUND}), SSIM {s.nerf.ssim:.3f}, "
        f"train PSNR {s.nerf.train_psnr:.2f} dB, fit {fit_seconds:.1f} s"
    )
    assert s.nerf.psnr > HELD_OUT_PSNR_BOUND and 0.5 < s.nerf.ssim <= 1.0

    # Render View from a held-out camera (view 0) against Cycles' image of it, over the same white
    cams = _cameras(rig)
    scene.camera = cams[0]
    images_before = len(bpy.data.images)
    saved = tmp_path / "novel" / "view.png"
    assert bpy.ops.inr.render_nerf_view(filepath=str(saved)) == {"FINISHED"}
    view, depth = bpy.data.images[f"{field.name} view"], bpy.data.images[f"{field.name} depth"]
    assert len(bpy.data.images) == images_before + 2
    assert tuple(view.size) == (32, 32) and tuple(depth.size) == (32, 32) and depth.is_float
    assert depth.colorspace_settings.name == "Non-Color"
    pixels = np.empty(32 * 32 * 4, np.float32)
    view.pixels.foreach_get(pixels)
    rgb = pixels.reshape(32, 32, 4)[::-1, :, :3]  # Blender's rows run bottom to top
    reference_rgba = _read_rgba(tmp_path / "views" / "r_000.png")
    reference = composite(reference_rgba, (1.0, 1.0, 1.0))[0]
    view_psnr = _psnr(rgb, reference)
    print(
        f"tiny NeRF: Render View of held-out camera 0 against Cycles: {view_psnr:.2f} dB (bound {VIEW_PSNR_BOUND}); "
        f"upside down it would be {_psnr(rgb[::-1], reference):.2f} dB"
    )
    assert view_psnr > VIEW_PSNR_BOUND
    assert np.abs(_read_rgba(saved)[..., :3] - rgb).max() <= 1 / 255 + 1e-6  # the file holds the same picture
    assert view.source == "GENERATED" and not view.filepath
    # depth: the z-distance to the objects, which lie within the bounding sphere around the centre
    d = np.empty(32 * 32 * 4, np.float32)
    depth.pixels.foreach_get(d)
    d = d.reshape(32, 32, 4)[::-1, :, 0]
    solid = reference_rgba[..., 3] > 0.99
    radius, bound = rig["inr_radius"], 0.5 * np.linalg.norm(box[1] - box[0])
    inside = (d[solid] > radius - bound) & (d[solid] < radius + bound)
    print(
        f"tiny NeRF: depth within the bounding sphere on {inside.mean():.0%} of the objects' pixels; "
        f"median depth off them {np.median(d[reference_rgba[..., 3] == 0]):.3f}"
    )
    assert inside.mean() > 0.9
    # a second render reuses the images
    scene.camera = cams[5]
    assert bpy.ops.inr.render_nerf_view() == {"FINISHED"}
    assert len(bpy.data.images) == images_before + 2

    # Extract Mesh at the density the fit suggested (the median density where training rays end):
    # a coloured mesh with a material that shows the colours
    assert 0 < s.nerf.density_threshold < 1000
    bpy.context.view_layer.objects.active = field
    assert bpy.ops.inr.extract_mesh(resolution=64) == {"FINISHED"}
    mesh_obj = bpy.context.active_object
    mesh = mesh_obj.data
    assert mesh_obj.name == f"{field.name}_mesh" and len(mesh.vertices) > 100
    assert np.allclose(np.array(mesh_obj.matrix_world), np.array(field.matrix_world))
    attr = mesh.color_attributes["Col"]
    assert attr.domain == "POINT" and attr.data_type == "BYTE_COLOR" and mesh.color_attributes.active_color_name == "Col"
    material = mesh_obj.active_material
    nodes = material.node_tree.nodes
    source = next(n for n in nodes if n.type == "VERTEX_COLOR")
    assert source.layer_name == "Col"
    assert source.outputs["Color"].links[0].to_socket == nodes["Principled BSDF"].inputs["Base Color"]
    colors = np.empty(len(mesh.vertices) * 4, np.float32)
    attr.data.foreach_get("color_srgb", colors)
    colors = colors.reshape(-1, 4)[:, :3]
    world = np.array([mesh_obj.matrix_world @ v.co for v in mesh.vertices])
    cube = 0.5 * (box[1] - box[0]).max()  # the field's domain: the cube around the rig's box
    assert (np.abs(world - box.mean(axis=0)) <= cube + 1e-3).all()
    red, blue = world[:, 0] < -0.2, world[:, 0] > 0.3  # the cube's side and the sphere's side of the scene
    print(
        f"tiny NeRF mesh at density {s.nerf.density_threshold:.3g}: {len(world)} vertices, {red.sum()} on the cube's side "
        f"(mean colour {colors[red].mean(axis=0).round(3)}), {blue.sum()} on the sphere's "
        f"(mean colour {colors[blue].mean(axis=0).round(3) if blue.any() else '-'})"
    )
    # After 150 steps the sphere is still soft (its density peaks near 7, the cube's above 20): the
    # suggested threshold (measured 6.9) keeps the cube's surface; the sphere's appears with longer fits.
    assert red.sum() > 50
    assert (colors[red, 0] > colors[red, 2] + 0.2).mean() > 0.8  # the cube is red

    # Evaluate Field measures signed distance fields only
    bpy.context.view_layer.objects.active = field
    _refused(bpy.ops.inr.evaluate_field, "is a radiance field: Evaluate Field needs a signed distance field")


@pytest.mark.slow
def test_remote_worker_fits_from_images_blender_read(scene, tmp_path, remote_worker):
    """A remote worker cannot read this machine's files: Blender sends the images, the weights come back."""
    _, port, token = remote_worker
    _coloured_scene(scene)
    assert bpy.ops.inr.create_camera_rig(shape="SPHERE", count=8, resolution_x=16, resolution_y=16) == {"FINISHED"}
    assert bpy.ops.inr.render_training_views(directory=str(tmp_path / "views"), transparent=True) == {"FINISHED"}
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token
    images = len(bpy.data.images)
    tiny = dict(TINY_NERF, iterations=20, holdout_every=4)
    assert bpy.ops.inr.fit_nerf(source="RIG", **tiny) == {"FINISHED"}
    assert len(bpy.data.images) == images  # the images Blender loaded to send are gone again
    field = bpy.context.active_object
    s = field.inr_field
    assert (s.nerf.num_views, s.nerf.num_holdout, s.nerf.image_width, s.nerf.image_height) == (6, 2, 16, 16)
    assert os.path.getsize(s.checkpoint) > 1000 and s.nerf.psnr > 5.0
    box = np.array(_rig()["inr_aabb"]).reshape(2, 3)
    assert np.allclose(field.location, box.mean(axis=0), atol=1e-5)  # the rig's box travelled with the arrays
    scene.camera = _cameras()[0]
    assert bpy.ops.inr.render_nerf_view() == {"FINISHED"}  # the weights travel back to the worker
    assert tuple(bpy.data.images[f"{field.name} view"].size) == (16, 16)
