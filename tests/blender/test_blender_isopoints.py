"""Sample Iso-points in the real bpy module: points on a fitted sphere back in the scene (normals,
residuals, render points by geometry nodes), upsampling, the normals' round trip into Fit SDF, Fit SDF
with the iso-point term, the remote worker, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bpy

from conftest import (
    add_point_cloud,
    fake_field,
    inside_everywhere_checkpoint,
    open_field,
    prefs,
    refusals_of_an_sdf_operator,
    refused,
    select_only,
    set_local_backend,
    sphere_points,
    world_points,
)

CENTRE = (2.0, 0.0, 1.0)
# A small IGR (its geometric initialisation is a sphere already): about a second on 2 cores.
QUICK_IGR = dict(preset="CUSTOM", method="IGR", width=64, depth=3, batch_size=1024, num_samples=20000)


def _refused(match, **kwargs):
    refused(bpy.ops.inr.sample_isopoints, match, **kwargs)


def _attribute(obj, name: str, data_type: str) -> np.ndarray:
    attr = obj.data.attributes[name]
    assert attr.data_type == data_type and attr.domain == "POINT"
    width = 3 if data_type == "FLOAT_VECTOR" else 1
    values = np.empty(len(obj.data.vertices) * width, dtype=np.float32)
    attr.data.foreach_get("vector" if width == 3 else "value", values)
    return values.reshape(-1, 3) if width == 3 else values


def _world_normals(obj) -> np.ndarray:
    mat = np.array(obj.matrix_world)[:3, :3]
    n = _attribute(obj, "normal", "FLOAT_VECTOR").astype(np.float64) @ np.linalg.inv(mat)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _render_points(obj) -> tuple[int, np.ndarray]:
    """The points the object's geometry nodes make (its evaluated point cloud): their count and world radii."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    clouds = []
    for i in depsgraph.object_instances:  # read while iterating: the instances do not outlive the loop
        if i.is_instance and i.object.type == "POINTCLOUD" and i.parent and i.parent.original == obj:
            cloud = i.object.data
            radius = np.empty(len(cloud.points), dtype=np.float32)
            cloud.attributes["radius"].data.foreach_get("value", radius)
            clouds.append((len(cloud.points), radius * np.linalg.norm(np.array(i.matrix_world)[:3, 0])))
    assert len(clouds) == 1, clouds
    return clouds[0]


