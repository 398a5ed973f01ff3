"""Iso-points: projection, uniform resampling, edge-aware upsampling, fitting with iso-points, and their errors."""

import json

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext, JobError
from inr_blender.fitting.isopoint_term import IsoPointTerm
from inr_blender.fitting.sdf import resolve_params as resolve_fit_params
from inr_blender.geometry import isopoints as iso
from inr_blender.geometry.sampling import SignedDistanceEstimate
from inr_blender.jobs import JOBS

from sdf_shapes import Constant, Cube, Sphere, SmoothSphere

CPU = torch.device("cpu")


def sample(field, **params):
    return iso.sample_isopoints(field, CPU, params, JobContext())


def test_projected_points_lie_on_the_sphere():
    s = sample(Sphere(0.6, (0.1, 0.0, -0.1)), count=2000, resample=False)
    assert len(s.points) == 2000 and s.stats["num_discarded"] < 2000
    assert np.abs(np.linalg.norm(s.points - [0.1, 0.0, -0.1], axis=1) - 0.6).max() < 1e-4
    assert np.abs(s.residual).max() < 5e-5
    radial = (s.points - [0.1, 0.0, -0.1]) / 0.6
    assert np.einsum("ij,ij->i", radial, s.normals).min() > 0.999


def test_resampling_evens_the_spacing_at_least_twofold():
    raw = sample(Sphere(), count=2000, resample=False)
    even = sample(Sphere(), count=2000, resample=True)
    assert len(even.points) > 1900 and np.abs(np.linalg.norm(even.points, axis=1) - 0.6).max() < 1e-4
    assert raw.stats["spacing_cv"] / even.stats["spacing_cv"] >= 2.0


def test_upsampling_fills_in_and_keeps_the_cube_edges_sharp():
    cube = Cube(0.5)
    base = sample(cube, count=1500)
    up = sample(cube, count=1500, upsample=1500)
    assert up.stats["num_upsampled"] >= 1400 and len(up.points) == len(base.points) + up.stats["num_upsampled"]
    # every point stays on the cube (no rounding of its edges) ...
    assert np.abs(cube(torch.as_tensor(up.points, dtype=torch.float32)).numpy()).max() < 1e-4
    # ... points near an edge stay on it (within 1e-4 of the cube's surface, checked above) and the edges fill in:
    # along each of the 12 edges, points come within 2% of the edge length everywhere
    a = np.abs(up.points)
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        near = up.points[(np.abs(a[:, others] - 0.5) < 0.02).all(axis=1)]
        for sx in (-1, 1):
            for sy in (-1, 1):
                on_edge = near[(np.sign(near[:, others[0]]) == sx) & (np.sign(near[:, others[1]]) == sy)]
                coverage = np.histogram(on_edge[:, axis], bins=10, range=(-0.5, 0.5))[0]
                assert (coverage > 0).sum() >= 8, f"edge along axis {axis} ({sx}, {sy}) has gaps: {coverage}"
    # the inserted points join neighbours of similar normal: none lands off the cube or between two faces
    new = up.points[len(base.points):]
    assert len(new) >= 1400 and np.abs(cube(torch.as_tensor(new, dtype=torch.float32)).numpy()).max() < 1e-4


@pytest.mark.parametrize("field, message", [
    (Constant(-1.0), "gradient vanishes everywhere"),
    (Constant(1.0), "gradient vanishes everywhere"),
    (SmoothSphere(5.0), "no surface in its domain"),
    (Sphere(0.5, (3.0, 0.0, 0.0)), "no surface in its domain"),
])
def test_fields_without_a_surface_are_refused(field, message):
    with pytest.raises(JobError, match=message):
        sample(field, count=100)


@pytest.mark.parametrize("params, message", [
    ({"count": 0}, "count must be at least 1"),
    ({"count": -5}, "count must be at least 1"),
    ({"count": 10**12}, "more than half of the"),
    ({"count": "many"}, "count must be an integer"),
    ({"counts": 10}, "unknown isopoints parameter"),
    ({"upsample": -1}, "upsample must be non-negative"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(JobError, match=message):
        iso.resolve_params(params)


def test_the_job_in_world_space(tmp_path):
    d = np.random.default_rng(0).normal(size=(4000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    centre, radius = np.array([2.0, -1.0, 0.5]), 0.5
    path = str(tmp_path / "f.pt")
    JOBS["fit_sdf"]({"method": "igr", "checkpoint_path": path, "iterations": 150, "width": 64, "depth": 2,
                     "batch_size": 1024}, {"points": centre + radius * d, "normals": d}, JobContext())
    result, arrays = JOBS["sample_isopoints"]({"checkpoint_path": path, "space": "world", "count": 800}, {}, JobContext())
    json.dumps(result, allow_nan=False)
    assert result["num_points"] == len(arrays["points"]) == len(arrays["normals"]) == len(arrays["residual"])
    assert np.abs(np.linalg.norm(arrays["points"] - centre, axis=1) - radius).max() < 0.05 * radius
    assert np.einsum("ij,ij->i", (arrays["points"] - centre) / radius, arrays["normals"]).mean() > 0.95
    assert arrays["residual"].max() < 5e-5
    with pytest.raises(JobError, match="checkpoint not found"):
        JOBS["sample_isopoints"]({"checkpoint_path": str(tmp_path / "none.pt")}, {}, JobContext())


def test_iso_point_term_finds_a_surface_away_from_the_data():
    d = np.random.default_rng(0).normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cloud = 0.3 * d + [-0.4, 0, 0]
    p = resolve_fit_params({"isopoints": 400, "isopoints_warmup": 0})

    class TwoSpheres(torch.nn.Module):  # the data's sphere plus a spurious one
        def forward(self, x):
            return torch.minimum(Sphere(0.3, (-0.4, 0, 0))(x), Sphere(0.2, (0.5, 0, 0))(x))

    losses = {}
    for name, field in (("right", Sphere(0.3, (-0.4, 0, 0))), ("spurious", TwoSpheres())):
        term = IsoPointTerm(cloud, SignedDistanceEstimate(cloud, d), p, CPU)
        assert term.loss(field, 100) is None  # nothing before the first extraction
        term.refresh(field, 0)
        assert term.refreshes == 1
        losses[name] = float(term.loss(field, 400).detach())
    assert losses["right"] < 0.02 and losses["spurious"] > 10 * losses["right"]


def test_fitting_with_iso_points_refreshes_on_schedule(tmp_path):
    d = np.random.default_rng(0).normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    result, _ = JOBS["fit_sdf"](
        {"method": "igr", "checkpoint_path": str(tmp_path / "f.pt"), "iterations": 60, "width": 64, "depth": 2,
         "batch_size": 512, "isopoints": 300, "isopoints_warmup": 20, "isopoints_refresh": 20, "convergence_tolerance": 0},
        {"points": 0.5 * d, "normals": d}, JobContext(),
    )
    from inr_blender.checkpoint import read_checkpoint

    ckpt = read_checkpoint(str(tmp_path / "f.pt"))
    assert ckpt["isopoint_refreshes"] == 2 and ckpt["params"]["isopoints"] == 300  # at steps 20 and 40
