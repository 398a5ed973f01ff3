"""Queries built on range analysis: extraction that keeps what the distance-field test culls."""

import numpy as np
import pytest
import torch
from torch import nn

from inr_blender.context import JobContext, JobError
from inr_blender.geometry.extraction import extract_mesh
from inr_blender.geometry.sparse_extraction import extract_mesh_sparse
from inr_blender.jobs import JOBS

CPU = torch.device("cpu")


def steep_slabs(thin_at: float = 0.3, half_thickness: float = 0.01, steepness: float = 20.0) -> nn.Module:
    """min(a, b) as an exact ReLU network: a = steepness * (|z - thin_at| - half_thickness), a thin slab whose field
    is far from a distance field (gradient ``steepness``), and b = |z + 0.5| - 0.1, a thick slab with a distance field."""
    first = nn.Linear(3, 4)
    second = nn.Linear(4, 2)
    third = nn.Linear(2, 3)
    last = nn.Linear(3, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 0, 1.0], [0, 0, -1.0]]))
        first.bias.copy_(torch.tensor([-thin_at, thin_at, 0.5, -0.5]))
        second.weight.copy_(torch.tensor([[steepness, steepness, 0, 0], [0, 0, 1.0, 1.0]]))
        second.bias.copy_(torch.tensor([-steepness * half_thickness, -0.1]))
        third.weight.copy_(torch.tensor([[0, 1.0], [0, -1.0], [-1.0, 1.0]]))  # b, -b, b - a
        third.bias.zero_()
        last.weight.copy_(torch.tensor([[1.0, -1.0, -1.0]]))  # relu(b) - relu(-b) - relu(b - a) = min(a, b)
        last.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), second, third, nn.ReLU(), last, nn.Flatten(0))


def z_levels(vertices: np.ndarray) -> set[float]:
    return {round(float(z), 2) for z in np.unique(vertices[:, 2])}


def test_range_culling_keeps_a_thin_steep_slab_the_distance_test_misses():
    field = steep_slabs()
    dense, _, _ = extract_mesh(field, 129, CPU, JobContext())[:3]
    lipschitz = extract_mesh_sparse(field, 129, CPU, JobContext())
    ranged = extract_mesh_sparse(field, 129, CPU, JobContext(), ranges="affine_fixed")
    assert {0.29, 0.31} <= z_levels(dense)  # the thin slab's two faces are on the grid
    assert not {0.29, 0.31} & z_levels(lipschitz[0])  # culled: its field is 20x steeper than a distance field
    assert {0.29, 0.31} <= z_levels(ranged[0])
    assert len(ranged[0]) == len(dense) and np.allclose(np.sort(ranged[0], axis=0), np.sort(dense, axis=0), atol=1e-6)
    stats = ranged[3]
    assert stats["evaluations"] < 0.2 * 129**3 and stats["box_evaluations"] > 0


def test_range_culling_certifies_a_field_without_surface():
    field = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    with torch.no_grad():
        field[0].weight.zero_()
        field[0].bias.fill_(1.0)
    with pytest.raises(JobError, match="range analysis certifies it never reaches the level 0"):
        extract_mesh_sparse(field, 33, CPU, JobContext(), ranges="interval")


@pytest.fixture(scope="module")
def small_field(tmp_path_factory):
    d = np.random.default_rng(0).normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    path = str(tmp_path_factory.mktemp("ranges") / "siren.pt")
    JOBS["fit_sdf"]({"method": "igr", "width": 32, "depth": 2, "iterations": 200, "batch_size": 1024, "checkpoint_path": path,
                     "convergence_tolerance": 0},
                    {"points": 0.5 * d, "normals": d}, JobContext())
    return path


@pytest.mark.parametrize("mode, fraction", [("affine_all", 0.25), ("interval", 0.6)])
def test_guaranteed_extraction_job_gives_the_dense_mesh(small_field, mode, fraction):
    """The same mesh as dense marching cubes, with fewer evaluations (measured on this IGR field at 49^3:
    64k of 118k points with intervals, 21k with affine_all; 27k for the distance-field test)."""
    run = lambda method: JOBS["extract_mesh"]({"checkpoint_path": small_field, "resolution": 49, "method": method, "range_mode": mode}, {}, JobContext())  # noqa: E731
    (dense, a), (guaranteed, b) = run("dense"), run("guaranteed")
    assert guaranteed["method"] == "guaranteed" and guaranteed["box_evaluations"] > 0
    assert guaranteed["evaluations"] <= fraction * dense["evaluations"]
    assert len(a["vertices"]) == len(b["vertices"])
    assert np.allclose(np.sort(a["vertices"], axis=0), np.sort(b["vertices"], axis=0), atol=1e-6)


def test_guaranteed_extraction_refusals(small_field, tmp_path):
    with pytest.raises(JobError, match="range_mode must be one of"):
        JOBS["extract_mesh"]({"checkpoint_path": small_field, "method": "guaranteed", "range_mode": "taylor"}, {}, JobContext())
    d = np.random.default_rng(0).normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    idf = str(tmp_path / "idf.pt")
    JOBS["fit_sdf"]({"method": "idf", "base_width": 16, "base_depth": 1, "detail_width": 16, "detail_depth": 1, "init": "random",
                     "iterations": 5, "batch_size": 256, "checkpoint_path": idf}, {"points": 0.5 * d, "normals": d}, JobContext())
    with pytest.raises(JobError, match="range analysis has no rule for DisplacementField"):
        JOBS["extract_mesh"]({"checkpoint_path": idf, "method": "guaranteed", "resolution": 17}, {}, JobContext())