@pytest.fixture(scope="module")
def sphere_blend(addon, tmp_path_factory):
    """A .blend with a small IGR field of a unit UV sphere at CENTRE (fitted once for the module)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    set_local_backend()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=32, ring_count=16, location=CENTRE)
    assert bpy.ops.inr.fit_sdf(**QUICK_IGR, iterations=300) == {"FINISHED"}
    field = bpy.context.active_object
    assert "isopoints" not in json.loads(field.inr_field.settings_json)  # off unless asked for
    path = tmp_path_factory.mktemp("isopoints") / "sphere.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path, field.name


def _open_field(sphere_blend):
    return open_field(*sphere_blend)


def _check_on_sphere(obj, tolerance: float = 0.05) -> np.ndarray:
    points = world_points(obj)
    radial = (points - CENTRE) / np.linalg.norm(points - CENTRE, axis=1, keepdims=True)
    assert np.abs(np.linalg.norm(points - CENTRE, axis=1) - 1.0).max() < tolerance
    cos = np.einsum("nd,nd->n", _world_normals(obj), radial)
    assert cos.mean() > 0.95 and cos.min() > 0.5, (cos.mean(), cos.min())  # outward, radial
    return points


@pytest.mark.slow
def test_isopoints_lie_on_the_sphere_with_radial_normals(scene, sphere_blend):
    field = _open_field(sphere_blend)
    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.sample_isopoints(count=2000) == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.name == f"{field.name}_isopoints" and obj.type == "MESH"
    assert set(bpy.data.objects.keys()) - before == {obj.name}
    assert len(obj.data.edges) == 0 and len(obj.data.polygons) == 0  # vertices only
    assert np.allclose(np.array(obj.matrix_world), np.array(field.matrix_world))  # in the field's frame, as Extract Mesh

    s = field.inr_field.isopoints
    points = _check_on_sphere(obj)
    assert s.has_result and s.points == len(points) and s.upsampled == 0
    assert 1800 <= len(points) <= 2000, (len(points), s.discarded)  # 2000 asked, a few may not converge
    residual = _attribute(obj, "residual", "FLOAT")
    assert residual.max() < 1e-4  # |f| after projection: the backend keeps only points under its tolerance (5e-5)
    assert 0.0 < s.spacing_cv < 0.5 and s.seconds > 0  # resampled: evenly spread

    # shown and rendered as points by geometry nodes, at half the mean spacing (the automatic radius)
    (modifier,) = obj.modifiers
    assert modifier.type == "NODES" and modifier.node_group.name == "INR Iso-points"
    count, radius = _render_points(obj)
    spacing = 2.0 * np.sqrt(np.pi / len(points))  # about, for an even sample of the unit sphere
    assert count == len(points)
    assert np.allclose(radius, s.radius_used, rtol=1e-4)
    assert 0.25 * spacing < s.radius_used < 0.75 * spacing, (s.radius_used, spacing)

    # the field's settings (the panel's) stand in for what the call does not set; the group is reused
    s.count, s.point_radius, s.resample = 500, 0.02, False
    select_only(field)
    assert bpy.ops.inr.sample_isopoints() == {"FINISHED"}
    again = bpy.context.active_object
    assert again != obj and 450 <= len(again.data.vertices) <= 500
    count, radius = _render_points(again)
    assert count == len(again.data.vertices) and np.allclose(radius, 0.02, rtol=1e-4) and s.radius_used == pytest.approx(0.02)
    assert s.spacing_cv > 0.3  # not resampled: uniform random points are uneven
    _check_on_sphere(again)
    assert [g.name for g in bpy.data.node_groups if g.name.startswith("INR Iso-points")] == ["INR Iso-points"]


@pytest.mark.slow
def test_upsampling_adds_points(scene, sphere_blend):
    field = _open_field(sphere_blend)
    assert bpy.ops.inr.sample_isopoints(count=500, upsample=300, point_radius=0.01) == {"FINISHED"}
    obj = bpy.context.active_object
    s = field.inr_field.isopoints
    n = len(obj.data.vertices)
    assert s.points == n and 0 < s.upsampled <= 300
    assert n - s.upsampled <= 500 and n > 500  # more than asked for before upsampling
    _check_on_sphere(obj)


@pytest.mark.slow
def test_isopoint_normals_round_trip_into_fit_sdf(scene, sphere_blend, addon):
    """The iso-points are a point cloud with normals: Fit SDF reads them back, so SIREN can fit them."""
    field = _open_field(sphere_blend)
    assert bpy.ops.inr.sample_isopoints(count=1000) == {"FINISHED"}
    obj = bpy.context.active_object
    arrays, names = addon.operators.common.bridge.selected_geometry(bpy.context)  # what Fit SDF sends
    assert names == [obj.name] and set(arrays) == {"points", "normals"}
    assert np.allclose(arrays["points"], world_points(obj), atol=1e-5)
    assert np.allclose(arrays["normals"], _world_normals(obj), atol=1e-5)
    assert bpy.ops.inr.fit_sdf(preset="CUSTOM", method="SIREN", iterations=5, width=32, depth=2, batch_size=500) == {"FINISHED"}
    s = bpy.context.active_object.inr_field
    assert s.has_normals and s.num_points == len(obj.data.vertices) and s.sources == obj.name
    assert field.name in bpy.data.objects


@pytest.mark.slow
@pytest.mark.parametrize("method", ["IGR", "SIREN", "HASHGRID", "NEURAL_SKELETON"])
def test_fit_sdf_with_isopoints(scene, method):
    """Every method trains with the iso-point term when asked; it is recorded, and off by default."""
    from inr_blender.checkpoint import read_checkpoint

    pts, nrm = sphere_points(2000, radius=0.7)
    add_point_cloud(pts, nrm)
    small = {"HASHGRID": dict(levels=4, log2_table_size=12, finest_resolution=64)}.get(method, dict(width=32, depth=2))
    if method == "NEURAL_SKELETON":
        small = dict(ns_num_hints=0)  # its own network (from the stored sphere pre-fit)
    iso = dict(use_isopoints=True, isopoints=500, isopoints_warmup=20, isopoints_refresh=20, w_iso=2.0, w_iso_normal=0.5)
    assert bpy.ops.inr.fit_sdf(preset="CUSTOM", method=method, iterations=60, batch_size=500, convergence_tolerance=0.0, **small, **iso) == {
        "FINISHED"
    }
    s = bpy.context.active_object.inr_field
    settings = json.loads(s.settings_json)
    assert {k: settings[k] for k in ("isopoints", "isopoints_warmup", "isopoints_refresh", "w_iso", "w_iso_normal")} == {
        "isopoints": 500,
        "isopoints_warmup": 20,
        "isopoints_refresh": 20,
        "w_iso": 2.0,
        "w_iso_normal": 0.5,
    }
    assert "use_isopoints" not in settings
    ckpt = read_checkpoint(bpy.path.abspath(s.checkpoint))
    assert ckpt["params"]["isopoints"] == 500 and ckpt["isopoint_refreshes"] == 2  # at steps 20 and 40 of 60


def test_refusals_leave_the_scene_as_it_was(scene):
    refusals_of_an_sdf_operator(bpy.ops.inr.sample_isopoints, "Sample Iso-points")


def test_count_cannot_be_zero(scene):
    """0 points cannot reach the backend: the operator's and the field's counts have a minimum of 1."""
    assert bpy.ops.inr.sample_isopoints.get_rna_type().properties["count"].hard_min == 1
    field = fake_field("SDF")
    field.inr_field.isopoints.count = 0
    assert field.inr_field.isopoints.count == 1


@pytest.mark.slow
def test_backend_refusals_reach_the_user(scene, sphere_blend, tmp_path):
    """Too many points for memory, and a field with no surface: the backend's reason is the operator's error."""
    _open_field(sphere_blend)
    _refused(r"1,000,000,000 iso-points need about [0-9.]+ GB, more than half of the [0-9.]+ GB available: ask for fewer", count=10**9)

    pytest.importorskip("torch")
    path = inside_everywhere_checkpoint(str(tmp_path / "inside.pt"))
    fake_field("SDF", path)
    _refused(r"the field has no surface in its domain: no point converged onto its zero level", count=200)


@pytest.mark.slow
def test_remote_worker_samples_isopoints(scene, sphere_blend, remote_worker):
    """A remote worker gets the checkpoint's bytes and sends the points back."""
    _, port, token = remote_worker
    field = _open_field(sphere_blend)
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token
    assert bpy.ops.inr.sample_isopoints(count=300) == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.name == f"{field.name}_isopoints" and 250 <= len(obj.data.vertices) <= 300
    _check_on_sphere(obj)
