"""Iso-points: projection, uniform resampling, edge-aware upsampling, fitting with iso-points, and their errors."""

import json

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext, JobError
from inr_blender.fitting.isopoint_term import IsoPointTerm
from inr_blender.fitting.sdf import resolve_params as resolve_fit_params
from inr_blender.geometry import isopoints as iso
from inr_blender.jobs import JOBS
from inr_blender.settings.isopoints import SPEC as ISOPOINTS

from sdf_shapes import Constant, Cube, SmoothSphere, Sphere

CPU = torch.device("cpu")


def sample(field, **params):
    return iso.sample_isopoints(field, CPU, ISOPOINTS.resolve(params), JobContext())


def test_projected_points_lie_on_the_sphere():
    s = sample(Sphere(0.6, (0.1, 0.0, -0.1)), count=2000, resample=False)
    assert len(s.points) == 2000 and s.stats["num_discarded"] < 2000
    assert np.abs(np.linalg.norm(s.points - [0.1, 0.0, -0.1], axis=1) - 0.6).max() < 1e-4
    assert np.abs(s.residual).max() < 5e-5
    radial = (s.points - [0.1, 0.0, -0.1]) / 0.6
    assert np.einsum("ij,ij->i", radial, s.normals).min() > 0.999


@pytest.mark.slow
def test_resampling_evens_the_spacing_at_least_twofold():
    raw = sample(Sphere(), count=2000, resample=False)
    even = sample(Sphere(), count=2000, resample=True)
    assert len(even.points) > 1900 and np.abs(np.linalg.norm(even.points, axis=1) - 0.6).max() < 1e-4
    assert raw.stats["spacing_cv"] / even.stats["spacing_cv"] >= 2.0


@pytest.mark.slow
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
    new = up.points[len(base.points) :]
    assert len(new) >= 1400 and np.abs(cube(torch.as_tensor(new, dtype=torch.float32)).numpy()).max() < 1e-4


