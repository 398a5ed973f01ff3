"""Guaranteed queries by range analysis: ray casting, closest points and intersection (issue 8), and their jobs."""

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import save_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field
from inr_blender.fields.factory import field_config
from inr_blender.jobs import JOBS
from inr_blender.ranges.closest import closest_points
from inr_blender.ranges.intersection import field_mesh_intersect, fields_intersect
from inr_blender.ranges.raycast import cast_camera, sphere_trace_camera

from test_backend_range_queries import steep_slabs

W = H = 32
INTRINSICS = [40.0, 40.0, W / 2, H / 2]
SMALL_HASHGRID = {
    "levels": 2,
    "features_per_level": 2,
    "log2_table_size": 8,
    "base_resolution": 4,
    "finest_resolution": 8,
    "width": 8,
    "depth": 1,
    "init_radius": 0.5,
}


def sphere_checkpoint(path, center=(0.0, 0.0, 0.0), scale=1.0) -> str:
    """A hash-grid SDF at its initialisation: exactly |x| - 0.5 (its residual's last layer is zero), in world a
    sphere of radius 0.5 * scale around ``center``."""
    torch.manual_seed(0)
    config = field_config("hashgrid", **SMALL_HASHGRID)
    return save_checkpoint({"config": config, "state_dict": build_field(config).state_dict(), "center": list(center), "scale": scale}, str(path))


def camera(z: float = 3.0, x: float = 0.0) -> np.ndarray:
    c2w = np.eye(4, dtype=np.float32)  # looks down -Z
    c2w[:3, 3] = [x, 0.0, z]
    return c2w


def sphere_depths(c2w: np.ndarray, center, radius: float) -> np.ndarray:
    """Analytic distance along each pixel's centre ray to the sphere (inf where it misses)."""
    j, i = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    fx, fy, cx, cy = INTRINSICS
    d = np.stack([(i - cx) / fx, -(j - cy) / fy, -np.ones_like(i)], -1) @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3] - np.asarray(center)
    b = d @ o
    disc = b * b - (o @ o - radius**2)
    return np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0.0)), np.inf)


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    return sphere_checkpoint(tmp_path_factory.mktemp("queries") / "sphere.pt", center=(1.0, 2.0, 3.0), scale=2.0)


@pytest.mark.slow
def test_raycast_job_gives_the_analytic_sphere_depth(sphere):
    """World sphere: radius 1 at (1, 2, 3); the camera 4 units in front. Measured: depth error 7e-6 (float32 field)."""
    c2w = camera(z=7.0, x=1.0)
    c2w[1, 3] = 2.0
    result, arrays = JOBS["raycast_view"]({"checkpoint_path": sphere, "intrinsics": INTRINSICS, "width": W, "height": H}, {"c2w": c2w}, JobContext())
    expected = sphere_depths(c2w, (1.0, 2.0, 3.0), 1.0)
    hit = arrays["hit"].astype(bool)
    assert np.array_equal(hit, np.isfinite(expected)) and hit.sum() > 100
    assert np.abs(arrays["depth"][hit] - expected[hit]).max() < 1e-4
    assert np.isinf(arrays["depth"][~hit]).all()
    assert np.allclose(np.linalg.norm(arrays["normal"][hit], axis=-1), 1.0, atol=1e-4) and arrays["normal"][hit][:, 2].min() > 0
    assert arrays["shaded"].shape == (H, W, 3) and arrays["shaded"].min() >= 0 and arrays["shaded"].max() <= 1
    assert np.allclose(arrays["shaded"][~hit], 1.0)  # white background
    assert result["box_evaluations"] > 0 and result["point_evaluations"] > 0 and result["rays"] == W * H
    traced, st = JOBS["raycast_view"](
        {"checkpoint_path": sphere, "intrinsics": INTRINSICS, "width": W, "height": H, "method": "sphere_tracing"}, {"c2w": c2w}, JobContext()
    )
    both = hit & st["hit"].astype(bool)
    assert both.sum() >= hit.sum() - 8 and np.abs(st["depth"][both] - expected[both]).max() < 5e-3  # a true SDF: sound


