"""The evaluation protocol of inr_blender.geometry.metrics on analytic cases.

Expected values and their tolerances. All distances are in units of the
reference's bounding radius. Sample-to-sample distances have a noise floor: N
area-uniform samples on the unit sphere (area 4 pi) have density rho = N / (4 pi),
the nearest sample of an independent sampling is on average 1 / (2 sqrt(rho))
away (0.0056 at N = 100k, 0.0028 at 400k), and a fraction exp(-rho pi tau^2) of
the samples is farther than tau (at tau = 0.01: 8% at 100k, so F ~ 0.92 for an
identical surface; 5e-5 at 400k, so F ~ 1).
"""

import numpy as np
import pytest

from inr_blender.context import JobContext
from inr_blender.geometry.metrics import bounding_sphere, compare_meshes
from inr_blender.geometry.primitives import icosphere
from inr_blender.jobs import JOBS

KEYS = {
    "radius",
    "chamfer_l1",
    "chamfer_l2",
    "chamfer_l1_normalized",
    "chamfer_l2_normalized",
    "normal_consistency",
    "normal_angle",
    "fscore",
    "precision",
    "recall",
    "fscore_threshold",
    "hausdorff",
}


@pytest.fixture(scope="module")
def sphere():
    # 5 subdivisions: edges ~0.034, chords within 1.5e-4 of the sphere.
    return icosphere(1.0, 5)


@pytest.fixture(scope="module")
def identical(sphere):
    return compare_meshes(*sphere, *sphere)


@pytest.fixture(scope="module")
def dense_identical(sphere):
    return compare_meshes(*sphere, *sphere, num_samples=400_000)


def test_concentric_spheres(sphere):
    m = compare_meshes(*sphere, *icosphere(1.1, 5))
    # Every point of one sphere is 0.1 from the other; sampling adds ~d^2 / 0.2 ~ 2e-4.
    assert m["radius"] == pytest.approx(1.0, abs=1e-9)
    assert m["chamfer_l1_normalized"] == pytest.approx(0.1, abs=0.002)
    assert m["chamfer_l1"] == pytest.approx(m["chamfer_l1_normalized"])
    assert m["chamfer_l2_normalized"] == pytest.approx(0.01, abs=0.0005)
    # The largest gap between samples (~0.02) adds to the 0.1 in quadrature.
    assert 0.099 < m["hausdorff"] < 0.11
    assert m["normal_consistency"] > 0.999
    assert m["fscore_threshold"] == 0.01
    assert m["fscore"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0


@pytest.mark.slow
def test_identical_meshes_sit_at_the_sampling_noise_floor(identical, dense_identical):
    m = identical
    assert 0.004 < m["chamfer_l1_normalized"] < 0.0075  # analytic floor 0.0056
    assert m["chamfer_l2_normalized"] < 1e-4
    assert m["hausdorff"] < 0.04
    assert m["normal_consistency"] > 0.999
    assert 0.88 < m["fscore"] < 0.96  # analytic 1 - exp(-2.5) = 0.918
    # With 4x the samples the floor halves and the F-score reaches 1.
    assert dense_identical["chamfer_l1_normalized"] < 0.004  # analytic floor 0.0028
    assert dense_identical["fscore"] > 0.999


def test_flipped_winding_keeps_normal_consistency(sphere, identical):
    v, f = sphere
    m = compare_meshes(v, f, v, f[:, ::-1].copy())
    assert m["normal_consistency"] > 0.999 and m["normal_angle"] < 2.0  # degrees
    assert m["chamfer_l1_normalized"] == pytest.approx(identical["chamfer_l1_normalized"], rel=0.05)


@pytest.mark.slow
def test_small_translation(sphere, identical, dense_identical):
    v, f = sphere
    shifted = (v + [0.005, 0.0, 0.0], f)
    m = compare_meshes(v, f, *shifted)
    # Point-to-surface, a shift t moves the surface by |t . n|, 0.0025 on average over
    # the sphere; from samples this adds to the noise floor, and stays below t + floor.
    floor = identical["chamfer_l1_normalized"]
    assert floor < m["chamfer_l1_normalized"] < floor + 0.005
    assert m["normal_consistency"] > 0.999
    assert m["fscore"] > 0.85
    dense = compare_meshes(v, f, *shifted, num_samples=400_000)
    assert dense["fscore"] > 0.999
    dense_floor = dense_identical["chamfer_l1_normalized"]
    assert dense_floor < dense["chamfer_l1_normalized"] < dense_floor + 0.005


@pytest.mark.slow
def test_units_follow_the_reference_bounding_sphere(sphere):
    v, f = sphere
    va, vb = 3.0 * v + [10.0, -2.0, 5.0], 3.3 * v + [10.0, -2.0, 5.0]
    center, radius = bounding_sphere(va)
    np.testing.assert_allclose(center, [10.0, -2.0, 5.0], atol=1e-9)
    assert radius == pytest.approx(3.0)
    m = compare_meshes(va, f, vb, f)
    unit = compare_meshes(v, f, 1.1 * v, f)
    for key in ("chamfer_l1_normalized", "chamfer_l2_normalized", "hausdorff", "normal_consistency", "fscore"):
        assert m[key] == pytest.approx(unit[key], rel=1e-6, abs=1e-9), key
    assert m["radius"] == pytest.approx(3.0)
    assert m["chamfer_l1"] == pytest.approx(3.0 * m["chamfer_l1_normalized"])
    assert m["chamfer_l2"] == pytest.approx(9.0 * m["chamfer_l2_normalized"])


def test_metrics_job_returns_every_key():
    va, fa = icosphere(1.0, 3)
    vb, fb = icosphere(1.05, 3)
    params, arrays = JOBS["metrics"](
        {"num_samples": 5000, "seed": 3}, {"vertices_a": va, "faces_a": fa, "vertices_b": vb, "faces_b": fb}, JobContext()
    )
    assert set(params) == KEYS
    assert arrays == {}
    assert all(isinstance(value, float) and np.isfinite(value) for value in params.values())
    assert 0.0 <= params["fscore"] <= 1.0 and 0.0 <= params["normal_consistency"] <= 1.0
