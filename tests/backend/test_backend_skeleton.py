"""Neural skeletons: the fitting method, surface samples, tracing, coverage, connectivity, and their errors."""

import json

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.spatial import Delaunay

from inr_blender.checkpoint import read_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field, field_config
from inr_blender.fileio import loose_edges, read_geometry, read_ma, write_skeleton
from inr_blender.fitting import resolve_params as resolve_fit_params
from inr_blender.fitting.losses import gradient_norm_tv
from inr_blender.fitting.methods.neural_skeleton import learning_points
from inr_blender.fitting.sphere_init import RADIUS as SPHERE_INIT_RADIUS, STORED, sphere_field
from inr_blender.geometry import skeleton as sk
from inr_blender.geometry.metrics import sample_complex, skeleton_distances
from inr_blender.geometry.projection import project
from inr_blender.geometry.sampling import SignedDistanceEstimate
from inr_blender.jobs import JOBS
from inr_blender.settings.skeleton import SPEC as SKELETON

from sdf_shapes import Constant, SmoothBox, SmoothCapsule, SmoothSphere

CPU = torch.device("cpu")


def skeletonize(field, **params):
    return sk.skeletonize(field, CPU, SKELETON.resolve(params), JobContext())


def components(n, edges):
    """Number of connected components of a graph on n vertices."""
    graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)) if len(edges) else sparse.coo_matrix((n, n))
    return sparse.csgraph.connected_components(graph, directed=False)[0]


# -- the shapes of the issue, on smooth analytic SDFs ---------------------------------------------------------


@pytest.mark.slow
def test_a_sphere_gives_one_point_at_its_centre():
    centre, radius = np.array([0.1, -0.2, 0.05]), 0.6
    s = skeletonize(SmoothSphere(radius, centre))
    assert len(s.vertices) == 1 and len(s.edges) == 0 and len(s.triangles) == 0
    assert np.linalg.norm(s.vertices[0] - centre) < 0.02
    assert abs(s.radii[0] - radius) < 0.02
    assert s.stats["optimal"] and s.stats["num_candidates"] >= 1


@pytest.mark.slow
def test_a_capsule_gives_its_segment():
    a, b = np.array([-0.4, 0.0, 0.0]), np.array([0.4, 0.0, 0.0])
    s = skeletonize(SmoothCapsule(a, b, 0.3))
    assert len(s.vertices) >= 3
    t = np.clip((s.vertices - a) @ (b - a) / np.dot(b - a, b - a), 0, 1)
    off_axis = np.linalg.norm(s.vertices - (a + t[:, None] * (b - a)), axis=1)
    assert off_axis.max() < 0.02  # every point on the segment
    assert s.vertices[:, 0].min() < -0.3 and s.vertices[:, 0].max() > 0.3  # and they span it
    assert np.all(np.abs(s.radii - 0.3) < 0.02)
    assert len(s.edges) >= len(s.vertices) - 1 and components(len(s.vertices), s.edges) == 1  # one chain
    order = np.argsort(s.vertices[:, 0])  # consecutive points along the segment are joined
    joined = {tuple(sorted(e)) for e in s.edges.tolist()}
    assert all(tuple(sorted((int(i), int(j)))) in joined for i, j in zip(order[:-1], order[1:]))


@pytest.mark.slow
def test_a_box_gives_its_medial_sheets():
    half = np.array([0.6, 0.4, 0.2])
    s = skeletonize(SmoothBox(half))
    # On a box's medial axis the two nearest of its six faces are equally far.
    face_distance = np.sort(np.concatenate([half - s.vertices, half + s.vertices], axis=1), axis=1)
    assert np.all(face_distance[:, 1] - face_distance[:, 0] < 0.03)
    assert len(s.triangles) > 10 and components(len(s.vertices), s.edges) == 1  # sheets, in one piece
    # The central sheet z = 0, |x| <= a - c, |y| <= b - c, is covered, and the four wings reach the ends.
    central = s.vertices[np.abs(s.vertices[:, 2]) < 0.03]
    assert np.abs(central[:, 0]).max() > 0.25 and np.abs(central[:, 1]).max() > 0.1
    assert s.vertices[:, 0].min() < -0.45 and s.vertices[:, 0].max() > 0.45
    assert np.abs(s.radii - face_distance[:, 0]).max() < 0.02  # each medial ball touches the nearest faces