@pytest.mark.parametrize(
    "field, message",
    [
        (Constant(-1.0), "gradient vanishes everywhere"),
        (Constant(1.0), "gradient vanishes everywhere"),
        (SmoothSphere(5.0), "no surface in its domain"),
        (Sphere(0.5, (3.0, 0.0, 0.0)), "no surface in its domain"),
    ],
)
def test_fields_without_a_surface_are_refused(field, message):
    with pytest.raises(JobError, match=message):
        sample(field, count=100)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"count": 0}, "count must be at least 1"),
        ({"count": -5}, "count must be at least 1"),
        ({"count": 10**12}, "more than half of the"),
        ({"count": "many"}, "count must be an integer"),
        ({"counts": 10}, "unknown isopoints parameter"),
        ({"upsample": -1}, "upsample must be non-negative"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(JobError, match=message):
        iso.check_memory(ISOPOINTS.resolve(params))


@pytest.mark.slow
def test_the_job_in_world_space(tmp_path):
    d = np.random.default_rng(0).normal(size=(4000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    centre, radius = np.array([2.0, -1.0, 0.5]), 0.5
    path = str(tmp_path / "f.pt")
    JOBS["fit_sdf"](
        {"method": "igr", "checkpoint_path": path, "iterations": 150, "width": 64, "depth": 2, "batch_size": 1024},
        {"points": centre + radius * d, "normals": d},
        JobContext(),
    )
    result, arrays = JOBS["sample_isopoints"]({"checkpoint_path": path, "space": "world", "count": 800}, {}, JobContext())
    json.dumps(result, allow_nan=False)
    assert result["num_points"] == len(arrays["points"]) == len(arrays["normals"]) == len(arrays["residual"])
    assert np.abs(np.linalg.norm(arrays["points"] - centre, axis=1) - radius).max() < 0.05 * radius
    assert np.einsum("ij,ij->i", (arrays["points"] - centre) / radius, arrays["normals"]).mean() > 0.95
    assert arrays["residual"].max() < 5e-5
    with pytest.raises(JobError, match="checkpoint not found"):
        JOBS["sample_isopoints"]({"checkpoint_path": str(tmp_path / "none.pt")}, {}, JobContext())


def test_iso_point_term_weighs_the_data_and_joins_the_batch():
    """Input points off the current surface, or with a normal against it, weigh little; iso-points join the batch
    with plane-fitted normals and their own weights."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cloud, normals = 0.5 * d, d.copy()
    cloud[:100] *= 1.4  # outliers, 0.2 off the surface
    normals[100:200] *= -1  # flipped normals
    p = resolve_fit_params({"isopoints": 800, "isopoints_warmup": 0, "w_iso": 2.0, "w_iso_normal": 0.5})
    term = IsoPointTerm(cloud, normals, p, CPU)
    on, n, weights = term.extend(torch.zeros(4, 3), torch.zeros(4, 3), torch.arange(4), 10)
    assert weights is None and len(on) == 4  # nothing before the first extraction
    term.refresh(Sphere(0.5), 0)
    assert term.refreshes == 1
    w = term.data_weights.numpy()
    assert w[:100].max() < 1e-3 and w[100:200].max() < 1e-3 and w[200:].min() > 0.99
    radial = term.points / term.points.norm(dim=1, keepdim=True)
    assert float((term.normals * radial).sum(dim=1).min()) > 0.99  # the plane fits agree with the sphere's normals

    idx = torch.tensor([0, 150, 500])
    on, n, (value_w, normal_w) = term.extend(
        torch.as_tensor(cloud[idx.numpy()], dtype=torch.float32), torch.as_tensor(normals[idx.numpy()], dtype=torch.float32), idx, 50
    )
    assert on.shape == (53, 3) and n.shape == (53, 3)
    assert np.abs(on[3:].norm(dim=1).numpy() - 0.5).max() < 1e-4  # the iso-points of the sphere
    assert value_w[:3].tolist() == pytest.approx(w[[0, 150, 500]].tolist(), rel=1e-5)
    assert set(value_w[3:].tolist()) == {2.0} and set(normal_w[3:].tolist()) == {0.5}


def test_weighted_surface_terms_ignore_a_zero_weight_point():
    """A surface point of weight 0 adds nothing to the value and normal terms of every SDF loss."""
    from inr_blender.fitting.losses import igr_loss, siren_loss, skeleton_loss

    field = Sphere(0.5)
    on = torch.tensor([[0.5, 0.0, 0.0], [0.9, 0.0, 0.0]])  # the second is off the surface, its normal wrong
    n = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    off = torch.tensor([[0.0, 0.2, 0.0]])
    keep_first = (torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
    _, igr = igr_loss(field, on, n, off, weights=keep_first)
    _, siren = siren_loss(field, on, n, off, weights=keep_first)
    _, skel = skeleton_loss(field, on, n, off, None, None, None, {"w_surface": 1.0, "w_normal": 1.0, "w_eikonal": 1.0}, 0.0, keep_first)
    for parts, value, normal in ((igr, "surface", "normals"), (siren, "sdf", "normal"), (skel, "surface", "normal")):
        assert float(parts[value].detach()) < 1e-6 and float(parts[normal].detach()) < 1e-6
    _, unweighted = igr_loss(field, on, n, off)
    assert float(unweighted["surface"].detach()) == pytest.approx(0.2, rel=1e-4)


@pytest.mark.slow
def test_fitting_with_iso_points_refreshes_on_schedule(tmp_path):
    d = np.random.default_rng(0).normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    result, _ = JOBS["fit_sdf"](
        {
            "method": "igr",
            "checkpoint_path": str(tmp_path / "f.pt"),
            "iterations": 60,
            "width": 64,
            "depth": 2,
            "batch_size": 512,
            "isopoints": 300,
            "isopoints_warmup": 20,
            "isopoints_refresh": 20,
            "convergence_tolerance": 0,
        },
        {"points": 0.5 * d, "normals": d},
        JobContext(),
    )
    from inr_blender.checkpoint import read_checkpoint

    ckpt = read_checkpoint(str(tmp_path / "f.pt"))
    assert ckpt["isopoint_refreshes"] == 2 and ckpt["params"]["isopoints"] == 300  # at steps 20 and 40