def test_ray_casting_keeps_a_thin_steep_slab_that_sphere_tracing_misses():
    """steep_slabs: a slab 0.02 thick at z = 0.3 whose field is 20x steeper than a distance field, and a thick slab at z = -0.5.
    From z = 3 looking down, every centre ray first meets the thin slab at z = 0.31 (distance 2.69)."""
    field = steep_slabs()
    c2w = torch.as_tensor(camera(z=3.0), dtype=torch.float64)
    intr = torch.tensor(INTRINSICS)
    ranged = cast_camera(field, c2w, intr, 16, 16, mode="affine_all")
    traced = sphere_trace_camera(field, c2w, intr, 16, 16, lipschitz=1.0)
    d = ranged.directions.reshape(-1, 3).double()
    expected = (2.69 / -d[:, 2]).reshape(16, 16)  # the plane z = 0.31
    inside = (c2w[:3, 3] + expected.reshape(-1, 1) * d).abs().amax(dim=1).reshape(16, 16) <= 1.0
    assert ranged.hit[inside].all() and (ranged.t - expected)[inside].abs().max() < 1e-5
    assert not (traced.t[inside] - expected[inside]).abs().lt(1e-2).any()  # steps over the thin slab onto the thick one


@pytest.mark.slow
def test_closest_points_are_the_radial_projection(sphere):
    """Measured: distance error < 1e-4, point error < 4e-3 (world units, tolerance 2e-3 local)."""
    rng = np.random.default_rng(0)
    q = rng.uniform(-0.8, 0.8, size=(12, 3))
    q = q[np.linalg.norm(q, axis=1) > 0.2]
    world = np.array([1.0, 2.0, 3.0]) + 2.0 * q
    result, arrays = JOBS["closest_points"]({"checkpoint_path": sphere, "space": "world", "tolerance": 4e-3}, {"points": world}, JobContext())
    expected = np.array([1.0, 2.0, 3.0]) + q / np.linalg.norm(q, axis=1, keepdims=True)
    true = np.abs(2.0 * np.linalg.norm(q, axis=1) - 1.0)
    assert np.abs(arrays["distance"] - true).max() < 1e-3
    assert np.linalg.norm(arrays["closest"] - expected, axis=1).max() < 2e-2
    assert (arrays["lower"] <= true + 1e-5).all() and (arrays["upper"] >= true - 1e-5).all()
    assert result["box_evaluations"] > 0


def test_closest_point_on_a_non_distance_field():
    """The thin steep slab (not a distance field) is the nearest surface from z = 0.6: its upper face z = 0.31."""
    out = closest_points(steep_slabs(), torch.tensor([[0.1, -0.2, 0.6], [0.0, 0.0, -0.1]]), tolerance=2e-3)
    assert torch.allclose(out.distance, torch.tensor([0.29, 0.3]), atol=2e-3)  # the thick slab z = -0.4 is nearer to the second
    assert abs(float(out.closest[0, 2]) - 0.31) < 2e-3 and abs(float(out.closest[1, 2]) + 0.4) < 2e-3