def test_newton_steps_are_clamped():
    field = SmoothSphere(0.5)
    q, residual, _ = project(field, torch.tensor([[0.0, 0.0, 0.9]]), iterations=1, max_step=0.05)
    assert abs(float(q[0, 2]) - 0.85) < 1e-5 and float(residual[0]) > 0.3
    q, residual, _ = project(field, torch.tensor([[0.0, 0.0, 0.9]]), iterations=20, max_step=0.05)
    assert float(residual[0]) < 1e-5


# -- the stages' own guarantees ---------------------------------------------------------------------------------


def test_regular_triangulation_with_equal_weights_is_delaunay():
    points = np.random.default_rng(0).random((60, 3))
    ours = {tuple(sorted(t)) for t in sk.regular_triangulation(points, np.full(60, 0.01)).tolist()}
    assert ours == {tuple(sorted(t)) for t in Delaunay(points).simplices.tolist()}


def test_regular_triangulation_hides_a_point_inside_a_heavy_neighbour():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.random((40, 3)), [[0.5, 0.5, 0.5], [0.52, 0.5, 0.5]]])
    weights = np.zeros(len(points))
    weights[40] = 0.2  # a big ball around (0.5, 0.5, 0.5) hides its near neighbour of weight 0
    used = set(sk.regular_triangulation(points, weights).ravel().tolist())
    assert 40 in used and 41 not in used


