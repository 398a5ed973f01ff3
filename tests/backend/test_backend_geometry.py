"""Sampling, normalisation, marching cubes and metrics on analytic shapes."""

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext, JobError
from inr_blender.geometry.extraction import count_crossings, estimate_extraction_bytes, extract_mesh
from inr_blender.geometry.metrics import compare_meshes
from inr_blender.geometry.primitives import icosphere
from inr_blender.geometry.sampling import knn_sigma, normalization, sample_surface, to_local, to_world
from inr_blender.jobs import JOBS

CPU = torch.device("cpu")


class SphereField(torch.nn.Module):
    """Exact signed distance to a sphere (negative inside)."""

    def __init__(self, radius: float = 0.5) -> None:
        super().__init__()
        self.radius = radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1) - self.radius


def test_surface_sampling_is_area_weighted():
    # Two disjoint triangles in z=0 (normal +z) and z=5 (normal -z); the second has 3x the area.
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 5], [0, 3, 5], [1, 0, 5]], dtype=float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    points, normals = sample_surface(vertices, faces, 40_000, seed=1)
    on_big = points[:, 2] > 2.5
    assert on_big.mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_allclose(normals[~on_big], np.tile([0, 0, 1.0], ((~on_big).sum(), 1)))
    np.testing.assert_allclose(normals[on_big], np.tile([0, 0, -1.0], (on_big.sum(), 1)))
    small = points[~on_big]  # inside the triangle x, y >= 0, x + y <= 1
    assert (small[:, :2] >= 0).all() and (small[:, :2].sum(axis=1) <= 1 + 1e-12).all()
    # Uniform within a triangle: the mean is the centroid.
    np.testing.assert_allclose(small.mean(axis=0), [1 / 3, 1 / 3, 0], atol=0.01)


def test_zero_area_mesh_is_refused():
    vertices = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], dtype=float)
    with pytest.raises(JobError, match="area is zero"):
        sample_surface(vertices, np.array([[0, 1, 2]]), 10)


def test_knn_sigma_on_a_regular_grid():
    g = np.arange(10, dtype=float)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    sigma = knn_sigma(grid, k=6)
    center = np.all((grid > 0) & (grid < 9), axis=1)
    # An interior grid point has exactly six neighbours at distance 1; the seventh is at sqrt(2).
    np.testing.assert_allclose(sigma[center], 1.0)
    np.testing.assert_allclose(knn_sigma(grid, k=7)[center], np.sqrt(2.0))


def test_normalization_maps_longest_axis_to_0_8():
    rng = np.random.default_rng(0)
    points = rng.random((500, 3)) * [4.0, 1.0, 2.0] + [10.0, -3.0, 7.0]
    center, scale = normalization(points)
    local = to_local(points, center, scale)
    assert np.abs(local).max(axis=0)[0] == pytest.approx(0.8)
    assert np.abs(local).max() <= 0.8 + 1e-12
    np.testing.assert_allclose(to_world(local, center, scale), points)
    with pytest.raises(JobError, match="identical"):
        normalization(np.ones((5, 3)))


def test_chamfer_of_concentric_spheres():
    va, fa = icosphere(1.0, 4)
    vb, fb = icosphere(1.1, 4)
    m = compare_meshes(va, fa, vb, fb, num_samples=20_000, seed=0)
    # Every point of one sphere is 0.1 from the other. Sampling adds little: the
    # nearest sample is sqrt(0.1^2 + d^2) away, with d ~ 0.01 the in-surface offset
    # to it (20k samples on an area of ~13), so about +0.0005.
    assert m["chamfer_l1"] == pytest.approx(0.1, abs=0.005)
    assert m["chamfer_l2"] == pytest.approx(0.01, abs=0.001)
    assert m["radius"] == pytest.approx(1.0, abs=1e-6)
    assert m["chamfer_l1_normalized"] == pytest.approx(m["chamfer_l1"] / m["radius"])
    # Two independent samplings of one sphere: only the sample spacing (~0.025) remains.
    same = compare_meshes(va, fa, va, fa, num_samples=20_000)
    assert same["chamfer_l1"] < 0.02


def test_metrics_job_checks_its_inputs():
    va, fa = icosphere(1.0, 2)
    with pytest.raises(JobError, match="faces_b"):
        JOBS["metrics"]({}, {"vertices_a": va, "faces_a": fa, "vertices_b": va}, JobContext())
    bad = va.copy()
    bad[3] = np.nan
    with pytest.raises(JobError, match="NaN"):
        JOBS["metrics"]({}, {"vertices_a": va, "faces_a": fa, "vertices_b": bad, "faces_b": fa}, JobContext())


def test_extraction_of_an_exact_sphere_sdf():
    verts, faces, normals = extract_mesh(SphereField(0.5), 40, CPU, JobContext(), chunk=5000)
    assert verts.dtype == np.float32 and faces.dtype == np.int32 and normals.dtype == np.float32
    radii = np.linalg.norm(verts, axis=1)
    # Linear interpolation along grid edges errs by O(h^2 / r) with h = 2/39: a few thousandths.
    assert np.abs(radii - 0.5).max() < 0.01
    np.testing.assert_allclose(normals, verts / radii[:, None], atol=1e-4)
    tri = verts[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", face_normals, tri.mean(axis=1)) > 0).all()  # wound outward
    # one marching-cubes vertex per crossed grid edge
    lin = np.linspace(-1, 1, 40, dtype=np.float32)
    grid = np.sqrt(sum(c**2 for c in np.meshgrid(lin, lin, lin, indexing="ij"))) - 0.5
    assert count_crossings(grid, 0.0) == len(verts)


def test_extraction_level_offsets_the_surface():
    verts, _, _ = extract_mesh(SphereField(0.5), 32, CPU, JobContext(), level=0.2)
    assert np.linalg.norm(verts, axis=1).mean() == pytest.approx(0.7, abs=0.01)


def test_extraction_without_surface_is_refused():
    with pytest.raises(JobError, match="no surface at level 0"):
        extract_mesh(SphereField(5.0), 16, CPU, JobContext())


def test_absurd_resolution_is_refused_before_allocating():
    assert estimate_extraction_bytes(4096) > 4 * 4096**3
    with pytest.raises(JobError, match=r"resolution 100000 needs about .* GB, the backend machine has .* GB available"):
        extract_mesh(SphereField(0.5), 100_000, CPU, JobContext())
    with pytest.raises(JobError, match="at least 8"):
        extract_mesh(SphereField(0.5), 4, CPU, JobContext())