@pytest.mark.slow
@pytest.mark.parametrize("offset, verdict", [(0.8, "intersecting"), (1.2, "disjoint")])
def test_intersection_of_two_spheres(tmp_path, offset, verdict):
    """Two unit-radius world spheres (scale 2) whose centres are ``offset`` * 2 apart, the second in its own frame."""
    a = sphere_checkpoint(tmp_path / "a.pt", center=(0.0, 0.0, 0.0), scale=2.0)
    b = sphere_checkpoint(tmp_path / "b.pt", center=(2.0 * offset, 0.0, 0.0), scale=2.0)
    result, arrays = JOBS["check_intersection"]({"checkpoint_path": a, "other_checkpoint_path": b, "space": "world"}, {}, JobContext())
    assert result["verdict"] == verdict
    if verdict == "intersecting":
        w = np.asarray(result["witness"])
        assert abs(np.linalg.norm(w) - 1.0) < 1e-3 and abs(np.linalg.norm(w - [2.0 * offset, 0, 0]) - 1.0) < 0.2
        assert len(arrays["lower"]) == result["num_boxes"] > 0 and arrays["witness_pair"].shape == (2, 3)
    else:
        assert result["num_boxes"] == 0


def test_intersection_of_a_field_and_a_mesh():
    field = steep_slabs()
    crossing = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])  # from z = 0 to 0.5: through the thin slab
    away = torch.tensor([[0.0, 0.0, 0.5], [0.5, 0.0, 0.6], [0.0, 0.5, 0.6]])
    faces = torch.tensor([[0, 1, 2]])
    hit = field_mesh_intersect(field, crossing, faces)
    assert hit.verdict == "intersecting" and min(abs(float(hit.witness[2]) - z) for z in (0.29, 0.31)) < 1e-4
    assert field_mesh_intersect(field, away, faces).verdict == "disjoint"
    frame = (torch.zeros(3, dtype=torch.float64), 1.0)
    assert fields_intersect(field, field, frame, frame, max_depth=3).verdict in ("intersecting", "unknown")


def test_query_refusals(sphere, tmp_path):
    base = {"checkpoint_path": sphere, "intrinsics": INTRINSICS, "width": W, "height": H}
    away = camera(z=7.0)
    away[:3, :3] = np.diag([1.0, 1.0, 1.0]) @ np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]])  # turned round: looks down +Z
    with pytest.raises(JobError, match="camera looks away from the field's domain"):
        JOBS["raycast_view"](base, {"c2w": away}, JobContext())
    with pytest.raises(JobError, match="intrinsics must be"):
        JOBS["raycast_view"]({**base, "intrinsics": [0, 1, 2, 3]}, {"c2w": camera()}, JobContext())
    with pytest.raises(JobError, match="c2w must be a finite 4x4"):
        JOBS["raycast_view"](base, {"c2w": np.eye(3)}, JobContext())
    with pytest.raises(JobError, match="N > 0"):
        JOBS["closest_points"]({"checkpoint_path": sphere}, {"points": np.zeros((0, 3))}, JobContext())
    with pytest.raises(JobError, match="NaN"):
        JOBS["closest_points"]({"checkpoint_path": sphere}, {"points": np.array([[0.0, np.nan, 0.0]])}, JobContext())
    empty = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    with torch.no_grad():
        empty[0].weight.zero_()
        empty[0].bias.fill_(1.0)
    with pytest.raises(JobError, match="no surface"):
        closest_points(empty, torch.zeros(2, 3))
    config = field_config(
        "idf", base={"kind": "siren", "width": 8, "depth": 1, "omega0": 15.0}, detail={"kind": "siren", "width": 8, "depth": 1, "omega0": 60.0}
    )
    idf = save_checkpoint(
        {"config": config, "state_dict": build_field(config).state_dict(), "center": [0, 0, 0], "scale": 1.0}, str(tmp_path / "idf.pt")
    )
    with pytest.raises(JobError, match="range analysis has no rule for DisplacementField"):
        JOBS["raycast_view"]({**base, "checkpoint_path": idf}, {"c2w": camera()}, JobContext())
    with pytest.raises(JobError, match="range analysis has no rule for DisplacementField"):
        JOBS["closest_points"]({"checkpoint_path": idf}, {"points": np.zeros((1, 3))}, JobContext())
    with pytest.raises(JobError, match="exactly one second surface"):
        JOBS["check_intersection"]({"checkpoint_path": sphere}, {}, JobContext())