def test_voronoi_candidates_of_a_sphere_are_near_its_centre():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(400, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    centres = sk.voronoi_candidates(0.5 * d, d)
    assert len(centres) > 10
    assert np.linalg.norm(centres, axis=1).max() < 0.1


def test_merge_keeps_points_apart():
    points = np.random.default_rng(0).random((500, 3))
    keep = sk.merge_close(points, 0.1)
    from scipy.spatial import cKDTree

    d = cKDTree(points[keep]).query(points[keep], k=2)[0][:, 1]
    assert d.min() >= 0.1 and 5 < len(keep) < 500
    assert cKDTree(points[keep]).query(points)[0].max() < 0.1  # every point was merged into a kept one


def test_cover_is_the_fewest_balls():
    surface = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    candidates = np.array([[0.5, 0, 0], [2.5, 0, 0], [1.5, 0, 0], [0.0, 0, 0]])
    radii = np.array([0.5, 0.5, 0.5, 0.0])
    cover = sk.select_cover(candidates, radii, surface, 0.01)
    assert cover.optimal and sorted(cover.selected.tolist()) == [0, 1] and cover.uncovered == 0


def test_an_infeasible_cover_says_so():
    surface = np.array([[0.0, 0, 0], [5, 0, 0]])
    candidates, radii = np.array([[0.1, 0, 0]]), np.array([0.1])
    with pytest.raises(JobError, match="infeasible: 1 of 2 surface samples"):
        sk.select_cover(candidates, radii, surface, 0.01, drop_uncovered=False)
    cover = sk.select_cover(candidates, radii, surface, 0.01)  # by default the lone sample is dropped, and counted
    assert cover.selected.tolist() == [0] and cover.uncovered == 1


def test_a_timed_out_cover_returns_a_feasible_one_and_says_so():
    rng = np.random.default_rng(0)
    surface, candidates = rng.random((3000, 3)), rng.random((1500, 3))
    radii = np.full(1500, 0.05)
    cover = sk.select_cover(candidates, radii, surface, 0.04, time_limit=1e-3, mip_rel_gap=0.0)
    assert not cover.optimal and "time limit" in cover.message
    matrix = sk.coverage_matrix(candidates, radii, surface, 0.04).tocsc()
    rows = np.asarray(matrix.sum(axis=1)).ravel() > 0
    assert np.all(np.asarray(matrix[:, cover.selected].sum(axis=1)).ravel()[rows] >= 1)


@pytest.mark.parametrize("delta", [0.0, -0.1])
def test_delta_must_be_positive(delta):
    with pytest.raises(JobError, match="delta must be positive"):
        SKELETON.resolve({"delta": delta})
    with pytest.raises(JobError, match="delta must be positive"):
        sk.select_cover(np.zeros((1, 3)), np.ones(1), np.zeros((1, 3)), delta)
    with pytest.raises(JobError, match="delta must be positive"):
        sk.skeletal_complex(np.zeros((2, 3)), np.ones(2), np.ones((4, 3)), delta)


@pytest.mark.parametrize(
    "field, message",
    [
        (Constant(1.0), "the field is empty: it is positive everywhere"),
        (SmoothSphere(0.5, (3.0, 0.0, 0.0)), "the field is empty"),
        (Constant(-1.0), "no surface in its domain: it is negative everywhere"),
        (SmoothSphere(5.0), "no surface in its domain"),
    ],
)
def test_fields_without_an_inside_or_a_surface_are_refused(field, message):
    with pytest.raises(JobError, match=message):
        skeletonize(field)


def test_unknown_or_bad_parameters_are_refused():
    with pytest.raises(JobError, match="unknown skeleton parameter"):
        SKELETON.resolve({"deltaa": 0.1})
    with pytest.raises(JobError, match="num_surface_samples must be"):
        SKELETON.resolve({"num_surface_samples": 2})
    with pytest.raises(JobError, match="time_limit must be positive"):
        SKELETON.resolve({"time_limit": 0})


# -- the field: losses, learning points, the sphere start, and a fit end to end ---------------------------------


def test_tv_term_is_the_gradient_of_the_gradient_norm():
    torch.manual_seed(0)
    field = build_field(field_config("siren", width=16, depth=1))
    x = torch.rand(5, 3) * 2 - 1
    _, norm, tv = gradient_norm_tv(field, x)
    h = 1e-3

    def grad_norm(p):
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(field(p).sum(), p)
        return g.norm(dim=-1)

    numeric = torch.stack([(grad_norm(x + h * e) - grad_norm(x - h * e)) / (2 * h) for e in torch.eye(3)], dim=-1)
    assert torch.allclose(tv, numeric.norm(dim=-1), rtol=2e-2, atol=1e-3)
    assert torch.allclose(norm, grad_norm(x), atol=1e-6)


def test_learning_points_know_their_signed_distance():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(5000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q, distance, direction = learning_points(SignedDistanceEstimate(0.5 * d, d), 300, 0, CPU)
    truth = q.norm(dim=1) - 0.5
    assert torch.allclose(distance, truth, atol=0.03)
    cos = torch.nn.functional.cosine_similarity(direction, q, dim=1)
    assert (cos[truth.abs() > 0.05] > 0.95).all()  # outward: away from the centre


@pytest.mark.parametrize(
    "method, config",
    [("neural_skeleton", field_config("siren", width=64, depth=5, omega0=30.0)), ("idf", field_config("siren", width=128, depth=3, omega0=15.0))],
)
def test_the_stored_sphere_starts_are_sphere_sdfs(method, config):
    """The stored pre-fits match the defaults of the neural skeleton's network and of the displacement field's base."""
    assert read_checkpoint(STORED[method])["config"] == config
    field = sphere_field(config, CPU, JobContext())
    x = torch.rand(2000, 3) * 2 - 1
    with torch.no_grad():
        assert float((field(x) - (x.norm(dim=1) - SPHERE_INIT_RADIUS)).abs().mean()) < 0.02


def test_fit_parameters_of_the_method():
    p = resolve_fit_params({"method": "neural_skeleton"})
    assert (p["width"], p["depth"], p["omega0"], p["w_tv"], p["init"]) == (64, 5, 30.0, 20.0, "sphere")
    with pytest.raises(JobError, match="init must be"):
        resolve_fit_params({"method": "neural_skeleton", "init": "cube"})
    with pytest.raises(JobError, match="w_tv must be non-negative"):
        resolve_fit_params({"method": "neural_skeleton", "w_tv": -1})


def test_the_method_needs_normals(tmp_path):
    points = np.random.default_rng(0).random((100, 3))
    with pytest.raises(JobError, match="neural skeleton needs oriented normals"):
        JOBS["fit_sdf"]({"method": "neural_skeleton", "checkpoint_path": str(tmp_path / "f.pt")}, {"points": points}, JobContext())


@pytest.mark.slow
def test_fit_and_extract_a_sphere_through_the_jobs(tmp_path):
    """A real fit (few steps, from the sphere start) of a sphere away from the origin; its skeleton in world space."""
    centre, radius = np.array([1.0, -2.0, 0.5]), 0.7
    d = np.random.default_rng(0).normal(size=(5000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    path = str(tmp_path / "skel.pt")
    fit, _ = JOBS["fit_sdf"](
        {"method": "neural_skeleton", "checkpoint_path": path, "iterations": 200, "batch_size": 1000, "device": "cpu"},
        {"points": centre + radius * d, "normals": d},
        JobContext(),
    )
    assert fit["method"] == "neural_skeleton" and fit["iterations_run"] == 200
    result, arrays = JOBS["extract_skeleton"](
        {"checkpoint_path": path, "space": "world", "device": "cpu", "num_surface_samples": 1000}, {}, JobContext()
    )
    json.dumps(result, allow_nan=False)  # results cross the seam as JSON
    assert result["num_vertices"] == len(arrays["vertices"]) <= 3
    assert np.linalg.norm(arrays["vertices"] - centre, axis=1).max() < 0.1 * radius
    assert np.abs(arrays["radius"] - radius).max() < 0.1 * radius
    assert np.abs(np.linalg.norm(arrays["surface_samples"] - centre, axis=1) - radius).max() < 0.05 * radius
    assert {"seconds_surface", "seconds_trace", "seconds_cover", "seconds_connect", "optimal"} <= set(result)


def test_extract_skeleton_job_refuses_bad_input(tmp_path):
    with pytest.raises(JobError, match="checkpoint not found"):
        JOBS["extract_skeleton"]({"checkpoint_path": str(tmp_path / "missing.pt")}, {}, JobContext())
    with pytest.raises(JobError, match="delta must be positive"):
        JOBS["extract_skeleton"]({"checkpoint_path": str(tmp_path / "missing.pt"), "delta": 0}, {}, JobContext())
    with pytest.raises(JobError, match="space must be"):
        JOBS["extract_skeleton"]({"checkpoint_path": "x.pt", "space": "galaxy"}, {}, JobContext())


# -- files and metrics ------------------------------------------------------------------------------------------


def test_skeleton_files_round_trip(tmp_path):
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]])
    radius = np.array([0.1, 0.2, 0.3, 0.4])
    edges = np.array([[0, 1], [1, 2], [0, 2], [2, 3]])
    triangles = np.array([[0, 1, 2]])
    assert loose_edges(edges, triangles).tolist() == [[2, 3]]
    write_skeleton(str(tmp_path / "s.ma"), vertices, radius, edges, triangles)
    back = read_ma(str(tmp_path / "s.ma"))
    assert np.allclose(back["vertices"], vertices) and np.allclose(back["radius"], radius)
    assert back["edges"].tolist() == edges.tolist() and back["faces"].tolist() == triangles.tolist()
    write_skeleton(str(tmp_path / "s.obj"), vertices, radius, edges, triangles)
    text = (tmp_path / "s.obj").read_text()
    assert "l 3 4" in text and "f 1 2 3" in text and text.count("\nv ") + text.startswith("v ") == 4
    with pytest.raises(JobError, match="refers to a vertex that does not exist"):
        (tmp_path / "bad.ma").write_text("1 1 0\nv 0 0 0 1\ne 0 5\n")
        read_ma(str(tmp_path / "bad.ma"))


def test_off_files_are_read(tmp_path):
    (tmp_path / "quad.off").write_text("OFF\n# a square\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    mesh = read_geometry(str(tmp_path / "quad.off"))
    assert mesh["vertices"].shape == (4, 3) and mesh["faces"].tolist() == [[0, 1, 2], [0, 2, 3]]
    (tmp_path / "short.off").write_text("OFF\n4 1 0\n0 0 0\n")
    with pytest.raises(JobError, match="truncated"):
        read_geometry(str(tmp_path / "short.off"))


def test_skeleton_distances():
    segment = sample_complex(np.array([[0.0, 0, 0], [1, 0, 0]]), np.array([[0, 1]]), np.zeros((0, 3), int), 2000)
    assert len(segment) == 2002 and np.abs(segment[:, 1:]).max() == 0
    shifted = segment + [0, 0.1, 0]
    d = skeleton_distances(segment, shifted, diagonal=2.0)
    assert d["hausdorff"] == pytest.approx(5.0) and d["chamfer"] == pytest.approx(5.0)
    half = segment[segment[:, 0] <= 0.5]
    d = skeleton_distances(segment, half, diagonal=1.0)  # the candidate misses half of the reference
    assert d["hausdorff_ab"] == pytest.approx(50.0, abs=0.5) and d["hausdorff_ba"] < 0.1
